"""Repeated identical blocks on meta: the first block's rows stand for the others, where provably the same.

A LLaMA-70B trace runs 80 decoder blocks that differ only in their weights' values. On meta there are no
values: a block's output shapes, and every row inside it, follow from its code, its own state and its
inputs' shapes. So once the first block of a run of siblings (children of one ``nn.ModuleList`` or
``nn.Sequential``) has been recorded, a sibling is not run but replayed from those rows when:

* it is the same class, and so is each submodule under the same relative name, with the same non-tensor
  attributes (``layer_idx``, ``eps``, ``training``; compared by value, plain data only), the same parameter
  and buffer shapes, strides and dtypes, no hooks of its own and no compiled call;
* the first block still had that state *after* its forward (a forward that counts its calls changes it);
* it gets inputs of the same structure, plain values equal, tensors of the same shape, stride and dtype;
* the first block's forward left its inputs' shapes alone, made no module the tree did not know, raised
  nothing, returned tensors it made (not views), and its rows read tensors only from its inputs, from its
  parameters, or from its own rows;
* no one else's hook is registered, and the trace is a concrete one on meta.

Anything else runs as usual. The replayed rows are the first block's rows with their names, indices,
parents and producers moved over; the outputs are new meta tensors of the recorded shapes and strides.
What no check here can see is a block whose shapes depend on state outside the model (a global counter):
such a forward is not the same block twice, and ``reuse_blocks=False`` (``--no-reuse``) traces every block.
"""

from __future__ import annotations

import dataclasses
import enum
import types
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .structure import Structure

_BASE_STATE = frozenset(vars(nn.Module())) - {"training"}  # torch's own bookkeeping on every module
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device, torch.layout,
          torch.memory_format, enum.Enum)
_CALLABLE = (types.FunctionType, types.BuiltinFunctionType, types.MethodWrapperType, type)


class _Unknown(Exception):
    """A value whose equality says nothing about what a forward does with it."""


def _value(v: Any, depth: int = 0) -> Any:
    """A comparable image of an attribute value; raises :class:`_Unknown` for anything but plain data."""
    if depth > 8:
        raise _Unknown
    if isinstance(v, _PLAIN):
        return (type(v), v)
    if isinstance(v, (tuple, list, frozenset, set)):
        items = [_value(x, depth + 1) for x in v]
        return (type(v), tuple(sorted(items, key=repr)) if isinstance(v, (set, frozenset)) else tuple(items))
    if isinstance(v, dict):
        return (type(v), tuple((_value(k, depth + 1), _value(x, depth + 1)) for k, x in v.items()))
    if type(v) is torch.Tensor:  # a plain tensor attribute: on meta only its metadata exists
        return ("tensor", tuple(v.shape), v.stride(), v.dtype, v.device)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return (type(v), tuple((f.name, _value(getattr(v, f.name), depth + 1)) for f in dataclasses.fields(v)))
    if isinstance(v, _CALLABLE) or (isinstance(v, nn.Module) and depth == 0):
        return ("object", id(v))  # the same function or class, by identity (a submodule: compared on its own)
    raise _Unknown


def _tensor_state(tensors: dict[str, Any]) -> tuple[Any, ...]:
    return tuple((name, None if t is None else (type(t), tuple(t.shape), t.stride(), t.dtype, t.requires_grad))
                 for name, t in tensors.items())


def module_state(module: nn.Module) -> tuple[Any, ...] | None:
    """Everything a forward can read from ``module`` and its submodules, comparable; None when some part is
    not plain data, a hook is registered or a call is compiled (then nothing is reused)."""
    state = []
    with torch._C.DisableTorchFunction():
        for rel, sub in module.named_modules(remove_duplicate=False):
            own = vars(sub)
            if any(own[h] for h in _HOOKS if h in own) or "_compiled_call_impl" in own or "forward" in own:
                return None
            try:
                attrs = tuple((k, _value(v)) for k, v in own.items() if k not in _BASE_STATE)
            except _Unknown:
                return None
            state.append((rel, type(sub), attrs, _tensor_state(sub._parameters), _tensor_state(sub._buffers)))
    return tuple(state)


def input_state(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], list[torch.Tensor]] | None:
    """The inputs' structure, plain values and tensor metadata, and the tensors in order; None for anything
    but plain meta tensors and plain values, flat."""
    tensors: list[torch.Tensor] = []
    parts: list[tuple[Any, ...]] = []
    with torch._C.DisableTorchFunction():
        for key, v in (*enumerate(args), *kwargs.items()):
            if type(v) is torch.Tensor:
                if v.device.type != "meta":
                    return None
                tensors.append(v)
                parts.append((key, "tensor", tuple(v.shape), v.stride(), v.dtype, v.requires_grad))
            elif isinstance(v, _PLAIN):
                parts.append((key, type(v), v))
            else:
                return None
    return tuple(parts), tensors


def output_parts(output: Any) -> tuple[bool, tuple[torch.Tensor | None, ...]] | None:
    """(is a tuple, its items) for a plain meta tensor or a tuple of them and None; None for anything else."""
    items = output if type(output) is tuple else (output,)
    if not all(t is None or (type(t) is torch.Tensor and t.device.type == "meta") for t in items):
        return None
    return type(output) is tuple, tuple(items)


def sibling_runs(found: Structure) -> dict[int, list[nn.Module]]:
    """id(block) -> the later siblings of the same class, for each child with children of its own in an
    ``nn.ModuleList`` or ``nn.Sequential``: the blocks a recorded first one may stand for."""
    runs: dict[int, list[nn.Module]] = {}
    for container in found.modules:
        if type(container) not in (nn.ModuleList, nn.Sequential):
            continue
        children = [c for c in container._modules.values() if c is not None and c._modules]
        for i, child in enumerate(children):
            later = [c for c in children[i + 1:] if type(c) is type(child) and c is not child]
            if later and id(child) not in runs:
                runs[id(child)] = later
    return runs


@dataclass
class Template:
    """The recorded first block: what a sibling must match, and the rows and outputs to replay."""

    block: nn.Module
    name: str
    state: tuple[Any, ...]
    inputs: tuple[Any, ...]
    input_tensors: list[torch.Tensor]
    input_sources: tuple[int | None, ...]
    start: int
    rows: list[Any]  # the block's rows, itself first (tracer._Pending for modules, records.Row for functions)
    relative: list[str | None]  # per row: a module row's name relative to the block, None for a function row
    is_tuple: bool
    outputs: tuple[tuple[int | None, tuple[int, ...], tuple[int, ...], torch.dtype, int | None] | None, ...]
    # per output: (the input it is, or None; shape; stride; dtype; the row that made it, or None)
    calls: dict[str, int]  # relative name -> calls the first block made of that module
    replayed: list[str] = dataclasses.field(default_factory=list)
