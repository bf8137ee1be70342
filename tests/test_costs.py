"""MACs/FLOPs counted from executed ops, against FlopCounterMode and analytic formulas; output memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convshape
from convshape.costs import flop_counter_total

from .conftest import ASSETS, EXAMPLES, load_file

zoo = load_file(ASSETS / "zoo.py")


def test_mnist_macs_match_the_formula_and_flop_counter() -> None:
    model = load_file(EXAMPLES / "mnist_net.py").M()
    trace = convshape.trace_model(model, "64x784", costs=True)
    conv = lambda n, c_out, h, w, c_in, k: n * c_out * h * w * c_in * k * k  # noqa: E731
    analytic = conv(64, 20, 24, 24, 1, 5) + conv(64, 50, 8, 8, 20, 5) + 64 * 800 * 500 + 64 * 500 * 10
    assert trace.macs == analytic == 146_752_000
    assert trace.flops == 2 * trace.macs == flop_counter_total(model, torch.randn(64, 784))
    rows = {r.name: r for r in trace.rows}
    assert rows["conv1"].macs == conv(64, 20, 24, 24, 1, 5)
    assert rows["fc2"].macs == 64 * 500 * 10
    assert all(r.macs == 0 for r in trace.function_rows())  # relu, pools, views: no multiply-adds


@pytest.mark.parametrize("factory,inputs", [
    (load_file(EXAMPLES / "resnet_style.py").resnet_small, ["2x3x32x32"]),
    (zoo.TinyTransformer, ["2x10:int64"]),
    (zoo.TransposeNet, ["3x16"]),
    (zoo.Conv3dNet, ["2x1x6x20x20"]),
])
def test_totals_within_one_percent_of_flop_counter(factory, inputs: list[str]) -> None:
    model = factory()
    tensors = [convshape.inputs.make_input(convshape.spec.parse_input(s), torch.device("cpu")) for s in inputs]
    trace = convshape.trace_model(model, *tensors, costs=True)
    want = flop_counter_total(model, *tensors)
    assert want > 0
    assert abs(trace.flops - want) <= 0.01 * want


def test_rollup_children_sum_to_parent() -> None:
    model = load_file(EXAMPLES / "resnet_style.py").resnet_small()
    trace = convshape.trace_model(model, "2x3x32x32", costs=True)
    for row in trace.module_rows():
        children = [r for r in trace.rows if r.parent == row.index]
        if children and row.op in ("Sequential", "BasicBlock"):
            assert row.flops == sum(c.flops for c in children)


def test_grouped_conv_and_linear_on_3d_inputs() -> None:
    conv = nn.Conv2d(8, 16, 3, groups=4)
    trace = convshape.trace_model(conv, "2x8x10x10", costs=True)
    assert trace.macs == 2 * 16 * 8 * 8 * (8 // 4) * 3 * 3
    lin = nn.Linear(32, 64)
    assert convshape.trace_model(lin, "4x7x32", costs=True).macs == 4 * 7 * 32 * 64


def test_lstm_and_sdpa_on_cpu_are_counted_where_flop_counter_sees_zero() -> None:
    lstm = nn.LSTM(8, 16, batch_first=True)
    x = torch.randn(2, 5, 8)
    assert flop_counter_total(lstm, x) == 0  # the fused CPU kernel FlopCounterMode does not price
    trace = convshape.trace_model(lstm, x, costs=True)
    assert trace.macs == 2 * 5 * 4 * 16 * (8 + 16)  # steps x gates x hidden x (in + hidden)

    class Attn(nn.Module):
        def forward(self, q):
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    q = torch.randn(2, 4, 6, 8)
    trace = convshape.trace_model(Attn(), q, costs=True)
    assert trace.macs == 2 * (2 * 4 * 6 * 6 * 8)  # q @ k^T and attn @ v
    with torch.device("meta"):
        meta_total = flop_counter_total(Attn(), torch.empty(2, 4, 6, 8))
    assert trace.flops == meta_total  # on meta FlopCounterMode decomposes and agrees


def test_unknown_cost_is_not_zero() -> None:
    class Spectral(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return self.fc(torch.fft.rfft(x).abs())

    trace = convshape.trace_model(Spectral(), "2x8", costs=True)
    fft = next(r for r in trace.rows if r.name == "rfft")
    assert fft.flops is None and trace.flops is None
    assert any("FLOPs unknown for: aten._fft_r2c" in n for n in trace.notes)
    assert next(r for r in trace.rows if r.name == "fc").macs == 2 * 5 * 5


def test_activation_memory() -> None:
    model = load_file(EXAMPLES / "mnist_net.py").M()
    trace = convshape.trace_model(model, "64x784", costs=True)
    elems = [64 * 20 * 24 * 24] * 2 + [64 * 20 * 12 * 12] + [64 * 50 * 8 * 8] * 2 + [64 * 50 * 4 * 4] \
        + [64 * 500] * 2 + [64 * 10]  # conv1, relu, pool, conv2, relu, pool, fc1, relu, fc2: views add nothing
    assert trace.activation_bytes == 4 * sum(elems)
    assert next(r for r in trace.rows if r.name == "conv1").output_bytes == 4 * 64 * 20 * 24 * 24
    inplace = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True))
    assert convshape.trace_model(inplace, "1x1x5x5").activation_bytes == 4 * 2 * 3 * 3


def test_costs_on_by_default_off_on_request_and_on_meta() -> None:
    model = load_file(EXAMPLES / "mnist_net.py").M()
    assert convshape.trace_model(model, "64x784").macs == 146_752_000
    off = convshape.trace_model(model, "64x784", costs=False)
    assert off.macs is None and all(r.macs is None for r in off.rows)
    with torch.device("meta"):
        meta_model = load_file(EXAMPLES / "mnist_net.py").M()
    assert convshape.trace_model(meta_model, "64x784").macs == 146_752_000


def test_llama_tiny_counts_attention_like_flop_counter_on_meta() -> None:
    """On the CPU FlopCounterMode misses SDPA; on meta it decomposes it and agrees with convshape."""
    llama = load_file(EXAMPLES / "llama.py")
    ours = convshape.trace_model(llama.llama_tiny(), "1x128:int64", costs=True).flops
    with torch.device("meta"):
        model = llama.llama_tiny()
        reference = flop_counter_total(model, torch.zeros(1, 128, dtype=torch.int64))
    assert abs(ours - reference) <= 0.01 * reference


def test_counting_costs_does_not_import_dynamo() -> None:
    """torch wraps a TorchDispatchMode's dispatch so that its first call imports torch._dynamo (about 0.7 s);
    CostCounter opts out. This pins the torch internal it relies on: if torch changes it, this fails."""
    import subprocess
    import sys

    from .conftest import EXAMPLES, ROOT

    code = ("import sys, convshape, torch\n"
            f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
            "import mnist_net\n"
            "trace = convshape.trace_model(mnist_net.M(), '64x784', costs=True)\n"
            "assert trace.macs == 146_752_000, trace.macs\n"
            "print('torch._dynamo' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def _storage_bytes(value: object, seen: dict[int, int]) -> None:
    """Bytes of every distinct storage behind the tensors in ``value``: torch's own answer."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    elif isinstance(value, (tuple, list)):
        for v in value:
            _storage_bytes(v, seen)


@pytest.mark.parametrize("layer,inputs", [
    (nn.MultiheadAttention(16, 2, batch_first=True), ((2, 5, 16),) * 3),
    (nn.LSTM(10, 20, batch_first=True), ((2, 7, 10),)),
    (nn.GRU(10, 20, batch_first=True, num_layers=2), ((3, 4, 10),)),
])
def test_outputs_that_view_storage_made_inside_a_layer_are_counted_once(
        layer: nn.Module, inputs: tuple[tuple[int, ...], ...]) -> None:
    tensors = [torch.randn(*shape) for shape in inputs]
    seen: dict[int, int] = {}
    with torch.no_grad():
        _storage_bytes(layer(*tensors), seen)
    assert convshape.trace_model(layer, *tensors).activation_bytes == sum(seen.values()) > 0


class _FunctionRows(nn.Module):
    """Function calls down each of the recorder's written-out paths: f(x) new and in place, plain tensors and
    values (new, a view, the same tensor back), and the general path (a list of tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        y.relu_()
        z = y + 1
        v = z.view(-1)
        w = v.contiguous()
        s = torch.sigmoid(w)
        flat = x.reshape(-1)
        out = torch.cat([s, flat])
        self.results = [y, y, z, v, w, s, flat, out]
        return out


def test_function_rows_count_new_storage_once_and_link_their_producers() -> None:
    """Each function row's new bytes against torch's storages (a view, an in-place result and a tensor handed
    back add nothing), and each row's input comes from the row before it."""
    model = _FunctionRows()
    x = torch.randn(3, 4)
    with torch.no_grad():
        model(x)
    seen = {x.untyped_storage().data_ptr()}
    new_bytes = []  # torch's answer per call: its result's storage, when no earlier tensor had it
    for t in model.results:
        storage = t.untyped_storage()
        new_bytes.append(0 if storage.data_ptr() in seen else storage.nbytes())
        seen.add(storage.data_ptr())
    trace = convshape.trace_model(model, x)
    rows = [r for r in trace.rows if r.kind == "function"]
    assert [r.name for r in rows] == ["relu", "relu_", "add", "view", "contiguous", "sigmoid", "reshape", "cat"]
    assert [r.alloc_bytes for r in rows] == new_bytes
    assert trace.activation_bytes == sum(new_bytes) > 0
    assert [r.inputs_from[0] for r in rows[1:6]] == [r.index for r in rows[:5]]
    assert rows[7].inputs_from == (rows[5].index, rows[6].index)
