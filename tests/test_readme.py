"""The README's example outputs are real: each `$ convshape ...` block equals what the command prints now."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_readme_examples_are_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/readme_examples.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_names_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert 'pip install torch==2.13.0 && pip install -e ".[test]" && convshape trace examples/mnist_net.py' in text
    assert "\npython -m pytest\n" in text
