"""fc-size with symbolic sizes: each Linear's ``in_features`` as a formula of the input's sizes, the exact
set of sizes where the declared value holds, and what to write to take any size.

The set is checked, not only solved: the sizes where the formula gives the declared value are visited with
symbolic passes (repairing Linear mismatches, so every Linear is reached), and only the sizes whose path to
the Linear a pass traced are claimed (:func:`convshape.sizes.Grid.region` up to the Linear's row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from . import symexpr
from .inputlang import Inputs
from .records import FcReport, LinearCheck
from .sizes import Grid, boxes, default_limit
from .symbolic import Target, names_in, run_pass
from .symbolic_records import SizeExpr, expr_of

PASSES = 8  # symbolic passes per Linear, at most


def _first(value: str) -> int:
    digits = ""
    for ch in value:
        if ch.isdigit():
            digits += ch
        elif digits:
            break
    return int(digits) if digits else 1


def fits_text(found: list[dict[str, str]]) -> str:
    """``H, W in 28..31`` (every size the same set) or ``H in 16..19 and W in 76..79``, smallest sizes first,
    several joined by ``; or``; a size that takes any value is left out."""
    parts = []
    for box in sorted(found, key=lambda b: sum(_first(v) for v in b.values())):
        named = {n: v for n, v in box.items() if v != "any"}
        if not named:
            parts.append("every size")
            continue
        values = set(named.values())
        if len(values) == 1 and len(named) > 1:
            parts.append(f"{', '.join(named)} in {values.pop()}")
        else:
            parts.append(" and ".join(f"{n} in {v}" for n, v in named.items()))
    return "; or ".join(parts)


def _fits(check: LinearCheck, target: Target, given: Inputs, options: Any, grid: Grid) -> torch.Tensor:
    axes = {n: grid.axes[n] for n in grid.names}
    formula = expr_of(check.required)
    wanted = symexpr.evaluate_on_grid(formula, axes) == check.declared
    wanted = torch.ones(grid.shape, dtype=torch.bool) & wanted
    fits = grid.empty()
    covered = grid.empty()
    score = grid.score("smallest")
    quiet = replace(options, costs=False, repair_linear=True)
    for _ in range(PASSES):
        sizes = grid.pick(covered, score, want=wanted)
        if sizes is None:
            break
        p = run_pass(target.model, given, sizes, quiet)
        row = next((r.index for r in p.rows if r.kind == "module" and r.name == check.name), None)
        if row is None:
            covered |= grid.point(sizes)
            continue
        region = grid.region(p, upto_row=row)
        covered |= region
        got = p.rows[row].input_shapes[0][-1] if p.rows[row].input_shapes else None
        value = got.node.hint if isinstance(got, torch.SymInt) else got
        if value == check.declared:
            fits |= region & wanted
    return fits


def _suggestions(check: LinearCheck, found: list[dict[str, str]], smallest: dict[str, int] | None) -> tuple[str, ...]:
    out = []
    formula = expr_of(check.required)
    out.append(f"nn.LazyLinear({check.out_features}) takes in_features from its first input, so any size "
               f"that reaches {check.name} works; its weight then has {check.out_features} x ({formula}) entries, "
               "so the parameter count changes with the size, and a checkpoint saved at one size loads only at "
               "sizes with the same in_features")
    origin = check.flattened_from
    if origin is not None and len(origin.shape) >= 3:
        spatial = origin.shape[2:]
        channels = origin.shape[1]
        dims = len(spatial)
        if 1 <= dims <= 3 and not isinstance(channels, SizeExpr):
            at = smallest or {}
            target_sizes = tuple(int(symexpr.evaluate(expr_of(d), at)) if at else int(d) for d in spatial)
            features = int(channels) * math.prod(target_sizes)
            where = f" before the flatten at {origin.flatten_source}" if origin.flatten_source else \
                " before the flatten"
            sizes = ", ".join(map(str, target_sizes))
            keep = "keeps in_features" if features == check.declared else "makes in_features"
            out.append(f"nn.AdaptiveAvgPool{dims}d(({sizes})){where} {keep} {channels} x "
                       f"{' x '.join(map(str, target_sizes))} = {features} for every size the layers before it "
                       f"accept (the {'map' if dims > 1 else 'sequence'} is averaged down to {sizes}); "
                       + (f"{check.name} stays nn.Linear({check.declared}, {check.out_features})"
                          if features == check.declared else f"write nn.Linear({features}, {check.out_features})"))
    return tuple(out)


def with_formulas(report: FcReport, target: Target, given: Inputs, options: Any,
                  limit: int | None = None) -> FcReport:
    """``report`` (of a symbolic trace) with each Linear's formula, the sizes it fits, and suggestions."""
    names = names_in(given)
    grid = Grid(names, dict.fromkeys(names, limit or default_limit(len(names))))
    layers = []
    for check in report.layers:
        if not isinstance(check.required, SizeExpr) or check.declared is None:
            layers.append(replace(check, required_formula=expr_of(check.required)))
            continue
        fits = _fits(check, target, given, options, grid)
        found = boxes(fits, grid.names, grid.limits)
        smallest = None
        if bool(fits.any()):
            score = torch.where(fits, grid.score("smallest"), torch.iinfo(torch.int64).max)
            smallest = grid.sizes_at(int(score.flatten().argmin()))
        limits = ", ".join(f"{n} <= {v}" for n, v in grid.limits.items())
        text = (f"{check.name} = nn.Linear({check.declared}, {check.out_features}) fits {fits_text(found)}"
                if found else f"no size ({limits}) gives {check.name} its declared in_features={check.declared}")
        layers.append(replace(check, required_formula=check.required.expr, fits=tuple(found), fits_text=text,
                              suggestions=_suggestions(check, found, smallest)))
    return replace(report, layers=tuple(layers))


def symbolic_fc(target: Target, given: Inputs, options: Any, notes: Sequence[str] = (),
                layer: str | None = None) -> tuple[Any, BaseException | None, FcReport]:
    """fc-size with symbolic sizes: a trace at sample sizes where the model runs, when there are any (so each
    Linear's status is at sizes it fits); else one that repairs Linear mismatches at the default sizes, so every
    Linear is reached. Then each Linear's formula, the sizes it fits, and suggestions."""
    from .fc import fc_report
    from .symbolic import trace_symbolic

    plain = replace(options, repair_linear=False)
    trace, exception = trace_symbolic(target, given, plain, notes)
    if trace.error is not None:
        trace, exception = trace_symbolic(target, given, replace(options, repair_linear=True), notes)
    return trace, exception, with_formulas(fc_report(trace, layer), target, given, options)
