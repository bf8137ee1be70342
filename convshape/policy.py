"""Where to run the forward pass: ``--device auto`` picks what is fastest and still correct.

Measured on torch 2.13 CPU (see benchmarks/): the first op on meta tensors in a process costs
about 1.2 s (torch imports its meta registrations, Python reference kernels and torch._dynamo),
while building a model on meta costs nothing and allocates no weights. So:

1. Build the model on meta first: free, and it tells the parameter bytes without allocating them.
2. A small model (at most ``SMALL_PARAM_BYTES`` of parameters, ``SMALL_INPUT_BYTES`` of inputs) is
   rebuilt on the CPU with ``torch.nn.init`` skipped and traced there, within ``CPU_BUDGET_S``; a pass
   that runs longer stops and the model is traced on meta instead (the most this costs is the budget).
3. Any other model is traced on meta. If meta cannot run it (an op without a meta kernel,
   data-dependent code such as ``.item()``, tensors made on a fixed device), it is rebuilt and traced
   on the CPU, with a one-line note, but only when its parameters fit in the memory available.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .api import check_device, trace_model
from .errors import ConvshapeError, TraceError
from .inputlang import Inputs
from .loader import ModelSource
from .params import totals_of
from .records import ITEMSIZE, Trace
from .spec import InputSpec
from .text import si_bytes
from .tracer import OverBudget
from .values import leaves

if TYPE_CHECKING:
    from torch import nn

SMALL_PARAM_BYTES = 256 * 2**20
SMALL_INPUT_BYTES = 64 * 2**20
CPU_BUDGET_S = 1.0
MEMORY_HEADROOM = 0.8  # use at most this share of the available memory on a fallback


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


def _input_bytes(given: Inputs) -> int:
    specs = [leaf for leaf in leaves((given.args, given.kwargs)) if isinstance(leaf, InputSpec)]
    return sum(math.prod(spec.shape) * ITEMSIZE[spec.dtype] for spec in specs)


def _rebuild(source: ModelSource) -> nn.Module:
    """Build again on the CPU; the meta build already showed the user any warning their code gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return source.build("cpu", skip_init=True)


def trace_source(source: ModelSource, specs: Sequence[InputSpec] | Inputs, device: str = "auto",
                 repair_linear: bool = False, costs: bool = False, train: bool = False) -> Trace:
    """Build the model of ``source`` where ``device`` says (``auto``: see the module docstring) and trace it."""
    import torch

    given = specs if isinstance(specs, Inputs) else Inputs(tuple(specs))
    run: Callable[..., Trace] = lambda model, dev, **kw: trace_model(  # noqa: E731
        model, *given.args, device=dev, label=source.label, repair_linear=repair_linear, costs=costs,
        train=train, forward_kwargs=given.kwargs, **kw)
    if source.is_instance:
        return run(source.obj, None if device == "auto" else device)
    if device != "auto":
        check_device(torch.device(device))
        return run(source.build(device), device)

    notes: list[str] = []
    meta_model, pinned = source.build_meta_or_cpu()
    if pinned is not None:  # built on the cpu: trace it there
        return run(meta_model, "cpu", notes=[pinned])
    totals = totals_of(meta_model)
    weights = totals.bytes
    data = _input_bytes(given)
    if weights <= SMALL_PARAM_BYTES and data <= SMALL_INPUT_BYTES:
        try:
            return run(_rebuild(source), "cpu", budget_s=CPU_BUDGET_S)
        except OverBudget:
            notes.append(f"the cpu forward pass ran past {CPU_BUDGET_S:g} s; traced on meta instead")
    try:
        return run(meta_model, "meta", notes=notes)
    except TraceError as e:
        failure = e.trace.error
        if failure is None or failure.expected is not None:
            raise  # a diagnosed shape mismatch: meta's answer is the model's answer
        where = f" at {failure.source}" if failure.source else ""
        reason = f"{failure.error_type}: {failure.message.splitlines()[0][:160]}{where}"
    free = available_memory()
    if free is not None and weights + data > MEMORY_HEADROOM * free:
        raise ConvshapeError(
            f"meta cannot run this model ({reason}), and running it on the cpu would allocate "
            f"{si_bytes(weights)} of parameters ({totals.params:,} parameters) and {si_bytes(data)} of "
            f"inputs, but only {si_bytes(free)} of memory is available; make the failing op meta-friendly "
            "or use a machine with more memory"
        )
    notes.append(f"meta could not run this model ({reason}); traced on cpu instead")
    del meta_model
    return run(_rebuild(source), "cpu", notes=notes)
