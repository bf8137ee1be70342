"""The run stage: decide the device once, check the inputs, make them once, run one pass, diagnose it.

Everything that traces goes through here: the library's ``trace_model`` and ``fc_size``, and every CLI
command. The result is always a :class:`~convshape.records.Trace` whose ``error`` says what failed; the
original exception rides beside it in :class:`Ran` for callers that chain it (the library's TraceError).

Where the pass runs (``device``):

* a built module (the library, or a module-level instance in a file): where its parameters are, unless
  another device is named. Then a stand-in copy is traced on that device, and the caller's model is never
  moved or emptied. A model traced in place gets back its training flags, buffers and random state.
* a class or factory, ``"auto"``: it is first built on meta, which allocates nothing and tells the size of
  its parameters *and* buffers. A model of at most ``SMALL_MODEL_BYTES`` (with at most
  ``SMALL_INPUT_BYTES`` of inputs) is then built on the CPU with its own initialization, under a fixed
  seed, and traced there: the answer is the model's own. Any other model is traced on meta; if meta cannot
  run it (no meta kernel, data-dependent code, tensors made on a fixed device), it is rebuilt on the CPU
  with a note, when its parameters fit in memory. Nothing here looks at the clock: the same command gives
  the same output on an idle and on a busy machine. ``timeout`` only bounds a pass that would not end.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from .arity import check_inputs
from .errors import ConvshapeError, InputSpecError, LoadError, safe_str
from .failure import describe
from .inputlang import Inputs
from .inputs import InputLike, as_inputs, has_symbols, input_bytes, inputs_device, make_inputs, plain_values
from .isolation import Preserved, guarded, stand_in
from .loader import ModelSource
from .params import totals_of, totals_over
from .records import Trace
from .structure import Structure, set_training, walk
from .text import si_bytes
from .tracer import MAX_ROWS, Recorder, raised_by_convshape

SMALL_MODEL_BYTES = 256 * 2**20
SMALL_INPUT_BYTES = 64 * 2**20
MEMORY_HEADROOM = 0.8  # use at most this share of the available memory on a fallback
DEFAULT_TIMEOUT = 300.0
SEED = 0


@dataclass(frozen=True)
class RunOptions:
    """How to run the pass: ``device`` is auto, meta, cpu, cuda or cuda:N; ``timeout`` in seconds (None: none)."""

    device: str = "auto"
    repair_linear: bool = False
    costs: bool = False
    timeout: float | None = DEFAULT_TIMEOUT
    max_rows: int = MAX_ROWS
    train: bool = False  # run in training mode (a model traced in place gets its flags and buffers back)
    reuse_blocks: bool = True  # on meta, replay identical blocks from the first one's rows (reuse.py)


class Ran(NamedTuple):
    """A trace, and the exception that stopped its pass (None when it ran to the end)."""

    trace: Trace
    exception: BaseException | None


def check_device(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputSpecError(f"--device {device}: no CUDA device is available here "
                             "(torch.cuda.is_available() is False); use --device cpu or --device meta")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable on Linux), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def state_bytes(model: nn.Module | Structure) -> int:
    """Bytes of the model's parameters and buffers (each tensor once; lazy ones count 0)."""
    found = model if isinstance(model, Structure) else walk(model)
    return sum(t.numel() * t.element_size() for t in (*found.parameters, *found.buffers)
               if not isinstance(t, (UninitializedParameter, UninitializedBuffer)))


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """A fixed random state for a model convshape builds and runs itself; the caller's comes back after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        yield


def _check(target: Any, given: Inputs, unbound: bool = False) -> None:
    """The inputs against ``forward``'s signature (of a class: before anything is built)."""
    owner = target.__name__ if unbound else type(target).__name__
    check_inputs(target, owner, len(given.args), given.kwargs, unbound=unbound)


def _one_pass(model: nn.Module, given: Inputs, device: torch.device,
              options: RunOptions, label: str, notes: Sequence[str] = (), in_place: bool = False,
              found: Structure | None = None) -> Ran:
    """Make the inputs, run the model once with the recorder, and word a failure if there was one."""
    # The pass and the rows made from it are many small objects and no cycles worth collecting; the cyclic
    # collector would rescan torch's large heap for them (measured: about 3% of a 70B meta trace, and 1-3 µs
    # per row of a 10,000-row trace when it ran while the rows were frozen).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _recorded_pass(model, given, device, options, label, notes, in_place, found)
    finally:
        if collecting:
            gc.enable()


def _recorded_pass(model: nn.Module, given: Inputs, device: torch.device, options: RunOptions, label: str,
                   notes: Sequence[str], in_place: bool, found: Structure | None) -> Ran:
    found = found if found is not None else walk(model)
    args, kwargs, tensors, infos = make_inputs(given, device)
    recorder = Recorder(model, repair_linear=options.repair_linear, max_rows=options.max_rows,
                        costs=options.costs, found=found, reuse=options.reuse_blocks and device.type == "meta")
    recorder.input_ids.update(id(t) for t in tensors)
    placement = torch.device("meta") if device.type == "meta" else nullcontext()
    kept = Preserved(model, found) if in_place else None
    stop = None
    with guarded(options.timeout), kept if kept is not None else nullcontext():
        try:
            set_training(found, options.train)
            with torch.no_grad(), placement, recorder:  # the recorder's mode sits on top of the device's
                model(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # the user's model stopped: keep what was traced, say why
            if isinstance(e, Exception) and raised_by_convshape(e):
                raise RuntimeError(f"convshape internal error while tracing {label} (please report it): "
                                   f"{safe_str(e)}") from e
            stop = recorder.stop(e)
    rows = recorder.frozen_rows()
    failure = describe(rows, stop) if stop is not None else None
    notes = list(notes)
    if recorder.unknown_cost_ops:
        ops = ", ".join(f"{op} (in {where or 'the model'})" for op, where in recorder.unknown_cost_ops.items())
        notes.append(f"FLOPs unknown for: {ops}; rows that run them show no count")
    runs = []
    for template in recorder.templates:
        blocks = template.replayed
        if blocks:
            which = blocks[0] if len(blocks) == 1 else f"{blocks[0]} ... {blocks[-1]} ({len(blocks)} blocks)"
            runs.append(f"{which} from {template.name}")
    if runs:
        notes.append("replayed from the rows of an identical first block (same class, state and input shapes, on "
                     f"meta; --no-reuse runs each): {'; '.join(runs)}")
    if kept is not None and kept.changed:
        notes.append(f"the forward pass changed parameters in place ({', '.join(kept.changed[:5])}); "
                     "convshape cannot undo that")
    # a lazy layer's parameters are the same objects once sized; a model that makes modules in forward is
    # counted again
    totals = totals_of(model) if found.lazy or recorder.saw_new_modules else totals_over(found.parameters)
    trace = Trace(label, str(device), infos, rows, totals, failure, tuple(notes), options.costs,
                  plain_values(given), options.train)
    return Ran(trace, stop.exception if stop is not None else None)


def trace_module(model: nn.Module, inputs: Sequence[InputLike] | Inputs, options: RunOptions = RunOptions(),
                 label: str | None = None, notes: Sequence[str] = (), kwargs: dict[str, Any] | None = None) -> Ran:
    """Trace a built module, never changing it: in place on its own device, else a stand-in on the one named.

    ``inputs`` are the positional inputs (or a parsed :class:`Inputs`), ``kwargs`` the keyword ones."""
    specs = as_inputs(inputs, kwargs)
    _check(model, specs)
    if has_symbols(specs):  # Bx1xHxW: a shape-only copy runs with symbolic sizes
        from .symbolic import trace_module_symbolic  # sympy: imported only by a trace that needs it

        return trace_module_symbolic(model, specs, options, label or type(model).__name__, notes)
    found = walk(model)
    home = found.device() or inputs_device(specs)
    target = home if options.device == "auto" else torch.device(options.device)
    check_device(target)
    same = target == home or (target.type == home.type == "cuda" and target.index is None)
    name = label or type(model).__name__
    if same and not found.lazy:
        return _one_pass(model, specs, target, options, name, notes, in_place=True, found=found)
    # a lazy model is sized by its first forward: that happens to a copy, not to the caller's model
    return _one_pass(stand_in(model, target), specs, target, options, name, notes)


def _on_cpu(source: ModelSource, specs: Inputs, options: RunOptions, notes: Sequence[str]) -> Ran:
    """Build again on the CPU, as the author wrote it (its own init, a fixed seed), and trace it there.

    The first build (on meta) already showed the user what their code prints and warns: this one is quiet.
    """
    with _seeded():
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            model = source.build("cpu")
        _check(model, specs)
        return _one_pass(model, specs, torch.device("cpu"), options, source.label, notes)


def _meta_fallback_reason(ran: Ran) -> str | None:
    """Why meta could not run a model that the CPU might, or None when meta's answer is the model's answer."""
    failure = ran.trace.error
    if failure is None or failure.expected is not None:
        return None  # ran, or a diagnosed shape mismatch
    if not isinstance(ran.exception, Exception):
        return None  # it exited, timed out or looped: the CPU would do the same
    where = f" at {failure.source}" if failure.source else ""
    return f"{failure.error_type}: {failure.message.splitlines()[0][:160]}{where}"


def trace_source(source: ModelSource, inputs: Sequence[InputLike] | Inputs, options: RunOptions = RunOptions(),
                 kwargs: dict[str, Any] | None = None) -> Ran:
    """Build the model of ``source`` where ``options.device`` says (see the module docstring) and trace it."""
    specs = as_inputs(inputs, kwargs)
    notes = list(source.notes)
    if source.is_instance:
        return trace_module(source.obj, specs, options, source.label, notes)
    known = source.model_class or (source.obj if isinstance(source.obj, type) else None)
    if known is not None:
        _check(known, specs, unbound=True)  # before anything is built
    if has_symbols(specs):  # Bx1xHxW: built on meta, run shape-only with symbolic sizes
        from .symbolic import trace_source_symbolic

        return trace_source_symbolic(source, specs, options, notes)
    if options.device != "auto":
        device = torch.device(options.device)
        check_device(device)
        with _seeded() if device.type != "meta" else nullcontext():
            model = source.build(options.device)
            _check(model, specs)
            return _one_pass(model, specs, device, options, source.label, notes)

    try:
        meta_model = source.build("meta")
    except LoadError as e:
        # a model whose own code pins tensors to a device cannot be built on meta: build it as written
        notes.append(f"it could not be built on meta ({safe_str(e).splitlines()[0][:160]}); built on cpu")
        return _on_cpu(source, specs, options, notes)
    _check(meta_model, specs)
    found = walk(meta_model)
    weights, data = state_bytes(found), input_bytes(specs)
    if weights <= SMALL_MODEL_BYTES and data <= SMALL_INPUT_BYTES:
        del meta_model, found
        return _on_cpu(source, specs, options, notes)
    ran = _one_pass(meta_model, specs, torch.device("meta"), options, source.label, notes, found=found)
    reason = _meta_fallback_reason(ran)
    if reason is None:
        return ran
    free = available_memory()
    if free is not None and weights + data > MEMORY_HEADROOM * free:
        raise ConvshapeError(
            f"meta cannot run this model ({reason}), and running it on the cpu would allocate "
            f"{si_bytes(weights)} of parameters and buffers ({totals_of(meta_model).params:,} parameters) and "
            f"{si_bytes(data)} of inputs, but only {si_bytes(free)} of memory is available; make the failing op "
            "meta-friendly or use a machine with more memory"
        )
    notes.append(f"meta could not run this model ({reason}); traced on cpu instead")
    del meta_model, found, ran
    return _on_cpu(source, specs, options, notes)
