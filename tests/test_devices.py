"""--device auto|meta|cpu: where the pass runs, the fallbacks, and models far larger than memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import convshape
from convshape import run
from convshape.errors import ConvshapeError
from convshape.loader import ModelSource
from convshape.spec import parse_input

from .conftest import ASSETS, EXAMPLES, load_file, torch_module_calls

zoo = load_file(ASSETS / "zoo.py")
unfriendly = load_file(ASSETS / "meta_unfriendly.py")
llama = load_file(EXAMPLES / "llama.py")


def source(factory, label: str = "m") -> ModelSource:
    return ModelSource(factory, {}, label, "test")


def trace(factory, *inputs: str, device: str = "auto", **kw):
    """The run stage's trace, raising TraceError on a failed pass (as the library does)."""
    result, exception = run.trace_source(source(factory), [parse_input(i) for i in inputs],
                                         run.RunOptions(device=device, **kw))
    if result.error is not None:
        raise convshape.TraceError(result.error.summary, result) from exception
    return result


@pytest.mark.parametrize("device", ["auto", "meta", "cpu"])
@pytest.mark.parametrize("case", sorted(zoo.CASES))
def test_rows_match_torch_on_every_device(case: str, device: str) -> None:
    factory, specs = zoo.CASES[case]
    model = factory()
    torch.manual_seed(0)
    truth = torch_module_calls(model, *[convshape.inputs.make_input(parse_input(s), torch.device("cpu"))
                                        for s in specs])
    result = trace(factory, *specs, device=device)
    assert result.device == ("cpu" if device == "auto" else device)  # these models are small
    got = [(r.name, list(r.input_shapes), list(r.output_shapes)) for r in result.module_rows()]
    assert got == [(c["name"], c["in"], c["out"]) for c in truth]
    assert result.totals.params == sum(p.numel() for p in model.parameters())


def test_big_models_go_to_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SMALL_MODEL_BYTES", 0)
    result = trace(load_file(EXAMPLES / "mnist_net.py").M, "64x784")
    assert result.device == "meta" and result.rows[-1].output_shapes == ((64, 10),)


def test_auto_does_not_look_at_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that jumps an hour at every reading: any wall-clock budget would change the answer."""
    import time

    ticks = iter(range(0, 10**9, 3600))
    for name in ("perf_counter", "monotonic", "time"):
        monkeypatch.setattr(time, name, lambda: float(next(ticks)))
    result = trace(load_file(EXAMPLES / "mnist_net.py").M, "64x784")
    assert result.device == "cpu" and result.notes == ()
    assert result.rows[-1].output_shapes == ((64, 10),)


def test_auto_sizes_buffers_too() -> None:
    """A model whose 1 TB lives in a buffer goes to meta, as one whose 1 TB lives in parameters would."""

    class HugeBuffer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", torch.zeros(2**38))
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) + self.table[:2]

    result = trace(HugeBuffer, "3x4")
    assert result.device == "meta" and result.rows[0].output_shapes == ((3, 2),)


@pytest.mark.parametrize("name,inputs,reason", [
    ("DataDependentBranch", ["2x6"], "Tensor.item() cannot be called on meta tensors"),
    ("NoMetaKernel", ["2x7:int64"], "aten::_unique2"),
    ("FixedDevice", ["3x5"], "is not on the expected device meta"),
])
def test_meta_fallback_to_cpu_with_a_note(monkeypatch: pytest.MonkeyPatch, name: str, inputs: list[str],
                                          reason: str) -> None:
    monkeypatch.setattr(run, "SMALL_MODEL_BYTES", 0)  # treat as big: meta first
    factory = getattr(unfriendly, name)
    result = trace(factory, *inputs)
    assert result.device == "cpu"
    (note,) = result.notes
    assert note.startswith("meta could not run this model (") and note.endswith("; traced on cpu instead")
    assert reason in note and "meta_unfriendly.py:" in note
    model = factory()
    truth = torch_module_calls(model, *[convshape.inputs.make_input(parse_input(s), torch.device("cpu"))
                                        for s in inputs])
    assert [(r.name, list(r.output_shapes)) for r in result.module_rows()] == [
        (c["name"], c["out"]) for c in truth]


def test_fallback_refuses_a_model_that_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SMALL_MODEL_BYTES", 0)
    monkeypatch.setattr(run, "available_memory", lambda: 100)
    with pytest.raises(ConvshapeError) as info:
        trace(unfriendly.DataDependentBranch, "2x6")
    text = str(info.value)
    assert text.startswith("meta cannot run this model (RuntimeError: Tensor.item() cannot be called")
    n = sum(p.numel() for p in unfriendly.DataDependentBranch().parameters())
    assert f"would allocate {4 * n} B of parameters and buffers ({n} parameters) and {2 * 6 * 4} B of inputs" in text
    assert "but only 100 B of memory is available" in text


def test_diagnosed_mismatch_on_meta_is_reported_without_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SMALL_MODEL_BYTES", 0)
    failing = load_file(ASSETS / "failing.py")
    with pytest.raises(convshape.TraceError) as info:
        trace(failing.WrongChannels, "2x1x28x28")
    assert info.value.trace.device == "meta" and not info.value.trace.notes
    assert info.value.trace.error.summary.startswith("conv2 (Conv2d) expects 10 input channels, received 20")


def analytic_llama_params(cfg) -> int:
    head_dim = cfg.dim // cfg.n_heads
    attention = 2 * cfg.dim * cfg.n_heads * head_dim + 2 * cfg.dim * cfg.n_kv_heads * head_dim
    block = attention + 3 * cfg.dim * cfg.ffn_dim + 2 * cfg.dim
    embed = cfg.vocab_size * cfg.dim
    return embed + cfg.n_layers * block + cfg.dim + (0 if cfg.tie_embeddings else embed)


def test_llama_70b_params_equal_the_analytic_count() -> None:
    model = source(llama.llama_70b).build("meta")
    report = convshape.parameters(model)
    assert report.totals.params == analytic_llama_params(llama.LLAMA_70B) == 68_976_648_192
    assert report.totals.bytes == 4 * report.totals.params
    assert all(p.device.type == "meta" for p in model.parameters())


def test_llama_70b_trace_allocates_no_parameter_storage() -> None:
    model = source(llama.llama_70b).build("meta")
    result = convshape.trace_model(model, "1x2048:int64")
    assert result.device == "meta"
    assert all(p.device.type == "meta" for p in model.parameters())
    assert result.rows[0].output_shapes == ((1, 2048, 32000),)
    attn = next(r for r in result.rows if r.name == "layers.0.attention.wk")
    assert attn.output_shapes == ((1, 2048, 1024),)  # 8 KV heads x 128
    assert result.totals.params == analytic_llama_params(llama.LLAMA_70B)


def test_llama_tiny_same_rows_on_cpu_and_meta() -> None:
    cpu = trace(llama.llama_tiny, "2x9:int64", device="cpu")
    meta = trace(llama.llama_tiny, "2x9:int64", device="meta")
    assert [(r.name, r.op, r.output_shapes) for r in cpu.rows] == [(r.name, r.op, r.output_shapes) for r in meta.rows]
    tied = convshape.parameters(llama.llama_tiny())
    assert tied.totals.params == analytic_llama_params(llama.TINY)


def test_cli_70b_runs_in_little_memory() -> None:
    """The whole command, in its own process: peak RSS stays far below the 276 GB of weights."""
    code = (
        "import resource, sys; from convshape.cli import app\n"
        "sys.argv = ['convshape', 'trace', sys.argv[1], '--input', '1x2048:int64', '--format', 'json']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    code = e.code\n"
        # VmHWM: this process's own peak; ru_maxrss would keep the peak of the test process it was forked from
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "print(hwm[0].split()[1] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, f"{EXAMPLES / 'llama.py'}:llama_70b"],
                          capture_output=True, text=True, timeout=120)
    data = json.loads(proc.stdout)
    assert data["device"] == "meta" and data["totals"]["params"] == 68_976_648_192
    assert int(proc.stderr.strip().splitlines()[-1]) < 1_000_000  # KB: under 1 GB


def test_auto_on_a_built_model_keeps_its_device() -> None:
    cpu_model = nn.Linear(3, 2)
    assert convshape.trace_model(cpu_model, "4x3", device="auto").device == "cpu"


def test_a_model_without_parameters_follows_its_inputs_device() -> None:
    class Stateless(nn.Module):
        def forward(self, x):
            return torch.relu(x).flatten(1)

    result = convshape.trace_model(Stateless(), torch.empty(2, 3, 4, device="meta"))
    assert result.device == "meta" and result.rows[-1].output_shapes == ((2, 12),)
