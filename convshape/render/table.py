"""rich tables for people: trace rows, parameter lists, Linear checks."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..fc import describe_origin
from ..records import Failure, FcReport, ParamReport, Totals, Trace
from . import count_text, megabytes, shape_text, shapes_text


def _totals(totals: Totals) -> Text:
    return Text(
        f"Total params: {totals.params:,}\n"
        f"Trainable params: {totals.trainable:,}\n"
        f"Non-trainable params: {totals.non_trainable:,}\n"
        f"Params size (MB): {megabytes(totals.bytes)}"
    )


def failure_text(failure: Failure) -> Text:
    text = Text()
    text.append("✗ ", style="bold red")
    text.append(failure.summary, style="bold")
    if failure.fix and failure.fix not in failure.summary:
        text.append("\n  fix: ", style="green")
        text.append(failure.fix)
    if failure.source:
        text.append(f"\n  at {failure.source}")
    text.append(f"\n  torch said ({failure.error_type}): ", style="dim")
    text.append(failure.message.splitlines()[0] if failure.message else "")
    return text


def trace_table(trace: Trace, depth: int | None = None, functions: bool = True) -> RenderableType:
    inputs = ", ".join(f"{shape_text(i.shape)} {i.dtype}" for i in trace.inputs) or "none"
    table = Table(box=box.SIMPLE_HEAD, title=f"{trace.model}  input {inputs}  on {trace.device}",
                  title_justify="left", pad_edge=False)
    for header, justify in (("Layer", "left"), ("Type", "left"), ("Input shape", "left"),
                            ("Output shape", "left"), ("Params", "right"), ("Source", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in trace.rows:
        if (depth is not None and row.depth > depth) or (not functions and row.kind == "function"):
            continue
        indent = "  " * row.depth
        if row.kind == "module":
            label = row.name if row.name else row.op
            params = count_text(row.params) if row.call == 0 else f"(call {row.call + 1})"
            style = None
        else:
            label, params, style = row.name, count_text(row.params), "dim"
        marker = "✗ " if row.failed else ""
        table.add_row(
            Text(f"{indent}{marker}{label}", style="bold red" if row.failed else style or ""),
            Text(row.op, style=style or ""),
            shapes_text(row.input_shapes),
            Text("(failed)", style="red") if row.failed else shapes_text(row.output_shapes),
            params, row.source or "",
        )
    parts: list[RenderableType] = [table, _totals(trace.totals)]
    parts.extend(Text(f"note: {n}", style="yellow") for n in trace.notes)
    if trace.error is not None:
        parts.append(failure_text(trace.error))
    return Group(*parts)


def params_table(report: ParamReport) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, title=f"{report.model}  parameters", title_justify="left",
                  pad_edge=False)
    for header, justify in (("Parameter", "left"), ("Shape", "left"), ("Count", "right"),
                            ("Trainable", "left"), ("Shared with", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    by_module: dict[str, list[int]] = {}
    for i, p in enumerate(report.parameters):
        by_module.setdefault(p.module, []).append(i)
    for sub in report.modules:
        for i in by_module.get(sub.name, []):
            p = report.parameters[i]
            table.add_row(p.name, shape_text(p.shape), f"{p.numel:,}", "yes" if p.trainable else "frozen",
                          ", ".join(p.shared_with))
        if len(by_module.get(sub.name, [])) > 1:
            table.add_row(Text(f"  {sub.name or report.model} ({sub.type}) subtotal", style="dim"), "",
                          Text(f"{sub.params:,}", style="dim"), "", "")
    return Group(table, _totals(report.totals))


def fc_table(report: FcReport) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, title=f"{report.model}  Linear in_features", title_justify="left",
                  pad_edge=False)
    for header in ("Layer", "Declared", "Receives", "Incoming shape", "Where it comes from", "Fix"):
        table.add_column(header, justify="right" if header in ("Declared", "Receives") else "left")
    for c in report.layers:
        status = Text("ok", style="green") if c.ok else Text("✗ wrong", style="bold red")
        origin = c.flattened_from
        where = ""
        if origin is not None:
            where = f"{describe_origin(c.required, origin)}, flattened by {origin.flatten_op}"
            if origin.flatten_source:
                where += f" at {origin.flatten_source}"
        elif c.produced_by:
            where = f"{c.required} from {c.produced_by}" + (f" at {c.produced_at}" if c.produced_at else "")
        table.add_row(
            Text.assemble(f"{c.name} ", status),
            "lazy" if c.declared is None else str(c.declared), str(c.required), shape_text(c.incoming_shape),
            where, c.fix or "",
        )
    parts: list[RenderableType] = [table]
    wrong = [c for c in report.layers if not c.ok]
    if not report.layers:
        parts.append(Text("no nn.Linear was reached in the forward pass"))
    elif wrong:
        parts.append(Text("\n".join(f"fix: {c.name} = {c.fix}" for c in wrong), style="bold"))
    else:
        parts.append(Text(f"all {len(report.layers)} Linear layers match their inputs", style="green"))
    if report.error is not None:
        parts.append(failure_text(report.error))
    return Group(*parts)
