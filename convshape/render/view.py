"""Which rows a person sees, and how each is labelled: the shared first step of every trace renderer.

Pure over a :class:`~convshape.records.Trace`: ``--depth``, ``--no-functions``, folded repeated blocks
(``--expand`` turns folding off) and short tree names (``--full-names`` turns them off).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..fold import Group, find_groups
from ..records import Row, Shape, Trace


@dataclass(frozen=True)
class ViewRow:
    """One visible line of a trace: a row, or a folded group standing for its members."""

    row: Row  # the row itself, or a group's first member
    group: Group | None
    depth: int
    name: str  # the label without indentation: the short name, or the full one with full_names
    full_name: str  # the qualified name ("layers.0-31" for a group)
    op: str  # "Conv2d", "F.relu", "32 x Block"
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    params: int
    macs: int | None
    flops: int | None
    output_bytes: int

    @property
    def kind(self) -> str:
        return "group" if self.group is not None else self.row.kind

    @property
    def failed(self) -> bool:
        return self.row.failed


def short_name(row: Row, parent: Row | None) -> str:
    """The leaf's own name under its parent row: ``conv1`` for ``layer1.0.conv1`` inside ``layer1.0``.

    A module called from somewhere other than its own parent keeps its full name, so it stays findable.
    """
    if row.kind != "module" or parent is None or not row.name:
        return row.name or row.op
    prefix = parent.name + "." if parent.name else ""
    if prefix and row.name.startswith(prefix):
        return row.name[len(prefix):]
    return row.name


def visible_rows(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True,
                 full_names: bool = False, groups: tuple[Group, ...] | None = None) -> list[ViewRow]:
    """The rows a person sees, in call order, with folded groups in place of their members."""
    if groups is None:
        groups = find_groups(trace) if fold else ()
    return _walk(trace, 0, len(trace.rows) - 1, depth, functions, full_names, {g.first: g for g in groups})


def _walk(trace: Trace, start: int, stop: int, depth: int | None, functions: bool, full_names: bool,
          by_first: dict[int, Group]) -> list[ViewRow]:
    """Rows ``start`` to ``stop``; a group shows as its own row, then its first member's children once."""
    rows = trace.rows
    out: list[ViewRow] = []
    skip_to = -1
    for row in rows[start:stop + 1]:
        if row.index <= skip_to:
            continue
        if (depth is not None and row.depth > depth) or (not functions and row.kind == "function"):
            continue
        parent = rows[row.parent] if row.parent is not None else None
        group = by_first.get(row.index)
        if group is None:
            out.append(_plain(row, parent, full_names))
            continue
        last_number = group.name.rsplit("-", 1)[1]
        name = group.name if full_names else f"{short_name(row, parent)}-{last_number}"
        out.append(ViewRow(row, group, row.depth, name, group.name, f"{group.count} x {group.op}",
                           group.input_shapes, group.output_shapes, group.params, group.macs, group.flops,
                           sum(rows[i].output_bytes for i in group.members)))
        out.extend(_walk(trace, row.index + 1, group.members[1] - 1, depth, functions, full_names, by_first))
        skip_to = group.last
    return out


def _plain(row: Row, parent: Row | None, full_names: bool) -> ViewRow:
    name = row.name
    if row.kind == "module":
        name = (row.name or row.op) if full_names else short_name(row, parent)
    return ViewRow(row, None, row.depth, name, row.name or row.op, row.op, row.input_shapes, row.output_shapes,
                   row.params, row.macs, row.flops, row.output_bytes)
