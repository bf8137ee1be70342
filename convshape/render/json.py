"""JSON output: the versioned contract documented in the README."""

from __future__ import annotations

import json
from typing import Any, Protocol


class _Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def _flat(value: Any) -> bool:
    """Scalars, and lists of scalars or of scalar lists (shapes, lists of shapes), stay on one line."""
    if isinstance(value, list):
        return all(not isinstance(v, (list, dict)) or (isinstance(v, list) and all(
            not isinstance(x, (list, dict)) for x in v)) for v in value)
    return not isinstance(value, dict)


def _dump(value: Any, indent: int) -> str:
    if _flat(value):
        return json.dumps(value)
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_dump(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{_dump(v, indent + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def to_json(report: _Report, explain: bool = False) -> str:
    """Indented JSON with shapes and lists of shapes kept on one line each.

    With ``explain`` (a trace), each row gains ``explain`` (its arithmetic lines) and ``receptive_field``.
    """
    data = report.to_dict()
    if explain and "rows" in data:
        from ..explain import explanations, field_map

        rows = report.rows  # type: ignore[attr-defined]
        fields = field_map(rows)
        lines = explanations(rows, fields)
        for row in data["rows"]:
            row["explain"] = lines.get(row["index"], [])
            rf = fields.known.get(row["index"])
            row["receptive_field"] = [{"size": f.size, "jump": f.jump, "start": f.start} for f in rf] if rf else None
            unknown = fields.unknown.get(row["index"])
            row["receptive_field_unknown"] = f"unknown {unknown}" if unknown else None
    return _dump(data, 0)
