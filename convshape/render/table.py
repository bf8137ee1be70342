"""Tables for people: trace rows, parameter lists, Linear checks (rich Text, styled for terminals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from ..explain import explanations
from ..fc import describe_origin
from ..records import Failure, FcReport, ParamReport, Totals, Trace

if TYPE_CHECKING:
    from ..layer import LayerReport
from ..symbolic_records import SizeExpr
from ..text import failure_parts, megabytes, shape_text, shapes_text, si_bytes, si_count
from .columns import default_columns, lay_out
from .grid import grid
from .view import visible_rows


def _totals(totals: Totals, text: Text) -> None:
    text.append(
        f"\nTotal params: {totals.params:,}\n"
        f"Trainable params: {totals.trainable:,}\n"
        f"Non-trainable params: {totals.non_trainable:,}\n"
        f"Params size (MB): {megabytes(totals.bytes)}\n"
    )


def _notes(notes: tuple[str, ...], text: Text) -> None:
    for note in notes:
        text.append(f"note: {note}\n", style="yellow")


def symbols_text(trace: Trace, text: Text) -> None:
    """What a symbolic trace adds under the table: the sample sizes behind the numbers, equal sizes, where
    symbols stopped."""
    sym = trace.symbols
    assert sym is not None
    sample = ", ".join(f"{k}={v}" for k, v in sym.sample.items())
    text.append(f"Symbolic sizes {', '.join(sym.names)}: shapes and MACs are formulas; the numbers (counts, "
                f"memory) are at {sample}\n", style="dim")
    if sym.sample_note:
        text.append(f"{sym.sample_note}\n", style="dim")
    for name, formula in (sym.equal or {}).items():
        text.append(f"the model needs {name} = {formula}\n", style="yellow")
    own = [r for r in sym.requirements if r.in_your_code]
    if own:  # an if on a size in the model's code: other sizes take another path, with other formulas
        conditions = "; ".join(f"{r.condition}" + (f" ({r.source})" if r.source else "") for r in own[:6])
        text.append(f"the formulas hold where {conditions}: your code decides on these sizes there, and other "
                    "sizes take another path (trace with such a size to see it)\n", style="yellow")
    if sym.stop is not None:
        where = ", ".join(x for x in (sym.stop.layer, sym.stop.source) if x)
        text.append(f"symbols stop at row {sym.stop.row}{f' ({where})' if where else ''}: {sym.stop.reason}\n",
                    style="yellow")


def failure_text(failure: Failure, text: Text | None = None) -> Text:
    text = text if text is not None else Text()
    f = failure
    for kind, line in failure_parts(f.summary, f.fix, f.source, f.error_type, f.message):
        if kind == "summary":
            text.append("✗ ", style="bold red")
            text.append(line, style="bold")
        elif kind == "fix":
            text.append("\n  fix: ", style="green")
            text.append(line)
        elif kind == "at":
            text.append(f"\n  at {line}")
        else:
            text.append("\n  ")
            text.append(line)
    text.append("\n")
    return text


def trace_table(trace: Trace, depth: int | None = None, functions: bool = True, explain: bool = False,
                costs: bool | None = None, width: int | None = None, columns: Sequence[str] | None = None,
                fold: bool = True, full_names: bool = False) -> Text:
    """The trace as a grid, ``width`` columns wide at most (None: the full table, for pipes and files).

    ``explain`` adds the size arithmetic under conv/pool/flatten rows; ``costs`` the MACs and
    output-memory columns (default: whenever the trace counted costs); ``columns`` chooses the columns
    (keys of :data:`~convshape.render.columns.COLUMNS`); ``fold`` folds repeated blocks into one row;
    ``full_names`` shows qualified names instead of the tree's short ones.
    """
    show_costs = trace.costs_counted if costs is None else costs
    inputs = ", ".join([("" if i.name is None else f"{i.name}=") + f"{shape_text(i.shape)} {i.dtype}"
                        for i in trace.inputs] + [("" if v.name is None else f"{v.name}=") + v.text
                                                  for v in trace.values]) or "none"
    notes = explanations(trace.rows) if explain else {}
    view = visible_rows(trace, depth, functions, fold=fold, full_names=full_names)
    keys = tuple(columns) if columns else default_columns(show_costs)
    laid = lay_out(view, trace, keys, width, chosen=bool(columns))
    after: dict[int, list[str]] = {}
    indents: dict[int, int] = {}
    for position, vr in enumerate(view):
        if vr.group is None and vr.row.index in notes:
            after[position] = notes[vr.row.index]
            indents[position] = laid.style.indent * vr.depth
    mode = "  (train mode)" if trace.train else ""
    text = grid(f"{trace.model}  input {inputs}  on {trace.device}{mode}", laid.headers, laid.rows, laid.right,
                after=after, after_indent=indents, gap=" " * laid.style.gap, width=width)
    prose = Text()
    _totals(trace.totals, prose)
    if show_costs:
        flops = f" ({si_count(trace.flops)}FLOPs)" if trace.flops is not None else ""
        formula = f"{trace.macs} = " if isinstance(trace.macs, SizeExpr) else ""
        prose.append(f"Total MACs: {formula}{si_count(trace.macs)}{flops}\n"
                     f"Activations, one forward: {si_bytes(trace.activation_bytes)}\n")
    if trace.symbols is not None:
        symbols_text(trace, prose)
    folded = [vr.group for vr in view if vr.group is not None]
    if folded:
        names = ", ".join(f"{g.name} ({g.count} x {g.op})" for g in folded[:3])
        more = f" and {len(folded) - 3} more" if len(folded) > 3 else ""
        prose.append(f"folded repeated blocks: {names}{more}; --expand shows every row\n", style="dim")
    _notes(trace.notes, prose)
    if trace.error is not None:
        failure_text(trace.error, prose)
    text.append_text(wrap_text(prose, width))
    return text


class FittedTrace:
    """A trace as a rich renderable that fits the table to whatever width it is printed at."""

    def __init__(self, trace: Trace, **options: Any) -> None:
        self.trace, self.options = trace, options

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield trace_table(self.trace, width=options.max_width, **self.options)


def wrap_text(text: Text, width: int | None) -> Text:
    """Prose lines longer than ``width`` wrapped at spaces, continuation lines indented by two."""
    if width is None or all(len(line) <= width for line in text.plain.split("\n")):
        return text
    out = Text()
    lines = text.split("\n", include_separator=False, allow_blank=True)
    for n, line in enumerate(lines):
        while len(line) > width:
            cut = line.plain.rfind(" ", 1, width + 1)
            cut = cut if cut > len(line.plain) - len(line.plain.lstrip()) + 1 else width
            head, line = line[:cut], line[cut:]
            out.append_text(head)
            out.append("\n")
            rest = line.plain.lstrip(" ")
            line = Text("    ") + line[len(line.plain) - len(rest):]
        out.append_text(line)
        if n < len(lines) - 1:
            out.append("\n")
    return out


Grid = tuple[str, tuple[str, ...], list[list[tuple[str, str]]], frozenset[int]]


def fit_grid(title: str, headers: tuple[str, ...], rows: list[list[tuple[str, str]]], right: frozenset[int],
             width: int | None) -> Text:
    """A report grid in ``width`` columns: while too wide, its last column moves under each row
    (``↳ Where it comes from: ...``), wrapped; the full grid when ``width`` is None."""
    headers, rows = tuple(headers), [list(r) for r in rows]
    after: dict[int, list[str]] = {}
    while width is not None and len(headers) > 2 and _grid_width(headers, rows) > width:
        for i, row in enumerate(rows):
            text, _ = row.pop()
            if text.strip():
                after.setdefault(i, []).insert(0, f"{headers[-1]}: {text.strip()}")
        headers = headers[:-1]
    return grid(title, headers, rows, frozenset(i for i in right if i < len(headers)), after=after, width=width)


def _grid_width(headers: tuple[str, ...], rows: list[list[tuple[str, str]]]) -> int:
    widths = [max([len(h)] + [len(r[i][0]) for r in rows]) for i, h in enumerate(headers)]
    return sum(widths) + 3 * (len(widths) - 1)


def params_table(report: ParamReport, explain: bool = False, width: int | None = None) -> Text:
    text = fit_grid(*params_grid(report, explain), width)
    prose = Text()
    _totals(report.totals, prose)
    _notes(report.notes, prose)
    text.append_text(wrap_text(prose, width))
    return text


def params_grid(report: ParamReport, explain: bool = False) -> Grid:
    """Title, headers, cells and right-aligned columns of the parameter table (also for Markdown/CSV)."""
    by_module: dict[str, list[int]] = {}
    for i, p in enumerate(report.parameters):
        by_module.setdefault(p.module, []).append(i)
    rows = []
    for sub in report.modules:
        for i in by_module.get(sub.name, []):
            p = report.parameters[i]
            cells = [(p.name, ""), (shape_text(p.shape), ""), (f"{p.numel:,}", ""),
                     ("yes" if p.trainable else "frozen", "" if p.trainable else "cyan"),
                     (", ".join(p.shared_with), "")]
            rows.append([*cells, (p.formula, "cyan")] if explain else cells)
        if len(by_module.get(sub.name, [])) > 1:
            cells = [(f"  {sub.name or report.model} ({sub.type}) subtotal", "dim"), ("", ""),
                     (f"{sub.params:,}", "dim"), ("", ""), ("", "")]
            rows.append([*cells, ("", "")] if explain else cells)
    headers = ("Parameter", "Shape", "Count", "Trainable", "Shared with", *(("Formula",) if explain else ()))
    return f"{report.model}  parameters", headers, rows, frozenset({2})


def fc_grid(report: FcReport) -> Grid:
    """Title, headers, cells and right-aligned columns of the Linear check table."""
    rows = []
    for c in report.layers:
        origin = c.flattened_from
        where = ""
        if origin is not None:
            where = f"{describe_origin(c.required, origin)}, flattened by {origin.flatten_op}"
            if origin.flatten_source:
                where += f" at {origin.flatten_source}"
        elif c.produced_by:
            where = f"{c.required} from {c.produced_by}" + (f" at {c.produced_at}" if c.produced_at else "")
        rows.append([
            (c.name, ""), ("ok", "green") if c.ok else ("✗ wrong", "bold red"),
            ("lazy" if c.declared is None else str(c.declared), ""), (str(c.required), ""),
            (shape_text(c.incoming_shape), ""), (c.fix or "", "bold"), (where, ""),
        ])
    return (f"{report.model}  Linear in_features",
            ("Layer", "Status", "Declared", "Receives", "Incoming shape", "Fix", "Where it comes from"),
            rows, frozenset({2, 3}))


def fc_table(report: FcReport, width: int | None = None) -> Text:
    text = fit_grid(*fc_grid(report), width)
    prose = Text()
    wrong = [c for c in report.layers if not c.ok]
    symbolic = [c for c in report.layers if c.fits_text]
    if not report.layers:
        prose.append("\nno nn.Linear was reached in the forward pass\n")
    elif symbolic:  # sizes as names: which sizes each declared in_features fits, and how to take any size
        for c in symbolic:
            prose.append(f"\n{c.fits_text}\n", style="bold")
            prose.append(f"  {c.name} receives in_features = {c.required_formula}\n")
            for idea in c.suggestions:
                prose.append(f"  any size: {idea}\n", style="dim")
    elif wrong:
        prose.append("\n" + "\n".join(f"fix: {c.name} = {c.fix}" for c in wrong) + "\n", style="bold")
    else:
        prose.append(f"\nall {len(report.layers)} Linear layers match their inputs\n", style="green")
    _notes(report.notes, prose)
    if report.error is not None:
        failure_text(report.error, prose)
    text.append_text(wrap_text(prose, width))
    return text


def layer_text(report: LayerReport) -> Text:
    trace, params, explain = report.trace, report.params, report.explain
    text = Text(no_wrap=True, overflow="ignore")
    text.append(f"{report.call.text}\n", style="bold")
    for i in trace.inputs:
        text.append(f"input   {shape_text(i.shape)} {i.dtype}\n")
    if trace.rows and trace.error is None:
        text.append(f"output  {shapes_text(trace.rows[0].output_shapes)}\n", style="bold green")
    for line in explain:
        text.append(f"  ↳ {line}\n", style="cyan")
    text.append("\n")
    for p in params.parameters:
        text.append(f"{p.name:<8} {shape_text(p.shape):<16} {p.formula}\n")
    text.append(f"total    {params.totals.params:,} parameters\n", style="bold")
    if trace.error is not None:
        failure_text(trace.error, text)
    return text
