"""Plain-data records: what a trace, a parameter report and an fc-size report contain.

No torch objects and no formatting live here; each report turns into JSON with ``to_dict()``,
tagged with its schema version.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .symbolic_records import expr_of

if TYPE_CHECKING:
    from .symbolic_records import Symbols

TRACE_SCHEMA = "convshape.trace/1"
PARAMS_SCHEMA = "convshape.params/1"
FC_SCHEMA = "convshape.fc-size/1"

Shape = tuple[int, ...]
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int16": 2,
            "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16, "float8_e4m3fn": 1,
            "float8_e5m2": 1}


def _lists(value: Any) -> Any:
    """Turn tuples (shapes) into lists, recursively, for JSON."""
    if isinstance(value, (tuple, list)):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TensorInfo:
    shape: Shape
    dtype: str
    name: str | None = None  # a keyword input's name and path: "attention_mask", "batch['image']"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.name is not None:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class InputValue:
    """A plain (non-tensor) forward argument: its keyword name and path (None for a positional one), its
    value as JSON-able data (None where it is not: then only ``text`` tells it), and its short repr."""

    name: str | None
    value: Any
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "text": self.text}


class Row(NamedTuple):
    """One call in the forward pass: a module call or a function the user's code called directly.

    A NamedTuple, like torch's own TensorMetadata: immutable, and cheap to make (a trace makes
    thousands of them).
    """

    index: int  # type: ignore[assignment]  # the JSON field is "index"; it shadows tuple.index, unused here
    kind: str  # "module" | "function"
    name: str  # qualified module name ("" for the root), or the op name for functions
    op: str  # module class name, or the function as written ("F.relu", "Tensor.view", "torch.cat")
    depth: int
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    output_dtypes: tuple[str, ...]
    params: int  # parameters held by the module (recursive); Parameters passed to a function
    source: str | None  # "file.py:12" where the user's code made this call
    parent: int | None  # index of the enclosing module row
    inputs_from: tuple[int | None, ...]  # for each input tensor, the row that produced it
    call: int = 0  # 0 on a module's first call, 1 on its second, ...
    failed: bool = False
    attrs: dict[str, Any] = {}  # noqa: RUF012  layer hyper-parameters / literal call args (always passed)
    flops: int | None = None  # counted from the aten ops run inside this call (None: unknown/not counted)
    macs: int | None = None
    alloc_bytes: int = 0  # output bytes this call newly allocated (views, in-place results, inputs excluded)
    site: int | None = None  # bytecode offset of the call in its source line: tells a loop's runs apart
    # The user's frames around the call, innermost first, up to the enclosing module's forward (recorded for
    # annotate only, not part of the JSON): (file, line, bytecode offset, function qualname, its first line,
    # comprehension serial or -1).
    frames: tuple[tuple[str, int, int, str, int, int], ...] = ()

    @property
    def output_bytes(self) -> int:
        return sum(math.prod(s) * ITEMSIZE.get(d, 0) for s, d in zip(self.output_shapes, self.output_dtypes,
                                                                      strict=False))

    def to_dict(self) -> dict[str, Any]:
        d = _lists(self._asdict())
        del d["frames"]
        d["output_bytes"] = self.output_bytes
        return d


@dataclass(frozen=True)
class Totals:
    params: int
    trainable: int
    non_trainable: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """Why the forward pass stopped, in the user's terms."""

    summary: str  # one sentence: which layer, what it received, what it expected
    message: str  # the original exception message
    error_type: str
    row: int | None  # index of the failing row, when one was recorded
    module: str | None  # qualified name of the innermost layer that failed
    layer_type: str | None
    received: tuple[Shape, ...] = ()
    expected: str | None = None
    fix: str | None = None
    source: str | None = None  # the user's line where it failed

    def to_dict(self) -> dict[str, Any]:
        return _lists(asdict(self))


@dataclass(frozen=True)
class Trace:
    """The result of one forward pass with hooks: frozen plain data."""

    model: str
    device: str
    inputs: tuple[TensorInfo, ...]
    rows: tuple[Row, ...]
    totals: Totals
    error: Failure | None = None
    notes: tuple[str, ...] = ()
    costs_counted: bool = False  # whether macs/flops were counted (trace --costs)
    values: tuple[InputValue, ...] = ()  # the plain (non-tensor) forward arguments: 'bilinear', 0.5, None
    train: bool = False  # whether the pass ran in training mode (--train)
    symbols: Symbols | None = None  # with symbolic sizes (--input Bx1xHxW): sample sizes, where symbols stopped

    @property
    def ok(self) -> bool:
        return self.error is None

    def module_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "module"]

    def function_rows(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "function"]

    @property
    def flops(self) -> int | None:
        """FLOPs of the whole forward: the root row's, None when not counted or unknown."""
        return self.rows[0].flops if self.costs_counted and self.rows and self.rows[0].depth == 0 else None

    @property
    def macs(self) -> int | None:
        return self.rows[0].macs if self.costs_counted and self.rows and self.rows[0].depth == 0 else None

    @property
    def activation_bytes(self) -> int:
        """Memory the forward's outputs take, at this batch size and dtype: every tensor a leaf row (a
        function, or a module with no rows inside) newly allocated; views and in-place results add nothing."""
        parents = {r.parent for r in self.rows}
        return sum(r.alloc_bytes for r in self.rows if r.kind == "function" or r.index not in parents)

    def to_dict(self) -> dict[str, Any]:
        from .fold import find_groups  # a pure analysis of these records

        groups = find_groups(self)
        group_of: dict[int, int] = {}
        for n, g in enumerate(groups):
            for i in range(g.first, g.last + 1):
                group_of.setdefault(i, n)
        rows = []
        for r in self.rows:
            d = r.to_dict()
            d["group"] = group_of.get(r.index)
            if self.symbols is not None:  # the formulas beside the numbers (the numbers: at the sample sizes)
                d["input_exprs"] = [[expr_of(v) for v in s] for s in r.input_shapes]
                d["output_exprs"] = [[expr_of(v) for v in s] for s in r.output_shapes]
                d["macs_expr"] = None if r.macs is None else expr_of(r.macs)
                d["flops_expr"] = None if r.flops is None else expr_of(r.flops)
            rows.append(d)
        extra = {} if self.symbols is None else {"symbols": {
            **self.symbols.to_dict(),
            "input_exprs": [[expr_of(v) for v in i.shape] for i in self.inputs],
            "macs_expr": None if self.macs is None else expr_of(self.macs)}}
        return {
            "schema": TRACE_SCHEMA,
            "model": self.model,
            "device": self.device,
            "inputs": [i.to_dict() for i in self.inputs],
            "values": [v.to_dict() for v in self.values],
            "train": self.train,
            "rows": rows,
            "groups": [g.to_dict() for g in groups],
            "totals": {**self.totals.to_dict(), "macs": self.macs, "flops": self.flops,
                       "activation_bytes": self.activation_bytes},
            "error": self.error.to_dict() if self.error else None,
            "notes": list(self.notes),
            **extra,
        }

    # How a trace shows itself: the table (str, print, rich) and an HTML report (Jupyter).
    def __str__(self) -> str:
        from .render import to_text
        from .render.table import trace_table

        return to_text(trace_table(self))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's text/plain
        printer.text(str(self).rstrip("\n"))

    def _repr_html_(self) -> str:
        from .render.html import trace_html_fragment

        return trace_html_fragment(self)

    def __rich__(self) -> Any:
        from .render.table import FittedTrace

        return FittedTrace(self)  # laid out for the console's width when printed


@dataclass(frozen=True)
class ParamRecord:
    name: str
    module: str
    shape: Shape
    numel: int
    trainable: bool
    dtype: str
    shared_with: tuple[str, ...] = ()  # other names of the same tensor (tied weights)
    formula: str = ""  # how the count follows from the layer's arguments: "out 20 x in 1 x kH 5 x kW 5 = 500"

    def to_dict(self) -> dict[str, Any]:
        return _lists(asdict(self))


@dataclass(frozen=True)
class ModuleSubtotal:
    name: str
    type: str
    params: int  # parameters this module holds directly (shared ones counted at their first name)
    trainable: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParamReport:
    model: str
    parameters: tuple[ParamRecord, ...]
    modules: tuple[ModuleSubtotal, ...]
    totals: Totals
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PARAMS_SCHEMA,
            "model": self.model,
            "parameters": [p.to_dict() for p in self.parameters],
            "modules": [m.to_dict() for m in self.modules],
            "totals": self.totals.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class FlattenOrigin:
    """Where a Linear's in_features comes from: the shape before a flatten and the op that made it."""

    shape: Shape  # the tensor before the flatten, e.g. (64, 50, 4, 4)
    factors: Shape  # the dims that multiply to in_features, e.g. (50, 4, 4)
    flatten_op: str  # "view", "flatten", "Flatten", ...
    flatten_source: str | None
    producer: str | None  # the op or layer that made the pre-flatten tensor, e.g. "max_pool2d"
    producer_source: str | None

    def to_dict(self) -> dict[str, Any]:
        return _lists(asdict(self))


@dataclass(frozen=True)
class LinearCheck:
    name: str
    type: str
    declared: int | None  # None for a LazyLinear
    required: int
    ok: bool
    incoming_shape: Shape
    out_features: int
    flattened_from: FlattenOrigin | None
    fix: str | None
    produced_by: str | None = None  # the op or layer whose output this Linear receives
    produced_at: str | None = None
    # with symbolic sizes (--input Bx1xHxW): in_features as a formula, the sizes where the declared value holds
    # (boxes: {"H": "28..31", "W": "28..31"}), that in words, and what to write to take any size
    required_formula: str | None = None
    fits: tuple[dict[str, str], ...] | None = None
    fits_text: str | None = None
    suggestions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = _lists(asdict(self))
        d["flattened_from"] = self.flattened_from.to_dict() if self.flattened_from else None
        return d


@dataclass(frozen=True)
class FcReport:
    model: str
    inputs: tuple[TensorInfo, ...]
    layers: tuple[LinearCheck, ...]
    error: Failure | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": FC_SCHEMA,
            "model": self.model,
            "inputs": [i.to_dict() for i in self.inputs],
            "layers": [layer.to_dict() for layer in self.layers],
            "error": self.error.to_dict() if self.error else None,
            "notes": list(self.notes),
        }
