"""Tables for people: trace rows, parameter lists, Linear checks (rich Text, styled for terminals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from ..explain import explanations
from ..fc import describe_origin
from ..records import Failure, FcReport, ParamReport, Totals, Trace

if TYPE_CHECKING:
    from ..layer import LayerReport
from ..text import count_text, megabytes, shape_text, shapes_text, si_bytes, si_count
from .grid import grid


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


def failure_text(failure: Failure, text: Text | None = None) -> Text:
    text = text if text is not None else Text()
    text.append("✗ ", style="bold red")
    text.append(failure.summary, style="bold")
    if failure.fix and failure.fix not in failure.summary:
        text.append("\n  fix: ", style="green")
        text.append(failure.fix)
    if failure.source:
        text.append(f"\n  at {failure.source}")
    text.append(f"\n  torch said ({failure.error_type}): ", style="dim")
    text.append((failure.message.splitlines()[0] if failure.message else "") + "\n")
    return text


def trace_table(trace: Trace, depth: int | None = None, functions: bool = True, explain: bool = False,
                costs: bool = False) -> Text:
    """The trace as a grid; ``explain`` adds the size arithmetic under conv/pool/flatten rows, ``costs``
    the MACs and output-memory columns (MACs need a trace made with costs counted)."""
    inputs = ", ".join(("" if i.name is None else f"{i.name}=") + f"{shape_text(i.shape)} {i.dtype}"
                       for i in trace.inputs) or "none"
    notes = explanations(trace.rows) if explain else {}
    rows: list[list[tuple[str, str]]] = []
    after: dict[int, list[str]] = {}
    indents: dict[int, int] = {}
    for row in trace.rows:
        if (depth is not None and row.depth > depth) or (not functions and row.kind == "function"):
            continue
        if row.index in notes:
            after[len(rows)] = notes[row.index]
            indents[len(rows)] = 2 * row.depth
        indent = "  " * row.depth
        if row.kind == "module":
            label = row.name if row.name else row.op
            params = count_text(row.params) if row.call == 0 else f"(call {row.call + 1})"
            style = ""
        else:
            label, params, style = row.name, count_text(row.params), "dim"
        if row.failed:
            label, style = f"✗ {label}", "bold red"
        cells = [
            (f"{indent}{label}", style), (row.op, style), (shapes_text(row.input_shapes), ""),
            ("(failed)", "red") if row.failed else (shapes_text(row.output_shapes), ""),
            (params, ""),
        ]
        if costs:
            macs = "--" if row.macs == 0 else si_count(row.macs) if trace.costs_counted else "n/a"
            cells += [(macs, "" if row.macs is not None else "yellow"), (si_bytes(row.output_bytes), "")]
        rows.append([*cells, (row.source or "", "dim")])
    headers = ["Layer", "Type", "Input shape", "Output shape", "Params"]
    if costs:
        headers += ["MACs", "Output mem"]
    text = grid(f"{trace.model}  input {inputs}  on {trace.device}", (*headers, "Source"), rows,
                frozenset({4, 5, 6} if costs else {4}), after=after, after_indent=indents)
    _totals(trace.totals, text)
    if costs:
        flops = f" ({si_count(trace.flops)}FLOPs)" if trace.flops is not None else ""
        text.append(f"Total MACs: {si_count(trace.macs)}{flops}\n"
                    f"Activations, one forward: {si_bytes(trace.activation_bytes)}\n")
    _notes(trace.notes, text)
    if trace.error is not None:
        failure_text(trace.error, text)
    return text


def params_table(report: ParamReport, explain: bool = False) -> Text:
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
    text = grid(f"{report.model}  parameters", headers, rows, frozenset({2}))
    _totals(report.totals, text)
    _notes(report.notes, text)
    return text


def fc_table(report: FcReport) -> Text:
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
    text = grid(f"{report.model}  Linear in_features",
                ("Layer", "Status", "Declared", "Receives", "Incoming shape", "Fix", "Where it comes from"),
                rows, frozenset({2, 3}))
    wrong = [c for c in report.layers if not c.ok]
    if not report.layers:
        text.append("\nno nn.Linear was reached in the forward pass\n")
    elif wrong:
        text.append("\n" + "\n".join(f"fix: {c.name} = {c.fix}" for c in wrong) + "\n", style="bold")
    else:
        text.append(f"\nall {len(report.layers)} Linear layers match their inputs\n", style="green")
    _notes(report.notes, text)
    if report.error is not None:
        failure_text(report.error, text)
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
