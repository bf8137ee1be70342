"""``convshape sizes`` as text: which input sizes run, why the others fail, and the sizes of ``--try``."""

from __future__ import annotations

from rich.text import Text

from ..symbolic_records import SizesReport


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def sizes_text(report: SizesReport) -> Text:
    """The report as lines of text (rich Text, colour where a terminal shows it)."""
    text = Text()
    limits = ", ".join(f"{n} 1..{v}" for n, v in report.limits.items())
    text.append(f"{report.model}  input {', '.join(report.inputs)}", style="bold")
    text.append(f"  (checked {limits}: {report.passes} symbolic passes decided "
                f"{100 * report.decided:.1f}% of these sizes)\n\n")
    if report.runs:
        text.append("Runs for:\n", style="bold green")
        for box in report.runs:
            text.append("  " + ";  ".join(f"{n} {v}" for n, v in box.items()) + "\n")
        if len(report.names) > 1:
            text.append("Each size, with some choice of the others: " +
                        ";  ".join(f"{n} {v}" for n, v in report.each.items()) + "\n")
        if report.smallest is not None:
            text.append(f"Smallest that runs: {_sizes(report.smallest)}" +
                        (" (of the sizes decided)" if report.decided < 1 else "") + "\n")
    else:
        text.append("No size checked runs.\n", style="bold red")
    if report.fails:
        text.append("\nFails:\n", style="bold red")
        for rule in report.fails:
            where = " at ".join(x for x in (rule.layer, rule.source) if x)
            needs = f"needs {rule.needs}" if rule.needs else "fails"
            text.append(f"  ✗ {where}: ", style="red")
            text.append(f"{needs}\n", style="bold")
            text.append(f"      e.g. {_sizes(rule.example)}: {rule.summary}\n", style="dim")
    if report.tried:
        text.append("\nTried:\n", style="bold")
        for t in report.tried:
            if t.runs:
                text.append(f"  ✓ {_sizes(t.sizes)} runs\n", style="green")
            else:
                text.append(f"  ✗ {_sizes(t.sizes)} fails: ", style="red")
                text.append(f"{t.reason}\n")
            if t.predicted is not None and t.predicted != t.runs:
                text.append("    (the symbolic passes said otherwise: please report it)\n", style="yellow")
    for note in report.notes:
        text.append(f"note: {note}\n", style="dim")
    return text
