"""The README's example outputs are real: each `$ convshape ...` block equals what the command prints now."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def test_readme_examples_are_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/readme_examples.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_names_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert 'pip install torch==2.13.0 && pip install -e ".[test,hf]" && convshape trace examples/mnist_net.py' in text
    assert "\npython -m pytest\n" in text


def test_readme_examples_do_not_depend_on_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every README command, run in process with a clock that jumps an hour at each reading, prints exactly
    what the README shows: no wall-clock budget or timing decision can reach the output."""
    import importlib.util
    import shlex
    import time

    from typer.testing import CliRunner

    from convshape.cli import app

    spec = importlib.util.spec_from_file_location("readme_examples", ROOT / "scripts" / "readme_examples.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    blocks = script.BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) >= 8
    ticks = iter(range(0, 10**12, 3600))
    for name in ("perf_counter", "monotonic", "time"):
        monkeypatch.setattr(time, name, lambda: float(next(ticks)))
    monkeypatch.chdir(ROOT)
    for command, shown in blocks:
        result = CliRunner().invoke(app, shlex.split(command)[1:])
        assert result.stdout + result.stderr == shown, command
