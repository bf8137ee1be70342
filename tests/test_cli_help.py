"""``convshape --help`` and ``--version`` answer from convshape.helptext, without typer: the page must be typer's
own, byte for byte, at every terminal width, and the console script must really skip typer, rich and torch."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convshape import __version__
from convshape.cli import app
from convshape.helptext import main_help, page_width

ROOT = Path(__file__).resolve().parent.parent


def _typer_page(columns: int, *args: str) -> str:
    """What typer prints on a terminal ``columns`` wide (not through CliRunner: it fixes the width at 80)."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("COLUMNS", str(columns))
        try:
            app(list(args) or ["--help"], prog_name="convshape")
        except SystemExit as e:
            assert not e.code, out.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("columns", [1, 20, 40, *range(49, 83), 100, 120, 200, 1000])
def test_the_quick_page_is_typers_own_at_every_width(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _typer_page(columns)
    assert main_help(columns) == expected
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main_help() == expected  # the terminal's width read as typer reads it


def test_page_width_is_the_terminals_less_two_within_50_and_78() -> None:
    assert [page_width(c) for c in (10, 52, 53, 70, 80, 81, 300)] == [50, 50, 51, 68, 78, 78, 78]


def _console_script() -> str:
    script = Path(sys.executable).with_name("convshape")
    assert script.exists(), f"the console script is not installed beside {sys.executable} (pip install -e .)"
    return str(script)


@pytest.mark.parametrize(("argv", "columns"), [(["--help"], 80), (["--help"], 55), (["--version"], 80)])
def test_the_console_script_answers_without_typer_rich_or_torch(argv: list[str], columns: int) -> None:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([_console_script(), *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == _typer_page(columns, *argv)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "convshape.helptext" in imported  # the import profile is there, and read right
    assert not {"typer", "rich", "click", "torch"} & imported, sorted({"typer", "rich", "click", "torch"} & imported)
    if argv == ["--version"]:
        assert proc.stdout == f"convshape {__version__}\n"


def test_every_other_command_line_goes_to_typer() -> None:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPROFILEIMPORTTIME": "1"}
    for argv in (["trace", "--help"], ["--help", "--version"], []):
        proc = subprocess.run([_console_script(), *argv], capture_output=True, text=True, env=env, cwd=ROOT)
        assert "import time:" in proc.stderr and "| typer" in proc.stderr, argv
        assert "Usage: convshape" in proc.stdout + proc.stderr, argv
