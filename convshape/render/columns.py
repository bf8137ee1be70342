"""The trace table's columns, and how the table is made to fit a terminal's width.

When the full table is wider than the terminal, these steps run in order until it fits (README,
"Tables that fit"); columns named with ``--columns`` are never dropped:

1. shapes compact, written as ``--input`` takes them: ``64x20x24x24``, several shapes as the first one and ``+N``;
2. two spaces between columns instead of three;
3. function rows' names cut to 16 characters (the Type column names the function in full);
4. drop Source; 5. drop Output mem; 6. counts short (``400.5k``);
7. drop Params % and Kernel; 8. drop Input shape (it is the row above's output in a plain chain);
9. one space of indentation a level instead of two;
10. cut the Type, then the Layer, then the shape cells with ``…``; last, cut whole lines.

Pipes and files get the full table (no width).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..errors import InputSpecError
from ..records import Shape, Trace
from ..symbolic_records import SizeExpr
from ..text import count_text, shape_text, si_bytes, si_count
from .view import ViewRow

Cell = tuple[str, str]

COLUMNS = ("name", "type", "input", "output", "params", "params%", "macs", "memory", "kernel", "source")
HEADERS = {"name": "Layer", "type": "Type", "input": "Input shape", "output": "Output shape", "params": "Params",
           "params%": "Params %", "macs": "MACs", "memory": "Output mem", "kernel": "Kernel", "source": "Source"}
RIGHT = frozenset({"params", "params%", "macs", "memory"})
DROP_ORDER = (("source",), ("memory",), (), ("params%", "kernel"), ("input",))


def default_columns(costs: bool) -> tuple[str, ...]:
    """Layer, Type, Input/Output shape, Params, (MACs, Output mem when costs are shown), Source."""
    return ("name", "type", "input", "output", "params", *(("macs", "memory") if costs else ()), "source")


def parse_columns(text: str) -> tuple[str, ...]:
    """``"name,output,params"`` -> the column keys, checked; the layer name always comes first."""
    keys = [k.strip().lower() for k in text.split(",") if k.strip()]
    aliases = {"layer": "name", "params_%": "params%", "share": "params%", "mem": "memory", "op": "type",
               "in": "input", "out": "output"}
    keys = [aliases.get(k, k) for k in keys]
    bad = [k for k in keys if k not in COLUMNS]
    if bad or not keys:
        raise InputSpecError(f"--columns {text!r}: unknown column(s) {', '.join(bad) or '(none given)'}; "
                             f"choose from {', '.join(COLUMNS)}, comma-separated, e.g. --columns name,output,params")
    if "name" in keys:
        keys.remove("name")
    return ("name", *dict.fromkeys(keys))


@dataclass(frozen=True)
class Style:
    """How compact the table is: the state the fitting steps change."""

    compact: bool = False
    gap: int = 3
    short_counts: bool = False
    indent: int = 2
    function_names: int | None = None  # cut function rows' names to this many characters
    dropped: frozenset[str] = frozenset()


def compact_shape(shape: Shape) -> str:
    """(64, 20, 24, 24) -> '64x20x24x24', the way --input is written; () -> '[]' (a scalar)."""
    return "x".join(map(str, shape)) if shape else "[]"


def shapes_cell(shapes: tuple[Shape, ...], compact: bool) -> str:
    if not shapes:
        return "-"
    if compact:
        return compact_shape(shapes[0]) + (f" +{len(shapes) - 1}" if len(shapes) > 1 else "")
    shown = ", ".join(shape_text(s) for s in shapes[:4])
    return shown + (f" +{len(shapes) - 4} more" if len(shapes) > 4 else "")


def short_count(n: int) -> str:
    """431080 -> '431k', 25050 -> '25.1k', 5010 -> '5.01k', 0 -> '--'."""
    if not n:
        return "--"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            value = n / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f}{unit}"
    return str(n)


def _dims(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return str(value)


def kernel_text(attrs: dict[str, object]) -> str:
    """Conv/pool geometry: ``5x5``, ``3x3 s2 p1``; blank for layers without a kernel."""
    if "kernel_size" not in attrs:
        return ""
    text = _dims(attrs["kernel_size"])
    for key, flag, neutral in (("stride", "s", {"1", "1x1", "1x1x1"}), ("padding", "p", {"0", "0x0", "0x0x0"}),
                               ("dilation", "d", {"1", "1x1", "1x1x1"})):
        if key in attrs and attrs[key] is not None and _dims(attrs[key]) not in neutral:
            text += f" {flag}{_dims(attrs[key])}"
    return text


def cell(key: str, vr: ViewRow, trace: Trace, style: Style) -> Cell:
    row = vr.row
    if key == "name":
        label = vr.name
        if style.function_names and vr.kind == "function" and len(label) > style.function_names:
            label = label[:style.function_names - 1] + "…"
        label = f"✗ {label}" if vr.failed else label
        look = "bold red" if vr.failed else "dim" if vr.kind == "function" else "bold" if vr.group else ""
        return " " * (style.indent * vr.depth) + label, look
    if key == "type":
        return vr.op, "dim" if vr.kind == "function" else "bold" if vr.group else ""
    if key == "input":
        return shapes_cell(vr.input_shapes, style.compact), ""
    if key == "output":
        if vr.failed:
            return "(failed)", "red"
        return shapes_cell(vr.output_shapes, style.compact), ""
    if key == "params":
        if vr.kind == "module" and row.call > 0:
            return f"(call {row.call + 1})", "dim"
        return (short_count(vr.params) if style.short_counts else count_text(vr.params)), ""
    if key == "params%":
        total = trace.totals.params
        if not vr.params or not total or (vr.kind == "module" and row.call > 0):
            return "--", ""
        return f"{100 * vr.params / total:.1f}%", ""
    if key == "macs":
        if not trace.costs_counted:
            return "n/a", "yellow"
        if vr.macs == 0:
            return "--", ""
        if vr.macs is None:
            return "unknown", "yellow"
        if isinstance(vr.macs, SizeExpr):  # a symbolic trace: the count as a formula of the sizes
            return str(vr.macs), ""
        return (short_count(vr.macs) if style.short_counts else si_count(vr.macs)), ""
    if key == "memory":
        return si_bytes(vr.output_bytes), ""
    if key == "kernel":
        return ("" if vr.kind == "function" else kernel_text(row.attrs)), ""
    if key == "source":
        return row.source or "", "dim"
    raise KeyError(key)


def _table_width(headers: Sequence[str], rows: Sequence[Sequence[Cell]], gap: int) -> int:
    widths = [len(h) for h in headers]
    for r in rows:
        for i, (text, _) in enumerate(r):
            if len(text) > widths[i]:
                widths[i] = len(text)
    # the last column is not padded: its longest cell is its width
    return sum(widths) + gap * (len(widths) - 1)


@dataclass(frozen=True)
class Laid:
    keys: tuple[str, ...]
    headers: tuple[str, ...]
    rows: list[list[Cell]]
    style: Style

    @property
    def right(self) -> frozenset[int]:
        return frozenset(i for i, k in enumerate(self.keys) if k in RIGHT)

    def width(self) -> int:
        return _table_width(self.headers, self.rows, self.style.gap)


def lay_out(view: Sequence[ViewRow], trace: Trace, keys: Sequence[str], width: int | None,
            chosen: bool = False) -> Laid:
    """Cells for ``keys``, made compact step by step until the table fits ``width`` (None: no limit).

    With ``chosen`` (the user named the columns) no column is dropped.
    """

    def build(style: Style) -> Laid:
        ks = tuple(k for k in keys if k not in style.dropped)
        rows = [[cell(k, vr, trace, style) for k in ks] for vr in view]
        return Laid(ks, tuple(HEADERS[k] for k in ks), rows, style)

    style = Style()
    laid = build(style)
    if width is None or laid.width() <= width:
        return laid
    steps: list[Callable[[Style], Style]] = [
        lambda s: replace(s, compact=True),
        lambda s: replace(s, gap=2),
        lambda s: replace(s, function_names=16),
    ]
    for names in DROP_ORDER:
        if names:
            if not chosen:
                steps.append(_dropping(names))
        else:
            steps.append(lambda s: replace(s, short_counts=True))
    steps.append(lambda s: replace(s, indent=1))
    for step in steps:
        style = step(style)
        laid = build(style)
        if laid.width() <= width:
            return laid
    return _cut(laid, width)


def _dropping(names: tuple[str, ...]) -> Callable[[Style], Style]:
    return lambda s: replace(s, dropped=s.dropped | frozenset(names))


def _cut(laid: Laid, width: int) -> Laid:
    """Cut the Type, then the Layer, then shape cells with an ellipsis until the table fits."""
    rows = [list(r) for r in laid.rows]
    for key, floor in (("type", 10), ("name", 12), ("output", 10), ("input", 10), ("source", 8)):
        if key not in laid.keys:
            continue
        i = laid.keys.index(key)
        over = _table_width(laid.headers, rows, laid.style.gap) - width
        if over <= 0:
            break
        longest = max([len(laid.headers[i])] + [len(r[i][0]) for r in rows])
        limit = max(floor, longest - over, len(laid.headers[i]))
        for r in rows:
            text, look = r[i]
            if len(text) > limit:
                r[i] = (text[:limit - 1] + "…", look)
    return Laid(laid.keys, laid.headers, rows, laid.style)
