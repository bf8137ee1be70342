"""The live progress line: on a terminal's stderr after about a second, erased at the end; never in
pipes, never in JSON, and never changing what stdout says."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from convshape.progress import status_line

from .conftest import ASSETS, ROOT

COMMAND = [sys.executable, "-m", "convshape", "trace", str(ASSETS / "slow.py"), "-i", "2x8", "-d", "cpu"]


def _run(args: list[str], stderr_tty: bool) -> tuple[str, str]:
    """stdout (a pipe) and stderr (a terminal, or a pipe) of one run."""
    if not stderr_tty:
        proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
        return proc.stdout, proc.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process has ended
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.wait()
    os.close(master)
    return out, seen.decode(errors="replace")


def test_a_long_trace_shows_rows_and_the_current_module_on_a_terminal() -> None:
    out, err = _run(COMMAND, stderr_tty=True)
    assert "rows traced, in layers." in err, err  # the module running now
    assert err.endswith("\r\x1b[2K"), repr(err[-40:])  # erased at the end
    piped_out, piped_err = _run(COMMAND, stderr_tty=False)
    assert piped_err == ""  # nothing in pipes
    assert out == piped_out  # what is printed never depends on time or on the progress line


def test_json_never_shows_progress() -> None:
    _, err = _run([*COMMAND, "-f", "json"], stderr_tty=True)
    assert "rows traced" not in err


def test_status_line_fits_the_terminal() -> None:
    line = status_line(1234, "encoder.layer.11.attention.self.query", 40)
    assert len(line) < 40 and line.startswith("convshape: 1,234 rows traced")
    assert status_line(None, None, 80) == "convshape: loading the model..."


def test_a_terminal_gets_a_table_that_fits_it() -> None:
    """stdout a terminal of 80 columns: every line fits; the same command in a pipe: the full table."""
    from .conftest import EXAMPLES

    args = [sys.executable, "-m", "convshape", "trace", f"{EXAMPLES / 'gpt2_small.py'}:GPT", "-i", "1x16:int64",
            "-d", "meta", "--expand"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"})
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait()
    os.close(master)
    lines = seen.decode().replace("\r\n", "\n").splitlines()
    assert any(line.startswith("Layer") for line in lines)
    assert max(len(line) for line in lines) <= 80
    piped = subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout
    assert max(len(line) for line in piped.splitlines()) > 150  # pipes get the full table
