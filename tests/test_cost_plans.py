"""Pricing a call from its shapes (costs.plan) must give, row by row, what counting every aten op it runs gives.

The reference runs every intercepted call under the dispatch counter (the way every call was priced before the
shortcuts), with the mode kept on inside torch's own leaf layers (which convshape/leaves.py prices); torch's
own FlopCounterMode totals pin both to torch. Models: the ground-truth zoo, the examples, Hugging Face GPT-2,
LLaMA, BERT and T5 built from small configs, and a model that makes every priced call in each of its shapes
(vector operands, broadcast batches, unbatched convs, masks, grouped heads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convshape
from convshape import costs
from convshape.costs import flop_counter_total
from convshape.inputs import make_input
from convshape.spec import parse_input

from .conftest import ASSETS, EXAMPLES, load_file, priced_and_counted

zoo = load_file(ASSETS / "zoo.py")


class EveryPricedCall(nn.Module):
    """Each call costs.plan prices from shapes, in the shapes where a shortcut could go wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 5))
        self.k1 = nn.Parameter(torch.randn(4, 3, 3))
        self.k2 = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.kt = nn.Parameter(torch.randn(3, 2, 3, 3))
        self.k3 = nn.Parameter(torch.randn(2, 3, 2, 2, 2))

    def forward(self, x: torch.Tensor) -> Any:  # x: [2, 3, 5]
        v = x[0, 0]  # [5]
        outs = [
            F.linear(x, self.w), F.linear(v, self.w), F.linear(input=x[0], weight=self.w, bias=None),
            torch.matmul(x, x.transpose(-1, -2)), x @ self.w.t(), self.w @ v, v @ v, v @ x.transpose(-1, -2),
            x[0] @ x.transpose(-1, -2), x.unsqueeze(0) @ x.transpose(-1, -2).unsqueeze(1),
            torch.randn(5, 6).__rmatmul__(x), x.matmul(v), torch.mm(x[0], x[0].t()), x[0].mm(x[1].t()),
            torch.bmm(x, x.transpose(1, 2)), x.bmm(x.transpose(1, 2)),
            torch.addmm(torch.zeros(3), x[0], x[1].t()), x[0].addmm(x[0], torch.randn(5, 5)),
            torch.baddbmm(torch.zeros(2, 3, 3), x, x.transpose(1, 2)), torch.addmv(torch.zeros(3), x[0], v),
            F.conv1d(x, self.k1, padding=1), F.conv1d(x[0], self.k1), F.conv1d(x, self.k1, stride=2, dilation=2),
            F.conv1d(x, self.k1, padding="same"),
            F.conv2d(x.unsqueeze(0).expand(2, 2, 3, 5).reshape(2, 3, 2, 5), self.k2, padding=(1, 1)),
            F.conv2d(x.reshape(3, 2, 5), self.k2, padding="same"),
            F.conv_transpose2d(x.reshape(2, 3, 1, 5), self.kt, stride=2, output_padding=1),
            F.conv_transpose2d(x.reshape(3, 1, 10), self.kt, stride=(1, 2)),
            F.conv3d(x.reshape(1, 3, 2, 1, 5).expand(1, 3, 2, 2, 5), self.k3, padding=1),
            F.conv3d(x.reshape(3, 2, 1, 5), self.k3, padding=1, groups=1),
        ]
        q = x.reshape(1, 2, 3, 5)
        outs += [
            F.scaled_dot_product_attention(q, q, q), F.scaled_dot_product_attention(q, q, q, is_causal=True),
            F.scaled_dot_product_attention(q, q[:, :, :2], q[:, :, :2], attn_mask=torch.ones(3, 2, dtype=torch.bool)),
            F.scaled_dot_product_attention(q[0], q[0], q[0]),  # 3-D
            F.scaled_dot_product_attention(q.expand(2, 2, 3, 5), q, q),  # broadcast batch
            F.scaled_dot_product_attention(q.repeat(1, 2, 1, 1), q, q, enable_gqa=True),  # grouped heads
            torch.einsum("bij,bkj->bik", x, x), torch.outer(v, v), torch.norm(x),
            F.bilinear(v, v, torch.randn(2, 5, 5)),
        ]
        return outs


def _hf() -> list[tuple[str, Callable[[], nn.Module], dict[str, Any]]]:
    transformers = pytest.importorskip("transformers")
    ids = torch.zeros(1, 8, dtype=torch.long)
    small = dict(vocab_size=100)
    return [
        ("hf-gpt2", lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4,
                                                                                    **small)), {"input_ids": ids}),
        ("hf-llama", lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
            num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            **small)), {"input_ids": ids}),
        ("hf-bert", lambda: transformers.BertModel(transformers.BertConfig(
            num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4, **small)),
         {"input_ids": ids}),
        ("hf-t5", lambda: transformers.T5Model(transformers.T5Config(
            num_layers=2, d_model=32, d_ff=64, num_heads=4, d_kv=8, **small)),
         {"input_ids": ids, "decoder_input_ids": ids}),
    ]


def _cases() -> list[Any]:
    cases: list[Any] = [pytest.param(f, specs, {}, id=name) for name, (f, specs) in zoo.CASES.items()]
    llama = load_file(EXAMPLES / "llama.py")
    cases += [
        pytest.param(load_file(EXAMPLES / "mnist_net.py").M, ["4x784"], {}, id="mnist"),
        pytest.param(load_file(EXAMPLES / "resnet_style.py").resnet_small, ["2x3x32x32"], {}, id="resnet-style"),
        pytest.param(load_file(EXAMPLES / "lstm_tagger.py").LSTMTagger, ["2x7:int64"], {}, id="lstm-tagger"),
        pytest.param(llama.llama_tiny, ["1x16:int64"], {}, id="llama-tiny"),
        pytest.param(load_file(EXAMPLES / "gpt2_small.py").GPT, ["1x16:int64"], {}, id="gpt2-example"),
        pytest.param(EveryPricedCall, ["2x3x5"], {}, id="every-priced-call"),
    ]
    return cases


def _same_rows(ours: convshape.Trace, reference: convshape.Trace) -> int:
    assert ours.error is None and reference.error is None
    assert len(ours.rows) == len(reference.rows)
    priced = 0
    for a, b in zip(ours.rows, reference.rows, strict=True):
        assert (a.name, a.op) == (b.name, b.op)
        assert a.flops == b.flops, f"{a.name} ({a.op}) at {a.source}: {a.flops} priced, {b.flops} counted"
        priced += bool(a.flops)
    assert ours.notes == reference.notes  # the same unknown ops, named at the same rows
    return priced


@pytest.mark.parametrize("factory,specs,kwargs", _cases())
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_priced_calls_equal_counted_ops_row_by_row(factory: Callable[[], nn.Module], specs: list[str],
                                                    kwargs: dict[str, Any], device: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = factory().eval()
    tensors = [make_input(parse_input(s), torch.device("cpu")) for s in specs]
    ours, reference = priced_and_counted(model, tensors, kwargs, device, monkeypatch)
    _same_rows(ours, reference)
    if device == "cpu" and factory is not EveryPricedCall:
        assert ours.flops is not None and ours.flops > 0


@pytest.mark.parametrize("name,factory,kwargs", _hf(), ids=lambda v: v if isinstance(v, str) else "")
def test_hugging_face_models_priced_like_counted(name: str, factory: Callable[[], nn.Module], kwargs: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = factory().eval()
    ours, reference = priced_and_counted(model, [], kwargs, "cpu", monkeypatch)
    assert _same_rows(ours, reference) > 0
    # torch's own count: on meta FlopCounterMode decomposes attention into the bmm ops it prices
    with torch.device("meta"):
        meta_model = factory().eval()
    meta_kwargs = {k: v.to("meta") for k, v in kwargs.items()}
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta_model(**meta_kwargs)
    assert convshape.trace_model(meta_model, **meta_kwargs).flops == counter.get_total_flops()


def test_the_shortcuts_are_taken() -> None:
    """The point of pricing from shapes: the common calls never run under the dispatch counter."""
    x, w = torch.randn(2, 3), torch.randn(4, 3)
    assert costs.plan(F.relu, (x,), {}) is None
    assert costs.plan(torch.Tensor.view, (x, 6), {}) is None
    assert costs.plan(torch.Tensor.shape.__get__, (x,), {}) is None
    assert callable(costs.plan(F.linear, (x, w), {}))
    assert costs.plan(F.linear, (x[0], w), {}) is costs.DISPATCH  # a vector input runs as mv
    assert costs.plan(torch.einsum, ("ij->i", x), {}) is costs.DISPATCH
    assert flop_counter_total(nn.Linear(3, 4), x) == costs.plan(F.linear, (x, w), {})((x, w), {}, x @ w.t())


def test_sdpa_formula_is_torchs() -> None:
    for q, k, v in (((2, 4, 6, 8), (2, 4, 6, 8), (2, 4, 6, 8)), ((1, 3, 5, 16), (1, 3, 7, 16), (1, 3, 7, 4))):
        assert costs.sdpa_flops(q, k, v) == torch.utils.flop_counter.sdpa_flop_count(q, k, v)


def test_pricing_leaves_no_garbage_for_the_collector() -> None:
    """Every priced call used to leave torch's wrapped formulas' reference cycles behind (7 objects each)."""
    import gc

    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(50)])
    convshape.trace_model(model, "1x4")
    gc.collect()
    gc.disable()
    try:
        convshape.trace_model(model, "1x4")
        assert gc.collect() == 0
    finally:
        gc.enable()
