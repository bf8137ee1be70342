"""Which input sizes a model accepts, read from the guards torch records in symbolic passes.

One symbolic pass (:func:`convshape.symbolic.run_pass`) at some sizes records, as guards, every decision
torch and the model took on a size. All sizes that satisfy the same guards take the same path, so they all
run, or all fail at the same row for the same reason. :func:`explore` runs passes at sizes not yet decided
(the smallest first) and marks, on a grid of sizes from 1 to a limit, which ones run and which fail; a pass
that stops where a concrete forward pass at the same sizes does not (symbols cannot follow) decides only its
own sizes. Claims are made only for decided sizes: never "runs" for a size no pass covered.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sympy  # type: ignore[import-untyped]
import torch

from . import symexpr
from .inputlang import Inputs
from .symbolic import (
    DEFAULT_SAMPLE,
    Pass,
    Target,
    _limitation,
    _readable,
    attribute,
    concrete,
    kernel_choice,
    names_in,
    requirements,
    run_pass,
    to_trace,
)
from .symbolic_records import FailRule, Requirement, SizesReport, Tried

CELLS = 1_000_000  # the grid of sizes checked holds at most about this many points
MAX_LIMIT = 512
DEFAULT_PASSES = 24
MAX_BOXES = 12


def default_limit(count: int) -> int:
    """Each size is checked from 1 to this: 512 for one or two sizes, less for more (the grid's points)."""
    return max(8, min(MAX_LIMIT, int(CELLS ** (1 / max(count, 1)))))


class Grid:
    """Every combination of sizes from 1 to each size's limit, as broadcasting int64 axes."""

    def __init__(self, names: Sequence[str], limits: dict[str, int]) -> None:
        self.names = tuple(names)
        self.limits = {n: limits[n] for n in self.names}
        self.shape = tuple(self.limits[n] for n in self.names)
        dims = len(self.names)
        self.axes = {n: torch.arange(1, self.limits[n] + 1).view([-1 if k == i else 1 for k in range(dims)])
                     for i, n in enumerate(self.names)}

    def empty(self) -> torch.Tensor:
        return torch.zeros(self.shape, dtype=torch.bool)

    def index(self, sizes: dict[str, int]) -> tuple[int, ...] | None:
        if any(not 1 <= sizes[n] <= self.limits[n] for n in self.names):
            return None
        return tuple(sizes[n] - 1 for n in self.names)

    def sizes_at(self, flat: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for n, extent in zip(reversed(self.names), reversed(self.shape), strict=True):
            out[n] = flat % extent + 1
            flat //= extent
        return {n: out[n] for n in self.names}

    def point(self, sizes: dict[str, int]) -> torch.Tensor:
        m = self.empty()
        at = self.index(sizes)
        if at is not None:
            m[at] = True
        return m

    def holds(self, expr: Any, p: Pass) -> torch.Tensor:
        """Where ``expr`` (over the pass's symbols) is true, on the whole grid."""
        values = {sym: self.axes[name] for sym, name in p.symbols.items()}
        v = symexpr.on_grid(expr, values)
        m = torch.ones(self.shape, dtype=torch.bool)
        if isinstance(v, torch.Tensor):
            m &= v.bool()
        elif not v:
            m[...] = False
        return m

    def region(self, p: Pass, upto_row: int | None = None) -> torch.Tensor:
        """The sizes that take the pass's path (up to the row ``upto_row``, when given): all its guards hold."""
        values = {sym: self.axes[name] for sym, name in p.symbols.items()}
        m = torch.ones(self.shape, dtype=torch.bool)
        try:
            for expr, where in p.conditions():
                if upto_row is not None and where.next_row > upto_row:
                    break
                if kernel_choice(expr, where):
                    continue
                v = symexpr.on_grid(expr, values)
                if isinstance(v, torch.Tensor):
                    m &= v.bool()
                elif not v:
                    m[...] = False
        except (symexpr.Unsupported, TypeError, ValueError, RuntimeError):
            return self.point(p.sizes)
        at = self.index(p.sizes)
        if at is not None and not bool(m[at]):
            return self.point(p.sizes)  # never claim a region its own sizes are not in
        return m

    def score(self, kind: str, center: dict[str, int] | None = None) -> torch.Tensor:
        total = torch.zeros(self.shape, dtype=torch.int64)
        for n in self.names:
            axis = self.axes[n]
            total = total + ((axis - center[n]).abs() if kind == "nearest" and center else axis)
        return total

    def spread(self, covered: torch.Tensor, generator: torch.Generator) -> dict[str, int] | None:
        """An undecided point drawn at random (seeded: the same every run): far from the small sizes, where one
        pass often decides a large region."""
        open_ = (~covered).flatten().nonzero().flatten()
        if not len(open_):
            return None
        return self.sizes_at(int(open_[int(torch.randint(len(open_), (1,), generator=generator))]))

    def pick(self, covered: torch.Tensor, score: torch.Tensor, want: torch.Tensor | None = None
             ) -> dict[str, int] | None:
        open_ = ~covered if want is None else (~covered & want)
        if not bool(open_.any()):
            return None
        masked = torch.where(open_, score, torch.iinfo(torch.int64).max)
        return self.sizes_at(int(masked.flatten().argmin()))


@dataclass
class Outcome:
    """One pass of an exploration: its verdict and the sizes it decides."""

    p: Pass
    verdict: str  # "runs", "fails" (the model fails, checked by a concrete pass) or "unknown"
    mask: torch.Tensor
    truth: Any = None  # the concrete Ran, when one was run


def _quiet(options: Any) -> Any:
    return replace(options, costs=False, repair_linear=False)


def explore(target: Target, given: Inputs, options: Any, grid: Grid, budget: int, start: dict[str, int],
            pick: Callable[[torch.Tensor], dict[str, int] | None], verify: bool = True,
            done: Callable[[Outcome], bool] | None = None, seen: Callable[[Outcome], None] | None = None
            ) -> tuple[list[Outcome], torch.Tensor]:
    """Passes at ``start``, then at whatever ``pick`` chooses among the sizes not yet decided."""
    outcomes: list[Outcome] = []
    covered = grid.empty()
    sizes: dict[str, int] | None = start
    quiet = _quiet(options)
    while sizes is not None and len(outcomes) < budget:
        p = run_pass(target.model, given, sizes, quiet)
        truth = None
        if p.ok:
            verdict = "runs"
        elif verify:
            truth = target.concrete(concrete(given, sizes), quiet)
            verdict = "unknown" if _limitation(p, truth) else "fails"
        else:
            verdict = "fails"
        mask = grid.region(p) if verdict != "unknown" else grid.point(sizes)
        covered |= mask
        outcome = Outcome(p, verdict, mask, truth)
        outcomes.append(outcome)
        if seen is not None:
            seen(outcome)
        if done is not None and done(outcome):
            break
        sizes = pick(covered)
    return outcomes, covered


def nearest_running(model: Any, given: Inputs, first: Pass, options: Any, tries: int) -> Pass | None:
    """Sizes near the defaults that run, for a trace whose default sample sizes fail (None: none found)."""
    names = names_in(given)
    limit = max(default_limit(len(names)), 4 * DEFAULT_SAMPLE) if len(names) <= 2 else default_limit(len(names))
    grid = Grid(names, dict.fromkeys(names, limit))
    center = dict.fromkeys(names, DEFAULT_SAMPLE)
    score = grid.score("nearest", center)
    covered = grid.region(first)
    target = Target(model, "", None)
    start = grid.pick(covered, score)
    if start is None:
        return None
    outcomes, _ = explore(target, given, options, grid, tries, start,
                          lambda c: grid.pick(c | covered, score), verify=False, done=lambda o: o.p.ok)
    ran = [o.p for o in outcomes if o.p.ok]
    return ran[0] if ran else None


# -- words for sets of sizes ---------------------------------------------------------------------------------

def describe_values(present: torch.Tensor, name: str, limit: int) -> str:
    """The values 1..limit where ``present`` is true, in words: ``28..31``, ``>= 5``,
    ``16, 32, 48, ... (H % 16 == 0)``."""
    values = [i + 1 for i in present.nonzero().flatten().tolist()]
    if not values:
        return "none"
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    if len(runs) == 1:
        a, b = runs[0]
        if b == limit:
            return "any" if a == 1 else f">= {a}"
        return str(a) if a == b else f"{a}..{b}"
    starts = [a for a, _ in runs]
    widths = {b - a for a, b in runs}
    steps = {b - a for a, b in itertools.pairwise(starts)}
    if len(runs) >= 3 and len(widths) == 1 and len(steps) == 1:
        step, width = steps.pop(), widths.pop()
        reaches_end = runs[-1][1] + step > limit
        if reaches_end and width == 0:
            a = starts[0]
            return f"{a}, {a + step}, {a + 2 * step}, ... ({name} % {step} == {a % step}, {name} >= {a})"
        if reaches_end:
            first, last = runs[0][0] % step, runs[0][1] % step
            return f"{runs[0][0]}..{runs[0][1]}, {runs[1][0]}..{runs[1][1]}, ... ({name} % {step} in " \
                   f"{first}..{last}, {name} >= {runs[0][0]})"
    shown = [str(a) if a == b else f"{a}..{b}" for a, b in runs[:6]]
    more = f", ... ({len(values)} values up to {values[-1]})" if len(runs) > 6 else ""
    return ", ".join(shown) + more


def _projection(mask: torch.Tensor, axis: int) -> torch.Tensor:
    others = [d for d in range(mask.dim()) if d != axis]
    return mask.any(dim=others) if others else mask


def _separable(mask: torch.Tensor, axis: int) -> bool:
    if mask.dim() == 1:
        return True
    own = _projection(mask, axis)
    rest = mask.any(dim=axis, keepdim=True)
    shape = [1] * mask.dim()
    shape[axis] = -1
    return torch.equal(own.view(shape) & rest, mask)


def boxes(mask: torch.Tensor, names: Sequence[str], limits: dict[str, int]) -> list[dict[str, str]]:
    """``mask`` as a union of products of per-size sets: ``[{"H": "28..31", "W": "28..31"}, ...]``."""
    if not bool(mask.any()):
        return []
    free = [i for i in range(mask.dim()) if _separable(mask, i)]
    if free:
        fixed = {names[i]: describe_values(_projection(mask, i), names[i], limits[names[i]]) for i in free}
        rest = [i for i in range(mask.dim()) if i not in free]
        if not rest:
            return [fixed]
        sub = mask.any(dim=free) if free else mask
        return [{**fixed, **b} for b in boxes(sub, [names[i] for i in rest], limits)]
    groups: dict[bytes, tuple[torch.Tensor, list[int]]] = {}
    for i in range(mask.shape[0]):
        pattern = mask[i]
        if not bool(pattern.any()):
            continue
        key = bytes(pattern.flatten().to(torch.uint8).tolist())
        groups.setdefault(key, (pattern, []))[1].append(i)
    out: list[dict[str, str]] = []
    for pattern, rows in list(groups.values())[:MAX_BOXES]:
        present = torch.zeros(mask.shape[0], dtype=torch.bool)
        present[rows] = True
        head = describe_values(present, names[0], limits[names[0]])
        out.extend({names[0]: head, **b} for b in boxes(pattern, names[1:], limits))
    return out


# -- the report ----------------------------------------------------------------------------------------------

def _needs(p: Pass, grid: Grid, runs: torch.Tensor) -> tuple[str, int | None, str | None, str | None, Any]:
    """What a failing pass's sizes break: the decisions torch took at the failing row that every size that
    runs decides the other way (all of them, joined by ``and``)."""
    from .symbolic import row_label

    stop = p.stop_row()
    layer = row_label(p.rows, stop)
    source = p.rows[stop].source if stop is not None and stop < len(p.rows) else None
    conditions = [(e, w) for e, w in p.conditions() if e.free_symbols & set(p.symbols)]
    at_stop = [c for c in conditions if attribute(p.rows, c[1])[0] == stop]
    chosen: list[Any] = []
    masks: list[torch.Tensor] = []
    for expr, _where in reversed(at_stop or conditions):
        try:
            m = grid.holds(sympy.Not(expr), p)
        except (symexpr.Unsupported, TypeError, ValueError, RuntimeError):
            continue
        if bool(m.all()) or (bool(runs.any()) and bool((runs & ~m).any())) or any(torch.equal(m, x) for x in masks):
            continue
        chosen.append(sympy.Not(expr))
        masks.append(m)
    if not chosen and conditions and not bool(runs.any()):
        chosen = [sympy.Not(conditions[-1][0])]
    try:
        needs = " and ".join(symexpr.text(c, p.symbols) for c in reversed(chosen))
    except symexpr.Unsupported:
        needs, chosen = "", []
    return needs, stop, layer, source, sympy.And(*chosen) if chosen else None


def _rules(failed: list[Outcome], grid: Grid, runs: torch.Tensor, label: str) -> tuple[FailRule, ...]:
    """One rule per failing layer: the shortest condition that every size that runs meets and no size that
    fails there meets (else the shortest one found), with the smallest example."""
    groups: dict[tuple[str | None, str | None], list[tuple[Outcome, str, Any, int | None]]] = {}
    for o in failed:
        needs, row, layer, source, expr = _needs(o.p, grid, runs)
        groups.setdefault((layer, source), []).append((o, needs, expr, row))
    out = []
    for (layer, source), items in groups.items():
        failing = grid.empty()
        for o, *_ in items:
            failing |= o.mask
        # the fewest conditions that every size that runs meets and that together exclude every size that fails
        # here (a greedy cover); each candidate is one failing pass's own reason
        candidates: dict[str, torch.Tensor] = {}
        for o, needs, expr, _row in items:
            if expr is None or needs in candidates:
                continue
            try:
                candidates[needs] = grid.holds(expr, o.p)
            except (symexpr.Unsupported, TypeError, ValueError, RuntimeError):
                continue
        remaining = failing.clone()
        chosen: list[str] = []
        while bool(remaining.any()) and candidates:
            text = max(candidates, key=lambda t: (int((remaining & ~candidates[t]).sum()), -len(t)))
            if not bool((remaining & ~candidates[text]).any()):
                break
            chosen.append(text)
            remaining &= candidates.pop(text)
        first = min(items, key=lambda x: sum(x[0].p.sizes.values()))
        out.append(FailRule(" and ".join(chosen), layer, source, first[3],
                            _readable(_summary(first[0], label), first[0].p.symbols), dict(first[0].p.sizes)))
    return tuple(out)


def _summary(o: Outcome, label: str) -> str:
    if o.truth is not None and o.truth.trace.error is not None:
        return o.truth.trace.error.summary
    trace = to_trace(o.p, label, None, _Opts(), Inputs(), ())
    return trace.error.summary if trace.error is not None else ""


@dataclass(frozen=True)
class _Opts:
    costs: bool = False
    train: bool = False


def parse_tries(text: str | None, names: Sequence[str]) -> list[dict[str, int]]:
    """``--try 224,256x240``: each item one number for every size, or one per size in order (``AxB``)."""
    from .errors import InputSpecError

    if not text:
        return []
    out = []
    for item in text.split(","):
        item = item.strip()
        parts = [x for x in item.replace("X", "x").split("x")]
        if not item or not all(x.strip().isdigit() and x.strip().isascii() and int(x) > 0 for x in parts):
            raise InputSpecError(f"--try {text!r}: {item!r} is not a size; expected positive whole numbers, "
                                 f"each one number for every size ({', '.join(names)}) or one per size in "
                                 f"order ({'x'.join(names)}), comma-separated: --try 224,256")
        if len(parts) == 1:
            out.append(dict.fromkeys(names, int(parts[0])))
        elif len(parts) == len(names):
            out.append({n: int(x) for n, x in zip(names, parts, strict=True)})
        else:
            raise InputSpecError(f"--try {text!r}: {item!r} gives {len(parts)} sizes, but the inputs name "
                                 f"{len(names)} ({', '.join(names)}); give one number, or {'x'.join(names)}")
    return out


def sizes_report(target: Target, given: Inputs, options: Any, tries: Sequence[dict[str, int]] = (),
                 limit: int | None = None, budget: int = DEFAULT_PASSES,
                 inputs_text: Sequence[str] = ()) -> SizesReport:
    """Which sizes run (see the module docstring), and for each of ``tries`` whether it runs and why not."""
    names = names_in(given)
    limits = dict.fromkeys(names, limit or default_limit(len(names)))
    grid = Grid(names, limits)
    start = {n: min(DEFAULT_SAMPLE, limits[n]) for n in names}
    smallest = grid.score("smallest")
    generator = torch.Generator().manual_seed(0)
    turn = [0]

    nearest = grid.score("nearest", start)
    running = grid.empty()
    promising = torch.ones(grid.shape, dtype=torch.bool)  # undecided sizes that meet every reason seen to fail

    def learn(o: Outcome) -> None:
        if o.verdict == "runs":
            running.__ior__(o.mask)
        elif o.verdict == "fails":
            expr = _needs(o.p, grid, running)[4]
            if expr is not None:
                with contextlib.suppress(symexpr.Unsupported, TypeError, ValueError, RuntimeError):
                    promising.__iand__(grid.holds(expr, o.p))

    def pick(covered: torch.Tensor) -> dict[str, int] | None:
        turn[0] += 1  # in turn: the undecided sizes nearest the first ones, the smallest, and spread over the grid
        if turn[0] % 3 == 1:
            return grid.pick(covered, nearest, promising) or grid.pick(covered, nearest)
        if turn[0] % 3 == 2:
            return grid.pick(covered, smallest, promising) or grid.pick(covered, smallest)
        return grid.spread(covered, generator)

    outcomes, _ = explore(target, given, options, grid, budget, start, pick, seen=learn)
    runs = grid.empty()
    fails = grid.empty()
    for o in outcomes:
        if o.verdict == "runs":
            runs |= o.mask
        elif o.verdict == "fails":
            fails |= o.mask & ~runs
    decided = float((runs | fails).float().mean())
    least = None
    if bool(runs.any()):
        least = grid.sizes_at(int(torch.where(runs, smallest, torch.iinfo(torch.int64).max).flatten().argmin()))
    rules = _rules([o for o in outcomes if o.verdict == "fails"], grid, runs, target.label)
    reqs: tuple[Requirement, ...] = ()
    ran = [o for o in outcomes if o.verdict == "runs"]
    if ran:
        best = min(ran, key=lambda o: sum(o.p.sizes.values()))
        reqs = _binding(best.p, grid)
    tried = tuple(_try(target, given, options, grid, runs, fails, outcomes, t, rules) for t in tries)
    notes = []
    unknown = [o for o in outcomes if o.verdict == "unknown"]
    if unknown:
        o = unknown[0]
        row = o.p.stop_row()
        from .symbolic import row_label

        notes.append(f"symbols cannot follow the model at {row_label(o.p.rows, row) or 'a row'}"
                     f" ({o.p.rows[row].source if row is not None and row < len(o.p.rows) else 'unknown line'}): "
                     "only the sizes of passes that ran, or that a concrete pass showed failing, are decided")
    if decided < 1:
        notes.append(f"{100 * (1 - decided):.1f}% of the sizes checked were not traced ({len(outcomes)} passes); "
                     "they are neither claimed to run nor to fail")
    return SizesReport(target.label, tuple(inputs_text), tuple(names), limits, tuple(boxes(runs, names, limits)),
                       {n: describe_values(_projection(runs, i), n, limits[n]) for i, n in enumerate(names)},
                       least, rules, reqs, tried, round(decided, 4), len(outcomes), tuple(notes))


def _binding(p: Pass, grid: Grid) -> tuple[Requirement, ...]:
    """The requirements of a running pass that rule out some of the checked sizes, each once."""
    out: list[Requirement] = []
    seen: list[torch.Tensor] = []
    by_text = {r.condition: r for r in requirements(p)}
    for expr, _where in p.conditions():
        try:
            text = symexpr.text(expr, p.symbols)
            m = grid.holds(expr, p)
        except (symexpr.Unsupported, TypeError, ValueError, RuntimeError):
            continue
        if bool(m.all()) or text not in by_text or any(torch.equal(m, s) for s in seen):
            continue
        seen.append(m)
        out.append(by_text[text])
    return tuple(out)


def _try(target: Target, given: Inputs, options: Any, grid: Grid, runs: torch.Tensor, fails: torch.Tensor,
         outcomes: list[Outcome], sizes: dict[str, int], rules: Sequence[FailRule]) -> Tried:
    """One size of ``--try``: a concrete forward pass says whether it runs; the passes say why not."""
    at = grid.index(sizes)
    predicted = None if at is None else (True if bool(runs[at]) else False if bool(fails[at]) else None)
    ran = target.concrete(concrete(given, sizes), _quiet(options))
    error = ran.trace.error
    if error is None:
        return Tried(dict(sizes), True, predicted, None, None, None)
    reason = error.summary
    layer = f"{error.module or 'model'} ({error.layer_type})" if error.module is not None else None
    source = error.source
    for rule in rules:
        if rule.needs and (rule.layer == layer or rule.source == source) and not symexpr.evaluate(rule.needs, sizes):
            reason = f"{reason} (needs {rule.needs})"
            layer, source = rule.layer or layer, rule.source or source
            break
    return Tried(dict(sizes), False, predicted, reason, layer, source)
