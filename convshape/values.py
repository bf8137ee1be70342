"""Input trees as Python values: what the library accepts, and the tensors made from a parsed ``--input``.

A tree is a Python list, tuple (named tuples too) or dict, nested, whose leaves are
:class:`~convshape.spec.InputSpec` (a tensor to make), tensors, ``PackedSequence`` values and plain
values (numbers, strings, None, ...), which are passed to ``forward`` as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from .errors import InputSpecError
from .inputlang import describe, parse_argument
from .records import TensorInfo
from .spec import DTYPES, Fill, InputSpec, Value
from .tensors import dtype_name

# Without a fill: floats are normal samples; integers ones (a token id valid in any vocabulary of two
# or more, an attention mask that attends everywhere, a length of one); bools True (a mask that keeps
# everything, as torch's scaled_dot_product_attention and Hugging Face read it).
DEFAULT_FILLS = {"float": Fill("randn"), "int": Fill("const", (1,)), "bool": Fill("const", (True,))}


def default_fill(dtype: torch.dtype) -> Fill:
    if dtype is torch.bool:
        return DEFAULT_FILLS["bool"]
    if dtype.is_floating_point or dtype.is_complex:
        return DEFAULT_FILLS["float"]
    return DEFAULT_FILLS["int"]


def make_tensor(spec: InputSpec, device: torch.device) -> torch.Tensor:
    """The tensor of ``spec`` on ``device``, holding its fill (on meta: no values at all)."""
    dtype = getattr(torch, DTYPES[spec.dtype])
    if device.type == "meta":
        return torch.empty(spec.shape, dtype=dtype, device=device)
    fill = spec.fill or default_fill(dtype)
    if fill.kind == "const":
        return torch.full(spec.shape, fill.args[0], dtype=dtype, device=device)
    if fill.kind == "randint":
        low, high = int(fill.args[0]), int(fill.args[1])
        if dtype is torch.bool:
            return torch.randint(low, high, spec.shape, device=device) > 0
        return torch.randint(low, high, spec.shape, dtype=dtype, device=device)
    if fill.kind == "rand":
        return torch.rand(spec.shape, dtype=dtype, device=device)
    return torch.randn(spec.shape, dtype=dtype, device=device)


def map_leaves(tree: Any, leaf: Callable[[Any], Any]) -> Any:
    """``tree`` with every leaf replaced by ``leaf(value)``, containers rebuilt with their own types."""
    if isinstance(tree, PackedSequence):
        return leaf(tree)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a named tuple
        return type(tree)(*(map_leaves(v, leaf) for v in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_leaves(v, leaf) for v in tree)
    if isinstance(tree, dict):
        return type(tree)((k, map_leaves(v, leaf)) for k, v in tree.items())
    return leaf(tree)


def leaves(tree: Any) -> list[Any]:
    """Every leaf of ``tree``, in order."""
    out: list[Any] = []
    map_leaves(tree, out.append)
    return out


def materialize(tree: Any, device: torch.device) -> Any:
    """``tree`` with each InputSpec made into a tensor and each given tensor moved to ``device``."""

    def make(value: Any) -> Any:
        if isinstance(value, InputSpec):
            return make_tensor(value, device)
        if isinstance(value, (torch.Tensor, PackedSequence)):
            return value.to(device)  # a PackedSequence keeps its batch_sizes on the cpu, as torch wants
        if isinstance(value, Value):
            return value.value
        return value

    return map_leaves(tree, make)


def from_python(value: Any, where: str = "input") -> Any:
    """A library input as a tree: strings are the ``--input`` language, a sequence of ints is a shape.

    ``"1x8:int64:ones"``, ``(1, 8)``, ``torch.Size([1, 8])``, a tensor, ``[t1, "3x240x320"]``,
    ``{"image": "1x3x224x224"}``, ``(h0, c0)``; numbers, None, bools are passed as they are, and
    ``Value(x)`` passes ``x`` as it is (for a tuple of ints or a string that must not be parsed).
    """
    if isinstance(value, str):
        name, tree = parse_argument(value)
        if name is not None:
            raise InputSpecError(f"{where} {describe(value)}: NAME=VALUE is the command line's form; "
                                 f"in Python pass it as a keyword argument: {name}=...")
        return tree
    if isinstance(value, (InputSpec, torch.Tensor, PackedSequence, Value)) or value is None:
        return value
    if isinstance(value, (bool, float, complex)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list, torch.Size)) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if any(v <= 0 for v in value):
            raise InputSpecError(f"{where} shape {tuple(value)}: every dimension must be a positive size; "
                                 "to pass the integers themselves, wrap them: convshape.Value(...)")
        return InputSpec(tuple(value))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(from_python(v, f"{where}.{f}") for f, v in zip(value._fields, value, strict=True)))
    if isinstance(value, (tuple, list)):
        return type(value)(from_python(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return {k: from_python(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise InputSpecError(f"{where}: a {type(value).__name__} is not an input; expected a shape string like "
                         "'64x784', a tuple of ints, a tensor, a list/tuple/dict of those, or a plain value "
                         "(number, None, bool, convshape.Value(...))")


def input_tensors(tree: Any) -> list[torch.Tensor]:
    """The tensors of a made tree, in order (a PackedSequence counts as its data)."""
    out: list[torch.Tensor] = []
    for leaf in leaves(tree):
        if isinstance(leaf, PackedSequence):
            out.append(leaf.data)
        elif isinstance(leaf, torch.Tensor):
            out.append(leaf)
    return out


def _paths(tree: Any, path: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(tree, PackedSequence):
        return [(path, tree.data)]
    if isinstance(tree, torch.Tensor):
        return [(path, tree)]
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return [p for f, v in zip(tree._fields, tree, strict=True) for p in _paths(v, f"{path}.{f}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in _paths(v, f"{path}[{i}]")]
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _paths(v, f"{path}[{k!r}]")]
    return []


def input_infos(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[TensorInfo, ...]:
    """Every input tensor's shape and dtype; a keyword one (or one inside a keyword's container) named
    by its path, ``attention_mask`` or ``batch['image']``."""
    infos = [TensorInfo(tuple(t.shape), dtype_name(t.dtype)) for t in input_tensors(args)]
    for key, value in kwargs.items():
        infos.extend(TensorInfo(tuple(t.shape), dtype_name(t.dtype), path) for path, t in _paths(value, key))
    return tuple(infos)


def saved_buffers(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A copy of every buffer (BatchNorm's running statistics, counters), for a pass in training mode."""
    return [(b, b.detach().clone()) for b in model.buffers()]


def restore_buffers(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buffer, copy in saved:
            if buffer.shape == copy.shape:
                buffer.copy_(copy)
