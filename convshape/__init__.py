"""convshape: every tensor shape through a PyTorch model, parameter counts, and Linear in_features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConvshapeError, InputSpecError, LoadError, TraceError

__version__ = "0.1.0"
__all__ = [
    "ConvshapeError", "InputSpecError", "LoadError", "ParamReport", "Trace", "TraceError",
    "__version__", "fc_size", "parameters", "trace_model",
]  # fmt: skip

if TYPE_CHECKING:
    from .api import fc_size, parameters, trace_model
    from .records import ParamReport, Trace

_LAZY = {"trace_model": "api", "parameters": "api", "fc_size": "api", "Trace": "records",
         "ParamReport": "records"}


def __dir__() -> list[str]:
    # the public API, lazy names included, for dir(convshape) and tab completion
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    # torch is imported only when a traced API is used, so `convshape --help` stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
