"""fc-size: every Linear answered in one run, with the factorisation and the corrected call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convshape

from .conftest import ASSETS, EXAMPLES, line_of, load_file

failing = load_file(ASSETS / "failing.py")


def _received_by_torch(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """What each Linear really receives, from plain hooks on a model whose Linears are made lazy."""
    got: dict[str, int] = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear):
            parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
            lazy = nn.LazyLinear(module.out_features, bias=module.bias is not None)
            lazy.register_forward_pre_hook(lambda m, a, n=name: got.__setitem__(n, a[0].shape[-1]))
            setattr(parent, name.rpartition(".")[2], lazy)
    with torch.no_grad():
        model(x)
    return got


@pytest.mark.parametrize("device", ["auto", "cpu", "meta"])
def test_both_wrong_linears_answered_in_one_run(device: str) -> None:
    report = convshape.fc_size(failing.BothWrong(), "2x3x16x16", device=device)
    truth = _received_by_torch(failing.BothWrong(), torch.randn(2, 3, 16, 16))
    assert {c.name: c.required for c in report.layers} == truth == {"fc1": 392, "fc2": 64, "fc3": 10}
    fc1, fc2, fc3 = report.layers
    assert (fc1.ok, fc2.ok, fc3.ok) == (False, False, True)
    assert fc1.fix == "nn.Linear(392, 64)"
    assert fc2.fix == "nn.Linear(64, 10, bias=False)"  # keeps bias=False
    assert fc3.fix is None
    assert fc1.flattened_from is not None and fc1.flattened_from.factors == (8, 7, 7)
    assert fc1.flattened_from.producer == "conv (Conv2d)"
    assert report.error is None


def test_broken_fc_example_fix() -> None:
    path = EXAMPLES / "broken_fc.py"
    report = convshape.fc_size(load_file(path).BrokenNet(), "64x784")
    fc1 = report.layers[0]
    assert (fc1.declared, fc1.required, fc1.ok, fc1.fix) == (320, 800, False, "nn.Linear(800, 500)")
    origin = fc1.flattened_from
    assert origin is not None and origin.shape == (64, 50, 4, 4) and origin.factors == (50, 4, 4)
    assert origin.flatten_source == line_of(path, "x.view(x.size(0), -1)")
    assert origin.producer_source == line_of(path, "F.max_pool2d(x, 2)", occurrence=1)


def test_lazy_linear_and_flatten_module_through_dropout() -> None:
    report = convshape.fc_size(failing.LazyHead(), "2x3x10x10")
    (fc,) = report.layers
    assert fc.type == "LazyLinear" and fc.declared is None and fc.ok and fc.required == 24
    assert fc.flattened_from is not None
    assert fc.flattened_from.flatten_op == "features.2 (Flatten)" and fc.flattened_from.factors == (6, 2, 2)
    assert fc.flattened_from.producer == "features.1 (AdaptiveAvgPool2d)"


def test_layer_filter_and_json_contract() -> None:
    report = convshape.fc_size(failing.BothWrong(), "2x3x16x16", layer="fc2")
    assert [c.name for c in report.layers] == ["fc2"]
    data = report.to_dict()
    assert data["schema"] == "convshape.fc-size/1"
    assert set(data["layers"][0]) >= {"name", "declared", "required", "ok", "incoming_shape",
                                      "flattened_from", "fix"}


@pytest.mark.parametrize("device", ["auto", "cpu", "meta"])
def test_resnet_head_ok(device: str) -> None:
    from convshape.fc import fc_report
    from convshape.loader import ModelSource
    from convshape.run import RunOptions, trace_source
    from convshape.spec import parse_input

    factory = load_file(EXAMPLES / "resnet_style.py").resnet_small
    model = factory()
    ran = trace_source(ModelSource(factory, {}, "r", "test"), [parse_input("2x3x32x32")],
                       RunOptions(device=device, repair_linear=True))
    report = fc_report(ran.trace)
    (fc,) = report.layers
    assert fc.ok and fc.required == model.fc.in_features
