"""Plain-data records of symbolic sizes: a size that is both a number and a formula, and what a symbolic
trace learned about its input sizes. No torch or sympy objects live here: formulas are strings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SIZES_SCHEMA = "convshape.sizes/1"


class SizeExpr(int):
    """A size known as a formula of the input's symbolic sizes: an ``int`` (its value at the sample sizes
    the trace ran with), printed as its formula (``H // 2 - 2``).

    Everything that counts with sizes (bytes, products, comparisons) sees the sample number; everything that
    shows them (``str``, f-strings, the table) sees the formula. JSON writes the number; the formulas travel
    beside it as strings (``rows[].output_exprs``).
    """

    expr: str

    def __new__(cls, value: int, expr: str) -> SizeExpr:
        made = super().__new__(cls, value)
        made.expr = expr
        return made

    def __str__(self) -> str:
        return self.expr

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.expr if not spec else int.__format__(int(self), spec)

    def __reduce__(self) -> Any:
        return (SizeExpr, (int(self), self.expr))


def expr_of(value: Any) -> str:
    """A size as its formula: ``SizeExpr`` -> its expression, a plain int -> its digits."""
    return value.expr if isinstance(value, SizeExpr) else str(value)


@dataclass(frozen=True)
class Requirement:
    """One condition the input sizes must meet on the traced path, and who imposes it."""

    condition: str  # Python syntax over the size names: "50 * (H // 4 - 3) * (W // 4 - 3) == 800"
    names: tuple[str, ...]  # the size names it involves
    row: int | None  # the row that made torch check it (None: before any row)
    layer: str | None  # "fc1 (Linear)", "max_pool2d"
    source: str | None  # "net.py:20": the user's line
    in_your_code: bool = False  # a comparison in the model's own Python (an if on a size), not a torch check

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "names": list(self.names)}


@dataclass(frozen=True)
class SymbolStop:
    """Where symbols could not follow the computation any further; later rows show the sample sizes."""

    row: int | None
    layer: str | None
    source: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Symbols:
    """What a symbolic trace adds to a :class:`~convshape.records.Trace`."""

    names: tuple[str, ...]  # the symbolic sizes, in the order the inputs name them
    sample: dict[str, int]  # the value each took in the pass (the rows' numbers are these sizes)
    exact_rows: int  # rows [0, exact_rows) carry formulas; later rows are numbers at the sample sizes
    stop: SymbolStop | None = None
    equal: dict[str, str] | None = None  # a size the model forces equal to a formula of others: {"W": "H"}
    requirements: tuple[Requirement, ...] = ()  # the conditions on the sizes along the traced path
    sample_note: str | None = None  # why these sample sizes were chosen, when not the defaults

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "sample": dict(self.sample),
            "exact_rows": self.exact_rows,
            "stop": self.stop.to_dict() if self.stop else None,
            "equal": dict(self.equal or {}),
            "requirements": [r.to_dict() for r in self.requirements],
            "sample_note": self.sample_note,
        }


SizeSets = dict  # name -> description of the values of that size ("28..31", "16, 32, 48, ... (H % 16 == 0)")


@dataclass(frozen=True)
class FailRule:
    """Sizes that fail the same way: at one layer, for one reason."""

    needs: str  # the condition those sizes break, as Python over the size names
    layer: str | None
    source: str | None
    row: int | None
    summary: str  # the failure in words, at the example sizes
    example: dict[str, int]  # one size that fails this way (checked by a forward pass)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Tried:
    """One size of ``--try``: whether a concrete forward pass ran, and why not."""

    sizes: dict[str, int]
    runs: bool
    predicted: bool | None  # what the symbolic passes said before the concrete pass (None: not decided)
    reason: str | None  # why it fails: the failure, and the condition it breaks
    layer: str | None
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SizesReport:
    """``convshape sizes``: the input sizes a model accepts, within ``limits``."""

    model: str
    inputs: tuple[str, ...]  # the inputs as given: "Bx1xHxW"
    names: tuple[str, ...]
    limits: dict[str, int]  # each size was checked from 1 to this
    runs: tuple[dict[str, str], ...]  # the sizes that run, as boxes: {name: description} (a union of these)
    each: dict[str, str]  # the values of each size that run with some choice of the others
    smallest: dict[str, int] | None  # the smallest sizes that run (least sum)
    fails: tuple[FailRule, ...]
    requirements: tuple[Requirement, ...]  # the conditions along the path of the smallest sizes that run
    tried: tuple[Tried, ...]
    decided: float  # share of the checked sizes that a pass decided (the rest: not traced)
    passes: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SIZES_SCHEMA,
            "model": self.model,
            "inputs": list(self.inputs),
            "names": list(self.names),
            "limits": dict(self.limits),
            "runs": [dict(b) for b in self.runs],
            "each": dict(self.each),
            "smallest": dict(self.smallest) if self.smallest is not None else None,
            "fails": [f.to_dict() for f in self.fails],
            "requirements": [r.to_dict() for r in self.requirements],
            "tried": [t.to_dict() for t in self.tried],
            "decided": self.decided,
            "passes": self.passes,
            "notes": list(self.notes),
        }
