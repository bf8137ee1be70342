"""One exception root for everything convshape reports to a user.

The CLI catches :class:`ConvshapeError` once and prints its message without a traceback.
Each subclass carries the exit code the CLI uses for it.
"""

from __future__ import annotations


class ConvshapeError(Exception):
    """Root of every error convshape raises on purpose; ``str(e)`` is the user-facing message."""

    exit_code: int = 2


class InputSpecError(ConvshapeError, ValueError):
    """An ``--input`` / ``--arg`` / ``--device`` value that cannot be parsed."""


class LoadError(ConvshapeError):
    """The model file or name could not be imported or built."""


class RunTimeout(ConvshapeError):
    """Loading or building the model ran past ``--timeout``."""

    exit_code = 1


class TraceError(ConvshapeError):
    """The model's forward pass failed; ``trace`` keeps the rows recorded up to the failure."""

    exit_code = 1

    def __init__(self, message: str, trace: object | None = None) -> None:
        super().__init__(message)
        self.trace = trace


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, even for an exception whose ``__str__`` raises or returns something odd."""
    try:
        text = str(exc)
    except BaseException as inner:
        if isinstance(inner, KeyboardInterrupt):
            raise
        return f"<its message could not be shown: {type(inner).__name__} in {type(exc).__name__}.__str__>"
    return text if isinstance(text, str) else repr(text)
