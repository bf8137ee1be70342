"""Where output goes: the format a file's extension asks for, and writing the file."""

from __future__ import annotations

import os

from .errors import ConvshapeError, InputSpecError

EXTENSIONS = {".txt": "table", ".json": "json", ".md": "markdown", ".markdown": "markdown", ".csv": "csv",
              ".html": "html", ".htm": "html", ".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot",
              ".gv": "dot"}


def choose_format(fmt: str | None, output: str | None, allowed: tuple[str, ...]) -> str:
    """``--format`` if given, else the one ``-o FILE``'s extension names, else ``table``; checked against
    what the command can write."""
    if fmt is None and output is not None:
        ext = os.path.splitext(output)[1].lower()
        fmt = EXTENSIONS.get(ext)
        if fmt is None:
            known = ", ".join(f"{e} ({f})" for e, f in EXTENSIONS.items() if f in allowed)
            raise InputSpecError(f"-o {output}: cannot tell the format from the extension {ext or '(none)'!r}; "
                                 f"use one of {known}, or give --format")
    fmt = fmt or "table"
    if fmt not in allowed:
        raise InputSpecError(f"--format {fmt}: this command writes {', '.join(allowed)}; "
                             "html, mermaid and dot are for trace")
    return fmt


def write_output(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8, a final newline), saying clearly when that is impossible."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError as e:
        raise ConvshapeError(f"-o {path}: cannot write the file ({e.strerror or e}); "
                             "check that the folder exists and is writable") from e
