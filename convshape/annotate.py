"""The model's own ``forward`` source with each statement's resulting shape as a trailing comment, the way
people annotate by hand: ``x = F.relu(self.conv1(x))  # [64, 20, 24, 24]``.

With a trace made under :func:`recording_frames`, each row knows the user's frames around it, so the calls
are followed into the user's own helpers (``return self._forward_impl(x)`` and ``_forward_impl`` itself),
a lambda's or a comprehension's work is shown on the statement that ran it, and a statement's runs are
told apart by the bytecode position of the frames (a loop comes back to a position it passed). Comments go
where Python allows one (never after a backslash), so the output always parses.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import linecache
import os
import textwrap
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from .paths import TORCH_DIR
from .records import Row, Trace
from .tracer import RECORD_FRAMES


@dataclass(frozen=True)
class AnnotatedForward:
    title: str  # "mnist_net.py:18  M.forward"
    code: str  # dedented source, one trailing comment per statement that made a tensor


@contextlib.contextmanager
def recording_frames() -> Iterator[None]:
    """Traces made inside record each row's user frames, which :func:`annotate` follows."""
    token = RECORD_FRAMES.set(True)
    try:
        yield
    finally:
        RECORD_FRAMES.reset(token)


def _shapes(row: Row) -> str:
    return ", ".join("[" + ", ".join(map(str, s)) + "]" for s in row.output_shapes) or "-"


def _user_forward(module: nn.Module) -> bool:
    path = inspect.getsourcefile(type(module).forward) or ""
    return not os.path.abspath(path).startswith(TORCH_DIR)


_Code = tuple[str, int, str]  # (file, first line, qualname): one function of the user's


@dataclass
class _Function:
    code: _Code
    start: int  # first source line (decorators included)
    lines: list[str]
    statements: dict[int, tuple[int, int]]  # line -> (first line, comment line) of its innermost statement
    executions: dict[int, list[Row]]  # comment line -> the last row of each execution
    module_row: Row | None = None  # a module call whose forward this is (signature, title)


def _function_node(path: str, first: int, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    source = "".join(linecache.getlines(path))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if first in (start, node.lineno):
                return node
    return None


def _commentable(lines: list[str]) -> set[int]:
    """Offsets of the lines where a trailing comment is legal: the end of a logical line, or inside brackets
    (not after a backslash, not inside a multi-line string)."""
    found: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(textwrap.dedent("".join(lines))).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL):
                found.add(tok.start[0] - 1)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return found


def _statements(node: ast.AST, commentable: set[int], start: int) -> dict[int, tuple[int, int]]:
    """Each line of a function -> its innermost statement: (first line, the line its comment goes on). A
    compound statement (for, if, with, while) owns its header lines only."""
    out: dict[int, tuple[int, int]] = {}

    def place(first: int, last: int) -> int:
        for line in range(last, first - 1, -1):
            if line - start in commentable:
                return line
        return -1

    def visit(stmt: ast.stmt) -> None:
        bodies = [getattr(stmt, f) for f in ("body", "orelse", "finalbody", "handlers") if getattr(stmt, f, None)]
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return  # a nested definition: its own frames, annotated on their own
        if bodies:
            header = [n for n in ast.iter_child_nodes(stmt) if isinstance(n, ast.expr)]
            header += [i.context_expr for i in getattr(stmt, "items", [])]
            end = max([stmt.lineno, *(getattr(n, "end_lineno", stmt.lineno) or stmt.lineno for n in header)])
            for line in range(stmt.lineno, end + 1):
                out[line] = (stmt.lineno, place(stmt.lineno, end))
            for body in bodies:
                for child in body:
                    if isinstance(child, ast.ExceptHandler):
                        for inner in child.body:
                            visit(inner)
                    else:
                        visit(child)
            return
        end = stmt.end_lineno or stmt.lineno
        for line in range(stmt.lineno, end + 1):
            out[line] = (stmt.lineno, place(stmt.lineno, end))

    for stmt in getattr(node, "body", []):
        visit(stmt)
    return out


def _comment_text(executions: list[Row]) -> str:
    shapes = list(dict.fromkeys(_shapes(row) for row in executions))
    text = " | ".join(shapes)
    if len(executions) > 1:
        text += f"  ({len(executions)} runs)"
    return text


def _render(fn: _Function, signature: str) -> str:
    comments: dict[int, list[str]] = {}
    for line, executions in fn.executions.items():
        comments.setdefault(line, []).append(_comment_text(executions))
    out = []
    for offset, text in enumerate(fn.lines):
        number = fn.start + offset
        code = text.rstrip("\n")
        notes = comments.get(number, [])
        if offset == 0 and signature:
            notes = [signature, *notes]
        if notes and code.strip():
            code += "  # " + "; ".join(notes)
        out.append(code)
    return textwrap.dedent("\n".join(out))


def annotate(model: nn.Module, trace: Trace, submodules: bool = False) -> list[AnnotatedForward]:
    """Annotate the root's forward and the user's own functions it calls (and, with ``submodules``, each
    user-defined submodule class's forward and the functions it calls)."""
    if not any(r.frames for r in trace.rows):
        return _annotate_by_line(model, trace, submodules)
    modules = dict(model.named_modules())
    annotated: set[int] = set()  # module rows whose forward is annotated
    for row in trace.rows:
        if row.kind == "module" and row.name in modules and (
                row.depth == 0 or (submodules and _user_forward(modules[row.name]))):
            annotated.add(row.index)
    functions: dict[_Code, _Function | None] = {}
    forward_code: dict[int, _Code] = {}  # module row -> its forward's code
    for index in annotated:
        row = trace.rows[index]
        fwd = type(modules[row.name]).forward
        code = getattr(fwd, "__code__", None)
        if code is not None:
            forward_code[index] = (code.co_filename, code.co_firstlineno, code.co_qualname)
    # per function activation: the previous row's position, to tell a loop's next run from the same run
    last: dict[tuple, tuple[int, tuple, int, int]] = {}
    for row in trace.rows:
        if row.parent not in annotated or not row.frames:
            continue
        chain = row.frames
        for depth, (path, line, _, qualname, first, _) in enumerate(chain):
            if qualname.endswith(("<lambda>", "<listcomp>", "<genexpr>", "<setcomp>", "<dictcomp>")):
                continue
            code = (path, first, qualname)
            if code not in functions:
                functions[code] = _load(code)
            fn = functions[code]
            if fn is None or line not in fn.statements:
                continue
            stmt, comment_line = fn.statements[line]
            if comment_line < 0:
                continue
            activation = (row.parent, code, tuple((f[0], f[2]) for f in chain[depth + 1:]))
            # position inside this activation: the bytecode offsets of this frame and the frames it called,
            # cut at a comprehension (whose one frame runs every iteration of one execution)
            inner: list[int] = []
            serial = -1
            for f in reversed(chain[:depth + 1]):
                if f[5] >= 0:
                    serial = f[5]
                    break
                inner.append(f[2])
            position = tuple(inner)
            before = last.get(activation)
            executions = fn.executions.setdefault(comment_line, [])
            same_run = before is not None and before[0] == stmt and executions and (
                (serial >= 0 and before[3] == serial and before[1] == position) or position > before[1])
            if same_run:
                executions[-1] = row  # a later call in the same run: the statement's result so far
            else:
                executions.append(row)
            last[activation] = (stmt, position, comment_line, serial)
    out = []
    firsts = {code: next((trace.rows[i] for i in sorted(annotated) if forward_code.get(i) == code), None)
              for code in functions}
    order = sorted((c for c, f in functions.items() if (f is not None and f.executions) or (
        f is not None and firsts.get(c) is not None)),
        key=lambda c: min([r.index for rows in functions[c].executions.values() for r in rows]  # type: ignore[union-attr]
                          + [firsts[c].index if firsts.get(c) else 10**12]))  # type: ignore[union-attr]
    for code in order:
        fn = functions[code]
        assert fn is not None
        module_row = firsts.get(code)
        signature = ""
        if module_row is not None:
            node = _function_node(code[0], code[1], code[2].rsplit(".", 1)[-1])
            params = [a.arg for a in node.args.args[1:]] if node is not None else []
            signature = ", ".join(f"{name}: [{', '.join(map(str, shape))}]"
                                  for name, shape in zip(params, module_row.input_shapes, strict=False))
        base = os.path.basename(code[0])
        title = f"{base}:{fn.start}  {code[2]}"
        if module_row is not None and module_row.depth:
            title += f"  ({module_row.name or module_row.op})"
        out.append(AnnotatedForward(title, _render(fn, signature)))
    return out


def _load(code: _Code) -> _Function | None:
    path, first, qualname = code
    node = _function_node(path, first, qualname.rsplit(".", 1)[-1])
    if node is None or node.end_lineno is None:
        return None
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = linecache.getlines(path)[start - 1:node.end_lineno]
    commentable = _commentable(lines)
    return _Function(code, start, lines, _statements(node, commentable, start), {})


def _annotate_by_line(model: nn.Module, trace: Trace, submodules: bool = False) -> list[AnnotatedForward]:
    """For a trace made without frames: each forward line's own rows, by source line."""
    modules = dict(model.named_modules())
    calls_by_class: dict[type[nn.Module], list[Row]] = {}
    for row in trace.rows:
        if row.kind != "module" or row.name not in modules:
            continue
        module = modules[row.name]
        if row.depth == 0 or (submodules and _user_forward(module)):
            calls_by_class.setdefault(type(module), []).append(row)
    out = []
    for cls, calls in calls_by_class.items():
        code = getattr(cls.forward, "__code__", None)
        if code is None:
            continue
        fn = _load((code.co_filename, code.co_firstlineno, code.co_qualname))
        if fn is None:
            continue
        base = os.path.basename(code.co_filename)
        call_ids = {r.index for r in calls}
        current: dict[int, tuple[int, set[int | None]]] = {}  # call -> (statement, call sites seen in this run)
        for row in trace.rows:
            if row.parent not in call_ids or not row.source or not row.source.startswith(base + ":"):
                continue
            line = int(row.source.rsplit(":", 1)[1])
            if line not in fn.statements or fn.statements[line][1] < 0:
                continue
            stmt, comment_line = fn.statements[line]
            executions = fn.executions.setdefault(comment_line, [])
            run = current.get(row.parent)
            if run is not None and run[0] == stmt and row.site not in run[1] and executions:
                executions[-1] = row
                run[1].add(row.site)
            else:
                executions.append(row)
                current[row.parent] = (stmt, {row.site})
        params = [p for p in inspect.signature(cls.forward).parameters if p != "self"]
        first = calls[0]
        signature = ", ".join(f"{name}: [{', '.join(map(str, shape))}]"
                              for name, shape in zip(params, first.input_shapes, strict=False))
        name = first.name or first.op
        title = f"{base}:{fn.start}  {cls.__name__}.forward" + (f"  ({name})" if first.depth else "")
        out.append(AnnotatedForward(title, _render(fn, signature)))
    return out
