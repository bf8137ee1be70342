"""Names for places in the user's code: ``net.py:14``, or ``cell [3]:5`` for a Jupyter/IPython cell.

IPython compiles each cell under a temporary file name (``/tmp/ipykernel_123/2795295881.py``); its
compiler keeps which execution count each name belongs to, which is what a notebook shows as ``[3]``.
"""

from __future__ import annotations

import os
import sys


def notebook_cell(filename: str) -> str | None:
    """``cell [3]`` when ``filename`` is an IPython cell of this process, else None."""
    if "IPython" not in sys.modules:  # never import IPython: a plain script has no cells
        return None
    try:
        shell = sys.modules["IPython"].get_ipython()
        number = shell.compile._filename_map.get(filename) if shell is not None else None
    except Exception:  # an IPython without this map: fall back to the file name
        return None
    return f"cell [{number}]" if isinstance(number, int) else None


def place(filename: str, line: int | None) -> str:
    """``net.py:14`` (the file's base name) or ``cell [3]:5``."""
    return f"{notebook_cell(filename) or os.path.basename(filename)}:{line}"
