"""What ``in_features`` each Linear needs, and where that number comes from. Pure over a Trace."""

from __future__ import annotations

import math

from .diagnose import constructor
from .records import FcReport, FlattenOrigin, LinearCheck, Row, Trace

_FLATTEN_FUNCS = {"view", "reshape", "flatten", "_unsafe_view"}
LINEARS = ("Linear", "LazyLinear")


def _is_flatten(row: Row) -> bool:
    if not row.input_shapes or not row.output_shapes:
        return False
    named = (row.kind == "function" and row.name in _FLATTEN_FUNCS) or (
        row.kind == "module" and row.op == "Flatten")
    return named and len(row.output_shapes[0]) < len(row.input_shapes[0])


def _label(row: Row) -> str:
    return row.name if row.kind == "function" else f"{row.name or 'model'} ({row.op})"


def factors_of(shape: tuple[int, ...], features: int) -> tuple[int, ...]:
    """The trailing dims of ``shape`` that multiply to ``features``: (64, 50, 4, 4), 800 -> (50, 4, 4)."""
    for start in range(len(shape)):
        if math.prod(shape[start:]) == features:
            return tuple(shape[start:])
    return ()


# Ops that hand the flattened features on unchanged in meaning (feature j is still the same element of
# the pre-flatten tensor): a flatten followed by these still explains the size a Linear receives.
_PASS_FUNCS = {"relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "celu", "mish",
               "hardtanh", "hardswish", "hardsigmoid", "softplus", "relu6", "dropout", "dropout1d", "dropout2d",
               "alpha_dropout", "feature_alpha_dropout", "contiguous", "clone", "detach", "to", "float", "double",
               "half", "bfloat16", "type", "abs", "neg", "exp", "square", "sqrt"}
_PASS_MODULES = {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
                 "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Dropout", "Dropout1d",
                 "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "Identity"}


def _passes_features_on(row: Row) -> bool:
    """True for an elementwise, parameter-free row that keeps its input's shape: the data it returns is
    still the data it was given, position by position (a LayerNorm or a Linear makes new data)."""
    if not row.input_shapes or not row.output_shapes or row.input_shapes[0] != row.output_shapes[0]:
        return False
    if row.kind == "module":
        return row.op in _PASS_MODULES
    return row.name in _PASS_FUNCS and row.params == 0


def flatten_row(rows: tuple[Row, ...], row: Row) -> Row | None:
    """The flatten/view that made the tensor a layer receives, followed back through the data: only
    elementwise ops (activations, dropout) lie between them; any layer that makes new data ends the walk."""
    src = row.inputs_from[0] if row.input_shapes and row.inputs_from else None
    while src is not None:
        r = rows[src]
        if _is_flatten(r):
            return r
        if not _passes_features_on(r) or not r.inputs_from:
            return None
        src = r.inputs_from[0]
    return None


def flatten_origin(rows: tuple[Row, ...], row: Row) -> FlattenOrigin | None:
    """Where a layer's input size comes from: the shape before the flatten and the op that made it."""
    r = flatten_row(rows, row)
    if r is None:
        return None
    features = row.input_shapes[0][-1] if row.input_shapes[0] else 0
    before = r.input_shapes[0]
    made_by = rows[r.inputs_from[0]] if r.inputs_from and r.inputs_from[0] is not None else None
    return FlattenOrigin(
        shape=before, factors=factors_of(before, features), flatten_op=_label(r),
        flatten_source=r.source, producer=_label(made_by) if made_by else None,
        producer_source=made_by.source if made_by else None,
    )


def describe_origin(features: int, origin: FlattenOrigin | None) -> str:
    """``800 = 50 x 4 x 4 from max_pool2d at net.py:14``."""
    if origin is None:
        return str(features)
    text = str(features)
    if len(origin.factors) > 1:  # a factor that is a formula (a symbolic size) goes in parentheses
        text += " = " + " x ".join(f"({f})" if " " in str(f) else str(f) for f in origin.factors)
    if origin.producer:
        text += f" from {origin.producer}" + (f" at {origin.producer_source}" if origin.producer_source
                                             else "")
    return text


def check_linear(rows: tuple[Row, ...], row: Row) -> LinearCheck:
    declared = row.attrs.get("in_features")
    if row.op == "LazyLinear":
        declared = None  # a LazyLinear takes whatever it receives first
    incoming = row.input_shapes[0] if row.input_shapes else ()
    required = incoming[-1] if incoming else 0
    ok = declared is None or declared == required
    src = row.inputs_from[0] if row.inputs_from else None
    producer = rows[src] if src is not None else None
    return LinearCheck(
        name=row.name, type=row.op, declared=declared, required=required, ok=ok, incoming_shape=incoming,
        out_features=row.attrs.get("out_features", 0), flattened_from=flatten_origin(rows, row),
        fix=None if ok else constructor("Linear", row.attrs, in_features=required),
        produced_by=_label(producer) if producer else None, produced_at=producer.source if producer else None,
    )


def fc_report(trace: Trace, layer: str | None = None) -> FcReport:
    """One check per Linear reached (a mismatching call wins over a matching one of the same layer)."""
    checks: dict[str, LinearCheck] = {}
    for row in trace.rows:
        if row.kind != "module" or row.op not in LINEARS:
            continue
        if layer is not None and row.name != layer:
            continue
        check = check_linear(trace.rows, row)
        if row.name not in checks or (checks[row.name].ok and not check.ok):
            checks[row.name] = check
    return FcReport(trace.model, trace.inputs, tuple(checks.values()), trace.error, trace.notes)

