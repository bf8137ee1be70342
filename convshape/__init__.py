"""convshape: every tensor shape through a PyTorch model, parameter counts, and Linear in_features."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ConvshapeError, InputSpecError, LoadError, TraceError

__version__ = "0.1.0"
__all__ = [
    "CheckpointReport", "ConvshapeError", "InputSpecError", "LoadError", "ParamReport", "SizesReport", "Trace",
    "TraceError", "Value", "WeightsReport", "__version__", "checkpoint_report", "compare_weights", "fc_size",
    "input_sizes", "parameters", "trace_model", "trace_program",
]  # fmt: skip

if TYPE_CHECKING:
    from .api import fc_size, input_sizes, parameters, trace_model
    from .checkpoint import checkpoint_report
    from .checkpoint_records import CheckpointReport, WeightsReport
    from .program import trace_program
    from .records import ParamReport, Trace
    from .spec import Value
    from .symbolic_records import SizesReport
    from .weights import compare_weights

_LAZY = {"trace_model": "api", "parameters": "api", "fc_size": "api", "input_sizes": "api",
         "SizesReport": "symbolic_records", "Trace": "records",
         "ParamReport": "records", "Value": "spec", "checkpoint_report": "checkpoint", "compare_weights": "weights",
         "trace_program": "program", "CheckpointReport": "checkpoint_records", "WeightsReport": "checkpoint_records"}


def __dir__() -> list[str]:
    # the public API, lazy names included, for dir(convshape) and tab completion
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    # torch is imported only when a traced API is used, so `convshape --help` stays fast.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # found as a plain attribute from now on: no import machinery per call
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
