"""A picture of the data flow: Mermaid (renders on GitHub and in Markdown viewers) and Graphviz DOT.

Nodes are the innermost visible rows (``--depth`` cuts deeper rows into their container); a folded
repeated block is one node; residual adds and concatenations are drawn as joins (several edges in).
Every edge carries the shape of the tensor flowing along it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import Shape, Trace
from ..text import shape_text
from .view import visible_rows

JOINS = {"Tensor.add", "torch.add", "Tensor.add_", "Tensor.__add__", "Tensor.__iadd__", "torch.cat", "torch.concat",
         "torch.concatenate", "torch.stack", "Tensor.mul", "torch.mul", "Tensor.__mul__"}
_CONCATS = {"torch.cat", "torch.concat", "torch.concatenate", "torch.stack"}


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # "input" | "output" | "module" | "function" | "group" | "join" | "concat"


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str, str], ...]  # (from, to, shape label)


def call_graph(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True) -> Graph:
    """The nodes and shape-labelled edges of the forward pass, in call order."""
    rows = trace.rows
    view = visible_rows(trace, depth, functions, fold=fold, full_names=True)
    node_of: dict[int, str] = {}  # row index -> node id, for rows that are nodes or inside one
    nodes: list[Node] = [Node("x_in", "input " + ", ".join(shape_text(i.shape) for i in trace.inputs), "input")]
    covered_until = -1
    for i, vr in enumerate(view):
        row = vr.row
        if row.index <= covered_until:
            continue
        is_leaf = i + 1 == len(view) or view[i + 1].depth <= vr.depth
        if vr.group is None and not is_leaf and len(view) != 1:
            continue
        if vr.group is None and row.depth == 0 and len(view) > 1:
            continue
        ident = f"n{row.index}"
        if vr.group is not None:
            kind, label = "group", f"{vr.full_name}: {vr.op}"
            span = range(vr.group.first, vr.group.last + 1)
        else:
            kind = ("concat" if row.op in _CONCATS else "join" if row.op in JOINS and len(row.inputs_from) > 1
                    else row.kind)
            label = f"{vr.full_name}: {row.op}" if row.kind == "module" else row.op
            span = range(row.index, _end(trace, row.index) + 1)
        for j in span:
            node_of[j] = ident
        covered_until = span[-1]
        nodes.append(Node(ident, label, kind))
    model_inputs = {i.shape for i in trace.inputs}

    def sources(p: int | None, seen: frozenset[int] = frozenset()) -> set[str]:
        if p is None:
            return set()
        if p in node_of:
            return {node_of[p]}
        if p in seen:
            return set()
        found: set[str] = set()
        for q, shape in zip(rows[p].inputs_from, rows[p].input_shapes, strict=False):
            found |= {"x_in"} if q is None and shape in model_inputs else sources(q, seen | {p})
        return found

    edges: dict[tuple[str, str, str], None] = {}
    for row in rows:
        dst = node_of.get(row.index)
        if dst is None:
            continue
        for p, shape in zip(row.inputs_from, row.input_shapes, strict=False):
            srcs = {"x_in"} if p is None and shape in model_inputs else sources(p)
            for src in sorted(srcs):
                if src != dst:
                    edges[(src, dst, _label(shape))] = None
    if rows and len(nodes) > 1:
        nodes.append(Node("x_out", "output " + ", ".join(shape_text(s) for s in rows[0].output_shapes), "output"))
        edges[(nodes[-2].id, "x_out", ", ".join(_label(s) for s in rows[0].output_shapes))] = None
    used = {a for a, _, _ in edges} | {b for _, b, _ in edges}
    return Graph(tuple(n for n in nodes if n.id in used or n.kind not in ("input",)), tuple(edges))


def _end(trace: Trace, index: int) -> int:
    """The last row inside row ``index`` (rows are in call order: a subtree is one contiguous run)."""
    rows = trace.rows
    depth = rows[index].depth
    j = index + 1
    while j < len(rows) and rows[j].depth > depth:
        j += 1
    return j - 1


def _label(shape: Shape) -> str:
    return shape_text(shape)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


_MERMAID_SHAPES = {"input": ('(["', '"])'), "output": ('(["', '"])'), "join": ('(("', '"))'),
                   "concat": ('{{"', '"}}'), "group": ('[["', '"]]'), "function": ('("', '")'),
                   "module": ('["', '"]')}


def trace_mermaid(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True) -> str:
    """``flowchart TD`` source; paste it in a ```mermaid block on GitHub."""
    graph = call_graph(trace, depth, functions, fold)
    lines = ["flowchart TD"]
    for n in graph.nodes:
        open_, close = _MERMAID_SHAPES[n.kind]
        lines.append(f"    {n.id}{open_}{_mermaid_text(n.label)}{close}")
    for a, b, label in graph.edges:
        lines.append(f'    {a} -->|"{_mermaid_text(label)}"| {b}')
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {"input": "oval", "output": "oval", "join": "circle", "concat": "hexagon", "group": "box3d",
               "function": "box", "module": "box"}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def trace_dot(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True) -> str:
    """Graphviz source: ``dot -Tsvg graph.dot > graph.svg``."""
    graph = call_graph(trace, depth, functions, fold)
    lines = [f'digraph "{_dot_text(trace.model)}" {{', "    rankdir=TB;",
             '    node [fontname="Helvetica", fontsize=10, shape=box];', '    edge [fontname="Helvetica", fontsize=9];']
    for n in graph.nodes:
        extra = ', style="rounded,dashed"' if n.kind == "function" else ""
        lines.append(f'    {n.id} [label="{_dot_text(n.label)}", shape={_DOT_SHAPES[n.kind]}{extra}];')
    for a, b, label in graph.edges:
        lines.append(f'    {a} -> {b} [label="{_dot_text(label)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
