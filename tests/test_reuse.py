"""Identical blocks replayed on meta (convshape/reuse.py): the same trace as running every block, or no reuse.

Truth: the same model traced with ``reuse_blocks=False``, every block run under the hooks (whose rows the
rest of the suite checks against torch), must give the same rows, field by field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convshape
from convshape import tracer
from convshape.loader import skipped_init

from .conftest import EXAMPLES, load_file

llama = load_file(EXAMPLES / "llama.py")
gpt = load_file(EXAMPLES / "gpt2_small.py")
resnet50 = load_file(EXAMPLES / "resnet50.py")
resnet_style = load_file(EXAMPLES / "resnet_style.py")


class Mlp(nn.Module):
    def __init__(self, dim: int, p: float = 0.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.p = p

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, scale: float = 1.0) -> Any:
        h = self.down(F.gelu(self.up(self.norm(x))))
        if mask is not None:
            h = h.masked_fill(mask, 0.0)
        return x + scale * F.dropout(h, self.p, self.training), None


class Stack(nn.Module):
    """Blocks called with keywords, a shared mask, a plain value, and a tuple out."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[..., :1] > 0
        for block in self.blocks:
            x, _ = block(x, mask=mask, scale=0.5)
        return x


class Counting(nn.Module):
    """Its forward changes its own state: the next one is not the same block any more."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x).repeat(1, 1) if self.calls == 1 else self.fc(x)


class Resizing(nn.Module):
    """Resizes its input in place: the caller's tensor changes shape under it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        x.unsqueeze_(0)
        return y


class Chain(nn.Module):
    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def _hooked_mlps() -> nn.Module:
    model = Stack([Mlp(8) for _ in range(3)])
    model.blocks[1].up.register_forward_hook(lambda m, a, o: o * 2)
    return model


MODELS: list[tuple[str, Callable[[], nn.Module], list[Any]]] = [
    ("llama", lambda: llama.llama_tiny(n_layers=5), ["1x16:int64"]),
    ("gpt2", gpt.GPT, ["1x16:int64"]),
    ("resnet50", resnet50.ResNet50, ["1x3x64x64"]),
    ("resnet-style", resnet_style.resnet_small, ["2x3x32x32"]),
    ("kwargs-and-tuples", lambda: Stack([Mlp(8) for _ in range(4)]), ["2x5x8"]),
    ("one-block-differs", lambda: Stack([Mlp(8), Mlp(8), Mlp(8, eps=1e-3), Mlp(8)]), ["2x5x8"]),
    ("a-hook-on-one", _hooked_mlps, ["2x5x8"]),
    ("counting", lambda: Chain([Counting() for _ in range(3)]), ["2x8"]),
]


def _traces(make: Callable[[], nn.Module], inputs: list[Any]) -> tuple[convshape.Trace, convshape.Trace]:
    traces = []
    for reuse in (True, False):  # each on a model of its own: a forward may change its model's state
        with torch.device("meta"), skipped_init():
            model = make().eval()
        traces.append(convshape.trace_model(model, *inputs, reuse_blocks=reuse))
        assert all("_compiled_call_impl" not in vars(m) for m in model.modules())  # the model is as it was
    return traces[0], traces[1]


def _rows(trace: convshape.Trace) -> dict[str, Any]:
    data = trace.to_dict()
    data.pop("notes")
    return data


@pytest.mark.parametrize("name,make,inputs", MODELS, ids=[m[0] for m in MODELS])
def test_replayed_blocks_give_the_rows_of_running_them(name: str, make: Callable[[], nn.Module],
                                                         inputs: list[Any]) -> None:
    reused, plain = _traces(make, inputs)
    assert _rows(reused) == _rows(plain)
    replayed = [n.split(": ", 1)[1] for n in reused.notes if n.startswith("replayed from the rows of")]
    assert not any("replayed" in n for n in plain.notes)
    expected = {"llama": "layers.1 ... layers.4 (4 blocks) from layers.0",
                "gpt2": "blocks.1 ... blocks.11 (11 blocks) from blocks.0",
                "resnet50": "layer1.2 from layer1.1; layer2.2 ... layer2.3 (2 blocks) from layer2.1; "
                            "layer3.2 ... layer3.5 (4 blocks) from layer3.1; layer4.2 from layer4.1",
                # blocks.0 reads the model's input, which no row made: blocks.1 runs and stands for the rest
                "kwargs-and-tuples": "blocks.2 ... blocks.3 (2 blocks) from blocks.1",
                "one-block-differs": "blocks.3 from blocks.1"}
    if name in expected:
        assert replayed == [expected[name]]
    if name in ("a-hook-on-one", "counting"):
        assert not replayed or "blocks.1 " not in replayed[0]


def test_blocks_are_really_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    forward = llama.Block.forward

    def counting(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        ran.append(id(self))
        return forward(self, x)

    monkeypatch.setattr(llama.Block, "forward", counting)
    _traces(lambda: llama.llama_tiny(n_layers=6), ["1x16:int64"])
    assert len(ran) == 1 + 6  # the first block with reuse, then all six without


class Fan(nn.Module):
    """Every block reads the same tensor; each resizes it in place."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Resizing() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 1
        return torch.cat([block(x).flatten() for block in self.blocks])


def test_a_block_that_resizes_its_input_is_run() -> None:
    reused, plain = _traces(Fan, ["2x8"])
    assert _rows(reused) == _rows(plain)
    assert not any("replayed" in n for n in reused.notes)


class Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.view(16))  # a view: only a contiguous input has one


class Strided(nn.Module):
    """The second block gets a tensor of the same shape and other strides: it fails where the first ran."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Flat(), Flat()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 1
        return self.blocks[0](x) + self.blocks[1](x.t())


def test_strides_are_part_of_the_same_inputs() -> None:
    for reuse in (True, False):
        with torch.device("meta"):
            model = Strided()
        with pytest.raises(convshape.TraceError) as failed:
            convshape.trace_model(model, "4x4", reuse_blocks=reuse)
        assert failed.value.trace.error.module == "blocks.1"


def test_no_reuse_on_the_cpu_or_with_other_hooks() -> None:
    model = llama.llama_tiny(n_layers=3)
    assert not any("replayed" in n for n in convshape.trace_model(model, "1x8:int64").notes)
    handle = nn.modules.module.register_module_forward_pre_hook(lambda m, a: None)
    try:
        with torch.device("meta"):
            meta = llama.llama_tiny(n_layers=3)
        assert not any("replayed" in n for n in convshape.trace_model(meta, "1x8:int64").notes)
    finally:
        handle.remove()


class BrokenHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = llama.llama_tiny(n_layers=4)
        self.head = nn.Linear(100, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_a_failure_after_replayed_blocks_reads_the_same() -> None:
    with torch.device("meta"):
        model = BrokenHead()
    errors = []
    for reuse in (True, False):
        with pytest.raises(convshape.TraceError) as failed:
            convshape.trace_model(model, "1x16:int64", reuse_blocks=reuse)
        errors.append(failed.value.trace)
    assert errors[0].error == errors[1].error
    assert _rows(errors[0]) == _rows(errors[1])
    assert all("_compiled_call_impl" not in vars(m) for m in model.modules())


def test_the_cli_says_it_and_can_be_told_not_to(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from convshape.cli import app

    runner = CliRunner()
    ref = str(EXAMPLES / "llama.py") + ":llama_7b"
    shown = runner.invoke(app, ["trace", ref, "--input", "1x32:int64", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert "layers.1 ... layers.31 (31 blocks) from layers.0" in shown.output
    plain = runner.invoke(app, ["trace", ref, "--input", "1x32:int64", "--format", "json", "--no-reuse"])
    assert plain.exit_code == 0 and "replayed" not in plain.output


def test_the_recorder_keeps_no_replayer_after_an_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BaseException in the middle of the pass: the replayers come off all the same."""
    calls: list[int] = []
    original = tracer.Recorder._replayed

    def interrupted(self: Any, *args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(tracer.Recorder, "_replayed", interrupted)
    with torch.device("meta"):
        model = llama.llama_tiny(n_layers=4)
    with pytest.raises(KeyboardInterrupt):
        convshape.trace_model(model, "1x16:int64")
    assert all("_compiled_call_impl" not in vars(m) for m in model.modules())
    assert torch._C._len_torch_function_stack() == 0


class Attending(nn.Module):
    """Returns nn.MultiheadAttention's output: a view of storage made inside a torch layer, not by a row."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


def test_a_block_whose_output_is_a_view_is_run() -> None:
    """A new tensor would not share the view's storage or its offset: such blocks run, the rows as before."""
    make = lambda: nn.Sequential(nn.Linear(8, 8), *[Attending() for _ in range(3)])  # noqa: E731
    reused, plain = _traces(make, ["2x5x8"])
    assert _rows(reused) == _rows(plain)
    assert not any("replayed" in n for n in reused.notes)
