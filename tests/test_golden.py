"""Golden files for what people read: tables rendered as plain text, without colour.

Regenerate after an intended change with ``pytest tests/test_golden.py --overwrite`` and review the diff.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
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


# The four models of the width goldens (issue 10): traced once each, rendered at 80, 120 and unlimited
# columns, folded and expanded.
MODELS = {
    "mnist": ("mnist_net.py", "M", "64x784", "cpu"),
    "resnet50": ("resnet50.py", "ResNet50", "1x3x224x224", "meta"),
    "gpt2": ("gpt2_small.py", "GPT", "1x16:int64", "meta"),
    "llama_tiny": ("llama.py", "llama_tiny", "1x16:int64", "meta"),
}
WIDTHS = {"80": 80, "120": 120, "full": None}


@functools.cache
def model_trace(key: str, costs: bool = False) -> convshape.Trace:
    file, name, shape, device = MODELS[key]
    with torch.device(device):  # built where it runs: moving a model to meta would untie tied weights
        model = getattr(load_file(EXAMPLES / file), name)()
    return convshape.trace_model(model, shape, device=device, costs=costs)


for _key in MODELS:
    for _w, _width in WIDTHS.items():
        for _fold in (True, False):
            CASES[f"width_{_key}_{_w}{'' if _fold else '_expanded'}"] = functools.partial(
                lambda k, w, f: trace_table(model_trace(k), width=w, fold=f), _key, _width, _fold)
CASES["width_fc_broken_80"] = lambda: fc_table(convshape.fc_size(load_file(EXAMPLES / "broken_fc.py").BrokenNet(),
                                                                  "64x784"), width=80)
CASES["width_params_mnist_explain_80"] = lambda: params_table(
    convshape.parameters(load_file(EXAMPLES / "mnist_net.py").M(), "M"), explain=True, width=80)
CASES["width_mnist_80_costs_explain"] = lambda: trace_table(model_trace("mnist", costs=True), width=80, explain=True)
CASES["width_resnet50_60_costs"] = lambda: trace_table(model_trace("resnet50", costs=True), width=60, depth=3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, overwrite: bool) -> None:
    text = to_text(CASES[name]())
    path = GOLDEN / f"{name}.txt"
    if overwrite or not path.exists():
        path.write_text(text)
        if not overwrite:
            pytest.fail(f"wrote missing golden file {path.name}; review it and run again")
    assert text == path.read_text()
