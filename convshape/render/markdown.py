"""Markdown: a trace, a parameter list or a Linear check as a GitHub table, for issues, PRs and docs."""

from __future__ import annotations

from collections.abc import Sequence

from ..records import FcReport, ParamReport, Trace
from ..text import failure_parts, megabytes, shape_text, si_bytes, si_count
from .columns import HEADERS, RIGHT, Style, cell, default_columns
from .view import visible_rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> str:
    """A pipe table; cells are escaped so a ``|`` in a cell cannot end it."""
    lines = ["| " + " | ".join(_escape(h) for h in headers) + " |",
             "| " + " | ".join("---:" if i in right else "---" for i in range(len(headers))) + " |"]
    lines += ["| " + " | ".join(_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def trace_markdown(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True,
                   columns: Sequence[str] | None = None, costs: bool | None = None) -> str:
    """The trace table in Markdown: qualified names (leading spaces do not survive Markdown), folded
    repeated blocks unless ``fold`` is False, then totals and the failure."""
    show_costs = trace.costs_counted if costs is None else costs
    keys = tuple(columns) if columns else default_columns(show_costs)
    view = visible_rows(trace, depth, functions, fold=fold, full_names=True)
    style = Style()
    rows = [[cell(k, vr, trace, style)[0].strip() for k in keys] for vr in view]
    inputs = ", ".join(f"{shape_text(i.shape)} {i.dtype}" for i in trace.inputs) or "none"
    out = [f"### {_escape(trace.model)}\n", f"Input {inputs}, on {trace.device}.\n",
           md_table([HEADERS[k] for k in keys], rows, frozenset(i for i, k in enumerate(keys) if k in RIGHT))]
    t = trace.totals
    totals = [f"- Total params: {t.params:,}", f"- Trainable params: {t.trainable:,}",
              f"- Non-trainable params: {t.non_trainable:,}", f"- Params size (MB): {megabytes(t.bytes)}"]
    if show_costs:
        totals += [f"- Total MACs: {si_count(trace.macs)}",
                   f"- Activations, one forward: {si_bytes(trace.activation_bytes)}"]
    out.append("\n".join(totals) + "\n")
    out += [f"> note: {_escape(n)}\n" for n in trace.notes]
    if trace.error is not None:
        e = trace.error
        shown = {"summary": lambda t: f"> **✗ {_escape(t)}**", "fix": lambda t: f"> fix: `{t}`",
                 "at": lambda t: f"> at {t}", "torch": lambda t: f"> {_escape(t)}"}
        lines = [shown[kind](text) for kind, text in failure_parts(e.summary, e.fix, e.source, e.error_type,
                                                                    e.message)]
        out.append("  \n".join(lines) + "\n")
    return "\n".join(out)


def report_markdown(report: ParamReport | FcReport, explain: bool = False) -> str:
    """``params`` and ``fc-size`` reports in Markdown."""
    from .table import fc_grid, params_grid

    title, headers, cells, right = (params_grid(report, explain) if isinstance(report, ParamReport)
                                    else fc_grid(report))
    out = [f"### {_escape(title)}\n", md_table(headers, [[c.strip() for c, _ in r] for r in cells], right)]
    if isinstance(report, ParamReport):
        t = report.totals
        out.append(f"- Total params: {t.params:,}\n- Trainable params: {t.trainable:,}\n"
                   f"- Non-trainable params: {t.non_trainable:,}\n- Params size (MB): {megabytes(t.bytes)}\n")
    else:
        wrong = [c for c in report.layers if not c.ok]
        out += [f"- fix: {_escape(c.name)} = `{c.fix}`\n" for c in wrong]
        if report.error is not None:
            out.append(f"> **✗ {_escape(report.error.summary)}**\n")
    out += [f"> note: {_escape(n)}\n" for n in report.notes]
    return "\n".join(out)
