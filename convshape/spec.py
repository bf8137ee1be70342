"""Parse what the user typed into plain data: model references, input specs, ``--arg`` values.

Nothing here imports torch, so argument errors answer fast.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import InputSpecError

# torch dtype names (and their aliases) -> canonical torch attribute name.
DTYPES: dict[str, str] = {
    "float32": "float32", "float": "float32",
    "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16",
    "bfloat16": "bfloat16",
    "int64": "int64", "long": "int64",
    "int32": "int32", "int": "int32",
    "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8",
    "bool": "bool",
    "complex64": "complex64", "cfloat": "complex64",
    "complex128": "complex128", "cdouble": "complex128",
}  # fmt: skip

INPUT_FORM = "NxCxHxW[:DTYPE], e.g. 64x784, 1x3x224x224 or 2x16:int64"
DEVICES = ("auto", "meta", "cpu", "cuda")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Fill:
    """How an input tensor's values are made: ``const`` (``args`` = the value), ``randint`` (``args`` =
    low, high: torch.randint's half-open range), ``randn`` or ``rand``. See :mod:`convshape.inputlang`."""

    kind: str
    args: tuple[float | int | bool, ...] = ()

    def __str__(self) -> str:
        if self.kind == "const":
            value = self.args[0]
            if not isinstance(value, bool) and value in (0, 1):
                return "zeros" if value == 0 else "ones"
            return f"fill({value})"
        if self.kind == "randint":
            return f"randint({self.args[0]}, {self.args[1]})"
        return self.kind


@dataclass(frozen=True)
class InputSpec:
    """One input tensor: its shape, torch dtype name and how its values are made (None: the dtype's default).

    A dimension given as a name (``"H"``) is a symbolic size (see :mod:`convshape.symbolic`)."""

    shape: tuple[int | str, ...]
    dtype: str = "float32"
    fill: Fill | None = None

    @property
    def symbolic(self) -> bool:
        return any(isinstance(d, str) for d in self.shape)

    def __str__(self) -> str:
        text = "x".join(map(str, self.shape)) + ("" if self.dtype == "float32" else f":{self.dtype}")
        return text + (f":{self.fill}" if self.fill is not None else "")


@dataclass(frozen=True)
class Value:
    """A plain value for ``forward``, passed as it is: ``Value((4, 4))`` is the tuple, not a shape, and
    ``Value("1x8")`` is the string, not parsed as an input."""

    value: Any


@dataclass(frozen=True)
class ModelRef:
    """Where the model comes from: a ``.py`` file or an importable module, and an optional name in it."""

    target: str
    name: str | None = None
    is_file: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)
    config: str | None = None  # --config: a local config.json for a class built from a config object

    def __str__(self) -> str:
        return self.target + (f":{self.name}" if self.name else "")


MAX_DIM = 2**62  # far past any real tensor; keeps every size product an exact int64
_WHOLE = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts "²" and "６"


def shown(text: str, limit: int = 60) -> str:
    """User text quoted for a message, cut to ``limit`` characters: an error never echoes a wall of text."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def parse_input(text: str) -> InputSpec:
    """Parse one tensor, ``64x784``, ``2x16:int64`` or ``1x8:int64:ones``, into an :class:`InputSpec`.

    The whole ``--input`` language (keywords, containers, plain values) is :mod:`convshape.inputlang`.
    """
    from .inputlang import parse_tensor

    return parse_tensor(text)


def parse_model_ref(text: str, kwargs: dict[str, Any] | None = None, config: str | None = None) -> ModelRef:
    """Parse ``path/file.py``, ``path/file.py:Name`` or ``package.module:Name``."""
    raw = text.strip()
    if not raw:
        raise InputSpecError("MODEL is empty; expected path/to/file.py[:Name] or package.module:Name")
    target, name = raw, None
    head, sep, tail = raw.rpartition(":")
    if sep and head and _IDENT.match(tail) and not tail.endswith(".py"):
        target, name = head, tail
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    if not is_file and not _IDENT.match(target):
        raise InputSpecError(
            f"MODEL {text!r} is neither a .py file nor an importable module name; "
            "expected path/to/file.py[:Name] or package.module:Name"
        )
    return ModelRef(target, name, is_file, dict(kwargs or {}), config)


def check_model_file(ref: ModelRef) -> None:
    """The file of a file reference exists and is Python: checked before torch is imported."""
    import os

    from .errors import LoadError

    if ref.config is not None and not os.path.exists(ref.config):
        raise LoadError(f"--config {ref.config}: file not found; expected a local config.json")
    if not ref.is_file:
        return
    path = ref.target
    if not os.path.exists(path):
        raise LoadError(f"model file not found: {path} (expected path/to/file.py[:Name])")
    if os.path.isdir(path):
        raise LoadError(f"{path} is a directory; expected a .py file defining an nn.Module")
    if not path.endswith(".py"):
        raise LoadError(f"{path} is not a .py file; expected path/to/file.py[:Name] "
                        "or an importable package.module:Name")


def parse_kwargs(items: list[str] | None) -> dict[str, Any]:
    """Parse repeated ``--arg key=value`` (values are Python literals; a bare word is a string)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise InputSpecError(
                f"--arg {shown(item)}: expected key=value with a Python literal value, "
                "e.g. --arg num_classes=10 --arg widths='[16, 32]'"
            )
        try:
            out[key] = ast.literal_eval(value.strip())
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            if not value.strip().isidentifier():
                raise InputSpecError(
                    f"--arg {shown(item)}: {shown(value, 30)} is not a Python literal; expected e.g. 10, 0.5, "
                    "'[16, 32]', True, or a bare word for a string"
                ) from None
            out[key] = value.strip()
    return out


def parse_device(text: str) -> str:
    """Validate ``--device``: auto, meta, cpu, cuda or cuda:N."""
    value = text.strip().lower()
    if value in DEVICES or re.fullmatch(r"cuda:\d+", value):
        return value
    raise InputSpecError(f"--device {shown(text)}: expected one of {', '.join(DEVICES)} (or cuda:N)")
