"""The ``convshape`` console script. ``convshape --help`` and ``--version`` are answered here, from
:mod:`convshape.helptext`, in the time Python takes to start; every other command line goes to :mod:`convshape.cli`
(typer, and torch when the command needs it)."""

from __future__ import annotations

import os
import sys

from . import __version__
from .helptext import PROG, main_help


def main() -> None:
    argv = sys.argv[1:]
    if os.path.basename(sys.argv[0]) == PROG and argv in (["--help"], ["--version"]):
        try:
            sys.stdout.write(main_help() if argv == ["--help"] else f"{PROG} {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `convshape --help | head -1`: the reader has gone, as with any command
            os._exit(0)
        return
    from .cli import main as run

    run()
