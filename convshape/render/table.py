"""Tables for people: trace rows, parameter lists, Linear checks (rich Text, styled for terminals)."""

from __future__ import annotations

from rich.text import Text

from ..fc import describe_origin
from ..records import Failure, FcReport, ParamReport, Totals, Trace
from . import count_text, megabytes, shape_text, shapes_text
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


def trace_table(trace: Trace, depth: int | None = None, functions: bool = True) -> Text:
    inputs = ", ".join(f"{shape_text(i.shape)} {i.dtype}" for i in trace.inputs) or "none"
    rows = []
    for row in trace.rows:
        if (depth is not None and row.depth > depth) or (not functions and row.kind == "function"):
            continue
        indent = "  " * row.depth
        if row.kind == "module":
            label = row.name if row.name else row.op
            params = count_text(row.params) if row.call == 0 else f"(call {row.call + 1})"
            style = ""
        else:
            label, params, style = row.name, count_text(row.params), "dim"
        if row.failed:
            label, style = f"✗ {label}", "bold red"
        rows.append([
            (f"{indent}{label}", style), (row.op, style), (shapes_text(row.input_shapes), ""),
            ("(failed)", "red") if row.failed else (shapes_text(row.output_shapes), ""),
            (params, ""), (row.source or "", "dim"),
        ])
    text = grid(f"{trace.model}  input {inputs}  on {trace.device}",
                ("Layer", "Type", "Input shape", "Output shape", "Params", "Source"), rows, frozenset({4}))
    _totals(trace.totals, text)
    _notes(trace.notes, text)
    if trace.error is not None:
        failure_text(trace.error, text)
    return text


def params_table(report: ParamReport) -> Text:
    by_module: dict[str, list[int]] = {}
    for i, p in enumerate(report.parameters):
        by_module.setdefault(p.module, []).append(i)
    rows = []
    for sub in report.modules:
        for i in by_module.get(sub.name, []):
            p = report.parameters[i]
            rows.append([(p.name, ""), (shape_text(p.shape), ""), (f"{p.numel:,}", ""),
                         ("yes" if p.trainable else "frozen", "" if p.trainable else "cyan"),
                         (", ".join(p.shared_with), "")])
        if len(by_module.get(sub.name, [])) > 1:
            rows.append([(f"  {sub.name or report.model} ({sub.type}) subtotal", "dim"), ("", ""),
                         (f"{sub.params:,}", "dim"), ("", ""), ("", "")])
    text = grid(f"{report.model}  parameters", ("Parameter", "Shape", "Count", "Trainable", "Shared with"),
                rows, frozenset({2}))
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
