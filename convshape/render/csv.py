"""CSV: one line per row, every row (no folding), raw numbers, for spreadsheets and pandas."""

from __future__ import annotations

import csv as _csv
import io
from collections.abc import Sequence

from ..fold import find_groups
from ..records import FcReport, ParamReport, Shape, Trace

TRACE_FIELDS = ("index", "kind", "name", "op", "depth", "parent", "input_shapes", "output_shapes", "output_dtypes",
                "params", "macs", "flops", "output_bytes", "source", "call", "failed", "group")


def _shapes(shapes: tuple[Shape, ...]) -> str:
    """``64x784;64x10``: one cell, shapes separated by semicolons."""
    return ";".join("x".join(map(str, s)) for s in shapes)


def _write(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = _csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in r] for r in rows)
    return buf.getvalue()


def trace_csv(trace: Trace) -> str:
    """Every row of the trace; ``group`` names the folded group (``layers.0-31``) a row belongs to."""
    group_of: dict[int, str] = {}
    for g in find_groups(trace):
        for i in range(g.first, g.last + 1):
            group_of.setdefault(i, g.name)
    rows = [[r.index, r.kind, r.name, r.op, r.depth, r.parent, _shapes(r.input_shapes), _shapes(r.output_shapes),
             ";".join(r.output_dtypes), r.params, r.macs, r.flops, r.output_bytes, r.source, r.call,
             str(r.failed).lower(), group_of.get(r.index)] for r in trace.rows]
    return _write(TRACE_FIELDS, rows)


def report_csv(report: ParamReport | FcReport) -> str:
    if isinstance(report, ParamReport):
        return _write(("name", "module", "shape", "numel", "trainable", "dtype", "shared_with"),
                      [[p.name, p.module, "x".join(map(str, p.shape)), p.numel, str(p.trainable).lower(), p.dtype,
                        ";".join(p.shared_with)] for p in report.parameters])
    return _write(("name", "type", "declared", "required", "ok", "incoming_shape", "out_features", "fix",
                   "produced_by", "produced_at"),
                  [[c.name, c.type, c.declared, c.required, str(c.ok).lower(), "x".join(map(str, c.incoming_shape)),
                    c.out_features, c.fix, c.produced_by, c.produced_at] for c in report.layers])
