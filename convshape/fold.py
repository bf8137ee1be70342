"""Repeated blocks: consecutive calls of structurally identical modules with identical shapes.

A pure analysis of a :class:`~convshape.records.Trace`: ``layers.0`` ... ``layers.31`` of a decoder,
called one after the other, each with the same classes, shapes, parameter counts and layer arguments
all the way down, fold into one :class:`Group`. Renderers show a group as one row
(``layers.0-31  32 x Block``) with the first member's children under it; JSON keeps every row.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from .records import Row, Shape, Trace
from .symbolic_records import SizeExpr

_NUMBERED = re.compile(r"^(.*?)(\d+)$")  # "layers.12" -> ("layers.", "12")


@dataclass(frozen=True)
class Group:
    """``count`` consecutive sibling modules that fold into one row."""

    name: str  # "layers.0-31"
    op: str  # the members' class, "Block"
    count: int
    members: tuple[int, ...]  # the row index of each member's own row
    first: int  # first row of the span (the first member's row)
    last: int  # last row of the span (the last row inside the last member)
    params: int  # summed over the members
    macs: int | None  # summed; None when any member's is unknown or costs were not counted
    flops: int | None
    input_shapes: tuple[Shape, ...]  # the first member's inputs
    output_shapes: tuple[Shape, ...]  # the last member's outputs

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "count": self.count, "members": list(self.members),
                "first": self.first, "last": self.last, "params": self.params, "macs": self.macs,
                "flops": self.flops, "input_shapes": [list(s) for s in self.input_shapes],
                "output_shapes": [list(s) for s in self.output_shapes]}


def _children(rows: Sequence[Row]) -> dict[int | None, list[int]]:
    children: dict[int | None, list[int]] = {}
    for row in rows:
        children.setdefault(row.parent, []).append(row.index)
    return children


def _span_ends(rows: Sequence[Row], children: dict[int | None, list[int]]) -> list[int]:
    """For each row, the index of the last row inside it (itself for a leaf): rows are in call order,
    so a row's subtree is one contiguous run."""
    end = [r.index for r in rows]
    for row in reversed(rows):
        kids = children.get(row.index)
        if kids:
            end[row.index] = end[kids[-1]]
    return end


def _signature(rows: Sequence[Row], start: int, stop: int) -> Hashable:
    """What must match for two calls to fold: every row inside, relative to the member's own row
    (names below it, classes, shapes, dtypes, parameters, layer arguments)."""
    head = rows[start]
    prefix = head.name + "."
    sig: list[Hashable] = []
    for row in rows[start:stop + 1]:
        if row.kind == "module":
            name = row.name[len(prefix):] if row.name.startswith(prefix) else ("" if row is head else row.name)
            attrs = tuple(sorted((k, repr(v)) for k, v in row.attrs.items()))
        else:
            name, attrs = row.name, ()
        parent = None if row is head else (row.parent or 0) - start
        sig.append((row.kind, name, row.op, row.depth - head.depth, parent, row.input_shapes, row.output_shapes,
                    row.output_dtypes, row.params, attrs, row.failed,
                    tuple(f - start if f is not None and start <= f <= stop else None for f in row.inputs_from)))
    return tuple(sig)


def _sum(values: list[int | None]) -> int | None:
    if any(v is None for v in values):
        return None
    total = sum(values)  # type: ignore[arg-type]
    first = values[0]
    if isinstance(first, SizeExpr) and all(isinstance(v, SizeExpr) and v.expr == first.expr for v in values):
        return SizeExpr(total, f"{len(values)} * ({first.expr})")  # symbolic sizes: n equal members' formula
    return total


def find_groups(trace: Trace) -> tuple[Group, ...]:
    """Every run of at least two consecutive sibling module calls that fold, in row order.

    Members are named ``P0``, ``P1``, ... with consecutive numbers (``layers.3``, ``layers.4``), each a
    first call, and no row sits between one member and the next. Runs inside a later member of a group
    are not reported (they are hidden with it); runs inside the first member are.
    """
    rows = trace.rows
    if not rows:
        return ()
    children = _children(rows)
    end = _span_ends(rows, children)
    groups: list[Group] = []
    for parent in sorted(children, key=lambda p: -1 if p is None else p):
        kids = children[parent]
        i = 0
        while i < len(kids):
            run = _run(rows, kids, i, end)
            if len(run) >= 2:
                groups.append(_group(rows, run, end, trace.costs_counted))
                i += len(run)
            else:
                i += 1
    groups.sort(key=lambda g: g.first)
    kept: list[Group] = []
    for g in groups:  # drop groups inside a hidden member of an earlier (enclosing) group
        if any(outer.members[1] <= g.first <= outer.last for outer in kept if outer.first < g.first):
            continue
        kept.append(g)
    return tuple(kept)


def _run(rows: Sequence[Row], kids: list[int], i: int, end: list[int]) -> list[int]:
    head = rows[kids[i]]
    m = _NUMBERED.match(head.name)
    if head.kind != "module" or head.call != 0 or m is None or head.failed:
        return [head.index]
    prefix, number = m.group(1), int(m.group(2))
    sig = _signature(rows, head.index, end[head.index])
    run = [head.index]
    j = i + 1
    while j < len(kids):
        row = rows[kids[j]]
        nm = _NUMBERED.match(row.name)
        if (row.kind != "module" or row.call != 0 or nm is None or nm.group(1) != prefix
                or int(nm.group(2)) != number + len(run) or row.index != end[run[-1]] + 1
                or _signature(rows, row.index, end[row.index]) != sig):
            break
        run.append(row.index)
        j += 1
    return run


def _group(rows: Sequence[Row], run: list[int], end: list[int], costs: bool) -> Group:
    first, last = rows[run[0]], rows[run[-1]]
    m = _NUMBERED.match(first.name)
    assert m is not None
    lm = _NUMBERED.match(last.name)
    assert lm is not None
    members = [rows[i] for i in run]
    return Group(
        name=f"{first.name}-{lm.group(2)}", op=first.op, count=len(run), members=tuple(run), first=first.index,
        last=end[last.index], params=sum(r.params for r in members),
        macs=_sum([r.macs for r in members]) if costs else None,
        flops=_sum([r.flops for r in members]) if costs else None,
        input_shapes=first.input_shapes, output_shapes=last.output_shapes,
    )
