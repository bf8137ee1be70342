"""The library entry points: :func:`trace_model` and :func:`parameters`."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from .arity import check_inputs
from .errors import InputSpecError, TraceError
from .fc import LINEARS, describe_origin, fc_report, flatten_origin
from .params import param_report, totals_of
from .records import Failure, FcReport, ParamReport, Trace
from .spec import InputSpec, parse_device, parse_input
from .tracer import Recorder, raised_by_convshape
from .values import from_python, input_infos, input_tensors, make_tensor, materialize, restore_buffers, saved_buffers

InputLike = str | InputSpec | Sequence[int] | torch.Tensor


def to_spec(value: InputLike) -> InputSpec | torch.Tensor:
    if isinstance(value, (InputSpec, torch.Tensor)):
        return value
    if isinstance(value, str):
        return parse_input(value)
    if isinstance(value, (tuple, list, torch.Size)) and all(isinstance(v, int) for v in value):
        if any(v <= 0 for v in value):
            raise InputSpecError(f"input shape {tuple(value)}: every dimension must be a positive size")
        return InputSpec(tuple(value))
    raise InputSpecError(f"input {value!r}: expected a shape string like '64x784', a tuple of ints, "
                         "or a tensor")


def check_arity(model: nn.Module, count: int) -> None:
    """Say clearly when the number of inputs does not fit ``forward``'s positional arguments."""
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    if len(required) <= count and (variadic or count <= len(positional)):
        return
    names = ", ".join(p.name for p in positional)
    want = f"{len(required)}" if len(required) == len(positional) else f"{len(required)} to {len(positional)}"
    raise InputSpecError(
        f"{type(model).__name__}.forward({names}) takes {want} input(s), got {count}; "
        "give one --input SHAPE per argument, e.g. --input 64x784 (or 2x16:int64 for token ids)"
    )


def check_device(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputSpecError(f"--device {device}: no CUDA device is available here "
                             "(torch.cuda.is_available() is False); use --device cpu or --device meta")


def make_input(spec: InputSpec, device: torch.device) -> torch.Tensor:
    """A tensor of the spec's shape holding its fill (see :mod:`convshape.values`)."""
    return make_tensor(spec, device)


def model_device(model: nn.Module, inputs: Sequence[object] = ()) -> torch.device:
    """Where the model's tensors are; for a model without any, where its tensor inputs are."""
    for tensors in (model.parameters(), model.buffers(), (t for t in inputs if isinstance(t, torch.Tensor))):
        for tensor in tensors:
            return tensor.device
    return torch.device("cpu")


def _move(model: nn.Module, device: torch.device) -> None:
    current = model_device(model)
    if current == device or (current.type == device.type == "cuda" and device.index is None):
        return
    if current.type == "meta":
        model.to_empty(device=device)  # no values to copy: shapes are all a trace needs
    else:
        model.to(device)


def trace_model(model: nn.Module, *inputs: Any, device: str | torch.device | None = None,
                label: str | None = None, repair_linear: bool = False, notes: Sequence[str] = (),
                budget_s: float | None = None, costs: bool = False, train: bool = False,
                forward_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Trace:
    """Run one forward pass of ``model`` with hooks and return every call as plain data.

    Each input is a shape string (``"64x784"``, ``"2x16:int64:randint(1000)"``, or any form of the
    ``--input`` language: ``"[3x320x320, 3x240x320]"``), a tuple of ints, a tensor, a list, tuple or dict
    of those, or a plain value (a number, None, a bool; ``convshape.Value(x)`` passes ``x`` as it is).
    Other keyword arguments go to ``forward`` by name (``attention_mask="1x8:int64:ones"``); one named
    like an option of this function goes in ``forward_kwargs={"device": ...}``.
    ``train=True`` runs the model in training mode (its flags and buffers, such as BatchNorm's
    running statistics, are restored afterwards).
    ``device`` defaults to ``"auto"``: where the model's parameters are (``"meta"`` traces without
    allocating any weights). Naming another device moves the model there. The model runs in eval mode under
    ``torch.no_grad()``, and its training flags are restored afterwards. On meta the pass also runs
    under ``torch.device("meta")``, so tensors the model creates itself land there too.
    ``budget_s`` stops a pass that runs longer (raising ``OverBudget``); ``notes`` are carried
    into the trace. ``costs=True`` counts FLOPs and MACs per row from the aten ops executed.

    Raises :class:`~convshape.errors.TraceError` when the forward pass fails; its ``trace``
    attribute holds the rows recorded up to the failure and a diagnosis in ``trace.error``,
    and the original exception is chained as ``__cause__``.
    """
    wanted = parse_device(str(device)) if device is not None else "auto"
    # A built model stays where it is under "auto": on meta if it was built there, else its own device.
    target = model_device(model, inputs) if wanted == "auto" else torch.device(wanted)
    check_device(target)
    _move(model, target)
    both = set(kwargs) & set(forward_kwargs or {})
    if both:
        raise InputSpecError(f"forward argument {sorted(both)[0]!r} given twice (as a keyword and in forward_kwargs)")
    args_tree = tuple(from_python(v, f"input {i + 1}") for i, v in enumerate(inputs))
    kw_tree = {k: from_python(v, k) for k, v in {**kwargs, **(forward_kwargs or {})}.items()}
    check_inputs(model, type(model).__name__, len(args_tree), kw_tree)
    args, kw = materialize(args_tree, target), materialize(kw_tree, target)
    tensors = input_tensors(args) + input_tensors(kw)
    infos = input_infos(args, kw)
    name = label or type(model).__name__
    modes = [(m, m.training) for m in model.modules()]
    saved = saved_buffers(model) if train else None
    deadline = time.perf_counter() + budget_s if budget_s is not None else None
    recorder = Recorder(model, repair_linear=repair_linear, deadline=deadline, costs=costs)
    recorder.input_ids.update(id(t) for t in tensors)
    failure: Failure | None = None
    cause: BaseException | None = None
    placement = torch.device("meta") if target.type == "meta" else nullcontext()
    collecting = gc.isenabled()
    try:
        model.train(train)
        # The pass makes many small objects and no cycles worth collecting; the cyclic collector would
        # rescan torch's large heap for them (measured: about 3% of a 70B meta trace).
        gc.disable()
        with torch.no_grad(), placement, recorder:  # the recorder's mode sits on top of the device's
            model(*args, **kw)
    except Exception as e:  # the user's model failed: diagnose it, keep what was traced
        if raised_by_convshape(e):
            raise RuntimeError(f"convshape internal error while tracing {name} (please report it): {e!r}") from e
        failure, cause = recorder.failure(e), e
    finally:
        if collecting:
            gc.enable()
        for module, training in modes:
            module.training = training
        if saved is not None:
            restore_buffers(saved)
    rows = recorder.frozen_rows()
    if failure is not None and failure.row is not None and failure.layer_type in LINEARS \
            and failure.expected is not None:
        failure = _explain_linear(rows, failure)
    notes = list(notes)
    if recorder.unknown_cost_ops:
        ops = ", ".join(f"{op} (in {where or 'the model'})" for op, where in recorder.unknown_cost_ops.items())
        notes.append(f"FLOPs unknown for: {ops}; rows that run them show no count")
    trace = Trace(name, str(target), infos, rows, totals_of(model), failure, tuple(notes), costs)
    if failure is not None:
        raise TraceError(failure.summary, trace) from cause
    return trace


def _explain_linear(rows: tuple[Any, ...], failure: Failure) -> Failure:
    """fc1 (Linear) expects in_features=320 but receives 800 = 50 x 4 x 4 from max_pool2d at net.py:14."""
    row = rows[failure.row]
    got = row.input_shapes[0][-1]
    origin = describe_origin(got, flatten_origin(rows, row))
    summary = f"{row.name} ({row.op}) expects {failure.expected} but receives {origin}"
    if failure.fix:
        summary += f"; write {failure.fix}"
    return dataclasses.replace(failure, summary=summary)


def parameters(model: nn.Module, label: str | None = None) -> ParamReport:
    """Every parameter tensor of ``model``: shapes, counts, trainable flags, tied weights once."""
    return param_report(model, label or type(model).__name__)


def fc_size(model: nn.Module, *inputs: InputLike, device: str | torch.device | None = None,
            layer: str | None = None, label: str | None = None) -> FcReport:
    """The in_features every Linear reached in the forward pass needs, and the fix for wrong ones.

    Each mismatching Linear returns an output of its declared size instead of failing, so one run
    answers for every Linear even when the model as written stops at the first wrong one.
    """
    try:
        trace = trace_model(model, *inputs, device=device, label=label, repair_linear=True)
    except TraceError as e:
        trace = e.trace  # failed elsewhere: report the Linears reached before the failure
    return fc_report(trace, layer)
