"""Plain-text formatting of numbers and shapes, shared by messages and renderers (no torch, no rich)."""

from __future__ import annotations


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    """(64, 800) -> '[64, 800]', the way torch.Size prints."""
    return "[" + ", ".join(map(str, shape)) + "]"


def shapes_text(shapes: tuple[tuple[int, ...], ...], limit: int = 4) -> str:
    """Several shapes on one line, the first ``limit`` of them."""
    if not shapes:
        return "-"
    shown = ", ".join(shape_text(s) for s in shapes[:limit])
    return shown + (f" +{len(shapes) - limit} more" if len(shapes) > limit else "")


def count_text(n: int) -> str:
    """431080 -> '431,080'; 0 -> '--'."""
    return f"{n:,}" if n else "--"


def megabytes(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.2f}"


def si_count(n: int | None) -> str:
    """146752000 -> '146.75 M'; None -> 'unknown'."""
    if n is None:
        return "unknown"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return str(n)


def si_bytes(n: int) -> str:
    """2949120 -> '2.95 MB'; 332 -> '332 B'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n} B"


def failure_parts(summary: str, fix: str | None, source: str | None, error_type: str,
                  message: str) -> list[tuple[str, str]]:
    """What every renderer shows of a failure, in order, as (kind, text): the summary; the fix, when the
    summary does not already say it; where; and torch's own words (first line). Each format styles the kinds."""
    parts = [("summary", summary)]
    if fix and fix not in summary:
        parts.append(("fix", fix))
    if source:
        parts.append(("at", source))
    parts.append(("torch", f"torch said ({error_type}): {message.splitlines()[0] if message else ''}"))
    return parts
