"""The model's own ``forward`` source with each line's resulting shape as a trailing comment, the way
people annotate by hand: ``x = F.relu(self.conv1(x))  # [64, 20, 24, 24]``.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from dataclasses import dataclass

from torch import nn

from .paths import TORCH_DIR
from .records import Row, Trace


@dataclass(frozen=True)
class AnnotatedForward:
    title: str  # "mnist_net.py:18  M.forward"
    code: str  # dedented source, one trailing comment per line that made a call


def _shapes(row: Row) -> str:
    return ", ".join("[" + ", ".join(map(str, s)) + "]" for s in row.output_shapes) or "-"


def _user_forward(module: nn.Module) -> bool:
    path = inspect.getsourcefile(type(module).forward) or ""
    return not os.path.abspath(path).startswith(TORCH_DIR)


def annotate(model: nn.Module, trace: Trace, submodules: bool = False) -> list[AnnotatedForward]:
    """Annotate the root's forward (and, with ``submodules``, each user-defined submodule class's)."""
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
        try:
            lines, start = inspect.getsourcelines(cls.forward)
            path = inspect.getsourcefile(cls.forward) or "?"
        except (OSError, TypeError):
            continue
        base = os.path.basename(path)
        call_ids = {r.index for r in calls}
        # Each execution of a line (a run of rows from that line in one call) ends with the line's result.
        # A run ends when the line changes or a call site of the run comes round again (a loop).
        runs: dict[int, list[Row]] = {}
        current: dict[int, tuple[int, set[int | None]]] = {}  # call -> (line, call sites seen in this run)
        for row in trace.rows:
            if row.parent not in call_ids or not row.source or not row.source.startswith(base + ":"):
                continue
            line = int(row.source.rsplit(":", 1)[1])
            executions = runs.setdefault(line, [])
            run = current.get(row.parent)
            if run is not None and run[0] == line and row.site not in run[1] and executions:
                executions[-1] = row  # same run: a later call on the line is its result
                run[1].add(row.site)
            else:
                executions.append(row)
                current[row.parent] = (line, {row.site})
        comments: dict[int, str] = {}
        for line, executions in runs.items():
            shapes = list(dict.fromkeys(_shapes(row) for row in executions))
            text = " | ".join(shapes)
            if len(executions) > 1:
                text += f"  ({len(executions)} runs)"
            comments[line] = text
        params = [p for p in inspect.signature(cls.forward).parameters if p != "self"]
        first = calls[0]
        signature = ", ".join(f"{name}: [{', '.join(map(str, shape))}]"
                              for name, shape in zip(params, first.input_shapes, strict=False))
        annotated = []
        for offset, text in enumerate(lines):
            number = start + offset
            code = text.rstrip("\n")
            if offset == 0 and signature:
                code += f"  # {signature}"
            elif number in comments and code.strip():
                code += f"  # {comments[number]}"
            annotated.append(code)
        name = first.name or first.op
        title = f"{base}:{start}  {cls.__name__}.forward" + (f"  ({name})" if first.depth else "")
        out.append(AnnotatedForward(title, textwrap.dedent("\n".join(annotated))))
    return out
