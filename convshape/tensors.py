"""Small helpers over tensors and nested containers (tuples, lists, dicts) of them."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

PLAIN_TYPES = frozenset({type(None), bool, int, float, str})  # a literal argument kept as it is


def tensors_in(value: Any, out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Every tensor in ``value`` as a list, in order, looking inside tuples, lists and dicts."""
    if out is None:
        out = []
    if type(value) in PLAIN_TYPES:  # None, a number, a string: most keyword arguments (a trace scans every call's)
        return out
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Tensor):
                out.append(item)
            elif isinstance(item, (tuple, list, dict)):
                tensors_in(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            tensors_in(item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # model outputs as dataclasses
        for f in dataclasses.fields(value):
            tensors_in(getattr(value, f.name), out)
    return out


def has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list, dict)) or dataclasses.is_dataclass(value):
        return bool(tensors_in(value))
    return False


DTYPE_NAMES: dict[torch.dtype, str] = {}


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float32 -> 'float32' (cached: a trace asks for it once per output tensor)."""
    name = DTYPE_NAMES.get(dtype)
    if name is None:
        name = DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def jsonable(value: Any) -> Any:
    """A literal call argument as JSON-able data; tensors and other objects become None."""
    kind = type(value)
    if kind in PLAIN_TYPES:  # the common case first: a trace records every call's arguments
        return value
    if kind is torch.Tensor or isinstance(value, torch.Tensor):
        return None
    if isinstance(value, (bool, int, float, str)):  # subclasses (IntEnum, ...)
        return value
    if isinstance(value, torch.Size):
        return list(value)
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.dtype):
        return dtype_name(value)
    return None
