"""A live line on stderr while a long trace runs: rows traced so far and the module running now.

Only for a terminal, and only after about a second, so quick runs, pipes and JSON never see it.
The line is erased when the trace ends: what the command prints never depends on time.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

DELAY_S = 1.0
INTERVAL_S = 0.1


def status_line(rows: int | None, module: str | None, width: int) -> str:
    """``convshape: 1,234 rows traced, in layers.12.attn``, cut to ``width``."""
    if rows is None:
        line = "convshape: loading the model..."
    else:
        line = f"convshape: {rows:,} rows traced" + (f", in {module}" if module else "")
    return line if len(line) < width else line[:max(1, width - 2)] + "…"


def _snapshot() -> tuple[int | None, str | None]:
    tracer = sys.modules.get("convshape.tracer")  # never import it here: that would import torch
    recorder = getattr(tracer, "current", None) if tracer is not None else None
    if recorder is None:
        return None, None
    try:
        stack, rows = recorder.stack, recorder.rows
        module = stack[-1].name if stack else None
        if not module and rows:  # the root's own code is running: name the last call it made
            module = rows[-1].name
        return len(rows), module
    except (IndexError, AttributeError):  # the trace moved on while we looked
        return len(recorder.rows), None


@contextmanager
def live_progress(stream: TextIO, enabled: bool, width: int = 80, delay: float = DELAY_S) -> Iterator[None]:
    """Show the live line on ``stream`` while the body runs, when ``enabled`` and it runs past ``delay``."""
    if not enabled:
        yield
        return
    stop = threading.Event()

    def run() -> None:
        if stop.wait(delay):
            return
        shown = ""
        while not stop.is_set():
            line = status_line(*_snapshot(), width)
            if line != shown:
                stream.write("\r\x1b[2K" + line)
                stream.flush()
                shown = line
            stop.wait(INTERVAL_S)
        if shown:
            stream.write("\r\x1b[2K")
            stream.flush()

    thread = threading.Thread(target=run, name="convshape-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
