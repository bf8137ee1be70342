"""Renderers turn reports into values (rich renderables or strings); only the CLI prints them."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from rich.text import Text

from ..text import shape_text


def to_text(renderable: RenderableType, width: int = 120) -> str:
    """Render without colour at a fixed width: what golden files and pipes see."""
    if isinstance(renderable, Text):  # a grid: its plain text is already laid out
        return "\n".join(line.rstrip() for line in renderable.plain.splitlines()) + "\n"
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False,
                      highlight=False, legacy_windows=False)
    console.print(renderable)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def shapes_text(shapes: tuple[tuple[int, ...], ...], limit: int = 4) -> str:
    if not shapes:
        return "-"
    shown = ", ".join(shape_text(s) for s in shapes[:limit])
    return shown + (f" +{len(shapes) - limit} more" if len(shapes) > limit else "")


def count_text(n: int) -> str:
    return f"{n:,}" if n else "--"


def megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.2f}"

