"""The command line through typer's CliRunner: exit codes and the start of each message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from convshape.cli import app

from .conftest import ASSETS, EXAMPLES

runner = CliRunner()
LOADING = ASSETS / "loading"
MNIST = str(EXAMPLES / "mnist_net.py")


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def err_of(result) -> str:
    return result.stderr if result.stderr else result.output


def test_trace_mnist_table() -> None:
    result = run("trace", MNIST, "--input", "64x784")
    assert result.exit_code == 0, result.output
    assert "[64, 50, 4, 4]" in result.stdout and "[64, 800]" in result.stdout
    assert "Total params: 431,080" in result.stdout


def test_trace_json_contract() -> None:
    result = run("trace", MNIST, "--input", "64x784", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "convshape.trace/1"
    assert data["inputs"] == [{"shape": [64, 784], "dtype": "float32"}]
    assert data["error"] is None
    row = data["rows"][2]
    assert {k: row[k] for k in ("kind", "name", "op", "depth", "input_shapes", "output_shapes", "params")} == {
        "kind": "module", "name": "conv1", "op": "Conv2d", "depth": 1, "input_shapes": [[64, 1, 28, 28]],
        "output_shapes": [[64, 20, 24, 24]], "params": 520}
    assert row["source"].startswith("mnist_net.py:")
    assert set(data["totals"]) == {"params", "trainable", "non_trainable", "bytes", "macs", "flops", "activation_bytes"}
    assert data["totals"]["macs"] == 146_752_000  # counted by default (2 convs and 2 Linears, per sample x 64)
    off = json.loads(run("trace", MNIST, "--input", "64x784", "--format", "json", "--no-costs").stdout)
    assert off["totals"]["macs"] is None and all(r["macs"] is None for r in off["rows"])


def test_depth_and_no_functions() -> None:
    data = json.loads(run("trace", MNIST, "-i", "64x784", "-f", "json").stdout)
    table = run("trace", MNIST, "-i", "64x784", "--no-functions", "--depth", "1").stdout
    assert "max_pool2d" not in table and "conv2" in table
    assert all(r["name"] in table for r in data["rows"] if r["kind"] == "module" and r["name"])
    only_root = run("trace", MNIST, "-i", "64x784", "--depth", "0").stdout
    assert "conv1" not in only_root and "Total params" in only_root


def test_trace_failure_exit_1_with_partial_rows_and_error_object() -> None:
    result = run("trace", EXAMPLES / "broken_fc.py", "-i", "64x784", "-f", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["error"]["module"] == "fc1" and data["error"]["fix"] == "nn.Linear(800, 500)"
    assert data["rows"][-1]["failed"] is True and data["rows"][-1]["name"] == "fc1"
    table = run("trace", EXAMPLES / "broken_fc.py", "-i", "64x784")
    assert table.exit_code == 1
    assert "✗ fc1 (Linear) expects in_features=320 but receives 800 = 50 x 4 x 4" in table.stdout
    assert "Traceback" not in table.output


def test_debug_shows_traceback() -> None:
    result = run("trace", EXAMPLES / "broken_fc.py", "-i", "64x784", "--debug")
    assert result.exit_code == 1
    err = err_of(result)
    assert err.startswith("Traceback"), err  # the model's own traceback, on stderr
    assert 'broken_fc.py", line 26, in forward' in err and "RuntimeError: mat1 and mat2" in err
    assert "Traceback" not in run("trace", EXAMPLES / "broken_fc.py", "-i", "64x784").output  # only with --debug


def test_params_json_and_table() -> None:
    data = json.loads(run("params", MNIST, "-f", "json").stdout)
    assert data["schema"] == "convshape.params/1"
    assert data["parameters"][0] == {"name": "conv1.weight", "module": "conv1", "shape": [20, 1, 5, 5],
                                     "numel": 500, "trainable": True, "dtype": "float32", "shared_with": [],
                                     "formula": "out 20 x in 1 x kH 5 x kW 5 = 500"}
    assert data["totals"]["params"] == 431080
    assert {m["name"] for m in data["modules"]} == {"conv1", "conv2", "fc1", "fc2"}
    table = run("params", MNIST)
    assert table.exit_code == 0 and "conv1.weight" in table.stdout


def test_fc_size_table_and_layer_option() -> None:
    result = run("fc-size", EXAMPLES / "broken_fc.py", "-i", "64x784")
    assert result.exit_code == 0, result.output
    assert "nn.Linear(800, 500)" in result.stdout and "800 = 50 x 4 x 4" in result.stdout
    one = json.loads(run("fc-size", EXAMPLES / "broken_fc.py", "-i", "64x784", "--layer", "fc2",
                         "-f", "json").stdout)
    assert [layer["name"] for layer in one["layers"]] == ["fc2"]
    missing = run("fc-size", EXAMPLES / "broken_fc.py", "-i", "64x784", "--layer", "conv1")
    assert missing.exit_code == 2
    assert err_of(missing).startswith("error: --layer 'conv1': no nn.Linear of that name")


def test_args_pass_to_constructor_and_sibling_imports_work() -> None:
    result = run("trace", LOADING / "needs_args.py:Net", "-i", "3x4", "--arg", "in_features=4",
                 "--arg", "num_classes=2", "--arg", "hidden=5", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["output_shapes"] == [[3, 2]]
    sibling = run("trace", LOADING / "sibling_user.py", "-i", "2x6", "--arg", "width=6", "--arg",
                  "widths=[16, 3]", "-f", "json")
    assert sibling.exit_code == 0, sibling.output
    assert json.loads(sibling.stdout)["rows"][0]["output_shapes"] == [[2, 3]]


def test_factory_and_instance_and_module_path() -> None:
    factory = run("params", EXAMPLES / "resnet_style.py:resnet_small", "--arg", "num_classes=7", "-f", "json")
    assert factory.exit_code == 0, factory.output
    assert json.loads(factory.stdout)["parameters"][-1]["shape"] == [7]
    instance = run("trace", LOADING / "several.py:model", "-i", "2x3")
    assert instance.exit_code == 0, instance.output
    module = run("params", "torch.nn:Conv1d", "-a", "in_channels=2", "-a", "out_channels=3",
                 "-a", "kernel_size=4", "-f", "json")
    assert module.exit_code == 0, module.output
    assert json.loads(module.stdout)["totals"]["params"] == 2 * 3 * 4 + 3


@pytest.mark.parametrize("model,start", [
    ("missing_file.py", "error: model file not found: "),
    ("model.txt", "error: "),
    ("syntax_error.py", "error: syntax error in syntax_error.py:5: expected ':'"),
    ("import_raises.py", "error: importing import_raises.py raised KeyError: 'large'\n  at import_raises.py:4"),
    ("build_raises.py", "error: building build_raises.py:Net raised ValueError: width must be positive\n"
                        "  at build_raises.py:6: raise ValueError"),
    ("needs_args.py", "error: needs_args.py:Net needs constructor arguments: in_features, num_classes; "
                      "pass them as --arg in_features=... --arg num_classes=..."),
    ("needs_args.py:Missing", "error: 'Missing' not found in needs_args.py; needs_args.py defines: Net"),
    ("needs_args.py:not_a_model", "error: needs_args.py:not_a_model returned a value of type int"),
    ("several.py", "error: several.py defines several nn.Module subclasses; choose one as"),
    ("nothing.py", "error: nothing.py defines no nn.Module subclass, instance or factory function"),
])
def test_load_errors(model: str, start: str) -> None:
    result = run("params", LOADING / model)
    assert result.exit_code == 2, result.output
    text = err_of(result)
    assert text.startswith(start), text
    assert "Traceback" not in result.output
    if model == "model.txt":
        assert "is not a .py file" in text


def test_unknown_constructor_argument() -> None:
    result = run("params", LOADING / "needs_args.py", "-a", "in_features=2", "-a", "num_classes=2",
                 "-a", "depth=3")
    assert result.exit_code == 2
    assert err_of(result).startswith("error: needs_args.py:Net takes no argument named depth")


def test_unimportable_module() -> None:
    result = run("params", "no_such_pkg.models:Net")
    assert result.exit_code == 2
    assert err_of(result).startswith("error: no module named 'no_such_pkg'")


@pytest.mark.parametrize("spec,start", [
    ("64x", "error: --input '64x': got an empty dimension; expected NxCxHxW[:DTYPE]"),
    # a letter is a symbolic size now (Bx1xHxW): a decimal is still not a size
    ("3.5x3", "error: --input '3.5x3': got '3.5', not a whole number; expected NxCxHxW[:DTYPE]"),
    ("a-1x3", "error: --input 'a-1x3': got 'a-1', neither a whole number nor a size name"),
    ("0x3", "error: --input '0x3': dimension 0 must be a positive size; expected NxCxHxW[:DTYPE]"),
    ("-1x3", "error: --input '-1x3': dimension -1 must be a positive size; expected NxCxHxW[:DTYPE]"),
    ("64x784:floaty", "error: --input '64x784:floaty': unknown dtype 'floaty'; expected one of"),
])
def test_bad_input_specs(spec: str, start: str) -> None:
    result = run("trace", MNIST, "--input", spec)
    assert result.exit_code == 2
    text = err_of(result)
    assert text.startswith(start), text
    assert text.count("\n") == 1  # one line


def test_wrong_number_of_inputs_and_bad_arg() -> None:
    none = run("trace", MNIST)
    assert none.exit_code == 2
    assert err_of(none).startswith("error: M.forward(x) takes 1 input(s), got 0")
    bad = run("trace", MNIST, "-i", "64x784", "--arg", "oops")
    assert bad.exit_code == 2 and err_of(bad).startswith("error: --arg 'oops': expected key=value")
    device = run("trace", MNIST, "-i", "64x784", "--device", "tpu")
    assert device.exit_code == 2 and err_of(device).startswith("error: --device 'tpu': expected one of")


def test_python_dash_m_and_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "convshape", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("convshape ")
    helped = run("--help")
    assert helped.exit_code == 0 and "fc-size" in helped.stdout
