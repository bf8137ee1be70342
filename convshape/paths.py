"""Whose code is this frame: torch's, convshape's, or the user's?"""

from __future__ import annotations

import os
import traceback

import torch

from .cells import place

TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NOT_USER = (TORCH_DIR, OWN_DIR, "<frozen")  # "<frozen importlib._bootstrap>"


def is_user_file(filename: str) -> bool:
    return not filename.startswith(_NOT_USER) and not os.path.abspath(filename).startswith(_NOT_USER)


def user_frame_summary(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost traceback entry of ``exc`` in the user's code."""
    chosen = None
    for entry in traceback.extract_tb(exc.__traceback__):
        if is_user_file(entry.filename):
            chosen = entry
    return chosen


def user_where(exc: BaseException) -> str | None:
    """``net.py:14``: where the user's code was when ``exc`` was raised."""
    entry = user_frame_summary(exc)
    return place(entry.filename, entry.lineno) if entry is not None else None
