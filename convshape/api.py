"""The library entry points: :func:`trace_model`, :func:`fc_size`, :func:`parameters` and :func:`input_sizes`.

A thin facade over the run stage (:mod:`convshape.run`): it returns plain data, and raises
:class:`~convshape.errors.TraceError` when the model's forward pass fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import InputSpecError, TraceError
from .fc import fc_report
from .inputs import InputLike, as_inputs
from .params import param_report
from .records import FcReport, ParamReport, Trace
from .run import DEFAULT_TIMEOUT, RunOptions, trace_module
from .spec import parse_device
from .symbolic_records import SizesReport


def _options(device: str | torch.device | None, **kw: object) -> RunOptions:
    wanted = parse_device(str(device)) if device is not None else "auto"
    return RunOptions(device=wanted, **kw)  # type: ignore[arg-type]


def _forward_kwargs(kwargs: dict[str, Any], forward_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    both = sorted(set(kwargs) & set(forward_kwargs or {}))
    if both:
        raise InputSpecError(f"forward argument {both[0]!r} is given twice: as a keyword and in forward_kwargs")
    return {**kwargs, **(forward_kwargs or {})}


def trace_model(model: nn.Module, *inputs: InputLike, device: str | torch.device | None = None,
                label: str | None = None, costs: bool = True, timeout: float | None = DEFAULT_TIMEOUT,
                train: bool = False, forward_kwargs: dict[str, Any] | None = None, reuse_blocks: bool = True,
                **kwargs: InputLike) -> Trace:
    """Run one forward pass of ``model`` with hooks and return every call as plain data.

    Each input is a shape string (``"64x784"``, ``"2x16:int64:randint(1000)"``, or any form of the
    ``--input`` language: ``"[3x320x320, 3x240x320]"``), a tuple of ints, a tensor, a list, tuple or dict
    of those, nested, or a plain value (a number, None, a bool; ``convshape.Value(x)`` passes ``x`` as it
    is: a string, a tuple of ints). Other keyword arguments go to ``forward`` by name
    (``attention_mask="1x8:int64:ones"``); one named like an option of this function goes in
    ``forward_kwargs`` (``forward_kwargs={"device": "1x8"}``). ``train=True`` runs the pass in training
    mode (the model's flags and buffers, BatchNorm's running statistics among them, come back as they were).
    ``device`` defaults to where the model's parameters are; naming another device (``"meta"`` traces
    without allocating any weights) traces a stand-in copy there. Either way the caller's model is left
    exactly as it was: parameters, buffers, device, training flags, requires_grad, hooks, and the global
    random state. The pass runs in eval mode under ``torch.no_grad()``; float inputs are drawn from a fixed
    seed. ``costs=True`` counts FLOPs and MACs per row from the aten ops executed. ``timeout`` (seconds,
    None for none) stops a pass that would not end; it applies in the main thread. On meta, a run of identical
    blocks (the 80 decoder layers of a LLaMA) is traced once and the rest replayed from its rows, where their
    class, state and input shapes are provably the same (a note says so); ``reuse_blocks=False`` runs each.

    Raises :class:`~convshape.errors.TraceError` when the forward pass fails; its ``trace`` attribute
    holds the rows recorded up to the failure and a diagnosis in ``trace.error``, and the original
    exception is chained as ``__cause__``.
    """
    trace, exception = trace_module(model, inputs, _options(device, costs=costs, timeout=timeout, train=train,
                                                            reuse_blocks=reuse_blocks),
                                    label, kwargs=_forward_kwargs(kwargs, forward_kwargs))
    if trace.error is not None:
        raise TraceError(trace.error.summary, trace) from exception
    return trace


def parameters(model: nn.Module, label: str | None = None) -> ParamReport:
    """Every parameter tensor of ``model``: shapes, counts, trainable flags, tied weights once."""
    return param_report(model, label or type(model).__name__)


def fc_size(model: nn.Module, *inputs: InputLike, device: str | torch.device | None = None,
            layer: str | None = None, label: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
            forward_kwargs: dict[str, Any] | None = None, **kwargs: InputLike) -> FcReport:
    """The in_features every Linear reached in the forward pass needs, and the fix for wrong ones.

    Each mismatching Linear returns an output of its declared size instead of failing, so one run
    answers for every Linear even when the model as written stops at the first wrong one. A model that
    fails elsewhere still reports the Linear layers reached before the failure (``report.error``).
    """
    options = _options(device, repair_linear=True, timeout=timeout)
    given = as_inputs(inputs, _forward_kwargs(kwargs, forward_kwargs))
    from .inputs import has_symbols

    if has_symbols(given):  # sizes as names: formulas, and the sizes each declared in_features fits
        from .fcsym import symbolic_fc
        from .symbolic import module_target

        return symbolic_fc(module_target(model, label or type(model).__name__, ()), given, options, (), layer)[2]
    trace, _ = trace_module(model, given, options, label)
    return fc_report(trace, layer)


def input_sizes(model: nn.Module, *inputs: InputLike, tries: Sequence[dict[str, int]] = (), limit: int | None = None,
                passes: int = 24, device: str | torch.device | None = None, label: str | None = None,
                timeout: float | None = DEFAULT_TIMEOUT, **kwargs: InputLike) -> SizesReport:
    """Which input sizes ``model`` accepts: ``input_sizes(net, "1x3xHxW", tries=[{"H": 224, "W": 224}])``.

    Names in the inputs are the sizes that vary (see ``convshape sizes``); each is checked from 1 to
    ``limit``. The report says which sizes run (``runs``, ``each``, ``smallest``), why the others fail
    (``fails``), and for each of ``tries`` whether a concrete forward pass runs.
    """
    from .sizes import sizes_report
    from .symbolic import module_target, names_in

    given = as_inputs(inputs, kwargs)
    if not names_in(given):
        raise InputSpecError("input_sizes needs at least one size given as a name, e.g. \"1x3xHxW\"")
    target = module_target(model, label or type(model).__name__, ())
    return sizes_report(target, given, _options(device, timeout=timeout), tries, limit, passes,
                        tuple(str(i) for i in inputs))
