"""Explain a failing layer in the user's terms, from its hyper-parameters and what it received.

Pure functions over plain data (a layer's type name, its ``attrs`` dict and the input shapes), so the
checks never parse torch's error messages, which differ by device and version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import Shape
from .text import shape_text

# Attributes worth recording for a layer: the constructor arguments users reason about.
LAYER_ATTRS = (
    "in_features", "out_features", "in_channels", "out_channels", "kernel_size", "stride", "padding",
    "dilation", "groups", "output_padding", "padding_mode", "ceil_mode", "count_include_pad",
    "output_size", "num_features", "normalized_shape", "num_groups", "num_channels", "num_embeddings",
    "embedding_dim", "padding_idx", "input_size", "hidden_size", "num_layers", "bidirectional",
    "batch_first", "proj_size", "embed_dim", "num_heads", "start_dim", "end_dim", "scale_factor",
    "mode", "p", "dim",
)  # fmt: skip

_CONV = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3, "ConvTranspose1d": 1, "ConvTranspose2d": 2,
         "ConvTranspose3d": 3, "LazyConv1d": 1, "LazyConv2d": 2, "LazyConv3d": 3}
# PyTorch's layout names for the spatial dims after (N, C): used by every message and explanation
SPATIAL = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


@dataclass(frozen=True)
class Mismatch:
    expected: str
    received: str
    fix: str | None = None


def dims_label(n_spatial: int) -> str:
    return ", ".join(("N", "C", *SPATIAL[n_spatial]))


def _compact(value: Any) -> Any:
    """(5, 5) -> 5 for a constructor call when every dimension agrees."""
    if isinstance(value, (tuple, list)) and value and all(v == value[0] for v in value):
        return value[0]
    return tuple(value) if isinstance(value, list) else value


def constructor(type_name: str, attrs: dict[str, Any], **override: Any) -> str | None:
    """The ``nn.X(...)`` call that builds this layer, with ``override`` applied (the fix)."""
    a = {**attrs, **override}
    if type_name in ("Linear", "LazyLinear"):
        extra = "" if a.get("bias", True) else ", bias=False"
        return f"nn.Linear({a['in_features']}, {a['out_features']}{extra})"
    if type_name in _CONV:
        name = type_name.removeprefix("Lazy")
        n = _CONV[type_name]
        parts = [str(a["in_channels"]), str(a["out_channels"]), f"kernel_size={_compact(a['kernel_size'])}"]
        defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "output_padding": 0}
        for key, default in defaults.items():
            if key in a and _compact(a[key]) not in (default, (default,) * n):
                value = _compact(a[key])
                parts.append(f"{key}={value!r}")
        if not a.get("bias", True):
            parts.append("bias=False")
        return f"nn.{name}({', '.join(parts)})"
    if type_name.startswith("BatchNorm"):
        return f"nn.{type_name}({a['num_features']})"
    if type_name in ("LSTM", "GRU", "RNN"):
        extra = "".join(
            f", {k}={a[k]!r}" for k in ("num_layers", "batch_first", "bidirectional")
            if k in a and a[k] not in (1, False)
        )
        return f"nn.{type_name}({a['input_size']}, {a['hidden_size']}{extra})"
    if type_name == "LayerNorm":
        return f"nn.LayerNorm({_compact(a['normalized_shape'])!r})"
    if type_name == "GroupNorm":
        return f"nn.GroupNorm({a['num_groups']}, {a['num_channels']})"
    if type_name == "MultiheadAttention":
        return f"nn.MultiheadAttention({a['embed_dim']}, {a['num_heads']})"
    return None


def check_layer(type_name: str, attrs: dict[str, Any], inputs: tuple[Shape, ...]) -> Mismatch | None:
    """Find what this layer expected of its first input and did not get; None when nothing is off."""
    if not inputs:
        return None
    x = inputs[0]
    got: int | None  # the size the layer received where it expected another
    if type_name == "Linear" or (type_name == "LazyLinear" and attrs.get("in_features")):
        need = attrs["in_features"]
        if not x or x[-1] != need:
            got = x[-1] if x else 0
            return Mismatch(f"in_features={need}", f"{got} (input {shape_text(x)})",
                            constructor("Linear", attrs, in_features=got))
        return None
    if type_name in _CONV:
        return _check_conv(type_name, attrs, x)
    if type_name.startswith(("BatchNorm", "InstanceNorm")) and attrs.get("num_features"):
        if len(x) < 2 or x[1] != attrs["num_features"]:
            got = x[1] if len(x) >= 2 else None
            fix = f"nn.{type_name}({got})" if got else None
            return Mismatch(f"{attrs['num_features']} channels (dim 1)", f"{got} (input {shape_text(x)})", fix)
        return None
    if type_name == "GroupNorm" and (len(x) < 2 or x[1] != attrs.get("num_channels")):
        got = x[1] if len(x) >= 2 else None
        return Mismatch(f"{attrs.get('num_channels')} channels (dim 1)", f"{got} (input {shape_text(x)})",
                        constructor("GroupNorm", attrs, num_channels=got) if got else None)
    if type_name == "LayerNorm":
        norm = tuple(attrs.get("normalized_shape", ()))
        if tuple(x[len(x) - len(norm):]) != norm:
            tail = tuple(x[len(x) - len(norm):]) if len(x) >= len(norm) else x
            return Mismatch(f"trailing dims {shape_text(norm)}", f"{shape_text(tail)} (input {shape_text(x)})",
                            constructor("LayerNorm", attrs, normalized_shape=tail))
        return None
    if type_name in ("LSTM", "GRU", "RNN") and (not x or x[-1] != attrs.get("input_size")):
        got = x[-1] if x else None
        return Mismatch(f"input_size={attrs.get('input_size')}", f"{got} (input {shape_text(x)})",
                        constructor(type_name, attrs, input_size=got))
    if type_name == "MultiheadAttention" and (not x or x[-1] != attrs.get("embed_dim")):
        got = x[-1] if x else None
        return Mismatch(f"embed_dim={attrs.get('embed_dim')}", f"{got} (input {shape_text(x)})",
                        constructor(type_name, attrs, embed_dim=got))
    return None


def _check_conv(type_name: str, attrs: dict[str, Any], x: Shape) -> Mismatch | None:
    n = _CONV[type_name]
    rank = len(x)
    if rank not in (n + 1, n + 2):
        hint = None
        if rank == 2 and n == 2:
            hint = "reshape it first, e.g. x = x.view(-1, C, H, W) (for MNIST: x.view(-1, 1, 28, 28))"
        elif rank < n + 1:
            hint = f"reshape it to ({dims_label(n)}) first"
        return Mismatch(f"a {n + 1}D or {n + 2}D input ({dims_label(n)})",
                        f"a {rank}D input {shape_text(x)}", hint)
    channels = x[rank - n - 1]
    need = attrs.get("in_channels")
    if need and channels != need:
        return Mismatch(f"{need} input channels", f"{channels} (input {shape_text(x)})",
                        constructor(type_name, attrs, in_channels=channels))
    if type_name.startswith("Conv") and not isinstance(attrs.get("padding"), str):
        kernel, pad, dil = (tuple(attrs.get(k, (v,) * n)) for k, v in
                            (("kernel_size", 1), ("padding", 0), ("dilation", 1)))
        for i, size in enumerate(x[rank - n:]):
            padded, reach = size + 2 * pad[i], dil[i] * (kernel[i] - 1) + 1
            if padded < reach:
                dim = SPATIAL[n][i]
                return Mismatch(f"{dim} + 2*padding >= its kernel reach {reach}",
                                f"{dim}={size} with padding {pad[i]} (input {shape_text(x)})",
                                "use a smaller kernel, add padding, or downsample less before this layer")
    return None
