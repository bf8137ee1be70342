"""Checkpoint listings and model-vs-checkpoint comparisons, as rich Text or JSON (no torch needed)."""

from __future__ import annotations

import json

from rich.text import Text

from ..checkpoint_records import CheckpointReport, WeightsReport
from ..text import shape_text, si_bytes, si_count
from .grid import grid
from .json import _dump

_LIST_LIMIT = 12  # missing/unexpected keys shown before "... and N more"


def checkpoint_table(report: CheckpointReport) -> Text:
    """Every tensor, a subtotal under each module prefix holding several, then totals."""
    by_group: dict[str, list[int]] = {}
    for i, t in enumerate(report.tensors):
        by_group.setdefault(t.group, []).append(i)
    rows = []
    for g in report.groups:
        for i in by_group[g.name]:
            t = report.tensors[i]
            rows.append([(t.name, ""), (shape_text(t.shape), ""), (t.dtype, ""), (f"{t.numel:,}", ""),
                         (si_bytes(t.bytes), ""), (", ".join(t.shared_with), "cyan")])
        if g.tensors > 1:
            rows.append([(f"  {g.name or '(top level)'} subtotal", "dim"), ("", ""), ("", ""),
                         (f"{g.numel:,}", "dim"), (si_bytes(g.bytes), "dim"), ("", "")])
    title = f"{report.path}  {report.format}, {si_bytes(report.file_bytes)}"
    text = grid(title, ("Tensor", "Shape", "Dtype", "Count", "Bytes", "Shares storage with"), rows,
                frozenset({3, 4}))
    totals = report.totals
    text.append(f"\nTensors: {totals.tensors:,}\nTotal elements: {totals.numel:,} ({si_count(totals.numel)})\n"
                f"Total size: {si_bytes(totals.bytes)}")
    if report.storage_bytes != totals.bytes:
        text.append(f" (distinct storage: {si_bytes(report.storage_bytes)})")
    text.append("\n")
    if len(report.dtypes) > 1:
        text.append("By dtype: " + ", ".join(f"{d} {n:,}" for d, n in report.dtypes.items()) + "\n")
    if 1 < len(report.top_level) <= 40:
        text.append("By top-level key: " + ", ".join(
            f"{g.name} {si_count(g.numel)} ({si_bytes(g.bytes)})" for g in report.top_level) + "\n")
    sds = sorted((s for s in report.state_dicts if s.name), key=lambda s: (-s.tensors, -s.numel))
    if sds:
        top = sds[0]
        more = f"; {len(sds) - 1} more with at most {sds[1].tensors} tensor(s) each" if len(sds) > 1 else ""
        text.append(f"Dicts of tensors: checkpoint[{top.name!r}] ({top.tensors} tensors, {si_count(top.numel)} "
                    f"elements){more}\n")
    if report.metadata:
        items = list(report.metadata.items())
        text.append("Metadata: " + ", ".join(f"{k}={v!r}" for k, v in items[:10])
                    + (f" +{len(items) - 10} more" if len(items) > 10 else "") + "\n")
    for note in report.notes:
        text.append(f"note: {note}\n", style="yellow")
    return text


def _keys(label: str, keys: tuple[str, ...], text: Text, style: str) -> None:
    if not keys:
        return
    shown = ", ".join(keys[:_LIST_LIMIT]) + (f" ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT
                                             else "")
    text.append(f"  {label} ({len(keys)}): ", style=style)
    text.append(shown + "\n")


def weights_text(report: WeightsReport, text: Text | None = None) -> Text:
    """The comparison: a verdict line, the prefix rename, mismatches with their fix, missing/unexpected keys."""
    text = text if text is not None else Text()
    where = f"[{report.state_dict!r}]" if report.state_dict else ""
    head = f"\nweights {report.checkpoint}{where} vs {report.model}: "
    p = report.prefix
    text.append(head)
    if report.ok:
        text.append(f"✓ all {report.model_keys} keys match in name and shape\n", style="bold green")
    elif p is not None:
        text.append(f"✗ {p.matched_before} of {report.model_keys} keys match as saved, {report.matched} after the "
                    "prefix fix", style="bold red")
    else:
        text.append(f"✗ {report.matched} of {report.model_keys} keys fit", style="bold red")
    if not report.ok:
        text.append(f" ({len(report.missing)} missing, {len(report.unexpected)} unexpected, "
                    f"{len(report.mismatches)} of a different shape)\n")
    if p is not None:
        verb = "strip" if p.action == "strip" else "add"
        text.append(f"  prefix: {verb} {p.prefix!r} on the checkpoint's keys", style="bold")
        text.append(f" (saved from {p.cause}): {p.matched_after} keys match instead of {p.matched_before}\n")
        text.append(f"    {p.code}\n", style="green")
    for m in report.mismatches:
        text.append(f"  ✗ {m.key}", style="bold red")
        text.append(f": checkpoint {shape_text(m.checkpoint_shape)}, model {shape_text(m.model_shape)}")
        if m.current:
            text.append(f"  ({m.module} = {m.current})", style="dim")
        text.append("\n")
        if m.receives_from is not None:
            verdict = {True: "it fits the checkpoint", False: "it does not fit the checkpoint either: the "
                       "layers before it differ from the checkpoint's model", None: ""}[m.fits_forward]
            shape = shape_text(m.receives) if m.receives else "?"
            text.append(f"    the forward pass gives {m.module or 'it'} {shape}: {m.receives_from}"
                        + (f"; {verdict}" if verdict else "") + "\n", style="cyan")
    for module, fix in report.fixes.items():
        text.append(f"  fix: {module} = {fix}\n", style="bold green")
    _keys("missing from the checkpoint", report.missing, text, "yellow")
    _keys("unexpected in the checkpoint", report.unexpected, text, "yellow")
    for note in report.notes:
        text.append(f"note: {note}\n", style="yellow")
    return text


def with_weights(document: str, report: WeightsReport) -> str:
    """A command's JSON document with the comparison added under ``"weights"``."""
    data = json.loads(document)
    data["weights"] = report.to_dict()
    return _dump(data, 0)
