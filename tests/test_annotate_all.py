"""annotate on every example and every test model: the output parses, and each statement's comment equals
what Python itself bound or returned when that statement ran (recorded with sys.settrace, no convshape).

A run that made no new tensor (``identity = x if self.downsample is None else self.downsample(x)`` passing
``x`` on) is not a run of the comment: it computed nothing to show."""

from __future__ import annotations

import ast
import linecache
import re
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import torch
from torch import nn

import convshape
from convshape.annotate import annotate, recording_frames
from convshape.errors import TraceError
from convshape.inputs import make_input
from convshape.paths import is_user_file
from convshape.spec import parse_input

from .conftest import ASSETS, EXAMPLES, load_file

zoo = load_file(ASSETS / "zoo.py")
cases = load_file(ASSETS / "annotate_cases.py")

EXAMPLE_CASES: dict[str, tuple[Path, str, list[str], bool]] = {  # file, name, inputs, build on meta
    "mnist": (EXAMPLES / "mnist_net.py", "M", ["64x784"], False),
    "conv1d": (EXAMPLES / "conv1d_basics.py", "Conv1dBasics", ["2x1x2"], False),
    "edge": (EXAMPLES / "edge_filter.py", "EdgeFilter", ["28x28"], False),
    "stride_vs_pool": (EXAMPLES / "stride_vs_pool.py", "StrideVsPool", ["1x1x6x6"], False),
    "broken_fc": (EXAMPLES / "broken_fc.py", "BrokenNet", ["64x784"], False),
    "resnet_small": (EXAMPLES / "resnet_style.py", "resnet_small", ["2x3x32x32"], False),
    "lstm_tagger": (EXAMPLES / "lstm_tagger.py", "LSTMTagger", ["2x16:int64"], False),
    "two_inputs": (EXAMPLES / "two_inputs.py", "ImageAndMeta", ["8x3x64x64", "8x5"], False),
    "resnet50": (EXAMPLES / "resnet50.py", "ResNet50", ["1x3x224x224"], True),
    "gpt2": (EXAMPLES / "gpt2_small.py", "GPT", ["1x64:int64"], True),
    "llama": (EXAMPLES / "llama.py", "llama_tiny", ["2x9:int64"], False),
    "mnist_images": (EXAMPLES / "mnist_images.py", "M", ["2x1x28x28"], False),
    "unet": (EXAMPLES / "unet.py", "UNet", ["1x3x32x32"], False),
}


def _every_model() -> dict[str, tuple[Any, list[str], bool]]:
    found: dict[str, tuple[Any, list[str], bool]] = {}
    for key, (path, name, inputs, meta) in EXAMPLE_CASES.items():
        found[f"example:{key}"] = (getattr(load_file(path), name), inputs, meta)
    for key, (factory, inputs) in zoo.CASES.items():
        found[f"zoo:{key}"] = (factory, inputs, False)
    for key, (factory, inputs) in cases.CASES.items():
        found[f"cases:{key}"] = (factory, inputs, False)
    return found


MODELS = _every_model()


def test_every_example_is_covered() -> None:
    files = {p.name for p in EXAMPLES.glob("*.py")}
    assert files == {path.name for path, *_ in EXAMPLE_CASES.values()}


def _statements(path: str) -> dict[int, ast.stmt]:
    """line -> innermost statement that is a simple one (an assignment to a name, a return)."""
    tree = ast.parse("".join(linecache.getlines(path)))
    out: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr)):
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                out[line] = node
    return out


def _value_of(stmt: ast.stmt, frame: FrameType) -> Any:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return frame.f_locals.get(stmt.targets[0].id)
    if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) and isinstance(stmt.target, ast.Name):
        return frame.f_locals.get(stmt.target.id)
    return None


def _python_truth(model: nn.Module, tensors: list[torch.Tensor]) -> dict[tuple[str, int], list[Any]]:
    """(file, statement line) -> the value each execution bound (a name) or returned, from sys.settrace."""
    found: dict[tuple[str, int], list[Any]] = {}
    maps: dict[str, dict[int, ast.stmt]] = {}
    pending: dict[int, tuple[FrameType, ast.stmt, set[int]]] = {}

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        path = frame.f_code.co_filename
        stmts = maps.get(path)
        if stmts is None:
            stmts = maps[path] = _statements(path)
        held = pending.get(id(frame))
        if held is not None and held[0] is frame:
            stmt = held[1]
            line = frame.f_lineno
            done = event == "return" or not (stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno))
            if done:
                value = arg if event == "return" and isinstance(stmt, ast.Return) else _value_of(stmt, frame)
                # a run that only passed an existing tensor on (`x if cond else self.down(x)`) made nothing new
                fresh = id(value) not in held[2]
                if (event != "return" or isinstance(stmt, ast.Return)) and fresh:
                    found.setdefault((path, stmt.lineno), []).append(value)
                del pending[id(frame)]
        if event == "line" and frame.f_lineno in stmts and id(frame) not in pending:
            before = {id(v) for v in frame.f_locals.values() if isinstance(v, torch.Tensor)}
            pending[id(frame)] = (frame, stmts[frame.f_lineno], before)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        code = frame.f_code
        if event == "call" and is_user_file(code.co_filename) and code.co_name[0] != "<" \
                and "/tests/test_" not in code.co_filename:
            return local
        return None

    sys.settrace(tracer)
    try:
        with torch.no_grad():
            model(*tensors)
    except Exception:
        pass  # a model that fails (broken_fc): the statements before the failure count
    finally:
        sys.settrace(None)
    return found


_SHAPE = r"\[[\d, ]*\]"
_COMMENT = re.compile(rf"^(?P<shapes>{_SHAPE}(?:, {_SHAPE})*(?: \| {_SHAPE}(?:, {_SHAPE})*)*)"
                      rf"(?:  \((?P<runs>\d+) runs\))?$")


def _shape_text(value: Any) -> str | None:
    return "[" + ", ".join(map(str, value.shape)) + "]" if isinstance(value, torch.Tensor) else None


CHECKED: dict[str, int] = {}


@pytest.mark.parametrize("key", sorted(MODELS))
def test_annotate_parses_and_each_comment_is_the_statement_value(key: str) -> None:
    factory, inputs, meta = MODELS[key]
    device = torch.device("meta" if meta else "cpu")
    with device:
        model = factory()
    torch.manual_seed(0)
    tensors = [make_input(parse_input(s), device) for s in inputs]
    with recording_frames():
        try:
            trace = convshape.trace_model(model, *tensors)
        except TraceError as e:
            trace = e.trace
    blocks = annotate(model, trace, submodules=True)
    assert blocks
    truth = _python_truth(model, tensors)
    checked = 0
    for block in blocks:
        ast.parse(block.code)  # valid Python, always
        head = block.title.split("  ")[0]
        base, start = head.rsplit(":", 1)
        paths = {p for p, _ in truth} | {str(p) for p, *_ in EXAMPLE_CASES.values()}
        path = next((p for p in paths if Path(p).name == base), None)
        if path is None:
            continue
        stmts = _statements(path)
        for offset, line in enumerate(block.code.splitlines()):
            number = int(start) + offset
            if offset == 0 or "  # " not in line:
                continue
            match = _COMMENT.match(line.rsplit("  # ", 1)[1])
            if match is None or number not in stmts:
                continue
            stmt = stmts[number]
            # several statements on one line: the comment is the last one's
            same_line = [s for s in stmts.values() if (s.end_lineno or s.lineno) == number]
            stmt = max(same_line, key=lambda s: s.col_offset) if same_line else stmt
            values = truth.get((path, stmt.lineno))
            if not values or any(_shape_text(v) is None for v in values):
                continue  # a tuple, a non-name target, or a statement Python did not run here
            want = list(dict.fromkeys(_shape_text(v) for v in values))
            got = match["shapes"].split(" | ")
            assert got == want, (block.title, line, want)
            assert int(match["runs"] or 1) == len(values), (block.title, line, len(values))
            checked += 1
    CHECKED[key] = checked


def test_annotate_checked_most_statements() -> None:
    """Guard against a test that passes by skipping: the comparison ran on many statements of many models."""
    if len(CHECKED) < len(MODELS):
        pytest.skip("run with the whole file")
    assert sum(CHECKED.values()) >= 60, CHECKED
    assert sum(1 for v in CHECKED.values() if v) >= len(MODELS) - 3, CHECKED


def test_helpers_lambdas_comprehensions_and_backslashes() -> None:
    model = cases.Tricky()
    with recording_frames():
        trace = convshape.trace_model(model, "2x3x16x16")
    (block,) = annotate(model, trace)
    code = block.code
    ast.parse(code)
    assert "f = lambda t: self.b(t)  # noqa: E731\n" in code  # defined here, run later: no shape
    assert "    y = self.a(x) \\\n        + 1  # [2, 3, 16, 16]\n" in code
    assert "parts = [self.a(x[:, :, i:i + 4]) for i in range(3)]  # [2, 3, 4, 16]\n" in code  # one run
    assert "        y = f(y)  # [2, 3, 16, 16]  (2 runs)\n" in code
    res = cases.ResLike()
    with recording_frames():
        trace = convshape.trace_model(res, "2x3x16x16")
    blocks = {b.title.split("  ")[1]: b.code for b in annotate(res, trace)}
    assert "return self._forward_impl(x)  # [2, 10]" in blocks["ResLike.forward"]
    assert "x = self.conv(x)  # [2, 8, 14, 14]" in blocks["ResLike._forward_impl"]


def test_annotate_command_follows_helpers() -> None:
    from typer.testing import CliRunner

    from convshape.cli import app

    result = CliRunner().invoke(app, ["annotate", f"{ASSETS / 'annotate_cases.py'}:ResLike", "-i", "2x3x16x16"])
    assert result.exit_code == 0, result.output
    ast.parse(result.stdout)
    assert "    return self._forward_impl(x)  # [2, 10]\n" in result.stdout
    assert "# annotate_cases.py:26  ResLike._forward_impl\n" in result.stdout
