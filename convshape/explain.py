"""Why each shape is what it is: output-size arithmetic for conv/pool rows, receptive fields, and the
factorisation of a flattened size. Pure functions over trace rows (no torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .diagnose import SPATIAL
from .records import Row

# positional parameters of the functional forms, after the input tensor
_FUNC_PARAMS = {
    "conv": ("weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": ("weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    "max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "lp_pool": ("norm_type", "kernel_size", "stride", "ceil_mode"),
    "adaptive": ("output_size",),
}


@dataclass(frozen=True)
class Window:
    """A sliding-window op's geometry, per spatial dimension."""

    kind: str  # "conv" | "conv_transpose" | "max_pool" | "avg_pool" | "lp_pool" | "adaptive"
    n: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...]
    ceil_mode: bool
    output_size: tuple[int | None, ...] = ()


def _tuple(value: Any, n: int, default: int) -> tuple[int, ...]:
    if value is None:
        return (default,) * n
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) if len(value) == n else (int(value[0]),) * n
    return (int(value),) * n


def _kind_and_n(row: Row) -> tuple[str, int] | None:
    name = row.op.removeprefix("Lazy") if row.kind == "module" else row.name
    for prefix, kind in (("ConvTranspose", "conv_transpose"), ("conv_transpose", "conv_transpose"),
                         ("Conv", "conv"), ("conv", "conv"), ("MaxPool", "max_pool"), ("max_pool", "max_pool"),
                         ("AvgPool", "avg_pool"), ("avg_pool", "avg_pool"), ("LPPool", "lp_pool"),
                         ("lp_pool", "lp_pool"), ("AdaptiveAvgPool", "adaptive"), ("AdaptiveMaxPool", "adaptive"),
                         ("adaptive_avg_pool", "adaptive"), ("adaptive_max_pool", "adaptive")):
        if name.startswith(prefix):
            rest = name[len(prefix):].removesuffix("_with_indices")
            if rest in ("1d", "2d", "3d"):
                return kind, int(rest[0])
    return None


def window_of(row: Row) -> Window | None:
    """The geometry of a conv/pool row, from the layer's attributes or the call's literal arguments."""
    found = _kind_and_n(row)
    if found is None or not row.input_shapes:
        return None
    kind, n = found
    if row.kind == "module":
        a = dict(row.attrs)
    else:
        args = list(row.attrs.get("args", []))[1:]
        a = dict(zip(_FUNC_PARAMS[kind], args, strict=False))
        a.update(row.attrs.get("kwargs", {}))
        if kind in ("conv", "conv_transpose"):
            if len(row.input_shapes) < 2:
                return None
            a["kernel_size"] = row.input_shapes[1][2:]
    if kind == "adaptive":
        size = a.get("output_size")
        sizes = tuple(size) if isinstance(size, (list, tuple)) else (size,) * n
        return Window(kind, n, (), (), (), (), (), False, sizes)
    kernel = _tuple(a.get("kernel_size"), n, 1)
    stride = a.get("stride")
    stride_t = kernel if (stride is None or stride == []) and kind.endswith("pool") else _tuple(stride, n, 1)
    padding = a.get("padding", 0)
    pad: tuple[int, ...] | str = padding if isinstance(padding, str) else _tuple(padding, n, 0)
    dilation = _tuple(a.get("dilation"), n, 1) if kind in ("conv", "conv_transpose", "max_pool") else (1,) * n
    return Window(kind, n, kernel, stride_t, pad, dilation, _tuple(a.get("output_padding"), n, 0),
                  bool(a.get("ceil_mode", False)))


def output_size(w: Window, i: int, size: int) -> int:
    """PyTorch's own output-size rule for dimension ``i`` of a window op."""
    if w.kind == "adaptive":
        return size if w.output_size[i] is None else int(w.output_size[i])  # type: ignore[arg-type]
    k, s, d = w.kernel[i], w.stride[i], w.dilation[i]
    if w.kind == "conv_transpose":
        p = w.padding[i] if not isinstance(w.padding, str) else 0
        return (size - 1) * s - 2 * p + d * (k - 1) + w.output_padding[i] + 1
    if isinstance(w.padding, str):
        return size if w.padding == "same" else (size - d * (k - 1) - 1) // s + 1
    p = w.padding[i]
    if w.ceil_mode:
        out = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def arithmetic(row: Row) -> list[str]:
    """``H: floor((28 + 2*0 - 1*(5-1) - 1) / 1) + 1 = 24``, one line per spatial dimension."""
    w = window_of(row)
    if w is None:
        return []
    x = row.input_shapes[0]
    if len(x) < w.n:
        return []
    labels = SPATIAL[w.n]
    lines = []
    for i, size in enumerate(x[len(x) - w.n:]):
        out = output_size(w, i, size)
        dim = labels[i]
        if w.kind == "adaptive":
            target = w.output_size[i]
            lines.append(f"{dim}: adaptive pooling to output_size {target if target is not None else 'None (kept)'}"
                         f" from {size} = {out}")
            continue
        k, s, d = w.kernel[i], w.stride[i], w.dilation[i]
        if w.kind == "conv_transpose":
            p = w.padding[i] if not isinstance(w.padding, str) else 0
            lines.append(f"{dim}: ({size} - 1)*{s} - 2*{p} + {d}*({k}-1) + {w.output_padding[i]} + 1 = {out}")
        elif isinstance(w.padding, str):
            if w.padding == "same":
                total = d * (k - 1)
                lines.append(f"{dim}: padding=\"same\" keeps {size} (pads {total}: {total // 2} before, "
                             f"{total - total // 2} after) = {out}")
            else:
                lines.append(f"{dim}: padding=\"valid\": floor(({size} - {d}*({k}-1) - 1) / {s}) + 1 = {out}")
        else:
            p = w.padding[i]
            rounding = "ceil" if w.ceil_mode else "floor"
            line = f"{dim}: {rounding}(({size} + 2*{p} - {d}*({k}-1) - 1) / {s}) + 1"
            raw = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1 if w.ceil_mode else out
            if w.ceil_mode and raw != out:
                line += f" = {raw}, minus 1 as the last window would start in the padding"
            lines.append(f"{line} = {out}")
    return lines


@dataclass(frozen=True)
class Field:
    """Receptive field along one spatial dimension: size, jump (stride product) and start (the centre of
    the first output unit's field, in input pixels, pixel 0's centre being 0)."""

    size: int
    jump: int
    start: float

    def grow(self, kernel: int, stride: int, padding: int, dilation: int) -> Field:
        reach = dilation * (kernel - 1) + 1
        return Field(self.size + (reach - 1) * self.jump, self.jump * stride,
                     self.start + ((reach - 1) / 2 - padding) * self.jump)


def _union(a: tuple[Field, ...], b: tuple[Field, ...]) -> tuple[Field, ...] | None:
    if len(a) != len(b) or any(x.jump != y.jump for x, y in zip(a, b, strict=True)):
        return None
    out = []
    for x, y in zip(a, b, strict=True):
        lo = min(x.start - (x.size - 1) / 2, y.start - (y.size - 1) / 2)
        hi = max(x.start + (x.size - 1) / 2, y.start + (y.size - 1) / 2)
        out.append(Field(round(hi - lo) + 1, x.jump, (lo + hi) / 2))
    return tuple(out)


def receptive_fields(rows: tuple[Row, ...]) -> dict[int, tuple[Field, ...]]:
    """Receptive field of each row's first output over the spatial tensor its conv/pool chain starts from.

    Conv and pool rows grow the field; rows that keep the shape (activations, norms, residual adds) pass
    it on; a reshape or an adaptive pool ends the chain (the next conv starts a new one).
    """
    fields: dict[int, tuple[Field, ...]] = {}
    for row in rows:
        if not row.input_shapes or not row.output_shapes:
            continue
        w = window_of(row)
        if w is not None and w.kind not in ("adaptive", "conv_transpose") and not isinstance(w.padding, str):
            src = row.inputs_from[0] if row.inputs_from else None
            base = fields.get(src) if src is not None else None
            if base is None or len(base) != w.n:
                base = tuple(Field(1, 1, 0.0) for _ in range(w.n))
            fields[row.index] = tuple(f.grow(w.kernel[i], w.stride[i], w.padding[i], w.dilation[i])
                                      for i, f in enumerate(base))
            continue
        if w is not None and isinstance(w.padding, str) and w.padding == "same":
            continue
        # shape-keeping rows pass the field on; several inputs of the output's shape merge
        out = row.output_shapes[0]
        merged: tuple[Field, ...] | None = None
        for shape, src in zip(row.input_shapes, row.inputs_from, strict=False):
            if src is None or shape != out or src not in fields:
                continue
            merged = fields[src] if merged is None else _union(merged, fields[src])
            if merged is None:
                break
        if merged is not None:
            fields[row.index] = merged
    # a container module's output is its last descendant's
    last_child: dict[int, int] = {}
    for row in rows:  # rows come in call order: the last one seen under a parent is its last child
        if row.parent is not None:
            last_child[row.parent] = row.index
    for row in reversed(rows):
        if row.kind == "module" and row.index not in fields:
            last = last_child.get(row.index)
            while last is not None and last not in fields:
                last = last_child.get(last)
            if last is not None and rows[last].output_shapes[:1] == row.output_shapes[:1]:
                fields[row.index] = fields[last]
    return fields


def field_text(fields: tuple[Field, ...]) -> str:
    labels = SPATIAL[len(fields)]
    return ", ".join(f"{d} size {f.size} jump {f.jump} start {f.start:g}" for d, f in zip(labels, fields, strict=True))


def factorisation_notes(rows: tuple[Row, ...]) -> dict[int, str]:
    """For each flatten/view feeding a Linear: ``800 = 50 x 4 x 4 (C x H x W of [64, 50, 4, 4]), fc1's in_features``."""
    from .fc import LINEARS, flatten_origin, flatten_row

    notes: dict[int, str] = {}
    for row in rows:
        if row.kind != "module" or row.op not in LINEARS or not row.inputs_from:
            continue
        origin = flatten_origin(rows, row)
        if origin is None or not origin.factors:
            continue
        features = math.prod(origin.factors)
        rank = len(origin.shape)
        names = ("N", "C", *SPATIAL.get(rank - 2, ()))[rank - len(origin.factors):] if rank - 2 in SPATIAL else ()
        meaning = f" ({' x '.join(names)} of {list(origin.shape)})" if len(names) == len(origin.factors) else ""
        text = f"{features} = {' x '.join(map(str, origin.factors))}{meaning}, the in_features {row.name} receives"
        flatten = flatten_row(rows, row)
        if flatten is not None:
            notes.setdefault(flatten.index, text)
    return notes


def explanations(rows: tuple[Row, ...], fields: dict[int, tuple[Field, ...]] | None = None
                 ) -> dict[int, list[str]]:
    """Every explanation line for the rows of a trace, by row index (``fields``: receptive_fields(rows),
    when the caller has them already)."""
    out: dict[int, list[str]] = {}
    if fields is None:
        fields = receptive_fields(rows)
    for row in rows:
        lines = arithmetic(row)
        if lines and row.index in fields:
            lines.append(f"receptive field: {field_text(fields[row.index])}")
        if lines:
            out[row.index] = lines
    for index, text in factorisation_notes(rows).items():
        out.setdefault(index, []).append(text)
    return out
