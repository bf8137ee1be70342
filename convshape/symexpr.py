"""Size formulas: torch's sympy expressions printed as readable Python, evaluated at given sizes, and
evaluated over whole grids of sizes at once (torch tensors), for :mod:`convshape.sizes`.

Printed formulas are valid Python over the size names (``50 * (H // 4 - 3) * (W // 4 - 3)``): ``//`` and
``%`` are Python's floor division and modulo, as torch's ``FloorDiv`` and ``PythonMod`` are; :func:`evaluate`
reads them back.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import sympy  # type: ignore[import-untyped]
import torch
from torch.utils._sympy import functions as tf

_ATOM, _POW, _MUL, _ADD, _REL, _NOT, _AND, _OR = 100, 60, 50, 40, 30, 25, 20, 10
_RELATIONS = {sympy.Eq: "==", sympy.Ne: "!=", sympy.Lt: "<", sympy.Le: "<=", sympy.Gt: ">", sympy.Ge: ">="}
_COMPARE = {sympy.Eq: operator.eq, sympy.Ne: operator.ne, sympy.Lt: operator.lt, sympy.Le: operator.le,
            sympy.Gt: operator.gt, sympy.Ge: operator.ge}
_FLOORDIV = (tf.FloorDiv, tf.CleanDiv)
_MOD = (tf.PythonMod, tf.Mod, sympy.Mod)
_CALLS: dict[Any, str] = {tf.ToFloat: "float", tf.TruncToInt: "int", tf.FloorToInt: "floor", tf.CeilToInt: "ceil",
          tf.TruncToFloat: "trunc"}


class Unsupported(Exception):
    """An expression uses a function that this module cannot print or evaluate faithfully."""


def text(expr: Any, names: Mapping[sympy.Symbol, str]) -> str:
    """``expr`` as Python over the size names: ``FloorDiv(s1 - 4, 2)`` -> ``(H - 4) // 2``."""
    return _text(sympy.sympify(expr), names)[0]


def readable(expr: Any, names: Mapping[sympy.Symbol, str]) -> str:
    """The shorter of ``expr`` as it is and factored: ``50 * (H // 4 - 3) * (W // 4 - 3)`` rather than the
    expanded ``50 * (H // 4) * (W // 4) - 150 * (H // 4) - ...`` (the same number for every size)."""
    plain = text(expr, names)
    if not isinstance(expr, sympy.Add):
        return plain
    try:
        factored = text(sympy.factor(expr), names)
    except Exception:  # factoring is cosmetic
        return plain
    return factored if len(factored) < len(plain) else plain


def _order(e: Any, names: Mapping[sympy.Symbol, str]) -> tuple[int, int, str]:
    """Factors in a product: numbers first, then in the order the inputs name the sizes (B, H, W)."""
    if e.is_number:
        return (0, 0, "")
    order = list(names)
    first = min((order.index(s) for s in e.free_symbols if s in names), default=len(order))
    return (1, first, str(e))


def _divisibility(a: Any, b: Any) -> tuple[Any, int] | None:
    """``(a, k)`` when ``b`` is ``k * (a // k)``."""
    if isinstance(b, sympy.Mul) and len(b.args) == 2:
        k, rest = b.as_coeff_Mul()
        if k.is_Integer and isinstance(rest, _FLOORDIV) and rest.args[0] == a and rest.args[1] == k:
            return a, int(k)
    return None


def _wrap(part: tuple[str, int], level: int, strict: bool = False) -> str:
    s, prec = part
    return f"({s})" if prec < level or (strict and prec == level) else s


def _text(e: Any, names: Mapping[sympy.Symbol, str]) -> tuple[str, int]:
    if e is sympy.true or e is True:
        return "True", _ATOM
    if e is sympy.false or e is False:
        return "False", _ATOM
    if isinstance(e, sympy.Symbol):
        return names.get(e, e.name), _ATOM
    if isinstance(e, sympy.Integer):
        return str(int(e)), _ATOM if e >= 0 else _ADD
    if isinstance(e, sympy.Rational):
        return f"{e.p} / {e.q}", _MUL
    if isinstance(e, sympy.Float):
        return repr(float(e)), _ATOM if e >= 0 else _ADD
    if isinstance(e, sympy.Add):
        terms = e.as_ordered_terms()
        out = _text(terms[0], names)[0]
        for t in terms[1:]:
            coeff, rest = t.as_coeff_Mul()
            if coeff.is_number and coeff < 0:
                out += " - " + _wrap(_text(-t, names), _MUL)
            else:
                out += " + " + _wrap(_text(t, names), _ADD)
        return out, _ADD
    if isinstance(e, sympy.Mul):
        coeff, rest = e.as_coeff_Mul()
        if coeff == -1:
            return "-" + _wrap(_text(rest, names), _MUL, strict=True), _ADD
        factors = ([coeff] if coeff != 1 else []) + sorted(sympy.Mul.make_args(rest), key=lambda f: _order(f, names))
        parts = [_wrap(_text(f, names), _MUL, strict=i > 0) for i, f in enumerate(factors)]
        return " * ".join(parts), _MUL
    if isinstance(e, sympy.Pow):
        base, exp = e.args
        if exp.is_Integer and exp > 0:
            return f"{_wrap(_text(base, names), _POW, strict=True)} ** {int(exp)}", _POW
        raise Unsupported(f"power {e}")
    if isinstance(e, _FLOORDIV):
        a, b = e.args
        return f"{_wrap(_text(a, names), _MUL)} // {_wrap(_text(b, names), _MUL, strict=True)}", _MUL
    if isinstance(e, _MOD):
        a, b = e.args
        return f"{_wrap(_text(a, names), _MUL)} % {_wrap(_text(b, names), _MUL, strict=True)}", _MUL
    if isinstance(e, (tf.IntTrueDiv, tf.FloatTrueDiv)):
        a, b = e.args
        return f"{_wrap(_text(a, names), _MUL)} / {_wrap(_text(b, names), _MUL, strict=True)}", _MUL
    if isinstance(e, (tf.PowByNatural, tf.FloatPow)):
        a, b = e.args
        return f"{_wrap(_text(a, names), _POW, strict=True)} ** {_wrap(_text(b, names), _POW)}", _POW
    if isinstance(e, (tf.Max, sympy.Max, tf.Min, sympy.Min)):
        fn = "max" if isinstance(e, (tf.Max, sympy.Max)) else "min"
        return f"{fn}({', '.join(_text(a, names)[0] for a in e.args)})", _ATOM
    call = _CALLS.get(type(e))
    if call is not None:
        return f"{call}({_text(e.args[0], names)[0]})", _ATOM
    if isinstance(e, sympy.Abs):
        return f"abs({_text(e.args[0], names)[0]})", _ATOM
    if isinstance(e, (sympy.Eq, sympy.Ne)):
        divides = _divisibility(e.lhs, e.rhs) or _divisibility(e.rhs, e.lhs)
        if divides is not None:  # x == 16 * (x // 16) reads better as x % 16 == 0
            a, k = divides
            return f"{_wrap(_text(a, names), _MUL)} % {k} {'==' if isinstance(e, sympy.Eq) else '!='} 0", _REL
    for kind, op in _RELATIONS.items():
        if isinstance(e, kind):
            return f"{_wrap(_text(e.lhs, names), _ADD)} {op} {_wrap(_text(e.rhs, names), _ADD)}", _REL
    if isinstance(e, sympy.Not):
        inner = e.args[0]
        for kind, op in _RELATIONS.items():  # not (a == b) reads better as a != b
            if isinstance(inner, kind):
                flipped = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}[op]
                return (f"{_wrap(_text(inner.lhs, names), _ADD)} {flipped} "
                        f"{_wrap(_text(inner.rhs, names), _ADD)}"), _REL
        return f"not {_wrap(_text(inner, names), _NOT)}", _NOT
    if isinstance(e, sympy.And):
        return " and ".join(_wrap(_text(a, names), _AND, strict=True) for a in e.args), _AND
    if isinstance(e, sympy.Or):
        return " or ".join(_wrap(_text(a, names), _OR, strict=True) for a in e.args), _OR
    raise Unsupported(f"{type(e).__name__} in {e}")


_NAMESPACE: dict[str, Any] = {"max": max, "min": min, "floor": math.floor, "ceil": math.ceil, "float": float,
                              "int": int, "abs": abs, "trunc": math.trunc, "True": True, "False": False}


def evaluate(formula: str, sizes: Mapping[str, int]) -> Any:
    """A printed formula at the given sizes: ``evaluate("H // 2 - 2", {"H": 28}) == 12``."""
    return eval(formula, {"__builtins__": {}}, {**_NAMESPACE, **sizes})


def _tensor_max(*xs: Any) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(torch.as_tensor(out), torch.as_tensor(x))
    return out


def _tensor_min(*xs: Any) -> Any:
    out = xs[0]
    for x in xs[1:]:
        out = torch.minimum(torch.as_tensor(out), torch.as_tensor(x))
    return out


def evaluate_on_grid(formula: str, axes: Mapping[str, torch.Tensor]) -> Any:
    """A printed size formula (no ``and``/``or``) at every point of a grid of sizes (int64 tensors)."""
    space = {**_NAMESPACE, "max": _tensor_max, "min": _tensor_min, **axes}
    return eval(formula, {"__builtins__": {}}, space)  # our own printed formulas, no builtins


# -- whole grids of sizes at once ----------------------------------------------------------------------------

def on_grid(e: Any, values: Mapping[sympy.Symbol, torch.Tensor]) -> Any:
    """``e`` evaluated for every point of a grid: each symbol is an int64 tensor broadcasting over the others.

    Returns a tensor (or a Python number/bool when ``e`` involves no symbol). Raises :class:`Unsupported`
    for a function it does not know."""
    if e is sympy.true or e is True:
        return True
    if e is sympy.false or e is False:
        return False
    if isinstance(e, sympy.Symbol):
        if e not in values:
            raise Unsupported(f"unknown size {e}")
        return values[e]
    if isinstance(e, sympy.Integer):
        return int(e)
    if isinstance(e, (sympy.Rational, sympy.Float)):
        return float(e)
    if isinstance(e, sympy.Add):
        total: Any = 0
        for a in e.args:
            total = total + on_grid(a, values)
        return total
    if isinstance(e, sympy.Mul):
        product: Any = 1
        for a in e.args:
            product = product * on_grid(a, values)
        return product
    if isinstance(e, sympy.Pow) and e.args[1].is_Integer and e.args[1] > 0:
        return on_grid(e.args[0], values) ** int(e.args[1])
    if isinstance(e, (tf.PowByNatural, tf.FloatPow)):
        return on_grid(e.args[0], values) ** on_grid(e.args[1], values)
    if isinstance(e, _FLOORDIV):
        a, b = (on_grid(x, values) for x in e.args)
        if isinstance(b, torch.Tensor) and bool((b == 0).any()):
            b = torch.where(b == 0, 1, b)  # a zero divisor only where torch would have failed earlier
        return a // b
    if isinstance(e, _MOD):
        a, b = (on_grid(x, values) for x in e.args)
        if isinstance(b, torch.Tensor) and bool((b == 0).any()):
            b = torch.where(b == 0, 1, b)
        return a % b
    if isinstance(e, (tf.IntTrueDiv, tf.FloatTrueDiv)):
        a, b = (on_grid(x, values) for x in e.args)
        return _float(a) / b
    if isinstance(e, (tf.Max, sympy.Max, tf.Min, sympy.Min)):
        pick = torch.maximum if isinstance(e, (tf.Max, sympy.Max)) else torch.minimum
        parts = [on_grid(a, values) for a in e.args]
        out = parts[0]
        for p in parts[1:]:
            if isinstance(out, torch.Tensor) or isinstance(p, torch.Tensor):
                out = pick(torch.as_tensor(out), torch.as_tensor(p))
            else:
                out = max(out, p) if pick is torch.maximum else min(out, p)
        return out
    if isinstance(e, tf.ToFloat):
        return _float(on_grid(e.args[0], values))
    if isinstance(e, (tf.TruncToInt, tf.FloorToInt, tf.CeilToInt)):
        x = on_grid(e.args[0], values)
        if not isinstance(x, torch.Tensor):
            fn: Any = {tf.TruncToInt: math.trunc, tf.FloorToInt: math.floor, tf.CeilToInt: math.ceil}[type(e)]
            return fn(x)
        op: Any = {tf.TruncToInt: torch.trunc, tf.FloorToInt: torch.floor, tf.CeilToInt: torch.ceil}[type(e)]
        return op(x.double()).long()
    if isinstance(e, sympy.Abs):
        x = on_grid(e.args[0], values)
        return x.abs() if isinstance(x, torch.Tensor) else abs(x)
    if isinstance(e, sympy.core.relational.Relational) and type(e) in _COMPARE:
        return _COMPARE[type(e)](on_grid(e.lhs, values), on_grid(e.rhs, values))
    if isinstance(e, sympy.Not):
        x = on_grid(e.args[0], values)
        return ~x if isinstance(x, torch.Tensor) else not x
    if isinstance(e, (sympy.And, sympy.Or)):
        parts = [on_grid(a, values) for a in e.args]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(e, sympy.And) else (out | p)
        return out
    raise Unsupported(f"{type(e).__name__} in {e}")


def _float(x: Any) -> Any:
    return x.double() if isinstance(x, torch.Tensor) else float(x)
