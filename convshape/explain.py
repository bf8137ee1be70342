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
            got = row.output_shapes[0][len(x) - w.n + i] if row.output_shapes and len(row.output_shapes[0]) == len(x) \
                else out
            extra = got - (out - w.output_padding[i])
            if got != out and 0 <= extra < max(s, d):
                # forward(x, output_size=...) picks the output_padding that reaches the size asked for
                lines.append(f"{dim}: ({size} - 1)*{s} - 2*{p} + {d}*({k}-1) + {extra} + 1 = {got} "
                             f"(output_padding {extra}, implied by output_size {got})")
            else:
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
                where = "in the padding" if p else "past the end of the input"
                line += f" = {raw}, minus 1 as the last window would start {where}"
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


@dataclass(frozen=True)
class Unknown:
    """No single receptive field exists (or convshape cannot compute it) after this row: ``why`` says where."""

    why: str  # "after up (ConvTranspose2d) at unet.py:30: stride 2 gives ..."


_State = tuple[Field, ...] | Unknown | None  # None: the tensor has no spatial field (token ids, features)

# Rows that keep the shape and work position by position: the field passes through them unchanged.
# Normalisation statistics (batch, layer, group, instance norm) are not counted, as is usual.
_PASS_FUNCS = frozenset({
    "add", "sub", "mul", "div", "true_divide", "iadd", "isub", "imul", "itruediv", "idiv", "add_", "sub_", "mul_",
    "div_", "relu", "relu_", "relu6", "gelu", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh",
    "hardtanh_", "hardswish", "hardsigmoid", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "celu", "mish",
    "softplus", "prelu", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "abs", "neg", "exp",
    "log", "pow", "sqrt", "rsqrt", "square", "clamp", "clamp_", "clip", "maximum", "minimum", "batch_norm",
    "instance_norm", "group_norm", "layer_norm", "local_response_norm", "requires_grad_", "cpu", "cuda",
})
_SLICES = frozenset({"getitem", "narrow", "chunk", "split", "tensor_split"})
_PASS_MODULES = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
    "Hardtanh", "Hardswish", "Hardsigmoid", "Hardshrink", "Softshrink", "Tanhshrink", "Threshold", "LogSigmoid",
    "Softplus", "Softsign", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "Identity", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d",
    "LazyBatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "LazyInstanceNorm1d",
    "LazyInstanceNorm2d", "LazyInstanceNorm3d", "GroupNorm", "LocalResponseNorm", "FrozenBatchNorm2d",
})


def _label(row: Row) -> str:
    what = f"{row.name or 'model'} ({row.op})" if row.kind == "module" else row.op
    return what + (f" at {row.source}" if row.source else "")


def _identity(rank: int) -> tuple[Field, ...] | None:
    return tuple(Field(1, 1, 0.0) for _ in range(rank - 2)) if rank >= 3 else None


def _cat_dim(row: Row) -> int:
    args = list(row.attrs.get("args", []))
    dim = row.attrs.get("kwargs", {}).get("dim", args[1] if len(args) > 1 else 0)
    rank = len(row.output_shapes[0])
    return int(dim) % rank if isinstance(dim, int) and rank else 0


def _merge(states: list[_State], row: Row) -> _State:
    """Several inputs feed one output position by position (a residual add, a channel concat)."""
    merged: _State = None
    for state in states:
        if isinstance(state, Unknown):
            return state
        if state is None:
            continue
        if merged is None:
            merged = state
            continue
        union = _union(merged, state)  # type: ignore[arg-type]
        if union is None:
            return Unknown(f"after {_label(row)}: its inputs move at different strides")
        merged = union
    return merged


@dataclass(frozen=True)
class FieldMap:
    """Receptive fields of a trace's rows over the model's spatial input: ``known`` per row, or ``unknown``
    with the row after which no single field exists; ``rules`` shows how each conv/pool row grew it."""

    known: dict[int, tuple[Field, ...]]
    unknown: dict[int, str]
    rules: dict[int, str]


def _rule(base: tuple[Field, ...], grown: tuple[Field, ...], kernels: tuple[int, ...], dilations: tuple[int, ...],
          strides: tuple[int, ...]) -> str:
    """``r_out = r_in + (k - 1) * jump = 5 + (2-1)*1 = 6; jump_out = jump * stride = 1*2 = 2 (H, W)``."""
    dilated = any(d != 1 for d in dilations)
    head = "r_out = r_in + (k - 1) * dilation * jump" if dilated else "r_out = r_in + (k - 1) * jump"
    by_text: dict[str, list[str]] = {}
    for dim, f, g, k, d, s in zip(SPATIAL[len(base)], base, grown, kernels, dilations, strides, strict=True):
        growth = f"({k}-1)*{d}*{f.jump}" if dilated else f"({k}-1)*{f.jump}"
        text = f"{head} = {f.size} + {growth} = {g.size}; jump_out = jump * stride = {f.jump}*{s} = {g.jump}"
        by_text.setdefault(text, []).append(dim)
    return "; ".join(f"{text} ({', '.join(dims)})" for text, dims in by_text.items())


def field_map(rows: tuple[Row, ...]) -> FieldMap:
    """The receptive field of each row's first output, over the spatial input it started from.

    A chain starts at a model input of rank 3 or more (N, C, then spatial dims), or at a conv/pool whose input
    has no spatial field (an image made by ``x.view(64, 1, 28, 28)`` from a flat input). Conv and pool rows
    grow the field (any padding, ``"same"`` and ``"valid"`` included; transposed convs of stride 1; adaptive
    pools whose output divides their input); elementwise rows and norms pass it on; a residual add or a
    channel ``torch.cat`` takes the union of their inputs' fields. After anything else that receives a field
    (a reshape, an upsample, a strided transposed conv, ...) it is ``unknown``, with the row that lost it.
    A container module (a row with rows inside) takes the field of the inner row that made its output.
    """
    children: dict[int, list[int]] = {}
    for row in rows:
        if row.parent is not None:
            children.setdefault(row.parent, []).append(row.index)
    states: dict[int, _State] = {}
    rules: dict[int, str] = {}

    def state_of(index: int) -> _State:
        if index in states:
            return states[index]
        row = rows[index]
        if index not in children:
            return None
        # a container: the last inner row that made a tensor of its output's shape made its output
        out = row.output_shapes[:1]
        state: _State = None
        for child in reversed(children[index]):
            if rows[child].output_shapes[:1] == out and out:
                state = state_of(child)
                break
        else:
            if row.input_shapes[:1] == out and out and row.inputs_from:
                state = input_state(row.input_shapes[0], row.inputs_from[0])
        states[index] = state
        return state

    def input_state(shape: tuple[int, ...], src: int | None) -> _State:
        return _identity(len(shape)) if src is None else state_of(src)

    for row in rows:
        if row.index in children or not row.output_shapes or not row.input_shapes:
            continue
        inputs = [input_state(shape, src) for shape, src in zip(row.input_shapes, row.inputs_from, strict=False)]
        out = row.output_shapes[0]
        w = window_of(row)
        state: _State
        if w is not None:
            state = _grow(row, w, inputs[0] if inputs else None, rules)
        elif (row.kind == "module" and row.op in _PASS_MODULES) or (row.kind == "function" and row.name in _PASS_FUNCS):
            same = [st for shape, st in zip(row.input_shapes, inputs, strict=False) if shape == out]
            broadcast = [st for shape, st in zip(row.input_shapes, inputs, strict=False) if shape != out and st]
            if broadcast:
                state = Unknown(f"after {_label(row)}: an input broadcast over the positions has its own field")
            else:
                state = _merge(same, row)
        elif row.kind == "function" and row.name in ("cat", "concat", "concatenate"):
            if len(out) >= 3 and _cat_dim(row) >= 2 and any(st is not None for st in inputs):
                state = Unknown(f"after {_label(row)}: it joins along a spatial dimension")
            else:
                state = _merge(inputs, row)
        elif row.kind == "function" and row.name in _SLICES and len(out) >= 3 and \
                len(row.input_shapes[0]) == len(out) and row.input_shapes[0][2:] == out[2:]:
            state = inputs[0]  # channels or batch picked out: every position keeps its field
        elif row.kind == "function" and row.name == "pad" and inputs and isinstance(inputs[0], tuple):
            state = _pad(row, inputs[0])
        else:
            carried = next((st for st in inputs if st is not None), None)
            state = carried if isinstance(carried, Unknown) else Unknown(f"after {_label(row)}") if carried else None
        if isinstance(state, tuple) and len(state) != len(out) - 2:
            state = Unknown(f"after {_label(row)}")
        states[row.index] = state
    for row in rows:
        state_of(row.index)
    known = {i: st for i, st in states.items() if isinstance(st, tuple)}
    unknown = {i: st.why for i, st in states.items() if isinstance(st, Unknown)}
    return FieldMap(known, unknown, rules)


def _pad(row: Row, base: tuple[Field, ...]) -> _State:
    """``F.pad(x, (left, right, top, bottom))``: the field keeps its size; its first unit moves back."""
    args = list(row.attrs.get("args", []))
    pads = row.attrs.get("kwargs", {}).get("pad", args[1] if len(args) > 1 else None)
    if not isinstance(pads, (list, tuple)) or len(pads) % 2 or len(pads) // 2 > len(base):
        return Unknown(f"after {_label(row)}")
    fields = list(base)
    for j in range(len(pads) // 2):
        i = len(base) - 1 - j  # pads list the last dimension first
        f = fields[i]
        fields[i] = Field(f.size, f.jump, f.start - pads[2 * j] * f.jump)
    return tuple(fields)


def _grow(row: Row, w: Window, base: _State, rules: dict[int, str]) -> _State:
    if isinstance(base, Unknown):
        return base
    if base is None:
        base = tuple(Field(1, 1, 0.0) for _ in range(w.n))  # the chain starts at this row's input
    if len(base) != w.n:
        return Unknown(f"after {_label(row)}")
    x = row.input_shapes[0]
    kernels, strides, pads = [], [], []
    for i in range(w.n):
        if w.kind == "adaptive":
            size = x[len(x) - w.n + i]
            target = w.output_size[i]
            if target is None or target == size:
                kernels.append(1)
                strides.append(1)
                pads.append(0)
            elif size % target == 0:
                kernels.append(size // target)
                strides.append(size // target)
                pads.append(0)
            else:
                return Unknown(f"after {_label(row)}: adaptive pooling of {size} to {target} uses windows of "
                               "different sizes")
        elif w.kind == "conv_transpose":
            if w.stride[i] != 1:
                return Unknown(f"after {_label(row)}: with stride {w.stride[i]} neighbouring outputs see different "
                               "numbers of inputs, so no single field exists")
            p = w.padding[i] if not isinstance(w.padding, str) else 0
            kernels.append(w.kernel[i])
            strides.append(1)
            pads.append(w.dilation[i] * (w.kernel[i] - 1) - p)
        else:
            if isinstance(w.padding, str):
                pad = w.dilation[i] * (w.kernel[i] - 1) // 2 if w.padding == "same" else 0
            else:
                pad = w.padding[i]
            kernels.append(w.kernel[i])
            strides.append(w.stride[i])
            pads.append(pad)
    dilations = w.dilation if w.kind != "adaptive" else (1,) * w.n
    grown = tuple(f.grow(kernels[i], strides[i], pads[i], dilations[i]) for i, f in enumerate(base))
    rules[row.index] = _rule(base, grown, tuple(kernels), tuple(dilations), tuple(strides))
    return grown


def receptive_fields(rows: tuple[Row, ...]) -> dict[int, tuple[Field, ...]]:
    """The known receptive fields of :func:`field_map`, by row index."""
    return field_map(rows).known


def field_text(fields: tuple[Field, ...]) -> str:
    labels = SPATIAL[len(fields)]
    return ", ".join(f"{d} size {f.size} jump {f.jump} start {f.start:g}" for d, f in zip(labels, fields, strict=True))


def _layout(rows: tuple[Row, ...], src: int | None, rank: int, depth: int = 0) -> tuple[str, ...] | None:
    """What each dim of the tensor ``src`` made means (``N, C, H, W``), followed back through the data: a
    model input or a conv/pool output is PyTorch's (N, C, spatial) layout; a permute or transpose moves the
    names; anything else (a Linear, a reshape) leaves them unknown."""
    if rank - 2 not in SPATIAL or depth > 64:
        return None
    default = ("N", "C", *SPATIAL[rank - 2])
    if src is None:
        return default
    row = rows[src]
    if not row.output_shapes or len(row.output_shapes[0]) != rank:
        return None
    if window_of(row) is not None:
        return default
    before = row.inputs_from[0] if row.inputs_from else None
    if row.kind == "function" and row.name in ("permute", "transpose", "swapaxes", "swapdims") and row.input_shapes:
        names = _layout(rows, before, len(row.input_shapes[0]), depth + 1)
        args = list(row.attrs.get("args", []))[1:]
        if names is None:
            return None
        if row.name == "permute":
            dims = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            dims = row.attrs.get("kwargs", {}).get("dims", dims)
            if not isinstance(dims, list) or len(dims) != rank or not all(isinstance(d, int) for d in dims):
                return None
            return tuple(names[d % rank] for d in dims)
        dims = [row.attrs.get("kwargs", {}).get(k, v) for k, v in zip(("dim0", "dim1"), args[:2], strict=False)]
        if len(dims) != 2 or not all(isinstance(d, int) for d in dims):
            return None
        swapped = list(names)
        a, b = dims[0] % rank, dims[1] % rank
        swapped[a], swapped[b] = swapped[b], swapped[a]
        return tuple(swapped)
    passes = (row.kind == "module" and row.op in _PASS_MODULES) or (row.kind == "function" and row.name in _PASS_FUNCS)
    if passes and row.input_shapes and row.input_shapes[0] == row.output_shapes[0]:
        return _layout(rows, before, rank, depth + 1)
    return None


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
        flatten = flatten_row(rows, row)
        layout = _layout(rows, flatten.inputs_from[0] if flatten is not None and flatten.inputs_from else None, rank)
        names = layout[rank - len(origin.factors):] if layout else ()
        meaning = f" ({' x '.join(names)} of {list(origin.shape)})" if len(names) == len(origin.factors) else ""
        text = f"{features} = {' x '.join(map(str, origin.factors))}{meaning}, the in_features {row.name} receives"
        if flatten is not None:
            notes.setdefault(flatten.index, text)
    return notes


def explanations(rows: tuple[Row, ...], fields: FieldMap | None = None) -> dict[int, list[str]]:
    """Every explanation line for the rows of a trace, by row index (``fields``: field_map(rows), when the
    caller has it already)."""
    out: dict[int, list[str]] = {}
    if fields is None:
        fields = field_map(rows)
    for row in rows:
        lines = arithmetic(row)
        if lines and row.index in fields.known:
            lines.append(f"receptive field: {field_text(fields.known[row.index])}")
            if row.index in fields.rules:
                lines.append(f"receptive field rule: {fields.rules[row.index]}")
        elif lines and row.index in fields.unknown:
            lines.append(f"receptive field: unknown {fields.unknown[row.index]}")
        if lines:
            out[row.index] = lines
    for index, text in factorisation_notes(rows).items():
        out.setdefault(index, []).append(text)
    return out
