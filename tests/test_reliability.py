"""Bad input and hostile models through the command line: every case ends cleanly.

One table of cases. Each writes its model files into a fresh directory, runs the CLI (in process through
typer's CliRunner, or as a real process where the process itself is the point: encodings, closed streams),
and checks the exit code, what must appear, and what must not: never a Python traceback, never an internal
error, never rich markup eaten or interpreted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from convshape.cli import app

from .conftest import EXAMPLES, ROOT

MNIST = str(EXAMPLES / "mnist_net.py")
HEAD = "import os, sys\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n\n"


def net(forward: str, init: str = "self.fc = nn.Linear(4, 2)", top: str = "") -> str:
    """A model file: ``Net`` with the given ``__init__`` body and ``forward(self, x)`` body."""
    return (f"{HEAD}{top}\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            f"        {init}\n\n    def forward(self, x):\n        {forward}\n")


OK = net("return self.fc(x)")


@dataclass
class Case:
    id: str
    argv: list[str]  # "{dir}" stands for the case's directory
    code: int
    must: list[str] = field(default_factory=list)  # in stdout + stderr
    must_not: list[str] = field(default_factory=list)
    files: dict[str, str | bytes] = field(default_factory=dict)
    process: bool = False  # run as a real process (encodings, closed streams)
    env: dict[str, str] = field(default_factory=dict)
    json_stdout: bool = False  # stdout must be one JSON document
    ascii_stdout: bool = False


def trace(*extra: str, model: str = "{dir}/net.py") -> list[str]:
    return ["trace", model, *extra]


CASES = [
    # ---- --input ------------------------------------------------------------------------------------------
    Case("input-double-dash", ["trace", MNIST, "--input=--5x3"], 2, ["error: --input '--5x3'"]),
    Case("input-superscript", ["trace", MNIST, "--input", "²x3"], 2, ["error: --input '²x3'", "not a whole number"]),
    Case("input-fullwidth", ["trace", MNIST, "--input", "６4x784"], 2, ["not a whole number"]),
    Case("input-trailing-x", ["trace", MNIST, "--input", "64x"], 2, ["an empty dimension"]),
    Case("input-just-x", ["trace", MNIST, "--input", "x"], 2, ["an empty dimension"]),
    Case("input-empty", ["trace", MNIST, "--input", ""], 2, ["error: --input ''"]),
    Case("input-bad-dtype", ["trace", MNIST, "--input", "64x784:floaty"], 2, ["unknown dtype 'floaty'"]),
    Case("input-empty-dtype", ["trace", MNIST, "--input", "64x784:"], 2, ["empty dtype"]),
    Case("input-float-dim", ["trace", MNIST, "--input", "1e3x4"], 2, ["'1e3', not a whole number"]),
    Case("input-zero", ["trace", MNIST, "--input", "0x784"], 2, ["dimension 0 must be a positive size"]),
    Case("input-negative", ["trace", MNIST, "--input", "-1x784"], 2, ["dimension -1 must be a positive size"]),
    Case("input-huge-dim", ["trace", MNIST, "--input", "99999999999999999999x784"], 2, ["too large"]),
    Case("input-huge-product", ["trace", MNIST, "--input", "9999999999x9999999999x784"], 2, ["too large"]),
    Case("input-very-long", ["trace", MNIST, "--input", "1x" * 5000 + "3.5"], 2, ["not a whole number"],
         ["1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1"]),
    Case("input-too-many", ["trace", MNIST, "-i", "64x784", "-i", "64x784"], 2,
         ["M.forward(x) takes 1 input(s), got 2"]),
    Case("input-none", ["trace", MNIST], 2, ["M.forward(x) takes 1 input(s), got 0"]),
    Case("input-count-before-build", trace("-i", "2x4", "-i", "2x4"), 2, ["Net.forward(x) takes 1 input(s), got 2"],
         ["never built"], files={"net.py": net("return x", init="raise ValueError('never built')")}),
    Case("input-int-into-conv", ["trace", MNIST, "-i", "64x784:int64"], 1, ["✗"]),
    Case("input-spaces-ok", ["trace", MNIST, "-i", " 64 x 784 "], 0, ["[64, 800]"]),
    Case("input-times-sign-ok", ["trace", MNIST, "-i", "64×784"], 0, ["[64, 800]"]),
    Case("input-torch-dtype", ["trace", MNIST, "-i", "64x784:torch.float64"], 1, ["float64", "✗ conv1"]),
    # ---- --arg ----------------------------------------------------------------------------------------------
    Case("arg-no-equals", ["params", MNIST, "--arg", "oops"], 2, ["error: --arg 'oops': expected key=value"]),
    Case("arg-no-key", ["params", MNIST, "--arg", "=3"], 2, ["expected key=value"]),
    Case("arg-bad-key", ["params", MNIST, "--arg", "1x=3"], 2, ["expected key=value"]),
    Case("arg-empty-value", ["params", MNIST, "--arg", "x="], 2, ["is not a Python literal"]),
    Case("arg-deep-minus", ["params", MNIST, "--arg", "x=" + "-" * 20000 + "1"], 2, ["--arg 'x=-----"],
         ["RecursionError"]),
    Case("arg-deep-brackets", ["params", MNIST, "--arg", "x=" + "[" * 20000], 2, ["is not a Python literal"]),
    Case("arg-open-bracket", ["params", MNIST, "--arg", "x=["], 2, ["is not a Python literal"]),
    Case("arg-call", ["params", MNIST, "--arg", "x=__import__('os')"], 2, ["is not a Python literal"]),
    Case("arg-unknown-name", ["params", MNIST, "--arg", "depth=3"], 2, ["M takes no argument named depth"]),
    # ---- other options ----------------------------------------------------------------------------------------
    Case("device-tpu", ["trace", MNIST, "-i", "64x784", "--device", "tpu"], 2, ["error: --device 'tpu'"]),
    Case("device-cuda-x", ["trace", MNIST, "-i", "64x784", "--device", "cuda:x"], 2, ["error: --device"]),
    Case("device-empty", ["trace", MNIST, "-i", "64x784", "--device", ""], 2, ["error: --device ''"]),
    Case("device-upper-ok", ["trace", MNIST, "-i", "64x784", "--device", "META"], 0, ["on meta"]),
    Case("timeout-negative", ["trace", MNIST, "-i", "64x784", "--timeout", "-1"], 2, ["--timeout"]),
    Case("timeout-word", ["trace", MNIST, "-i", "64x784", "--timeout", "soon"], 2, ["--timeout"]),
    Case("depth-negative", ["trace", MNIST, "-i", "64x784", "--depth", "-1"], 2, ["--depth"]),
    Case("format-unknown", ["trace", MNIST, "-i", "64x784", "--format", "xml"], 2, ["--format"]),
    Case("fc-layer-unknown", ["fc-size", MNIST, "-i", "64x784", "--layer", "conv1"], 2,
         ["--layer 'conv1': no nn.Linear of that name"]),
    Case("layer-unclosed", ["layer", "nn.Conv2d(3", "-i", "1x3x8x8"], 2, ["is not a Python expression"]),
    Case("layer-not-nn", ["layer", "os.system('ls')", "-i", "1x3x8x8"], 2, ["is not a torch.nn layer"]),
    Case("layer-no-input", ["layer", "nn.Conv2d(3, 4, 3)"], 2, ["layer needs --input"]),
    # ---- MODEL -------------------------------------------------------------------------------------------------
    Case("model-missing", trace("-i", "2x4"), 2, ["model file not found: "]),
    Case("model-directory", ["params", "{dir}"], 2, ["is a directory"], files={"x.py": OK}),
    Case("model-not-py", ["params", "{dir}/net.txt"], 2, ["is not a .py file"], files={"net.txt": OK}),
    Case("model-empty-arg", ["params", ""], 2, ["MODEL is empty"]),
    Case("model-bracket-path", ["trace", "{dir}/models[old]/net.py", "-i", "2x4"], 0, ["net.py:Net", "[2, 2]"],
         files={"models[old]/net.py": OK}),
    Case("model-bracket-missing", ["params", "{dir}/models[old]/nope.py"], 2, ["models[old]/nope.py"]),
    Case("model-emoji-code", ["params", "{dir}/net.py:M:"], 2, ["net.py:M:"], ["Ⓜ"], files={"net.py": OK}),
    Case("model-nul-bytes", ["params", "{dir}/bin.py"], 2, ["bin.py contains NUL bytes"], ["None"],
         files={"bin.py": b"\x00\x01\x02model"}),
    Case("model-syntax-error", ["params", "{dir}/net.py"], 2, ["syntax error in net.py:1"],
         files={"net.py": "class Net(nn.Module)\n"}),
    Case("model-latin1", ["params", "{dir}/net.py"], 2, ["syntax error in net.py"],
         files={"net.py": b"# caf\xe9\nx = '\xe9'\n"}),
    Case("model-empty-file", ["params", "{dir}/net.py"], 2, ["net.py defines no nn.Module subclass"],
         files={"net.py": ""}),
    Case("model-missing-import", ["params", "{dir}/net.py"], 2, ["raised ModuleNotFoundError", "no_such_lib"],
         files={"net.py": "import no_such_lib\n"}),
    Case("model-no-module", ["params", "no_such_pkg.models:Net"], 2, ["no module named 'no_such_pkg'"]),
    Case("model-not-a-model", ["params", "os:path"], 2, ["not an nn.Module subclass, instance or factory"]),
    Case("model-needs-args", ["params", "torch.nn:Conv2d"], 2, ["needs constructor arguments"]),
    Case("model-several", ["params", "{dir}/net.py"], 2, ["defines several nn.Module subclasses"],
         files={"net.py": OK + "\n\nclass Other(nn.Module):\n    pass\n"}),
    Case("model-factory-returns-int", ["params", "{dir}/net.py:make"], 2, ["returned a value of type int"],
         files={"net.py": OK + "\n\ndef make():\n    return 3\n"}),
    Case("model-main-block-skipped", trace("-i", "2x4"), 0, ["[2, 2]"],
         files={"net.py": OK + "\n\nif __name__ == '__main__':\n    raise SystemExit(9)\n"}),
    # ---- the model's code exits, raises oddly, hangs --------------------------------------------------------------
    Case("import-sys-exit-0", ["params", "{dir}/net.py"], 2, ["importing net.py exited", "sys.exit(0)"],
         files={"net.py": HEAD + "sys.exit(0)\n"}),
    Case("import-sys-exit-3", ["params", "{dir}/net.py"], 2, ["sys.exit(3)", "at net.py:6"],
         files={"net.py": HEAD + "sys.exit(3)\n"}),
    Case("import-os-exit", ["params", "{dir}/net.py"], 2, ["os._exit(4)"], files={"net.py": HEAD + "os._exit(4)\n"}),
    Case("import-systemexit-text", ["params", "{dir}/net.py"], 2, ["sys.exit('bye')"],
         files={"net.py": HEAD + "raise SystemExit('bye')\n"}),
    Case("import-keyboard-interrupt", ["params", "{dir}/net.py"], 130, ["error: interrupted"],
         files={"net.py": HEAD + "raise KeyboardInterrupt\n"}),
    Case("import-base-exception", ["params", "{dir}/net.py"], 2, ["raised Stop: halt"],
         files={"net.py": HEAD + "class Stop(BaseException):\n    pass\n\nraise Stop('halt')\n"}),
    Case("import-bad-str", ["params", "{dir}/net.py"], 2, ["raised Weird", "its message could not be shown"],
         files={"net.py": HEAD + "class Weird(Exception):\n    def __str__(self):\n        raise RuntimeError\n\n"
                                 "raise Weird()\n"}),
    Case("import-hangs", ["params", "{dir}/net.py", "--timeout", "1"], 1,
         ["importing net.py did not finish within 1 s (--timeout)"],
         files={"net.py": HEAD + "while True:\n    pass\n"}),
    Case("init-raises", ["params", "{dir}/net.py"], 2, ["building net.py:Net raised ValueError: nope"],
         files={"net.py": net("return x", init="raise ValueError('nope')")}),
    Case("init-sys-exit", ["params", "{dir}/net.py"], 2, ["building net.py:Net exited", "sys.exit(5)"],
         files={"net.py": net("return x", init="sys.exit(5)")}),
    Case("forward-raises", trace("-i", "2x4"), 1, ["Net failed on input [2, 4]: bad input", "at net.py:14"],
         files={"net.py": net("raise ValueError('bad input')")}),
    Case("forward-base-exception", trace("-i", "2x4"), 1, ["Net failed on input [2, 4]: halt"],
         files={"net.py": net("raise Stop('halt')", top="class Stop(BaseException):\n    pass\n")}),
    Case("forward-sys-exit-0", trace("-i", "2x4"), 1, ["the model exited during the forward pass", "sys.exit(0)"],
         files={"net.py": net("sys.exit(0)")}),
    Case("forward-sys-exit-3", trace("-i", "2x4", "-f", "json"), 1, ["sys.exit(3)"],
         files={"net.py": net("sys.exit(3)")}, json_stdout=True),
    Case("forward-os-exit", trace("-i", "2x4"), 1, ["os._exit(7)"], files={"net.py": net("os._exit(7)")}),
    Case("forward-exit-builtin", trace("-i", "2x4"), 1, ["sys.exit(None)"], files={"net.py": net("exit()")}),
    Case("forward-busy-loop", trace("-i", "2x4", "--timeout", "1"), 1,
         ["did not finish within 1 s (--timeout)"], files={"net.py": net("while True:\n            pass")}),
    Case("forward-torch-loop", trace("-i", "2x4", "--timeout", "2", "--no-functions"), 1,
         ["did not finish within 2 s (--timeout)"], files={"net.py": net("while True:\n            x = x + 1")}),
    Case("forward-recursion", trace("-i", "2x4"), 1, ["recursed without end"], ["internal error"],
         files={"net.py": net("return self(x)")}),
    Case("forward-bad-str", trace("-i", "2x4"), 1, ["its message could not be shown"],
         files={"net.py": net("raise Weird()", top="class Weird(Exception):\n    def __str__(self):\n"
                                                   "        return 1 / 0\n")}),
    Case("forward-markup-in-message", trace("-i", "2x4"), 1, ["[bold]x[/]", "[/]"],
         files={"net.py": net("raise ValueError('[bold]x[/] and [/]')")}),
    Case("forward-modulelist-in-message", trace("-i", "2x4"), 1, ["use nn.ModuleList([...]) here"],
         files={"net.py": net("raise ValueError('use nn.ModuleList([...]) here')")}),
    Case("forward-emoji-in-message", trace("-i", "2x4"), 1, ["net.py:M: broke"], ["Ⓜ"],
         files={"net.py": net("raise ValueError('net.py:M: broke')")}),
    Case("forward-wrong-in-features", trace("-i", "2x5"), 1, ["fc (Linear) expects in_features=4 but receives 5",
                                                              "nn.Linear(5, 2)"], files={"net.py": OK}),
    Case("forward-returns-none", trace("-i", "2x4"), 0, ["Total params: 10"],
         files={"net.py": net("self.fc(x)\n        return None")}),
    Case("forward-returns-str", trace("-i", "2x4"), 0, ["Total params: 10"], files={"net.py": net("return 'done'")}),
    Case("forward-returns-dict", trace("-i", "2x4", "-f", "json"), 0, ['"output_shapes": [[2, 2], [2, 4]]'],
         files={"net.py": net("return {'y': self.fc(x), 'x': x}")}, json_stdout=True),
    # ---- the model's own output never mixes into ours ---------------------------------------------------------------
    Case("prints-json-trace", trace("-i", "2x4", "-f", "json"), 0, ["hello from import", "hello from forward"],
         files={"net.py": net("print('hello from forward')\n        return self.fc(x)",
                              top="print('hello from import')")}, json_stdout=True),
    Case("prints-json-params", ["params", "{dir}/net.py", "-f", "json"], 0, ["hello from init"],
         files={"net.py": net("return x", init="print('hello from init'); self.fc = nn.Linear(4, 2)")},
         json_stdout=True),
    Case("prints-json-fc-size", ["fc-size", "{dir}/net.py", "-i", "2x4", "-f", "json"], 0, ["hello"],
         files={"net.py": net("print('hello')\n        return self.fc(x)")}, json_stdout=True),
    # ---- models that used to break the default device ------------------------------------------------------
    Case("lazy-trace", trace("-i", "2x7"), 0, ["LazyLinear", "[2, 3]"],
         files={"net.py": net("return self.fc(x)", init="self.fc = nn.LazyLinear(3)")}),
    Case("lazy-params", ["params", "{dir}/net.py"], 0, ["lazy layer"],
         files={"net.py": net("return self.fc(x)", init="self.fc = nn.LazyLinear(3)")}),
    Case("lazy-fc-size", ["fc-size", "{dir}/net.py", "-i", "2x7"], 0, ["fc"],
         files={"net.py": net("return self.fc(x)", init="self.fc = nn.LazyLinear(3)")}),
    Case("jit-script-params", ["params", "{dir}/net.py:model"], 0, ["fc.weight", "Total params: 10"],
         files={"net.py": OK + "\n\nmodel = torch.jit.script(Net())\n"}),
    Case("init-eye-then-inverse", trace("-i", "2x4"), 0, ["linalg.inv"],
         files={"net.py": net("return x @ torch.linalg.inv(self.w)",
                              init="self.w = nn.Parameter(torch.empty(4, 4)); nn.init.eye_(self.w)")}),
    Case("distribution-head", trace("-i", "2x4"), 0, ["[2, 2]"],
         files={"net.py": net("return torch.distributions.Normal(self.fc(x), self.fc(x).exp()).sample()")}),
    Case("terabyte-buffer", trace("-i", "2x4"), 0, ["on meta", "[2, 2]"],
         files={"net.py": net("return self.fc(x) + self.big[:2]",
                              init="self.fc = nn.Linear(4, 2); self.register_buffer('big', torch.zeros(2**38))")}),
    Case("compiled-helper", trace("-i", "2x4"), 0, ["[2, 2]"], ["tracer.py", "global"],
         files={"net.py": net("return act(self.fc(x))", top="act = torch.compile(torch.relu)")}),
    Case("stdlib-shadow", trace("-i", "2x4", "--costs"), 0, ["profile.py beside your model", "[2, 2]"],
         files={"net.py": OK, "profile.py": "raise ImportError('the user profile.py')\n"}, process=True),
    # ---- output streams ---------------------------------------------------------------------------------------
    Case("ascii-flag", ["trace", MNIST, "-i", "64x784", "--ascii"], 0, ["-----", "view"], ascii_stdout=True),
    Case("stdout-ascii-encoding", ["trace", MNIST, "-i", "64x784"], 0, ["-----"], process=True,
         env={"PYTHONIOENCODING": "ascii"}, ascii_stdout=True),
    Case("stdout-cp1252", ["fc-size", str(EXAMPLES / "broken_fc.py"), "-i", "64x784"], 0, ["x wrong"],
         process=True, env={"PYTHONIOENCODING": "cp1252"}),
    Case("stdout-closed", ["trace", MNIST, "-i", "64x784"], 1, ["error: stdout is closed"], process=True),
    Case("stdout-full", ["trace", MNIST, "-i", "64x784"], 1, ["cannot write the output", "No space left"],
         process=True),
    Case("stdout-broken-pipe", ["trace", MNIST, "-i", "64x784"], 0, [], process=True),
]


def _materialise(case: Case, tmp_path: Path) -> list[str]:
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return [a.replace("{dir}", str(tmp_path)) for a in case.argv]


def _in_process(argv: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, argv)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _as_process(case: Case, argv: list[str]) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "convshape", *argv]
    env = {**os.environ, **case.env}
    if case.id == "stdout-closed":
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT,
                              timeout=120, pass_fds=(), preexec_fn=lambda: os.close(1))
        return proc.returncode, "", proc.stderr.decode()
    if case.id == "stdout-full":
        with open("/dev/full", "w") as full:
            proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, env=env, cwd=ROOT, timeout=120)
        return proc.returncode, "", proc.stderr.decode()
    if case.id == "stdout-broken-pipe":
        reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        assert reader.stdout is not None
        reader.stdout.close()  # the reader is gone before the output comes, as with `| head -0`
        _, err = reader.communicate(timeout=120)
        return reader.returncode, "", err.decode()
    proc = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT, timeout=120)
    encoding = case.env.get("PYTHONIOENCODING", "utf-8")
    return proc.returncode, proc.stdout.decode(encoding), proc.stderr.decode(encoding, errors="replace")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_ends_cleanly(case: Case, tmp_path: Path) -> None:
    argv = _materialise(case, tmp_path)
    if case.id == "stdout-full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    code, out, err = _as_process(case, argv) if case.process else _in_process(argv)
    both = out + err
    assert code == case.code, both[-3000:]
    for text in case.must:
        assert text in both, (text, both[-3000:])
    for text in [*case.must_not, "Traceback", "internal error"]:
        assert text not in both, (text, both[-3000:])
    if case.code == 2:  # a usage or load error: one message on stderr, nothing on stdout
        assert out == "" and err.strip(), both
    if case.json_stdout:
        json.loads(out)
    if case.ascii_stdout:
        assert out.isascii() and out.strip(), out


def test_there_are_at_least_80_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 80
