"""The forward pass's inputs: from what the user gave (shape strings, tuples, tensors) to tensors, made once.

Values are drawn from a private generator with a fixed seed, so the caller's random state is untouched and
the same command makes the same inputs on every run.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import InputSpecError
from .records import ITEMSIZE, TensorInfo
from .spec import DTYPES, InputSpec, parse_input
from .tensors import dtype_name

InputLike = str | InputSpec | Sequence[int] | torch.Tensor
SEED = 0


def to_spec(value: InputLike) -> InputSpec | torch.Tensor:
    """A shape string, a tuple of ints or an InputSpec becomes an InputSpec; a tensor stays as it is."""
    if isinstance(value, (InputSpec, torch.Tensor)):
        return value
    if isinstance(value, str):
        return parse_input(value)
    if isinstance(value, (tuple, list, torch.Size)) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if any(v <= 0 for v in value):
            raise InputSpecError(f"input shape {tuple(value)}: every dimension must be a positive size")
        return InputSpec(tuple(value))
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise InputSpecError(f"input {shown} ({type(value).__name__}): expected a shape string like '64x784', "
                         "a tuple of ints, or a tensor")


def input_bytes(specs: Sequence[InputSpec | torch.Tensor]) -> int:
    """Bytes the inputs take once made (tensors given by the caller count as they are)."""
    total = 0
    for s in specs:
        if isinstance(s, torch.Tensor):
            total += s.numel() * s.element_size()
        else:
            total += math.prod(s.shape) * ITEMSIZE[s.dtype]
    return total


def forward_signature(target: Any) -> inspect.Signature | None:
    """The signature of ``forward`` for a module instance or class (``self`` dropped), None if unknown."""
    forward = getattr(target, "forward", None)
    if forward is None:
        return None
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if inspect.isclass(target) and params and params[0].name == "self":
        sig = sig.replace(parameters=params[1:])
    return sig


def check_arity(target: Any, count: int) -> None:
    """Say clearly when the number of inputs does not fit ``forward``'s positional arguments.

    ``target`` is a module or a module class: a class is checked before anything is built.
    """
    sig = forward_signature(target)
    if sig is None:
        return
    positional = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    if len(required) <= count and (variadic or count <= len(positional)):
        return
    names = ", ".join(p.name for p in positional)
    want = f"{len(required)}" if len(required) == len(positional) else f"{len(required)} to {len(positional)}"
    if variadic:
        want = f"at least {len(required)}"
    name = target.__name__ if inspect.isclass(target) else type(target).__name__
    raise InputSpecError(
        f"{name}.forward({names}) takes {want} input(s), got {count}; "
        "give one --input SHAPE per argument, e.g. --input 64x784 (or 2x16:int64 for token ids)"
    )


def make_input(spec: InputSpec, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """A tensor of the spec's shape: integers and bools are zeros, floats standard normal values.

    Values come from ``generator`` (a fresh one seeded with ``SEED`` if None), never the global RNG.
    """
    dtype = getattr(torch, DTYPES[spec.dtype])
    if device.type == "meta":
        return torch.empty(spec.shape, dtype=dtype, device=device)
    if dtype.is_floating_point or dtype.is_complex:
        gen = generator if generator is not None else torch.Generator().manual_seed(SEED)
        return torch.randn(spec.shape, dtype=dtype, generator=gen).to(device)
    return torch.zeros(spec.shape, dtype=dtype, device=device)


def make_inputs(specs: Sequence[InputSpec | torch.Tensor], device: torch.device
                ) -> tuple[list[torch.Tensor], tuple[TensorInfo, ...]]:
    """The tensors the forward pass receives, and their descriptions for the trace."""
    generator = torch.Generator().manual_seed(SEED)

    def made(s: InputSpec | torch.Tensor) -> torch.Tensor:
        if isinstance(s, torch.Tensor):
            moved = s.to(device)
            # a forward that writes into its input in place must not write into the caller's tensor
            return moved.clone() if moved is s and device.type != "meta" else moved
        return make_input(s, device, generator)

    tensors = [made(s) for s in specs]
    return tensors, tuple(TensorInfo(tuple(t.shape), dtype_name(t.dtype)) for t in tensors)


def model_device(model: nn.Module, inputs: Sequence[object] = ()) -> torch.device:
    """Where the model's tensors are; for a model without any, where its tensor inputs are."""
    for tensors in (model.parameters(), model.buffers(), (t for t in inputs if isinstance(t, torch.Tensor))):
        for tensor in tensors:
            return tensor.device
    return torch.device("cpu")
