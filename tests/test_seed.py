"""Every number of the tutorial (shared/DESIGN.md's seed list), through convshape, checked with torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convshape

from .conftest import EXAMPLES, load_file

mnist = load_file(EXAMPLES / "mnist_net.py")


def test_conv1d_basics() -> None:
    model = load_file(EXAMPLES / "conv1d_basics.py").Conv1dBasics()
    trace = convshape.trace_model(model, "2x1x2")
    row = next(r for r in trace.rows if r.name == "conv1d")
    assert row.input_shapes == ((2, 1, 2), (1, 1, 2))  # inputs, filters
    direct = F.conv1d(torch.randn(2, 1, 2), torch.randn(1, 1, 2), padding=0)
    assert row.output_shapes == (tuple(direct.shape),) == ((2, 1, 1),)


def test_edge_filter_padding_keeps_28x28() -> None:
    trace = convshape.trace_model(load_file(EXAMPLES / "edge_filter.py").EdgeFilter(), "28x28")
    conv = next(r for r in trace.rows if r.name == "conv2d")
    assert conv.input_shapes == ((1, 1, 28, 28), (1, 1, 3, 3))
    direct = F.conv2d(torch.randn(1, 1, 28, 28), torch.randn(1, 1, 3, 3), padding=1)
    assert conv.output_shapes == (tuple(direct.shape),) == ((1, 1, 28, 28),)


# The seed's annotated listing, as DESIGN.md gives it: (row name, output shape).
SEED_LISTING = [
    ("", (64, 10)),
    ("view", (64, 1, 28, 28)),
    ("conv1", (64, 20, 24, 24)),
    ("relu", (64, 20, 24, 24)),
    ("max_pool2d", (64, 20, 12, 12)),
    ("conv2", (64, 50, 8, 8)),
    ("relu", (64, 50, 8, 8)),
    ("max_pool2d", (64, 50, 4, 4)),
    ("view", (64, 800)),
    ("fc1", (64, 500)),
    ("relu", (64, 500)),
    ("fc2", (64, 10)),
]


def _print_sizes_like_the_tutorial(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """The tutorial's own method: run forward's lines by hand and take x.size() after each."""
    sizes = []
    x = x.view(-1, 1, 28, 28)
    sizes.append(tuple(x.size()))
    for conv in (model.conv1, model.conv2):
        x = conv(x)
        sizes.append(tuple(x.size()))
        x = F.relu(x)
        sizes.append(tuple(x.size()))
        x = F.max_pool2d(x, 2)
        sizes.append(tuple(x.size()))
    x = x.view(x.size(0), -1)
    sizes.append(tuple(x.size()))
    x = model.fc1(x)
    sizes.append(tuple(x.size()))
    x = F.relu(x)
    sizes.append(tuple(x.size()))
    sizes.append(tuple(model.fc2(x).size()))
    return sizes


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mnist_rows_follow_the_seed_listing(device: str) -> None:
    trace = convshape.trace_model(mnist.M(), "64x784", device=device)
    assert trace.rows[0].input_shapes == ((64, 784),)
    assert [(r.name, r.output_shapes[0]) for r in trace.rows] == SEED_LISTING
    with torch.no_grad():
        by_hand = _print_sizes_like_the_tutorial(mnist.M(), torch.randn(64, 784))
    assert [r.output_shapes[0] for r in trace.rows[1:]] == by_hand
    assert [r.kind for r in trace.rows] == ["module", "function", "module", "function", "function", "module",
                                            "function", "function", "function", "module", "function", "module"]


def test_mnist_fc1_in_features_is_50_x_4_x_4() -> None:
    report = convshape.fc_size(mnist.M(), "64x784")
    fc1 = report.layers[0]
    assert fc1.name == "fc1" and fc1.ok and fc1.required == 800 == mnist.M().fc1.in_features
    assert fc1.flattened_from is not None
    assert fc1.flattened_from.shape == (64, 50, 4, 4) and fc1.flattened_from.factors == (50, 4, 4)
    assert math.prod(fc1.flattened_from.factors) == 800
    assert fc1.flattened_from.producer == "max_pool2d"


def test_conv2d_5_10_2_2_parameters() -> None:
    layer = nn.Conv2d(5, 10, 2, 2)
    report = convshape.parameters(layer)
    got = [(p.name, p.shape, p.numel) for p in report.parameters]
    assert got == [(n, tuple(p.size()), p.nelement()) for n, p in layer.named_parameters()]
    assert got == [("weight", (10, 5, 2, 2), 200), ("bias", (10,), 10)]
    assert report.totals.params == 210


def test_stride_2_conv_vs_conv_and_pool_same_shape_different_values() -> None:
    model = load_file(EXAMPLES / "stride_vs_pool.py").StrideVsPool()
    trace = convshape.trace_model(model, "1x1x6x6")
    assert trace.rows[0].output_shapes == ((1, 1, 2, 2), (1, 1, 2, 2))
    tt = torch.randn(1, 1, 6, 6)
    with torch.no_grad():
        res1, res2 = model(tt)
    assert res1.shape == res2.shape == (1, 1, 2, 2)
    assert not torch.allclose(res1, res2)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """The seed's formula: out = floor((in + 2*padding - dilation*(kernel-1) - 1) / stride) + 1."""
    return math.floor((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", [
    (28, 5, 1, 0, 1), (12, 5, 1, 0, 1), (28, 3, 1, 1, 1), (6, 3, 2, 0, 1), (33, 3, 2, 1, 2), (17, 4, 3, 2, 3),
])
def test_conv_output_size_formula(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    layer = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation)
    trace = convshape.trace_model(layer, f"1x1x{size}x{size + 1}")
    out = trace.rows[0].output_shapes[0]
    assert out[2:] == (conv_out(size, kernel, stride, padding, dilation),
                       conv_out(size + 1, kernel, stride, padding, dilation))
    assert out == tuple(layer(torch.randn(1, 1, size, size + 1)).shape)


def test_layout_is_labelled_n_c_h_w() -> None:
    from convshape.diagnose import dims_label

    assert dims_label(2) == "N, C, H, W"
    assert dims_label(1) == "N, C, L"
    assert dims_label(3) == "N, C, D, H, W"
