from __future__ import annotations

import subprocess
import sys

import pytest

from convshape.errors import InputSpecError
from convshape.spec import InputSpec, parse_device, parse_input, parse_kwargs, parse_model_ref


@pytest.mark.parametrize("text,shape,dtype", [
    ("64x784", (64, 784), "float32"),
    ("1x3x224x224", (1, 3, 224, 224), "float32"),
    ("2x16:int64", (2, 16), "int64"),
    ("2x16:long", (2, 16), "int64"),
    ("8:bfloat16", (8,), "bfloat16"),
    (" 4X5:torch.float16 ", (4, 5), "float16"),
    ("3x2:bool", (3, 2), "bool"),
])
def test_parse_input(text: str, shape: tuple[int, ...], dtype: str) -> None:
    assert parse_input(text) == InputSpec(shape, dtype)


@pytest.mark.parametrize("text", ["64x", "ax3", "0x3", "-1x3", "64x784:floaty", "", "x", "2.5x3"])
def test_bad_input(text: str) -> None:
    with pytest.raises(InputSpecError, match="expected"):
        parse_input(text)


def test_model_refs() -> None:
    assert parse_model_ref("net.py") == parse_model_ref("net.py")
    ref = parse_model_ref("dir/net.py:Net")
    assert (ref.target, ref.name, ref.is_file) == ("dir/net.py", "Net", True)
    ref = parse_model_ref("pkg.models:resnet")
    assert (ref.target, ref.name, ref.is_file) == ("pkg.models", "resnet", False)
    with pytest.raises(InputSpecError):
        parse_model_ref("not a module!")


def test_kwargs_are_literals() -> None:
    assert parse_kwargs(["num_classes=10", "widths=[16, 32]", "act=relu", "p=0.5", "flag=True"]) == {
        "num_classes": 10, "widths": [16, 32], "act": "relu", "p": 0.5, "flag": True}
    for bad in ("noequals", "=3", "x=[1", "x=__import__('os')"):
        with pytest.raises(InputSpecError):
            parse_kwargs([bad])


def test_devices() -> None:
    assert parse_device("CUDA:1") == "cuda:1"
    with pytest.raises(InputSpecError):
        parse_device("gpu")


def test_spec_and_help_do_not_import_torch() -> None:
    code = ("import sys, convshape.spec, convshape.cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("argv", [
    ["trace", "no_such_model.py", "--input", "64x784"],
    ["trace", "examples/mnist_net.py", "--input", "64x"],
    ["trace", "examples/mnist_net.py", "--input", "64x784", "--device", "tpu"],
    ["params", "examples/mnist_net.py", "--arg", "oops"],
    ["--help"],
])
def test_argument_errors_answer_without_importing_torch(argv: list[str]) -> None:
    _cli_in_a_child(argv, on_exit="pass", never="torch")


def _cli_in_a_child(argv: list[str], on_exit: str, never: str) -> None:
    """Run the command line's app in a fresh Python; ``on_exit`` handles its SystemExit, and the module
    ``never`` must not have been imported."""
    code = ("import sys; from convshape.cli import app\n"
            f"try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    {on_exit}\n"
            f"assert {never!r} not in sys.modules, {never!r} + ' was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["trace", "examples/mnist_net.py", "--input", "64x784"],
                                  ["fc-size", "examples/mnist_net.py", "--input", "64x784"],
                                  ["trace", "examples/llama.py:llama_tiny", "--input", "1x16:int64"]])
def test_a_concrete_trace_does_not_import_sympy(argv: list[str]) -> None:
    """sympy (about 0.3 s to import) is for sizes given as names; convshape never loads it for a trace with
    numbers (torch's own meta kernels may: torch._check on meta imports it)."""
    _cli_in_a_child(argv, on_exit="assert not e.code, e.code", never="sympy")
