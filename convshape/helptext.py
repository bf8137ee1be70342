"""The top-level help: its words, which ``cli`` registers with typer, and the same page laid out as typer lays it
out (click's plain help format: ``rich_markup_mode=None``), so ``convshape --help`` can answer without importing
typer, rich or torch. ``tests/test_cli_help.py`` holds the two pages equal at every terminal width. Nothing here
imports anything but the standard library's ``shutil``, which ``site`` has imported already.
"""

from __future__ import annotations

import shutil

PROG = "convshape"
APP_HELP = "Every tensor shape through a PyTorch model, its parameters, and the in_features each Linear needs."
VERSION_HELP = "Show the version and exit."
HELP_HELP = "Show this message and exit."  # typer's own line for --help (cli registers no text for it)
# (name, the one line the command list shows), in the order cli registers them
COMMANDS: tuple[tuple[str, str], ...] = (
    ("trace", "Every layer and op in call order, with input and output shapes."),
    ("params", "Parameter tensors, counts, trainable/frozen and totals."),
    ("fc-size", "The in_features each nn.Linear needs, and the fix."),
    ("sizes", "Which input sizes the model accepts, and why the others fail."),
    ("annotate", "Your forward's source with each line's shape as a comment."),
    ("layer", "One layer on its own: output shape, arithmetic, parameters."),
)
SHORT_HELP = dict(COMMANDS)

_INDENT = 2  # a section's rows, and the description, sit this far in
_MAX_WIDTH, _MIN_WIDTH = 80, 50  # the page is the terminal's width less 2, within [50, 78]
_GAP = 2  # between a term and its text


def page_width(columns: int) -> int:
    """The width the page is laid out to on a terminal ``columns`` wide."""
    return max(min(columns, _MAX_WIDTH) - 2, _MIN_WIDTH)


def wrapped(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces, words in order (a word longer than
    ``width`` is cut at ``width``)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:  # no space to break at
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def _definitions(rows: tuple[tuple[str, str], ...], width: int) -> list[str]:
    """Terms in a column as wide as the longest (at most 30), each text wrapped beside its term."""
    column = min(max(len(term) for term, _ in rows), 30) + _GAP
    text_width = max(width - column - _INDENT, 10)
    out = []
    for term, text in rows:
        lines = wrapped(text, text_width)
        pad = " " * (_INDENT + column)
        if len(term) <= column - _GAP:
            out.append(" " * _INDENT + term + " " * (column - len(term)) + (lines[0] if lines else ""))
        else:  # a term wider than the column: its text starts on the next line
            out.append(" " * _INDENT + term)
            out.append(pad + (lines[0] if lines else ""))
        out.extend(pad + line for line in lines[1:])
    return out


def main_help(columns: int | None = None) -> str:
    """``convshape --help`` on a terminal ``columns`` wide (None: this one's, as typer reads it)."""
    width = page_width(shutil.get_terminal_size().columns if columns is None else columns)
    lines = [f"Usage: {PROG} [OPTIONS] COMMAND [ARGS]...", ""]
    lines += [" " * _INDENT + line for line in wrapped(APP_HELP, max(width - _INDENT, 11))]
    lines += ["", "Options:"]
    lines += _definitions((("--version", VERSION_HELP), ("--help", HELP_HELP)), width)
    lines += ["", "Commands:"]
    lines += _definitions(COMMANDS, width)
    return "\n".join(lines) + "\n"
