"""One ``torch.nn`` layer on its own, for what-if questions: ``nn.Conv2d(3, 10, 2, 2)`` on ``1x3x32x32``.

The expression is parsed with ``ast`` and never evaluated: only a call of a ``torch.nn`` layer class
with literal arguments is accepted.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import InputSpecError
from .records import ParamReport, Trace

LAYER_SCHEMA = "convshape.layer/1"
FORM = 'a torch.nn layer call with literal arguments, e.g. "nn.Conv2d(3, 10, 2, 2)"'


@dataclass(frozen=True)
class LayerCall:
    cls: type[nn.Module]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    named: dict[str, Any]  # every argument by its constructor parameter name

    @property
    def text(self) -> str:
        return f"nn.{self.cls.__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.named.items()) + ")"


def _rnn_signature(cls: type[nn.Module]) -> inspect.Signature:
    """RNN, LSTM and GRU take ``(*args, **kwargs)``; their documented positional order, so each is named."""
    P = inspect.Parameter
    names: list[str | tuple[str, object]] = ["input_size", "hidden_size", ("num_layers", 1)]
    if issubclass(cls, nn.RNN):
        names.append(("nonlinearity", "tanh"))
    names += [("bias", True), ("batch_first", False), ("dropout", 0.0), ("bidirectional", False)]
    names.append(("proj_size", 0))  # RNNBase binds it positionally for all three (only LSTM accepts non-zero)
    names += [("device", None), ("dtype", None)]
    params = [P(n, P.POSITIONAL_OR_KEYWORD) if isinstance(n, str) else P(n[0], P.POSITIONAL_OR_KEYWORD, default=n[1])
              for n in names]
    return inspect.Signature(params)


def _signature(cls: type[nn.Module]) -> inspect.Signature:
    if issubclass(cls, (nn.RNN, nn.LSTM, nn.GRU)):
        return _rnn_signature(cls)
    return inspect.signature(cls)


def parse_layer(expr: str) -> LayerCall:
    """``"nn.Conv2d(3, 10, kernel_size=2)"`` -> the class and its arguments, without evaluating anything."""
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as e:
        raise InputSpecError(f"layer {expr!r} is not a Python expression ({e.msg}); expected {FORM}") from None
    if not isinstance(node, ast.Call):
        raise InputSpecError(f"layer {expr!r} is not a call; expected {FORM}")
    parts = []
    target: ast.expr = node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if not isinstance(target, ast.Name):
        raise InputSpecError(f"layer {expr!r}: {ast.unparse(node.func)} is not a torch.nn layer; expected {FORM}")
    parts.append(target.id)
    path = ".".join(reversed(parts))
    name = parts[0]
    if path not in (name, f"nn.{name}", f"torch.nn.{name}"):
        raise InputSpecError(f"layer {expr!r}: {path} is not a torch.nn layer; expected {FORM}")
    cls = getattr(nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)) or name.startswith("_"):
        raise InputSpecError(f"layer {expr!r}: torch.nn has no layer named {name!r}; expected {FORM}")
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except ValueError:
        raise InputSpecError(f"layer {expr!r}: arguments must be literals (numbers, strings, tuples, "
                             f"True/False/None); expected {FORM}") from None
    if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        raise InputSpecError(f"layer {expr!r}: * and ** arguments are not accepted; expected {FORM}")
    signature = _signature(cls)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as e:
        raise InputSpecError(f"layer {expr!r}: {e}; nn.{name} takes {signature}") from None
    return LayerCall(cls, args, kwargs, dict(bound.arguments))


def build_layer(call: LayerCall, device: str | None = None) -> nn.Module:
    """Build the layer; on ``device="meta"`` no weight is allocated (``nn.Linear(100000, 100000)`` is 40 GB)."""
    try:
        if device is None:
            return call.cls(*call.args, **call.kwargs)
        with torch.device(device):
            return call.cls(*call.args, **call.kwargs)
    except Exception as e:
        raise InputSpecError(f"{call.text} raised {type(e).__name__}: {e}") from None


_CPU_FALLBACK_BYTES = 1 << 30  # a layer that cannot run on meta is rebuilt on the CPU only when this small


@dataclass(frozen=True)
class LayerReport:
    """One layer traced on its own: its call, the trace (a failure included), its parameters."""

    call: LayerCall
    trace: Trace
    params: ParamReport
    explain: list[str]

    def to_dict(self) -> dict[str, Any]:
        root = self.trace.rows[0] if self.trace.rows else None
        return {
            "schema": LAYER_SCHEMA,
            "layer": f"nn.{self.call.cls.__name__}",
            "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in self.call.named.items()},
            "inputs": [i.to_dict() for i in self.trace.inputs],
            "output_shapes": [list(s) for s in root.output_shapes] if root else [],
            "explain": self.explain,
            "parameters": [p.to_dict() for p in self.params.parameters],
            "totals": self.params.totals.to_dict(),
            "error": self.trace.error.to_dict() if self.trace.error else None,
        }


def run_layer(expr: str, *inputs: Any) -> LayerReport:
    """Parse ``expr``, build the layer, and trace it on the CPU with ``inputs``."""
    from .api import parameters, trace_model
    from .errors import TraceError
    from .explain import explanations

    call = parse_layer(expr)
    # Shapes, arithmetic and parameter counts need no values: build and run on meta, allocating nothing.
    module = build_layer(call, "meta")
    try:
        trace = trace_model(module, *inputs, device="meta", label=call.text)
    except TraceError as e:
        trace = e.trace  # type: ignore[assignment]
        if trace.error is not None and trace.error.expected is None and trace.totals.bytes <= _CPU_FALLBACK_BYTES:
            # not a shape mismatch: an op with no meta kernel, or one that reads values; run it for real
            module = build_layer(call)
            try:
                trace = trace_model(module, *inputs, device="cpu", label=call.text)
            except TraceError as e2:
                trace = e2.trace  # type: ignore[assignment]
    explain = explanations(trace.rows).get(0, []) if trace.rows else []
    return LayerReport(call, trace, parameters(module, call.text), explain)
