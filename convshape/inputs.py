"""The forward pass's inputs: from what the user gave to the tensors ``forward`` receives, made once.

Inputs are trees (:class:`~convshape.inputlang.Inputs`: positional and keyword arguments), nested Python
lists, tuples (named tuples too) and dicts whose leaves are :class:`~convshape.spec.InputSpec` (a tensor to
make, with its fill), tensors, ``PackedSequence`` values and plain values (numbers, None, bools,
:class:`~convshape.spec.Value`), which reach ``forward`` as they are. The command line parses them with
:mod:`convshape.inputlang`; the library takes the same things as Python values (:func:`as_inputs`).

Values are drawn from a private generator with a fixed seed, so the caller's random state is untouched and
the same command makes the same inputs on every run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence

from .errors import InputSpecError
from .inputlang import Inputs, describe, parse_argument
from .records import ITEMSIZE, InputValue, TensorInfo
from .spec import DTYPES, Fill, InputSpec, Value
from .tensors import dtype_name, jsonable

InputLike = Any  # a shape string, a tuple of ints, an InputSpec, a tensor, a container of those, a plain value
SEED = 0

# Without a fill: floats are standard normal; integers ones (a token id valid in any vocabulary of two or
# more, an attention mask that attends everywhere, a length of one); bools True (a mask that keeps
# everything, as torch's scaled_dot_product_attention and Hugging Face read it).
DEFAULT_FILLS = {"float": Fill("randn"), "int": Fill("const", (1,)), "bool": Fill("const", (True,))}


def from_python(value: Any, where: str = "input") -> Any:
    """A library input as a tree: a string is the ``--input`` language, a sequence of ints is a shape.

    ``"1x8:int64:ones"``, ``(1, 8)``, ``torch.Size([1, 8])``, a tensor, ``[t1, "3x240x320"]``,
    ``{"image": "1x3x224x224"}``, ``(h0, c0)``; numbers, None and bools are passed as they are, and
    ``Value(x)`` passes ``x`` as it is (a tuple of ints, or a string that must not be parsed).
    """
    if isinstance(value, str):
        name, tree = parse_argument(value)
        if name is not None:
            raise InputSpecError(f"{where} {describe(value)}: NAME=VALUE is the command line's form; "
                                 f"in Python pass it as a keyword argument: {name}=...")
        return tree
    if value is None or isinstance(value, (InputSpec, torch.Tensor, PackedSequence, Value, bool, int, float,
                                           complex)):
        return value
    if isinstance(value, (tuple, list, torch.Size)) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        if any(v <= 0 for v in value):
            raise InputSpecError(f"{where}: shape {tuple(value)}: every dimension must be a positive size "
                                 "(to pass the integers themselves, wrap them: convshape.Value(...))")
        return InputSpec(tuple(value))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple keeps its type
        return type(value)(*(from_python(v, f"{where}.{f}") for f, v in zip(value._fields, value, strict=True)))
    if isinstance(value, (tuple, list)):
        return type(value)(from_python(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        return {k: from_python(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise InputSpecError(f"{where}: a {type(value).__name__} is not an input; expected a shape string like "
                         "'64x784', a tuple of ints, a tensor, a list/tuple/dict of those, or a plain value "
                         "(a number, None, a bool, convshape.Value(...))")


def as_inputs(args: Sequence[Any] | Inputs, kwargs: dict[str, Any] | None = None) -> Inputs:
    """Positional and keyword library inputs as one :class:`Inputs` tree (parsed trees pass unchanged)."""
    if isinstance(args, Inputs):
        tree = args
        args, kwargs = tree.args, {**tree.kwargs, **(kwargs or {})}
    return Inputs(tuple(from_python(v, f"input {i + 1}") for i, v in enumerate(args)),
                  {k: from_python(v, k) for k, v in (kwargs or {}).items()})


def map_leaves(tree: Any, leaf: Callable[[Any], Any]) -> Any:
    """``tree`` with every leaf replaced by ``leaf(value)``, containers rebuilt with their own types."""
    if isinstance(tree, PackedSequence):
        return leaf(tree)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
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


def input_bytes(given: Inputs | Sequence[Any]) -> int:
    """Bytes the inputs take once made (tensors given by the caller count as they are)."""
    total = 0
    tree = (given.args, given.kwargs) if isinstance(given, Inputs) else given
    for s in leaves(tree):
        if isinstance(s, PackedSequence):
            s = s.data
        if isinstance(s, torch.Tensor):
            total += s.numel() * s.element_size()
        elif isinstance(s, InputSpec):
            total += math.prod(d for d in s.shape if isinstance(d, int)) * ITEMSIZE[s.dtype]
    return total


def default_fill(dtype: torch.dtype) -> Fill:
    if dtype is torch.bool:
        return DEFAULT_FILLS["bool"]
    if dtype.is_floating_point or dtype.is_complex:
        return DEFAULT_FILLS["float"]
    return DEFAULT_FILLS["int"]


def concrete_shape(spec: InputSpec) -> tuple[int, ...]:
    """The spec's shape as numbers; a symbolic size (a name) here is an error: only a symbolic trace takes one."""
    if spec.symbolic:
        raise InputSpecError(f"input {spec}: a size given as a name is symbolic; convshape trace, fc-size and "
                             "sizes take those, this command needs numbers")
    return tuple(int(d) for d in spec.shape)


def make_input(spec: InputSpec, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """A tensor of the spec's shape holding its fill (none given: the dtype's default, ``DEFAULT_FILLS``).

    Random values come from ``generator`` (a fresh one seeded with ``SEED`` if None), never the global RNG.
    On meta the tensor holds no values and the fill does not matter.
    """
    dtype = getattr(torch, DTYPES[spec.dtype])
    shape = concrete_shape(spec)
    if device.type == "meta":
        return torch.empty(shape, dtype=dtype, device=device)
    fill = spec.fill or default_fill(dtype)
    if fill.kind == "const":
        return torch.full(shape, fill.args[0], dtype=dtype, device=device)
    gen = generator if generator is not None else torch.Generator().manual_seed(SEED)
    if fill.kind == "randint":
        low, high = int(fill.args[0]), int(fill.args[1])
        if dtype is torch.bool:
            made = torch.randint(low, high, shape, generator=gen) > 0
        else:
            made = torch.randint(low, high, shape, dtype=dtype, generator=gen)
    elif fill.kind == "rand":
        made = torch.rand(shape, dtype=dtype, generator=gen)
    else:
        made = torch.randn(shape, dtype=dtype, generator=gen)
    return made.to(device)


def materialize(tree: Any, device: torch.device, generator: torch.Generator | None = None) -> Any:
    """``tree`` with each InputSpec made into a tensor, each given tensor placed on ``device`` (a copy: a
    forward that writes into its input must not write into the caller's tensor) and each Value unwrapped."""
    gen = generator if generator is not None else torch.Generator().manual_seed(SEED)

    def made(value: Any) -> Any:
        if isinstance(value, InputSpec):
            return make_input(value, device, gen)
        if isinstance(value, torch.Tensor):
            moved = value.to(device)
            return moved.clone() if moved is value and device.type != "meta" else moved
        if isinstance(value, PackedSequence):
            # keeps its batch_sizes on the cpu, as torch wants them (torch's stub for .to names only dtype)
            return value.to(device)  # type: ignore[arg-type]
        if isinstance(value, Value):
            return value.value
        return value

    return map_leaves(tree, made)


def tensors_of(tree: Any) -> list[torch.Tensor]:
    """The tensors of a made tree, in order (a PackedSequence counts as its data)."""
    return [leaf.data if isinstance(leaf, PackedSequence) else leaf for leaf in leaves(tree)
            if isinstance(leaf, (torch.Tensor, PackedSequence))]


def _named(tree: Any, path: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(tree, PackedSequence):
        return [(path, tree.data)]
    if isinstance(tree, torch.Tensor):
        return [(path, tree)]
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return [p for f, v in zip(tree._fields, tree, strict=True) for p in _named(v, f"{path}.{f}")]
    if isinstance(tree, (list, tuple)):
        return [p for i, v in enumerate(tree) for p in _named(v, f"{path}[{i}]")]
    if isinstance(tree, dict):
        return [p for k, v in tree.items() for p in _named(v, f"{path}[{k!r}]")]
    return []


def make_inputs(given: Inputs, device: torch.device
                ) -> tuple[tuple[Any, ...], dict[str, Any], list[torch.Tensor], tuple[TensorInfo, ...]]:
    """What the forward pass receives (positional and keyword arguments), every tensor in it, and their
    descriptions for the trace: a keyword input is named by its path (``attention_mask``, ``batch['image']``)."""
    generator = torch.Generator().manual_seed(SEED)
    args = materialize(given.args, device, generator)
    kwargs = materialize(given.kwargs, device, generator)
    infos = [TensorInfo(tuple(t.shape), dtype_name(t.dtype)) for t in tensors_of(args)]
    for key, value in kwargs.items():
        infos.extend(TensorInfo(tuple(t.shape), dtype_name(t.dtype), path) for path, t in _named(value, key))
    return args, kwargs, tensors_of(args) + tensors_of(kwargs), tuple(infos)


def _plain(tree: Any, path: str | None) -> list[InputValue]:
    if isinstance(tree, (InputSpec, torch.Tensor, PackedSequence)):
        return []
    if isinstance(tree, Value):
        tree = tree.value
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return [v for f, item in zip(tree._fields, tree, strict=True) for v in _plain(item, f"{path or ''}.{f}")]
    elif isinstance(tree, (list, tuple)) and any(isinstance(v, (InputSpec, torch.Tensor, PackedSequence))
                                                 for v in leaves(tree)):
        return [v for i, item in enumerate(tree) for v in _plain(item, f"{path or ''}[{i}]")]
    elif isinstance(tree, dict) and any(isinstance(v, (InputSpec, torch.Tensor, PackedSequence))
                                        for v in leaves(tree)):
        return [v for k, item in tree.items() for v in _plain(item, f"{path or ''}[{k!r}]")]
    text = repr(tree)
    return [InputValue(path, jsonable(tree), text if len(text) <= 40 else text[:37] + "...")]


def plain_values(given: Inputs) -> tuple[InputValue, ...]:
    """The forward arguments that are not tensors (a mode string, a scale, None), for the trace's header;
    a keyword one named by its path (``mode``, ``state[1]``), a positional one by None or its path in a
    container (``[1]``)."""
    values = [v for item in given.args for v in _plain(item, None)]
    values += [v for key, item in given.kwargs.items() for v in _plain(item, key)]
    return tuple(values)


def inputs_device(inputs: Any = ()) -> torch.device:
    """Where the first tensor input is (the device of a model without parameters or buffers); else the CPU."""
    tree = (inputs.args, inputs.kwargs) if isinstance(inputs, Inputs) else inputs
    for tensor in leaves(tree):
        if isinstance(tensor, torch.Tensor):
            return tensor.device
    return torch.device("cpu")


def has_symbols(given: Inputs) -> bool:
    """Whether any input names a size (``Bx1xHxW``): a symbolic trace (convshape.symbolic, which imports sympy)."""
    return any(isinstance(leaf, InputSpec) and leaf.symbolic for leaf in leaves((given.args, given.kwargs)))
