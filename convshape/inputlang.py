"""The ``--input`` language: what a user types for a forward argument, parsed (never evaluated) into plain data.

One ``--input`` is one forward argument, positional in order, or a keyword one as ``NAME=VALUE``.
A VALUE is:

- a tensor: ``SHAPE[:DTYPE][:FILL]`` -- ``64x784``, ``2x16:int64``, ``2x16:int64:randint(30522)``,
  ``1x128:int64:ones``. A bare whole number is a 1-D shape: ``5`` is a tensor of shape [5]. A name in
  place of a number is a symbolic size (``Bx1xHxW``, ``Bx128:int64``): a letter or a word without an ``x``
  in it (``B``, ``H``, ``seq``); the same name in two places is the same size (:mod:`convshape.symbolic`).
- a container of values, nested: ``[3x320x320, 3x240x320]`` (list), ``(2x3x8, 2x3x8)`` (tuple, Python's
  rules: ``(x,)`` for one item), ``{"image": 1x3x224x224, "mask": 1x224x224:bool}`` (dict; keys quoted,
  or bare names).
- a plain Python value for a non-tensor argument: a float ``0.5``, a string in quotes ``'nearest'``,
  ``None``, ``True``, ``False``, the integer 5 as ``int(5)`` (a bare ``5`` is a shape), or any Python
  literal as ``literal([4, 4])``.

FILL says what the tensor holds: ``zeros``, ``ones``, ``fill(V)`` (or ``fill=V``), ``randint(HIGH)`` or
``randint(LOW, HIGH)`` (torch.randint's half-open range; without a DTYPE it makes int64), ``randn``,
``rand``. Without one: floats are ``randn``, integers ``ones`` (a valid token id, a mask that attends
everywhere), bools ``True``. On ``--device meta`` tensors hold no values and the fill does not matter.

The result is a tree of Python lists, tuples and dicts whose leaves are :class:`~convshape.spec.InputSpec`
(a tensor to make), plain numbers, None and bools, and :class:`~convshape.spec.Value` (a string or a
``literal(...)``, marked so that the library does not read it as a shape). Nothing here imports torch.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputSpecError
from .spec import DTYPES, INPUT_FORM, MAX_DIM, Fill, InputSpec, Value, shown

FORMS = ("SHAPE[:DTYPE][:FILL] (64x784, 2x16:int64:randint(30522)), NAME=VALUE for a keyword argument, "
         "[...] / (...,) / {\"key\": ...} containers, or a value: 0.5, 'text', None, True, int(5), literal([4, 4])")
FILL_FORM = "zeros, ones, fill(V), randint(HIGH), randint(LOW, HIGH), randn or rand"
MAX_DEPTH = 32
_PUNCT = "[](){},:="
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][+-]?[0-9]+)?")
_LEGACY = re.compile(r"\s*[0-9]+(\s*,\s*[0-9]+)+\s*(:[^\[\](){}=,]*)*")  # 64,784[:dtype]: commas as x
_CLOSE = {"[": "]", "(": ")", "{": "}"}
_SIZE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a symbolic size: B, H, seq (split on x, so no x in it)
_DIM_SEP = re.compile(r"[xX×]")
SYMBOLIC_COMMANDS = "trace, fc-size and sizes"


@dataclass(frozen=True)
class Inputs:
    """Every forward argument the user gave: positional ones in order and keyword ones by name."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.args) + len(self.kwargs)


@dataclass(frozen=True)
class _Token:
    kind: str  # "punct", "word" or "string"
    text: str
    start: int
    end: int
    value: Any = None  # a string token's value


class _Parser:
    def __init__(self, text: str, option: str = "--input", symbolic: bool = True) -> None:
        self.text = text
        self.option = option
        self.symbolic = symbolic  # whether a name may stand for a size (Bx1xHxW)
        self.tokens = self._tokenize()
        self.pos = 0

    # -- errors ----------------------------------------------------------------------------------------
    def fail(self, what: str, expected: str = FORMS) -> InputSpecError:
        return InputSpecError(f"{self.option} {shown(self.text)}: {what}; expected {expected}")

    # -- tokens ----------------------------------------------------------------------------------------
    def _tokenize(self) -> list[_Token]:
        text, out, i = self.text, [], 0
        while i < len(text):
            c = text[i]
            if c.isspace():
                i += 1
            elif c in _PUNCT:
                out.append(_Token("punct", c, i, i + 1))
                i += 1
            elif c in "'\"":
                j = i + 1
                while j < len(text) and text[j] != c:
                    j += 2 if text[j] == "\\" else 1
                if j >= len(text):
                    raise self.fail(f"the string starting at character {i + 1} has no closing {c}")
                raw = text[i:j + 1]
                try:
                    value = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    raise self.fail(f"{shown(raw, 20)} is not a valid string") from None
                out.append(_Token("string", raw, i, j + 1, value))
                i = j + 1
            else:
                j = i
                while j < len(text) and not text[j].isspace() and text[j] not in _PUNCT and text[j] not in "'\"":
                    j += 1
                out.append(_Token("word", text[i:j], i, j))
                i = j
        return out

    def peek(self, offset: int = 0) -> _Token | None:
        at = self.pos + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("the text ends too early")
        self.pos += 1
        return token

    def is_punct(self, char: str, offset: int = 0) -> bool:
        token = self.peek(offset)
        return token is not None and token.kind == "punct" and token.text == char

    def expect(self, char: str, after: str) -> None:
        token = self.peek()
        if token is None or token.text != char or token.kind != "punct":
            got = "the end of the text" if token is None else shown(token.text, 20)
            raise self.fail(f"expected {char!r} {after}, got {got}")
        self.pos += 1

    # -- grammar ---------------------------------------------------------------------------------------
    def argument(self) -> tuple[str | None, Any]:
        """``[NAME=]VALUE`` and nothing after it."""
        name = None
        first = self.peek()
        if first is not None and first.kind == "word" and self.is_punct("=", 1):
            if not first.text.isidentifier():
                raise self.fail(f"{shown(first.text, 20)} is not a Python argument name", "NAME=VALUE, e.g. "
                                "attention_mask=1x128:int64")
            name = first.text
            self.pos += 2
        if self.peek() is None:
            what = f"no value after {name}=" if name else "nothing to parse"
            raise self.fail(what, INPUT_FORM if name is None else FORMS)
        value = self.value(0)
        extra = self.peek()
        if extra is not None:
            raise self.fail(f"unexpected {shown(extra.text, 20)} at character {extra.start + 1} after a complete value "
                            "(one --input per argument; put several in [...] or (...))")
        return name, value

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(f"containers nested deeper than {MAX_DEPTH} levels")
        token = self.take()
        if token.kind == "string":
            return Value(token.value)  # marked: a string is otherwise read as this language
        if token.kind == "punct":
            if token.text in _CLOSE:
                return self.container(token.text, depth + 1)
            raise self.fail(f"unexpected {shown(token.text, 20)} at character {token.start + 1}")
        word = token.text
        if word in ("None", "True", "False"):
            return {"None": None, "True": True, "False": False}[word]
        if word == "int" and self.is_punct("("):
            return self.int_call()
        if word == "literal" and self.is_punct("("):
            return self.literal_call(token)
        if _FLOAT.fullmatch(word):
            return float(word)
        if word[:1].isidentifier() and not re.search(r"[xX×]", word):
            quoted = repr(word) if len(word) <= 20 else "'text'"
            raise self.fail(f"{shown(word, 20)} is neither a shape nor a value (write a string in quotes: "
                            f"\"{quoted}\"; a number as int(5) or 0.5)")
        return self.tensor(token)

    def container(self, opening: str, depth: int) -> Any:
        closing = _CLOSE[opening]
        items: list[Any] = []
        keys: list[Any] = []
        trailing_comma = False
        while not self.is_punct(closing):
            if opening == "{":
                keys.append(self.key())
            items.append(self.value(depth))
            trailing_comma = self.is_punct(",")
            if trailing_comma:
                self.pos += 1
            elif not self.is_punct(closing):
                token = self.peek()
                got = ("the end of the text" if token is None
                       else f"{shown(token.text, 20)} at character {token.start + 1}")
                raise self.fail(f"expected ',' or {closing!r} in {opening}...{closing}, got {got}")
        self.pos += 1
        if opening == "[":
            return items
        if opening == "{":
            if len(set(keys)) != len(keys):
                raise self.fail("a dict key appears twice")
            return dict(zip(keys, items, strict=True))
        if len(items) == 1 and not trailing_comma:
            return items[0]  # Python's rule: (x) is x, (x,) is a tuple
        return tuple(items)

    def key(self) -> Any:
        token = self.take()
        if token.kind == "string":
            key: Any = token.value
        elif token.kind == "word" and token.text.isidentifier():
            key = token.text
        elif token.kind == "word" and _INT.fullmatch(token.text):
            key = int(token.text)
        else:
            raise self.fail(f"a dict key must be a quoted string, a name or an integer, got {shown(token.text, 20)}",
                            '{"image": 1x3x224x224, "mask": 1x224x224:bool}')
        self.expect(":", f"after the dict key {shown(str(key), 20)}")
        return key

    def int_call(self) -> int:
        self.expect("(", "after int")
        token = self.take()
        if token.kind != "word" or not _INT.fullmatch(token.text):
            raise self.fail(f"int(...) takes a whole number, got {shown(token.text, 20)}", "int(5)")
        self.expect(")", "to close int(...)")
        return int(token.text)

    def literal_call(self, word: _Token) -> Any:
        self.expect("(", "after literal")
        start, depth = self.pos, 1
        while depth:
            token = self.take()
            if token.kind == "punct" and token.text in "([{":
                depth += 1
            elif token.kind == "punct" and token.text in ")]}":
                depth -= 1
        inner = self.text[self.tokens[start - 1].end:self.tokens[self.pos - 1].start]
        try:
            return Value(ast.literal_eval(inner.strip()))  # marked: a tuple of ints is otherwise a shape
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise self.fail(f"literal({inner.strip()[:40]}{'...' if len(inner.strip()) > 40 else ''}) is not a "
                            "Python literal",
                            "literal([4, 4]), literal({'a': 1}), literal(-3)") from None

    def tensor(self, token: _Token) -> InputSpec:
        text = token.text
        # " 64 x 784 ": a shape written with spaces around its x's is one shape
        while (after := self.peek()) is not None and after.kind == "word" and (
                text[-1:] in ("x", "X", "×") or after.text[:1] in ("x", "X", "×")):
            text += after.text
            self.pos += 1
        shape = self.shape(text)
        dtype: str | None = None
        fill: Fill | None = None
        while self.is_punct(":"):
            self.pos += 1
            part = self.peek()
            if part is None or (part.kind == "punct" and part.text in ",)]}"):
                raise self.fail("empty dtype after ':'", INPUT_FORM)
            self.pos += 1
            if part.kind != "word":
                raise self.fail(f"expected a dtype or a fill after ':', got {shown(part.text, 20)}")
            name = part.text.removeprefix("torch.")
            if name in DTYPES and not self.is_punct("("):
                if dtype is not None:
                    raise self.fail(f"two dtypes ({dtype}, {DTYPES[name]})", INPUT_FORM)
                dtype = DTYPES[name]
                continue
            if fill is not None:
                raise self.fail(f"two fills ({fill}, {part.text})", FILL_FORM)
            fill = self.fill(part)
            if fill is None:
                known = ", ".join(sorted(set(DTYPES.values())))
                raise self.fail(f"unknown dtype {shown(part.text, 20)}", f"one of {known} (form {INPUT_FORM}), "
                                f"or a fill: {FILL_FORM}")
        if dtype is None:
            dtype = "int64" if fill is not None and fill.kind == "randint" else "float32"
        self.check_fill(fill, dtype)
        return InputSpec(shape, dtype, fill)

    def shape(self, text: str) -> tuple[int | str, ...]:
        dims: list[int | str] = []
        for part in _DIM_SEP.split(text):
            part = part.strip()
            if _SIZE_NAME.fullmatch(part):
                if not self.symbolic:
                    raise self.fail(f"{shown(part, 20)} is a symbolic size; symbolic sizes work with "
                                    f"{SYMBOLIC_COMMANDS}, here give a number", INPUT_FORM)
                dims.append(part)
                continue
            if not _INT.fullmatch(part):
                if not part:
                    what = "an empty dimension"
                elif any(c.isdigit() for c in part) and not any(c.isdigit() and c.isascii() for c in part):
                    what = f"{shown(part, 20)}, not a whole number in ASCII digits 0-9"
                elif self.symbolic and (part[:1].isalpha() or part[:1] == "_"):
                    what = (f"{shown(part, 20)}, neither a whole number nor a size name (a size name is letters, "
                            "digits and _, starting with a letter, with no x in it: B, H, seq)")
                else:
                    what = f"{shown(part, 20)}, not a whole number"
                raise self.fail(f"got {what}", INPUT_FORM)
            value = int(part)
            if value <= 0:
                raise self.fail(f"dimension {value} must be a positive size", INPUT_FORM)
            dims.append(value)
        known = [d for d in dims if isinstance(d, int)]
        if math.prod(known) > MAX_DIM:
            raise self.fail(f"the shape is too large ({math.prod(known):.3g} elements; at most {MAX_DIM:.3g})",
                            INPUT_FORM)
        return tuple(dims)

    def fill(self, word: _Token) -> Fill | None:
        name = word.text
        if name in ("zeros", "ones") and not self.is_punct("("):
            return Fill("const", (0 if name == "zeros" else 1,))
        if name in ("randn", "rand") and not self.is_punct("("):
            return Fill(name)
        if name == "fill" and self.is_punct("="):
            self.pos += 1
            return Fill("const", (self.number("fill"),))
        if name in ("fill", "randint") and self.is_punct("("):
            self.pos += 1
            args = [self.number(name)]
            while self.is_punct(","):
                self.pos += 1
                args.append(self.number(name))
            self.expect(")", f"to close {name}(...)")
            if name == "fill":
                if len(args) != 1:
                    raise self.fail(f"fill takes one value, got {len(args)}", "fill(0.5) or fill=1")
                return Fill("const", (args[0],))
            if len(args) not in (1, 2) or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
                raise self.fail("randint takes one or two whole numbers", "randint(HIGH) or randint(LOW, HIGH)")
            low, high = (0, args[0]) if len(args) == 1 else args
            if low >= high:
                raise self.fail(f"randint({low}, {high}) is an empty range (LOW < HIGH; HIGH is excluded)",
                                "randint(0, 30522)")
            return Fill("randint", (low, high))
        return None

    def number(self, what: str) -> float | int | bool:
        token = self.take()
        if token.kind == "word":
            if _INT.fullmatch(token.text):
                return int(token.text)
            if _FLOAT.fullmatch(token.text):
                return float(token.text)
            if token.text in ("True", "False"):
                return token.text == "True"
        raise self.fail(f"{what} takes numbers, got {shown(token.text, 20)}", FILL_FORM)

    def check_fill(self, fill: Fill | None, dtype: str) -> None:
        if fill is None:
            return
        floating = dtype.startswith(("float", "bfloat", "complex"))
        if fill.kind in ("randn", "rand") and not floating:
            raise self.fail(f"{fill.kind} makes floating-point values, not {dtype}",
                            "randint(LOW, HIGH) for integers, e.g. 2x16:int64:randint(30522)")
        if fill.kind == "const" and not floating and isinstance(fill.args[0], float):
            raise self.fail(f"fill({fill.args[0]}) is not a whole number, for {dtype}", "fill(1)")
        if fill.kind == "randint" and dtype == "bool" and (fill.args[0] < 0 or fill.args[1] > 2):
            raise self.fail(f"randint{fill.args} is outside bool's range", "randint(2) for random True/False")


def parse_argument(text: str) -> tuple[str | None, Any]:
    """One ``--input``: ``(None, value)`` for a positional argument, ``(name, value)`` for ``NAME=VALUE``."""
    if _LEGACY.fullmatch(text):  # 64,784 has always meant 64x784
        shape, _, rest = text.partition(":")
        text = shape.replace(",", "x") + (":" + rest if rest else "")
    return _Parser(text).argument()


def parse_tensor(text: str, option: str = "--input") -> InputSpec:
    """``64x784``, ``2x16:int64``, ``1x8:int64:ones``: a single tensor and nothing else."""
    if _LEGACY.fullmatch(text):
        shape, _, rest = text.partition(":")
        text = shape.replace(",", "x") + (":" + rest if rest else "")
    parser = _Parser(text, option, symbolic=False)
    first = parser.peek()
    if first is None:
        raise parser.fail("got an empty dimension", INPUT_FORM)
    if first.kind != "word":
        raise parser.fail(f"expected one tensor shape, got {shown(first.text, 20)}", INPUT_FORM)
    parser.pos += 1
    spec = parser.tensor(first)
    extra = parser.peek()
    if extra is not None:
        raise parser.fail(f"unexpected {shown(extra.text, 20)} after the shape", INPUT_FORM)
    return spec


def parse_inputs(texts: Sequence[str]) -> Inputs:
    """Every ``--input`` of a command: positional arguments in order, keyword ones by name."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for text in texts:
        name, value = parse_argument(text)
        if name is None:
            args.append(value)
        elif name in kwargs:
            raise InputSpecError(f"--input {name}=...: given twice; give each keyword argument once")
        else:
            kwargs[name] = value
    return Inputs(tuple(args), kwargs)


def describe(value: Any, limit: int = 80) -> str:
    """A value as the user could have typed it, cut to ``limit`` characters (never a 10,000-character repr)."""
    text = _describe(value, 0)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(value: Any, depth: int) -> str:
    if depth > 4:
        return "..."
    if isinstance(value, InputSpec):
        return str(value)
    if isinstance(value, Value):
        return repr(value.value)[:40] if isinstance(value.value, str) else f"literal({repr(value.value)[:40]})"
    if isinstance(value, list):
        return "[" + ", ".join(_describe(v, depth + 1) for v in value[:8]) + (", ...]" if len(value) > 8 else "]")
    if isinstance(value, tuple):
        inner = ", ".join(_describe(v, depth + 1) for v in value[:8])
        return "(" + inner + (", ...)" if len(value) > 8 else ",)" if len(value) == 1 else ")")
    if isinstance(value, dict):
        items = [f"{k!r}: {_describe(v, depth + 1)}" for k, v in list(value.items())[:8]]
        return "{" + ", ".join(items) + (", ...}" if len(value) > 8 else "}")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"int({value})"
    if isinstance(value, (str, float, bool)) or value is None:
        return repr(value)[:40]
    return f"<{type(value).__name__}>"
