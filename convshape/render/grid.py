"""A fixed-width text grid: rich's SIMPLE_HEAD look, built in one pass.

rich's Table measures and wraps every cell; on a 70B model's 6,000-row trace that took seconds.
A grid is laid out once from the longest cell of each column and never wraps: wide rows stay one
line each, so a large trace can be read, grepped and diffed line by line.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from rich.text import Text

Cell = tuple[str, str]  # (text, rich style; "" for none)
GAP = "   "


def grid(title: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]], right: frozenset[int] = frozenset(),
         out: Text | None = None, after: dict[int, list[str]] | None = None, after_indent: dict[int, int] | None = None,
         gap: str = GAP, width: int | None = None) -> Text:
    """Append a titled grid to ``out`` (a new Text if None) and return it.

    ``after`` maps a row's position to lines printed under it (explanations), indented by ``after_indent``.
    With ``width``, the title and those lines wrap, and a row still wider is cut (the caller has made
    the cells fit already; this is the last resort).
    """
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, (cell, _) in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    last = len(headers) - 1

    def cut(line: str) -> str:
        return line if width is None or len(line) <= width else line[:width - 1] + "…"

    def pad(i: int, cell: str) -> str:
        if i in right:
            return cell.rjust(widths[i])
        return cell if i == last else cell.ljust(widths[i])

    text = out if out is not None else Text(no_wrap=True, overflow="ignore")
    if title:
        for line in textwrap.wrap(title, width, subsequent_indent="  ") if width else [title]:
            text.append(f"{line}\n", style="bold")
        text.append("\n")
    text.append(cut(gap.join(pad(i, h) for i, h in enumerate(headers)).rstrip()) + "\n", style="bold")
    text.append(cut("─" * (sum(widths) + len(gap) * last)) + "\n")
    for position, row in enumerate(rows):
        pieces = [(pad(i, cell) + (gap if i < last else ""), style) for i, (cell, style) in enumerate(row)]
        if width is not None and sum(len(p) for p, _ in pieces) > width:
            pieces = _cut_pieces(pieces, width)
        for piece, style in pieces:
            if style:
                text.append(piece, style=style)
            else:
                text.append(piece)
        text.append("\n")
        if after and position in after:
            pad_to = " " * ((after_indent or {}).get(position, 0) + 4)
            for note in after[position]:
                lines = (textwrap.wrap(note, max(20, width - len(pad_to) - 2), subsequent_indent="  ")
                         if width else [note])
                for piece_line in lines:
                    text.append(f"{pad_to}{'↳ ' if piece_line is lines[0] else '  '}{piece_line}\n", style="cyan")
    return text


def _cut_pieces(pieces: list[tuple[str, str]], width: int) -> list[tuple[str, str]]:
    """A row's styled pieces cut to ``width`` characters, the last one ending in an ellipsis."""
    out: list[tuple[str, str]] = []
    room = width - 1
    for piece, style in pieces:
        if len(piece) >= room:
            out.append((piece[:room] + "…", style))
            break
        out.append((piece, style))
        room -= len(piece)
    return out
