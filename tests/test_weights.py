"""A model against a checkpoint (--weights), and saved programs (.pt2, TorchScript): checked against torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from convshape import compare_weights, trace_program
from convshape.checkpoint import UnsafePickleError
from convshape.cli import app
from convshape.fc import fc_report

from .conftest import EXAMPLES, load_file, torch_module_calls

runner = CliRunner()
MNIST, BROKEN = EXAMPLES / "mnist_net.py", EXAMPLES / "broken_fc.py"


def mnist() -> nn.Module:
    torch.manual_seed(0)
    return load_file(MNIST).M()


def load_errors(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[set[str], set[str], set[str]]:
    """torch's own verdict: missing and unexpected keys, and the keys whose shapes differ."""
    mismatched = {k for k, v in state.items() if k in model.state_dict() and model.state_dict()[k].shape != v.shape}
    result = model.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    return set(result.missing_keys) - mismatched, set(result.unexpected_keys), mismatched


def check_against_torch(model: nn.Module, path: Path, state: dict[str, torch.Tensor]) -> Any:
    report = compare_weights(model, path)
    if report.prefix is not None:  # the keys are compared after the rename it prints
        scope = {"state_dict": dict(state)}
        exec(report.prefix.code, scope)
        state = scope["state_dict"]
    missing, unexpected, mismatched = load_errors(model, state)
    assert set(report.missing) == missing
    assert set(report.unexpected) == unexpected
    assert {m.key for m in report.mismatches} == mismatched
    assert report.ok == (not (missing or unexpected or mismatched or report.prefix))
    return report


def test_matching_checkpoint_fits(tmp_path: Path) -> None:
    state = mnist().state_dict()
    path = tmp_path / "m.pt"
    torch.save(state, path)
    report = check_against_torch(mnist(), path, state)
    assert report.ok and report.matched == len(state) and report.prefix is None
    result = runner.invoke(app, ["params", str(MNIST), "--weights", str(path)])
    assert result.exit_code == 0, result.output
    assert "all 8 keys match" in result.stdout


def test_broken_fc_against_mnist_weights(tmp_path: Path) -> None:
    state = mnist().state_dict()
    path = tmp_path / "mnist.pt"
    torch.save({"model": state, "epoch": 3}, path)
    broken = load_file(BROKEN).BrokenNet()
    report = check_against_torch(broken, path, state)
    assert report.state_dict == "model"
    (m,) = report.mismatches
    assert (m.key, m.model_shape, m.checkpoint_shape) == ("fc1.weight", (500, 320), (500, 800))
    assert m.current == "nn.Linear(320, 500)" and m.fix == "nn.Linear(800, 500)"
    broken.fc1 = eval(m.fix, {"nn": nn})  # the fix, applied: now torch loads the checkpoint strictly
    broken.load_state_dict(state)


def test_trace_weights_says_where_the_shape_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "mnist.pt"
    torch.save(mnist().state_dict(), path)
    result = runner.invoke(app, ["trace", str(BROKEN), "-i", "64x784", "--weights", str(path)])
    assert result.exit_code == 1
    assert "fix: fc1 = nn.Linear(800, 500)" in result.stdout
    assert "the forward pass gives fc1 [64, 800]: 800 = 50 x 4 x 4 from max_pool2d" in result.stdout
    data = json.loads(runner.invoke(app, ["trace", str(BROKEN), "-i", "64x784", "--weights", str(path),
                                          "-f", "json"]).stdout)
    assert data["schema"] == "convshape.trace/1" and data["weights"]["schema"] == "convshape.weights/1"
    (m,) = data["weights"]["mismatches"]
    truth = next(c for c in torch_module_calls(mnist(), torch.randn(64, 784)) if c["name"] == "fc1")
    assert tuple(m["receives"]) == truth["in"][0] and m["fits_forward"] is True
    fc = runner.invoke(app, ["fc-size", str(BROKEN), "-i", "64x784", "--weights", str(path), "-f", "json"])
    assert fc.exit_code == 1 and json.loads(fc.stdout)["weights"]["fixes"] == {"fc1": "nn.Linear(800, 500)"}


def test_a_different_backbone_does_not_fit_the_forward(tmp_path: Path) -> None:
    class Small(nn.Module):  # conv2 makes 20 channels: fc1 receives 320, the checkpoint wants 800
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 20, 5)
            self.fc1 = nn.Linear(320, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc1(torch.nn.functional.max_pool2d(self.conv(x), 5).flatten(1))

    torch.save({"conv.weight": torch.zeros(20, 1, 5, 5), "conv.bias": torch.zeros(20),
                "fc1.weight": torch.zeros(10, 800), "fc1.bias": torch.zeros(10)}, tmp_path / "w.pt")
    from convshape import trace_model
    from convshape.weights import with_trace

    report = with_trace(compare_weights(Small(), tmp_path / "w.pt"), trace_model(Small(), "1x1x24x24"))
    (m,) = report.mismatches
    assert m.fix == "nn.Linear(800, 10)" and m.receives == (1, 320) and m.fits_forward is False


def test_conv_fix_in_the_models_terms(tmp_path: Path) -> None:
    saved = nn.Sequential(nn.Conv2d(3, 64, kernel_size=7), nn.BatchNorm2d(64), nn.Embedding(100, 16))
    torch.save(saved.state_dict(), tmp_path / "conv.pt")
    model = nn.Sequential(nn.Conv2d(3, 64, kernel_size=3), nn.BatchNorm2d(32), nn.Embedding(90, 16))
    report = check_against_torch(model, tmp_path / "conv.pt", saved.state_dict())
    assert report.fixes == {"0": "nn.Conv2d(3, 64, kernel_size=7)", "1": "nn.BatchNorm2d(64)",
                            "2": "nn.Embedding(100, 16)"}
    for name, fix in report.fixes.items():
        setattr(model, name, eval(fix, {"nn": nn}))
    model.load_state_dict(saved.state_dict())  # every fix makes torch accept the checkpoint


def test_dataparallel_prefix(tmp_path: Path) -> None:
    state = nn.DataParallel(mnist()).state_dict()
    assert all(k.startswith("module.") for k in state)
    torch.save(state, tmp_path / "dp.pt")
    report = check_against_torch(mnist(), tmp_path / "dp.pt", state)
    p = report.prefix
    assert p is not None and (p.action, p.prefix, p.matched_before, p.matched_after) == ("strip", "module.", 0, 8)
    assert not report.missing and not report.unexpected and not report.ok
    scope = {"state_dict": dict(state)}
    exec(p.code, scope)  # the rename it prints makes torch load the checkpoint
    mnist().load_state_dict(scope["state_dict"])
    result = runner.invoke(app, ["params", str(MNIST), "--weights", str(tmp_path / "dp.pt")])
    assert result.exit_code == 1 and "strip 'module.'" in result.stdout


def test_torch_compile_prefix_and_the_reverse(tmp_path: Path) -> None:
    state = torch.compile(mnist()).state_dict()  # wrapping compiles nothing until a forward pass
    assert all(k.startswith("_orig_mod.") for k in state)
    torch.save(state, tmp_path / "compiled.pt")
    p = compare_weights(mnist(), tmp_path / "compiled.pt").prefix
    assert p is not None and (p.action, p.prefix) == ("strip", "_orig_mod.") and "torch.compile" in p.cause

    class Wrapper(nn.Module):  # a Lightning-style module: the network lives at .model
        def __init__(self) -> None:
            super().__init__()
            self.model = mnist()

    torch.save(mnist().state_dict(), tmp_path / "plain.pt")
    p = compare_weights(Wrapper(), tmp_path / "plain.pt").prefix
    assert p is not None and (p.action, p.prefix, p.matched_after) == ("add", "model.", 8)
    scope = {"state_dict": mnist().state_dict()}
    exec(p.code, scope)
    Wrapper().load_state_dict(scope["state_dict"])


def test_state_dict_with_plain_values_beside_it(tmp_path: Path) -> None:
    torch.save({**mnist().state_dict(), "epoch": 3, "arch": "M"}, tmp_path / "flat.pt")
    report = compare_weights(mnist(), tmp_path / "flat.pt")
    assert report.ok and report.state_dict == "" and report.checkpoint_keys == 8


def test_missing_and_unexpected(tmp_path: Path) -> None:
    state = mnist().state_dict()
    del state["fc2.bias"]
    state["head.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "partial.safetensors.pt")
    report = check_against_torch(mnist(), tmp_path / "partial.safetensors.pt", state)
    assert report.missing == ("fc2.bias",) and report.unexpected == ("head.weight",)


def test_safetensors_weights(tmp_path: Path) -> None:
    from .test_checkpoint import write_safetensors

    write_safetensors(tmp_path / "m.safetensors", mnist().state_dict())
    assert compare_weights(mnist(), tmp_path / "m.safetensors").ok
    bn = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    write_safetensors(tmp_path / "bn.safetensors", {k: v for k, v in bn.state_dict().items()
                                                    if k != "1.num_batches_tracked"})
    report = compare_weights(bn, tmp_path / "bn.safetensors")
    assert report.missing == ("1.num_batches_tracked",)  # a buffer is part of the state dict torch loads


# ---- saved programs ------------------------------------------------------------------------------


def test_exported_program_from_graph_metadata(tmp_path: Path) -> None:
    model = mnist().eval()
    x = torch.randn(64, 784)
    path = tmp_path / "mnist.pt2"
    torch.export.save(torch.export.export(model, (x,)), path)
    trace = trace_program(str(path))
    truth = torch_module_calls(model, x)
    rows = {r.name: r for r in trace.module_rows()}
    for call in truth:
        row = rows[call["name"]]
        assert row.op == call["type"]
        assert list(row.input_shapes) == call["in"] and list(row.output_shapes) == call["out"], call
    assert trace.totals.params == sum(p.numel() for p in model.parameters())
    assert [f.name for f in trace.function_rows()][:4] == ["view", "conv2d", "relu", "max_pool2d"]
    assert any("no forward pass ran" in n for n in trace.notes)
    fc1 = next(c for c in fc_report(trace).layers if c.name == "fc1")
    assert fc1.ok and fc1.flattened_from is not None and fc1.flattened_from.factors == (50, 4, 4)
    result = runner.invoke(app, ["trace", str(path)])
    assert result.exit_code == 0 and "[64, 50, 4, 4]" in result.stdout
    fc = runner.invoke(app, ["fc-size", str(path), "-f", "json"])
    assert fc.exit_code == 0 and [c["required"] for c in json.loads(fc.stdout)["layers"]] == [800, 500]


def test_exported_program_with_a_dynamic_batch(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU()).eval()
    batch = torch.export.Dim("batch", min=2, max=512)
    program = torch.export.export(model, (torch.randn(3, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "dyn.pt2")
    trace = trace_program(str(tmp_path / "dyn.pt2"))
    assert trace.inputs[0].shape == (-1, 8)
    assert any("dynamic" in n and "[2, 512]" in n for n in trace.notes), trace.notes


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_module_tree(tmp_path: Path) -> None:
    model = mnist().eval()
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(model), path)
    trace = trace_program(str(path))
    assert [r.name for r in trace.rows] == [n for n, _ in model.named_modules()]
    assert trace.totals.params == sum(p.numel() for p in model.parameters())
    assert not trace.rows[0].output_shapes and any("hooks do not run" in n for n in trace.notes)
    with_input = runner.invoke(app, ["trace", str(path), "-i", "64x784", "-f", "json"])
    assert with_input.exit_code == 0
    assert json.loads(with_input.stdout)["rows"][0]["output_shapes"] == [list(model(torch.randn(64, 784)).shape)]
    fc = runner.invoke(app, ["fc-size", str(path), "-i", "64x784"])
    assert fc.exit_code == 2 and "TorchScript" in fc.output and ".pt2" in fc.output


def test_state_dict_is_not_a_program(tmp_path: Path) -> None:
    torch.save(mnist().state_dict(), tmp_path / "m.pt")
    result = runner.invoke(app, ["trace", str(tmp_path / "m.pt")])
    assert result.exit_code == 2 and "not a saved program" in result.output and "--weights" in result.output


@pytest.mark.parametrize("command", ["params", "trace", "fc-size"])
def test_weights_file_errors(command: str, tmp_path: Path) -> None:
    args = [command, str(MNIST), "--weights", str(tmp_path / "nope.pt")] + (["-i", "1x784"] if command != "params"
                                                                             else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "checkpoint not found" in result.output


@pytest.mark.parametrize(("file", "factory", "example"), [
    ("resnet_style.py", "resnet_small", torch.randn(2, 3, 32, 32)),
    ("llama.py", "llama_tiny", torch.zeros(2, 16, dtype=torch.int64)),  # tied embedding, SDPA, rotary
])
def test_exported_models_match_forward_hooks(tmp_path: Path, file: str, factory: str, example: torch.Tensor) -> None:
    model = getattr(load_file(EXAMPLES / file), factory)().eval()
    torch.export.save(torch.export.export(model, (example,)), tmp_path / "m.pt2")
    trace = trace_program(str(tmp_path / "m.pt2"))
    got = [(r.name, r.op, list(r.input_shapes), list(r.output_shapes)) for r in trace.module_rows()]
    assert got == [(c["name"], c["type"], c["in"], c["out"]) for c in torch_module_calls(model, example)]
    assert trace.totals.params == trace.rows[0].params == sum(p.numel() for p in model.parameters())


def test_programs_and_damaged_archives_given_to_params(tmp_path: Path) -> None:
    model = mnist().eval()
    torch.export.save(torch.export.export(model, (torch.randn(1, 784),)), tmp_path / "m.pt2")
    result = runner.invoke(app, ["params", str(tmp_path / "m.pt2")])
    assert result.exit_code == 2 and "torch.export program" in result.output and "convshape trace" in result.output
    torch.save(model.state_dict(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])  # the zip's directory is at the end: gone
    result = runner.invoke(app, ["params", str(tmp_path / "cut.pt")])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_trusted_whole_model_as_weights(tmp_path: Path) -> None:
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), tmp_path / "whole.pt")
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5))
    with pytest.raises(UnsafePickleError, match="--trust-pickle"):
        compare_weights(model, tmp_path / "whole.pt")
    report = compare_weights(model, tmp_path / "whole.pt", trust_pickle=True)
    assert report.fixes == {"2": "nn.Linear(3, 2)"}
