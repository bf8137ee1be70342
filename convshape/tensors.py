"""Small helpers over tensors and nested containers (tuples, lists, dicts) of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def iter_tensors(value: Any) -> Iterator[torch.Tensor]:
    """Yield every tensor in ``value`` in order, looking inside tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from iter_tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_tensors(item)


def has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list, dict)):
        return next(iter_tensors(value), None) is not None
    return False


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def jsonable(value: Any) -> Any:
    """A literal call argument as JSON-able data; tensors and other objects become None."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Size):
        return list(value)
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.dtype):
        return dtype_name(value)
    return None
