"""Word why a forward pass stopped, in the user's terms: the one place a failure becomes a sentence.

Pure over plain data: the rows recorded, and the facts the recorder kept (:class:`~convshape.tracer.Stop`).
A layer's mismatch comes from its attributes and the shapes it received (:mod:`convshape.diagnose`),
never from parsing torch's message.
"""

from __future__ import annotations

from .diagnose import check_layer
from .errors import safe_str
from .fc import LINEARS, describe_origin, flatten_origin
from .isolation import ModelExit, TimedOut
from .paths import user_where
from .records import Failure, Row
from .text import shape_text
from .tracer import Stop, TooManyCalls


def _stopped_by(exc: BaseException, last: Row | None) -> str | None:
    """A sentence for a pass that did not fail on a shape: it exited, ran too long, looped, recursed."""
    at = f"; the last call was {last.op} at {last.source}" if last is not None and last.source else ""
    if isinstance(exc, (SystemExit, ModelExit)):
        how = exc.how if isinstance(exc, ModelExit) else "sys.exit"
        return f"the model exited during the forward pass: its code called {how}({exc.code!r})"
    if isinstance(exc, TimedOut):
        return (f"the forward pass did not finish within {exc.seconds:g} s (--timeout){at}; "
                "give it longer with --timeout SECONDS, or look for a loop that never ends")
    if isinstance(exc, TooManyCalls):
        return (f"the forward pass made more than {exc.limit:,} calls and was stopped{at}; "
                "does it loop without end?")
    if isinstance(exc, RecursionError):
        return "the forward pass recursed without end (RecursionError): does a forward call itself?"
    return None


def describe(rows: tuple[Row, ...], stop: Stop) -> Failure:
    """The :class:`Failure` of a pass that stopped: which row, what it received, what it expected, the fix."""
    exc = stop.exception
    message = safe_str(exc).strip() or type(exc).__name__
    first_line = message.splitlines()[0]
    error_type = type(exc).__name__
    source = user_where(exc)  # where the user's code was when it failed
    layer = rows[stop.module_row] if stop.module_row is not None else None
    special = _stopped_by(exc, rows[-1] if rows else None)
    if special is not None:
        return Failure(summary=special, message=message, error_type=error_type,
                       row=layer.index if layer is not None else None, module=layer.name if layer else None,
                       layer_type=layer.op if layer else None, received=layer.input_shapes if layer else (),
                       source=source)
    if stop.function_row is not None:
        fn = rows[stop.function_row]
        shapes = ", ".join(shape_text(s) for s in fn.input_shapes)
        return Failure(
            summary=f"{fn.op} at {fn.source} failed on input {shapes}: {first_line}",
            message=message, error_type=error_type, row=fn.index,
            module=layer.name if layer else None, layer_type=layer.op if layer else None,
            received=fn.input_shapes, source=fn.source,
        )
    if layer is None:
        return Failure(summary=f"the forward pass failed before any layer ran: {first_line}",
                       message=message, error_type=error_type, row=None, module=None, layer_type=None,
                       source=source)
    mismatch = check_layer(layer.op, layer.attrs, layer.input_shapes)
    label = f"{layer.name} ({layer.op})" if layer.name else layer.op
    if mismatch is not None and layer.op in LINEARS:
        got = layer.input_shapes[0][-1] if layer.input_shapes and layer.input_shapes[0] else 0
        origin = describe_origin(got, flatten_origin(rows, layer))
        summary = f"{label} expects {mismatch.expected} but receives {origin}"
        if mismatch.fix:
            summary += f"; write {mismatch.fix}"
    elif mismatch is not None:
        summary = f"{label} expects {mismatch.expected}, received {mismatch.received}"
    else:
        shapes = ", ".join(shape_text(s) for s in layer.input_shapes) or "no tensors"
        summary = f"{label} failed on input {shapes}: {first_line}"
    return Failure(
        summary=summary, message=message, error_type=error_type, row=layer.index,
        module=layer.name, layer_type=layer.op, received=layer.input_shapes,
        expected=mismatch.expected if mismatch else None, fix=mismatch.fix if mismatch else None,
        source=source,
    )
