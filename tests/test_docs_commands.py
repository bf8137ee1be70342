"""Commands people copy: each example's docstring, and the help screens."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from convshape.cli import app

from .conftest import EXAMPLES, ROOT

runner = CliRunner()


def _docstring_commands() -> list[tuple[str, str]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.py")):
        text = path.read_text()
        doc = re.match(r'\s*"""(.*?)"""', text, re.S)
        for line in (doc.group(1) if doc else "").splitlines():
            line = line.strip()
            if line.startswith(("convshape trace ", "convshape params ", "convshape fc-size ", "convshape annotate ")):
                command, _, comment = line.partition("#")
                found.append((command.strip(), comment.strip()))
    return found


def test_every_example_has_a_command() -> None:
    files = {shlex.split(c)[2].split(":")[0] for c, _ in _docstring_commands()}
    assert {f"examples/{p.name}" for p in EXAMPLES.glob("*.py")} <= files


@pytest.mark.parametrize(("command", "comment"), _docstring_commands(), ids=lambda v: v if v.startswith("conv") else "")
def test_example_docstring_commands_run(command: str, comment: str) -> None:
    args = shlex.split(command)[1:]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        result = runner.invoke(app, args)
    expected = 1 if "fails" in comment else 0  # broken_fc.py's trace shows where it fails, on purpose
    assert result.exit_code == expected, result.output
    assert "Traceback" not in result.output and "error:" not in result.output
    assert "Total params" in result.output or "fix:" in result.output or "in_features" in result.output


def test_top_level_help_shows_whole_command_descriptions() -> None:
    for columns in ("80", "60", "200"):
        out = subprocess.run([sys.executable, "-m", "convshape", "--help"], capture_output=True, text=True,
                             env={"COLUMNS": columns, "PATH": ""}, cwd=ROOT).stdout
        commands = out.split("Commands:", 1)[1]
        assert "..." not in commands, commands
        for name in ("trace", "params", "fc-size", "annotate", "layer"):
            assert re.search(rf"^  {name} ", commands, re.M)


def test_usage_shows_model_without_braces() -> None:
    for command in ("trace", "params", "fc-size", "annotate"):
        result = runner.invoke(app, [command, "--help"])
        assert "{MODEL}" not in result.output and f"{command} [OPTIONS] MODEL" in result.output, result.output
    assert "layer [OPTIONS] EXPR" in runner.invoke(app, ["layer", "--help"]).output
