"""annotate, layer and params --explain, through the library and the command line."""

from __future__ import annotations

import ast
import json
import re

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import convshape
from convshape.annotate import annotate
from convshape.cli import app
from convshape.errors import InputSpecError
from convshape.layer import parse_layer

from .conftest import ASSETS, EXAMPLES, load_file
from .test_seed import SEED_LISTING

runner = CliRunner()
mnist = load_file(EXAMPLES / "mnist_net.py")
llama = load_file(EXAMPLES / "llama.py")


def test_annotate_reproduces_the_seed_listing() -> None:
    model = mnist.M()
    (block,) = annotate(model, convshape.trace_model(model, "64x784"))
    ast.parse(block.code)  # valid Python
    comments = [line.split("  # ", 1)[1] for line in block.code.splitlines() if "  # " in line]
    assert comments[0] == "x: [64, 784]"
    # the seed's own listing: `print(x.size())` after each line of forward
    seed = ["[64, 1, 28, 28]", "[64, 20, 24, 24]", "[64, 20, 12, 12]", "[64, 50, 8, 8]", "[64, 50, 4, 4]",
            "[64, 800]", "[64, 500]", "[64, 10]"]
    assert comments[1:] == seed
    # ... which is DESIGN.md's row listing, taking on each line the last call's result
    assert set(seed) <= {str(list(shape)) for _, shape in SEED_LISTING}


def test_annotate_loops_and_submodules() -> None:
    model = llama.llama_tiny(n_layers=3)
    blocks = annotate(model, convshape.trace_model(model, "2x9:int64"), submodules=True)
    root = blocks[0].code
    assert "h = layer(h)  # [2, 9, 64]  (3 runs)" in root
    titles = [b.title.split("  ")[1] for b in blocks]
    assert titles[:3] == ["Llama.forward", "Block.forward", "RMSNorm.forward"]
    attention = next(b.code for b in blocks if "Attention.forward" in b.title)
    assert "k = self.wk(x).view(b, s, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [2, 2, 9, 16]" in attention
    for b in blocks:
        ast.parse(b.code)


def test_annotate_cli_plain_when_piped() -> None:
    result = runner.invoke(app, ["annotate", str(EXAMPLES / "mnist_net.py"), "--input", "64x784"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# mnist_net.py:18  M.forward\ndef forward(self, x):  # x: [64, 784]\n")
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe
    ast.parse(result.stdout)


def test_layer_names_arguments_and_matches_torch() -> None:
    call = parse_layer("nn.Conv2d(3, 10, 2, 2)")
    assert call.named == {"in_channels": 3, "out_channels": 10, "kernel_size": 2, "stride": 2}
    result = runner.invoke(app, ["layer", "nn.Conv2d(3, 10, 2, 2)", "--input", "1x3x32x32", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    want = tuple(nn.Conv2d(3, 10, 2, 2)(torch.randn(1, 3, 32, 32)).shape)
    assert data["schema"] == "convshape.layer/1"
    assert data["output_shapes"] == [list(want)]
    assert data["arguments"] == {"in_channels": 3, "out_channels": 10, "kernel_size": 2, "stride": 2}
    assert data["explain"][0] == "H: floor((32 + 2*0 - 1*(2-1) - 1) / 2) + 1 = 16"
    assert [p["formula"] for p in data["parameters"]] == ["out 10 x in 3 x kH 2 x kW 2 = 120", "out 10 = 10"]
    table = runner.invoke(app, ["layer", "torch.nn.MaxPool2d(3, stride=2, ceil_mode=True)", "-i", "1x8x10x10"])
    assert table.exit_code == 0 and "output  [1, 8, 5, 5]" in table.stdout


@pytest.mark.parametrize("expr,start", [
    ("__import__('os').system('echo hi')",
     "layer \"__import__('os').system('echo hi')\": __import__('os').system is not a torch.nn layer"),
    ("nn.Conv2d(3, x)", "layer 'nn.Conv2d(3, x)': arguments must be literals"),
    ("nn.NoSuchLayer(3)", "layer 'nn.NoSuchLayer(3)': torch.nn has no layer named 'NoSuchLayer'"),
    ("nn.Conv2d(3)", "layer 'nn.Conv2d(3)': missing a required argument: 'out_channels'"),
    ("os.system('ls')", "layer \"os.system('ls')\": os.system is not a torch.nn layer"),
    ("nn.Conv2d(", "layer 'nn.Conv2d(' is not a Python expression"),
    ("3 + 4", "layer '3 + 4' is not a call"),
])
def test_layer_rejects_anything_but_a_literal_nn_call(expr: str, start: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse_layer(expr)
    assert str(info.value).startswith(start), str(info.value)
    result = runner.invoke(app, ["layer", expr, "-i", "1x3x8x8"])
    assert result.exit_code == 2


def test_layer_failure_is_diagnosed() -> None:
    result = runner.invoke(app, ["layer", "nn.Conv2d(3, 10, 2, 2)", "-i", "1x4x32x32"])
    assert result.exit_code == 1
    assert "✗ Conv2d expects 3 input channels, received 4" in result.stdout


def test_params_explain_formulas_multiply_out() -> None:
    zoo = load_file(ASSETS / "zoo.py")
    for factory, _ in zoo.CASES.values():
        model = factory()
        for rec, (_, p) in zip(convshape.parameters(model).parameters, model.named_parameters(), strict=True):
            numbers = re.findall(r"(\d[\d,]*)", rec.formula.split(" = ")[0])
            factors = [int(n.replace(",", "")) for n in numbers if "/" not in n]
            assert rec.formula.endswith(f"= {p.numel():,}"), rec.formula
            if "/" not in rec.formula:
                product = 1
                for f in factors:
                    product *= f
                assert product == p.numel(), rec.formula


def test_params_explain_seed_conv() -> None:
    result = runner.invoke(app, ["params", "torch.nn:Conv2d", "-a", "in_channels=5", "-a", "out_channels=10",
                                 "-a", "kernel_size=2", "-a", "stride=2", "--explain"])
    assert result.exit_code == 0, result.output
    assert "out 10 x in 5 x kH 2 x kW 2 = 200" in result.stdout and "out 10 = 10" in result.stdout
    grouped = convshape.parameters(nn.Conv2d(8, 16, 3, groups=4)).parameters[0]
    assert grouped.formula == "out 16 x in/groups 8/4=2 x kH 3 x kW 3 = 288"


def test_trace_explain_and_costs_cli() -> None:
    result = runner.invoke(app, ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "64x784", "--explain", "--costs"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "↳ H: floor((28 + 2*0 - 1*(5-1) - 1) / 1) + 1 = 24" in out
    assert "↳ H: floor((24 + 2*0 - 1*(2-1) - 1) / 2) + 1 = 12" in out
    assert "↳ H: floor((12 + 2*0 - 1*(5-1) - 1) / 1) + 1 = 8" in out
    assert "↳ H: floor((8 + 2*0 - 1*(2-1) - 1) / 2) + 1 = 4" in out
    assert "↳ 800 = 50 x 4 x 4" in out
    assert "Total MACs: 146.75 M (293.50 MFLOPs)" in out
    data = json.loads(runner.invoke(app, ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "64x784", "--costs",
                                          "--explain", "-f", "json"]).stdout)
    assert data["totals"]["macs"] == 146_752_000 and data["totals"]["flops"] == 293_504_000
    conv1 = data["rows"][2]
    assert conv1["macs"] == 18_432_000 and conv1["explain"][0].startswith("H: floor(")
    assert conv1["receptive_field"] == [{"size": 5, "jump": 1, "start": 2.0}] * 2


def test_layer_names_each_rnn_argument() -> None:
    call = parse_layer("nn.LSTM(10, 20, batch_first=True)")
    assert call.text == "nn.LSTM(input_size=10, hidden_size=20, batch_first=True)"
    rnn = parse_layer("nn.RNN(10, 20, 2, 'relu')")
    assert rnn.named == {"input_size": 10, "hidden_size": 20, "num_layers": 2, "nonlinearity": "relu"}
    built = rnn.cls(*rnn.args, **rnn.kwargs)  # torch binds the same way
    assert (built.num_layers, built.nonlinearity) == (2, "relu")
    result = runner.invoke(app, ["layer", "nn.LSTM(10, 20, batch_first=True)", "-i", "2x7x10", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arguments"] == {"input_size": 10, "hidden_size": 20, "batch_first": True}
    want = [list(t.shape) for t in (lambda o: [o[0], *o[1]])(nn.LSTM(10, 20, batch_first=True)(torch.zeros(2, 7, 10)))]
    assert data["output_shapes"] == want


def test_lstm_proj_size_factor_is_labelled_proj() -> None:
    lstm = nn.LSTM(10, 20, proj_size=5)
    formulas = {p.name: p.formula for p in convshape.parameters(lstm).parameters}
    assert formulas["weight_hh_l0"] == "gates 4 x hidden 20 x proj 5 = 400"
    assert lstm.weight_hh_l0.shape == (80, 5)
    assert formulas["weight_hr_l0"] == "proj 5 x hidden 20 = 100"


def test_layer_builds_on_meta_without_allocating() -> None:
    import resource
    import subprocess
    import sys

    from .conftest import ROOT

    report = __import__("convshape.layer", fromlist=["run_layer"]).run_layer("nn.Linear(1000, 10)", "2x1000")
    assert report.trace.device == "meta" and report.trace.rows[0].output_shapes == ((2, 10),)
    # 40 GB of weights would not fit under a 6 GB address-space limit: the command must still answer
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)); "
            "from convshape.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "layer", "nn.Linear(100000, 100000)", "-i", "2x100000"],
                          cwd=ROOT, capture_output=True, text=True, env={**__import__("os").environ,
                                                                          "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "output  [2, 100000]" in proc.stdout and "total    10,000,100,000 parameters" in proc.stdout
    assert resource  # the limit is set inside the child
