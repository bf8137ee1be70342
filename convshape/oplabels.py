"""Readable names for the functions a TorchFunctionMode sees: ``F.relu``, ``Tensor.view``, ``torch.cat``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

_OPERATORS = {
    "__getitem__": ("getitem", "x[...]"),
    "__matmul__": ("matmul", "@"),
    "__rmatmul__": ("matmul", "@"),
    "__radd__": ("add", "+"),
    "__rsub__": ("sub", "-"),
    "__rmul__": ("mul", "*"),
    "__rtruediv__": ("div", "/"),
    "__rdiv__": ("div", "/"),
    "__rpow__": ("pow", "**"),
    "__neg__": ("neg", "-x"),
    "__invert__": ("invert", "~"),
    "__eq__": ("eq", "=="),
    "__ne__": ("ne", "!="),
    "__lt__": ("lt", "<"),
    "__le__": ("le", "<="),
    "__gt__": ("gt", ">"),
    "__ge__": ("ge", ">="),
    "__and__": ("and", "&"),
    "__or__": ("or", "|"),
    "__xor__": ("xor", "^"),
    "__floordiv__": ("floordiv", "//"),
    "__mod__": ("mod", "%"),
}


_NAMESPACES = {
    "torch._C._fft": ("fft_", "torch.fft."),
    "torch._C._linalg": ("linalg_", "torch.linalg."),
    "torch._C._special": ("special_", "torch.special."),
}


@lru_cache(maxsize=1024)
def op_label(func: Any) -> tuple[str, str]:
    """Return ``(name, op)`` for a torch function: e.g. ``("max_pool2d", "F.max_pool2d")``."""
    self_obj = getattr(func, "__self__", None)
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__" and self_obj is not None and hasattr(self_obj, "__name__"):
        return self_obj.__name__, f"Tensor.{self_obj.__name__}"  # a property such as x.T
    if name in _OPERATORS:
        return _OPERATORS[name]
    qualname = getattr(func, "__qualname__", "") or ""
    if getattr(F, name, None) is func or getattr(func, "__module__", None) in ("torch.nn.functional",
                                                                             "torch._C._nn"):
        return name, f"F.{name}" if hasattr(F, name) else f"torch._C._nn.{name}"
    if qualname.startswith(("TensorBase.", "Tensor.")):
        clean = name.strip("_") if name.startswith("__") else name
        return clean, f"Tensor.{name}"
    if getattr(torch, name, None) is func or qualname.startswith("_VariableFunctionsClass."):
        return name, f"torch.{name}"
    module = getattr(func, "__module__", None) or ""
    if module in _NAMESPACES:  # torch.fft.rfft is the builtin torch._C._fft.fft_rfft
        prefix, public = _NAMESPACES[module]
        short = name.removeprefix(prefix)
        return short, f"{public}{short}"
    return name, f"{module}.{qualname or name}".lstrip(".")
