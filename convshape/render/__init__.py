"""Renderers turn reports into values (rich Text or JSON strings); only the CLI prints them."""

from __future__ import annotations

from rich.text import Text


def to_text(text: Text) -> str:
    """A rendered table as plain text, without colour: what golden files and pipes see."""
    return "\n".join(line.rstrip() for line in text.plain.splitlines()) + "\n"
