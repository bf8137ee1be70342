"""A fixed-width text grid: rich's SIMPLE_HEAD look, built in one pass.

rich's Table measures and wraps every cell; on a 70B model's 6,000-row trace that took seconds.
A grid is laid out once from the longest cell of each column and never wraps: wide rows stay one
line each, so a large trace can be read, grepped and diffed line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text

Cell = tuple[str, str]  # (text, rich style; "" for none)
GAP = "   "


def grid(title: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]], right: frozenset[int] = frozenset(),
         out: Text | None = None, after: dict[int, list[str]] | None = None, after_indent: dict[int, int] | None = None
         ) -> Text:
    """Append a titled grid to ``out`` (a new Text if None) and return it.

    ``after`` maps a row's position to lines printed under it (explanations), indented by ``after_indent``.
    """
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, (cell, _) in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    last = len(headers) - 1

    def pad(i: int, cell: str) -> str:
        if i in right:
            return cell.rjust(widths[i])
        return cell if i == last else cell.ljust(widths[i])

    text = out if out is not None else Text(no_wrap=True, overflow="ignore")
    text.append(f"{title}\n\n", style="bold")
    text.append(GAP.join(pad(i, h) for i, h in enumerate(headers)).rstrip() + "\n", style="bold")
    text.append("─" * (sum(widths) + len(GAP) * last) + "\n")
    for position, row in enumerate(rows):
        for i, (cell, style) in enumerate(row):
            piece = pad(i, cell)
            if i < last:
                piece += GAP
            if style:
                text.append(piece, style=style)
            else:
                text.append(piece)
        text.append("\n")
        if after and position in after:
            pad_to = " " * ((after_indent or {}).get(position, 0) + 4)
            for line in after[position]:
                text.append(f"{pad_to}↳ {line}\n", style="cyan")
    return text
