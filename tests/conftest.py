from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings
from torch import nn

# In CI the property tests draw the same examples every run (a landing must not hang on a lucky draw);
# elsewhere they draw new ones each time, so a session can still find what CI would not.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ASSETS = Path(__file__).resolve().parent / "assets"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--overwrite", action="store_true", help="Rewrite the golden files from the current output.")


@pytest.fixture
def overwrite(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--overwrite"))


def load_file(path: Path) -> Any:
    """Import a model file the way a test wants it: as a fresh module object."""
    name = f"_test_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tensor_shapes(value: Any) -> list[tuple[int, ...]]:
    """Every tensor's shape in a nested output, in order: torch's truth, independent of convshape."""
    if isinstance(value, torch.Tensor):
        return [tuple(value.shape)]
    if isinstance(value, (tuple, list)):
        return [s for v in value for s in tensor_shapes(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in tensor_shapes(v)]
    return []


def torch_module_calls(model: nn.Module, *inputs: torch.Tensor) -> list[dict[str, Any]]:
    """Ground truth from plain per-module forward hooks: one entry per call, in call order."""
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    calls: list[dict[str, Any]] = []
    open_calls: list[dict[str, Any]] = []
    handles = []

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        entry = {"name": names[id(module)], "type": type(module).__name__,
                 "in": tensor_shapes((args, kwargs)), "out": None}
        calls.append(entry)
        open_calls.append(entry)

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        open_calls.pop()["out"] = tensor_shapes(output)

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post))
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return calls


def forward_hook_calls(model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                       train: bool = False) -> list[tuple[str, str, list[Any], list[Any]]]:
    """Like :func:`torch_module_calls`, for a forward taking keyword arguments too (and in training mode):
    ``(name, type, input shapes, output shapes)`` per module call, in call order."""
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    calls: list[dict[str, Any]] = []
    open_calls: list[dict[str, Any]] = []

    def pre(module: nn.Module, a: tuple[Any, ...], kw: dict[str, Any]) -> None:
        entry = {"name": names[id(module)], "type": type(module).__name__, "in": tensor_shapes((a, kw))}
        calls.append(entry)
        open_calls.append(entry)

    def post(module: nn.Module, a: tuple[Any, ...], output: Any) -> None:
        open_calls.pop()["out"] = tensor_shapes(output)

    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre, with_kwargs=True),
                                                     m.register_forward_hook(post))]
    try:
        model.train(train)
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return [(c["name"], c["type"], [list(s) for s in c["in"]], [list(s) for s in c["out"]]) for c in calls]


def unique_numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() already skips tied duplicates


def line_of(path: Path, snippet: str, occurrence: int | None = None) -> str:
    """``file.py:N`` for the line of ``path`` containing ``snippet`` (the only one, or the n-th)."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if snippet in line]
    if occurrence is None:
        assert len(hits) == 1, (snippet, hits)
        occurrence = 0
    return f"{path.name}:{hits[occurrence]}"


def priced_and_counted(model: nn.Module, inputs: list[Any], kwargs: dict[str, Any], device: str | None,
                       monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The trace as convshape makes it, and a reference that keeps the mode on inside every torch layer and
    runs every call under the dispatch counter (how every call was priced before costs.plan and leaves.py)."""
    import convshape
    from convshape import costs, tracer

    torch.manual_seed(0)
    ours = convshape.trace_model(model, *inputs, device=device, **kwargs)
    with monkeypatch.context() as patched:
        patched.setattr(tracer, "plan", lambda func, args, kw: costs.DISPATCH)
        patched.setattr(tracer, "layer_plan", keep_the_mode)
        torch.manual_seed(0)
        reference = convshape.trace_model(model, *inputs, device=device, **kwargs)
    return ours, reference


def keep_the_mode(layer: nn.Module, args: Any) -> object:
    """A stand-in for tracer.layer_plan: every torch layer keeps the mode, its calls seen like any other."""
    from convshape import costs

    return costs.DISPATCH
