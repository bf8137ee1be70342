"""Golden files for what people read: tables rendered as plain text, without colour.

Regenerate after an intended change with ``pytest tests/test_golden.py --overwrite`` and review the diff.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rich.console import RenderableType

import convshape
from convshape.errors import TraceError
from convshape.render import to_text
from convshape.render.table import fc_table, params_table, trace_table

from .conftest import ASSETS, EXAMPLES, GOLDEN, load_file


def _trace(path: str, name: str, *inputs: str, costs_counted: bool = False, **kw: object) -> RenderableType:
    file = ASSETS / path.split("/")[-1] if "/" in path else EXAMPLES / path
    model = getattr(load_file(file), name)()
    try:
        trace = convshape.trace_model(model, *inputs, costs=costs_counted)
    except TraceError as e:
        trace = e.trace
    return trace_table(trace, **kw)  # type: ignore[arg-type]


CASES: dict[str, Callable[[], RenderableType]] = {
    "trace_mnist": lambda: _trace("mnist_net.py", "M", "64x784"),
    "trace_mnist_modules_only": lambda: _trace("mnist_net.py", "M", "64x784", functions=False),
    "trace_resnet_depth2": lambda: _trace("resnet_style.py", "resnet_small", "2x3x32x32", depth=2),
    "trace_lstm": lambda: _trace("lstm_tagger.py", "LSTMTagger", "2x16:int64"),
    "trace_broken_fc": lambda: _trace("broken_fc.py", "BrokenNet", "64x784"),
    "trace_wrong_channels": lambda: _trace("x/failing.py", "WrongChannels", "2x1x28x28"),
    "trace_mnist_explain_costs": lambda: _trace("mnist_net.py", "M", "64x784", explain=True, costs=True,
                                                costs_counted=True),
    "params_mnist_explain": lambda: params_table(convshape.parameters(load_file(EXAMPLES / "mnist_net.py").M(),
                                                                      "M"), explain=True),
    "params_mnist": lambda: params_table(convshape.parameters(load_file(EXAMPLES / "mnist_net.py").M(), "M")),
    "params_tied": lambda: params_table(convshape.parameters(load_file(ASSETS / "zoo.py").TiedLM())),
    "fc_broken": lambda: fc_table(convshape.fc_size(load_file(EXAMPLES / "broken_fc.py").BrokenNet(), "64x784")),
    "fc_both_wrong": lambda: fc_table(convshape.fc_size(load_file(ASSETS / "failing.py").BothWrong(),
                                                        "2x3x16x16")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, overwrite: bool) -> None:
    text = to_text(CASES[name]())
    path = GOLDEN / f"{name}.txt"
    if overwrite or not path.exists():
        path.write_text(text)
        if not overwrite:
            pytest.fail(f"wrote missing golden file {path.name}; review it and run again")
    assert text == path.read_text()
