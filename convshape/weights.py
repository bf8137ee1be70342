"""Does this checkpoint fit this model? Key by key, as ``load_state_dict(strict=True)`` would decide,
with each shape mismatch answered in the model's terms (the ``nn.X(...)`` that takes the checkpoint's
tensors) and key-prefix problems named with the rename that fixes them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from .checkpoint import CheckpointError, TensorRef, flatten, read
from .checkpoint_records import PrefixFix, ShapeMismatch, WeightsReport
from .diagnose import _CONV, LAYER_ATTRS, constructor
from .fc import LINEARS, describe_origin, flatten_origin
from .records import Row, Shape, Trace
from .tensors import dtype_name
from .text import shape_text

# where a prefix on every key usually comes from
PREFIX_CAUSES = {
    "module.": "nn.DataParallel / DistributedDataParallel",
    "_orig_mod.": "torch.compile's wrapper",
    "module._orig_mod.": "torch.compile inside DataParallel/DDP",
    "_orig_mod.module.": "DataParallel/DDP inside torch.compile",
    "model.": "a wrapper that holds the network as .model (Lightning, Hugging Face, EMA helpers)",
}
_RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

ModelKeys = dict[str, tuple[Shape | None, str]]  # key -> (shape, None for a lazy parameter; dtype)


def model_keys(model: nn.Module) -> ModelKeys:
    """What ``load_state_dict`` expects: the model's state_dict keys (persistent buffers included)."""
    out: ModelKeys = {}
    for key, t in model.state_dict(keep_vars=True).items():
        lazy = isinstance(t, (UninitializedParameter, UninitializedBuffer))
        out[key] = (None if lazy else tuple(t.shape), dtype_name(t.dtype))
    return out


def _prefixes(keys: list[str]) -> list[str]:
    """The first one and two dotted components that keys start with: candidate prefixes."""
    found: dict[str, None] = {}
    for k in keys:
        parts = k.split(".")
        for n in (1, 2):
            if len(parts) > n:
                found[".".join(parts[:n]) + "."] = None
    return list(found)


def _renamed(keys: list[str], action: str, prefix: str) -> dict[str, str]:
    """checkpoint key -> key after the rename (keys without the prefix stay, as torch's consume_prefix does)."""
    if action == "strip":
        return {k: k.removeprefix(prefix) for k in keys}
    return {k: prefix + k for k in keys}


def _best_rename(ck: list[str], model: ModelKeys) -> tuple[dict[str, str], PrefixFix | None]:
    identity = {k: k for k in ck}
    before = sum(1 for k in ck if k in model)
    best, best_fix, best_n = identity, None, before
    if before == len(ck) == len(model):
        return identity, None
    for action, pool in (("strip", ck), ("add", list(model))):
        for prefix in _prefixes(pool):
            renamed = _renamed(ck, action, prefix)
            n = sum(1 for v in renamed.values() if v in model)
            if n > best_n:
                cause = PREFIX_CAUSES.get(prefix, f"a wrapper module that holds the network as .{prefix[:-1]}")
                code = (f"state_dict = {{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}"
                        if action == "strip" else f"state_dict = {{{prefix!r} + k: v for k, v in state_dict.items()}}")
                best, best_n = renamed, n
                best_fix = PrefixFix(action, prefix, cause, before, n, code)
    return best, best_fix


def _attrs(module: nn.Module) -> dict[str, Any]:
    attrs = {a: getattr(module, a) for a in LAYER_ATTRS if hasattr(module, a)}
    if hasattr(module, "bias"):
        attrs["bias"] = getattr(module, "bias", None) is not None
    return attrs


def _override(type_name: str, module: nn.Module, local: str, shape: Shape) -> dict[str, Any] | None:
    """The constructor arguments a checkpoint tensor's shape implies for its layer; None if unknown."""
    if type_name in LINEARS:
        if local == "weight" and len(shape) == 2:
            return {"out_features": shape[0], "in_features": shape[1]}
        return {"out_features": shape[0]} if local == "bias" and len(shape) == 1 else None
    if type_name in _CONV:
        groups = getattr(module, "groups", 1)
        if local == "weight" and len(shape) >= 3:
            kernel = tuple(shape[2:])
            if getattr(module, "transposed", False):
                return {"in_channels": shape[0], "out_channels": shape[1] * groups, "kernel_size": kernel}
            return {"out_channels": shape[0], "in_channels": shape[1] * groups, "kernel_size": kernel}
        return {"out_channels": shape[0]} if local == "bias" and len(shape) == 1 else None
    if type_name.startswith(("BatchNorm", "InstanceNorm", "SyncBatchNorm")) and len(shape) == 1:
        return {"num_features": shape[0]}
    if type_name == "GroupNorm" and len(shape) == 1:
        return {"num_channels": shape[0]}
    if type_name == "LayerNorm":
        return {"normalized_shape": tuple(shape)}
    if type_name in ("Embedding", "EmbeddingBag") and local == "weight" and len(shape) == 2:
        return {"num_embeddings": shape[0], "embedding_dim": shape[1]}
    if type_name in _RNN_GATES and shape:
        hidden = shape[0] // _RNN_GATES[type_name]
        if local.startswith("weight_ih_l0"):
            return {"hidden_size": hidden, "input_size": shape[1]}
        return {"hidden_size": hidden} if local.startswith(("weight_hh", "bias")) else None
    if type_name == "MultiheadAttention" and local in ("in_proj_weight", "out_proj.weight") and len(shape) == 2:
        return {"embed_dim": shape[1]}
    return None


def _call(type_name: str, attrs: dict[str, Any], **override: Any) -> str | None:
    if type_name in ("Embedding", "EmbeddingBag"):
        a = {**attrs, **override}
        return f"nn.{type_name}({a['num_embeddings']}, {a['embedding_dim']})"
    if type_name == "SyncBatchNorm":
        return f"nn.SyncBatchNorm({override.get('num_features', attrs.get('num_features'))})"
    try:
        return constructor(type_name, attrs, **override)
    except (KeyError, TypeError):
        return None


def _mismatch_fixes(model: nn.Module, found: list[tuple[str, str, Shape, Shape]]) -> list[ShapeMismatch]:
    """One ShapeMismatch per key; the fix combines every mismatching tensor of the same layer."""
    overrides: dict[str, dict[str, Any]] = {}
    owners: dict[str, tuple[str, nn.Module | None, str]] = {}
    for key, _, _, ck_shape in found:
        owner, local = _owner(model, key)
        module = _submodule(model, owner)
        type_name = type(module).__name__ if module is not None and owner else ""
        owners[key] = (owner, module, type_name)
        if module is None or not type_name:
            continue
        implied = _override(type_name, module, local, ck_shape)
        if implied is not None:
            overrides.setdefault(owner, {}).update(implied)
    out = []
    for key, ck_key, shape, ck_shape in found:
        owner, module, type_name = owners[key]
        current = fix = None
        if module is not None and type_name:
            attrs = _attrs(module)
            current = _call(type_name, attrs)
            if owner in overrides:
                fix = _call(type_name, attrs, **overrides[owner])
        out.append(ShapeMismatch(key, ck_key, owner, type_name, shape, ck_shape, current, fix))
    return out


def _owner(model: nn.Module, key: str) -> tuple[str, str]:
    """'lstm.weight_ih_l0' -> ('lstm', 'weight_ih_l0'); 'attn.out_proj.weight' -> ('attn', 'out_proj.weight')
    for a MultiheadAttention, whose out_proj is part of the layer's own constructor."""
    owner, _, local = key.rpartition(".")
    parent, _, child = owner.rpartition(".")
    if child == "out_proj" and isinstance(_submodule(model, parent), nn.MultiheadAttention):
        return parent, f"out_proj.{local}"
    return owner, local


def _submodule(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name) if name else model
    except AttributeError:
        return None


def compare(model: nn.Module, tensors: dict[str, TensorRef], label: str, checkpoint: str,
            state_dict: str = "") -> WeightsReport:
    """Compare ``model``'s state_dict keys and shapes with a checkpoint's state dict (name -> TensorRef)."""
    want = model_keys(model)
    rename, prefix = _best_rename(list(tensors), want)
    by_key = {rename[k]: k for k in tensors}
    missing = tuple(k for k in want if k not in by_key)
    unexpected = tuple(by_key[k] for k in by_key if k not in want)
    found, casts, lazy = [], [], []
    matched = 0
    for key, (shape, dtype) in want.items():
        ck_key = by_key.get(key)
        if ck_key is None:
            continue
        t = tensors[ck_key]
        if shape is None:
            lazy.append(key)
            matched += 1
        elif tuple(shape) != t.shape:
            found.append((key, ck_key, shape, t.shape))
        else:
            matched += 1
            if dtype != t.dtype:
                casts.append(f"{key}: {t.dtype} in the file, {dtype} in the model")
    notes = []
    if lazy:
        notes.append(f"{len(lazy)} lazy parameter(s) ({', '.join(lazy[:3])}) have no shape before a forward "
                     "pass; load_state_dict takes the checkpoint's shape for them")
    if casts:
        notes.append(f"{len(casts)} tensor(s) differ in dtype only; load_state_dict casts them")
    return WeightsReport(
        model=label, checkpoint=checkpoint, state_dict=state_dict, model_keys=len(want),
        checkpoint_keys=len(tensors), matched=matched, missing=missing, unexpected=unexpected,
        mismatches=tuple(_mismatch_fixes(model, found)), prefix=prefix, dtype_casts=tuple(casts),
        notes=tuple(notes),
    )


def compare_file(model: nn.Module, path: str, label: str, trust_pickle: bool = False) -> WeightsReport:
    """Compare with the dict of tensors in the file that fits the model best (the top level, or
    ``checkpoint["model"]``, ``["state_dict"]``, ... in a nested checkpoint)."""
    contents = read(path, trust_pickle)
    flat = flatten(contents.tree)
    if not flat.state_dicts:
        raise CheckpointError(f"{path} holds no dict of tensors to compare with {label} "
                              f"({len(flat.tensors)} tensor(s) in other containers)")
    want = model_keys(model)
    best: tuple[int, int, str] | None = None
    for where, tensors in flat.state_dicts.items():
        rename, _ = _best_rename(list(tensors), want)
        score = (sum(1 for k in tensors if rename[k] in want), len(tensors), where)
        if best is None or score[:2] > best[:2]:
            best = score
    assert best is not None
    where = best[2]
    report = compare(model, flat.state_dicts[where], label, path, where)
    others = [w for w in flat.state_dicts if w != where]
    if where and others:
        report = dataclasses.replace(report, notes=(*report.notes, f"compared with checkpoint[{where!r}]; "
                                     f"{len(others)} other dict(s) of tensors in the file are not the model's"))
    elif where:
        report = dataclasses.replace(report, notes=(*report.notes, f"compared with checkpoint[{where!r}]"))
    return report


def compare_weights(model: nn.Module, path: str | os.PathLike[str], trust_pickle: bool = False,
                    label: str | None = None) -> WeightsReport:
    """Compare ``model`` with a checkpoint file key by key: missing and unexpected keys, shape
    mismatches with the layer that would take the checkpoint's tensors, and key-prefix problems
    (``module.``, ``_orig_mod.``, ``model.``) with the rename that fixes them. No tensor data is read.
    ``report.ok`` is what ``load_state_dict(strict=True)`` would say.
    """
    return compare_file(model, os.fspath(path), label or type(model).__name__, trust_pickle)


def with_trace(report: WeightsReport, trace: Trace) -> WeightsReport:
    """Add to each mismatching layer what the forward pass gives it, and whether the checkpoint's
    shape fits that: for fc1, the trace shows it receives 800 = 50 x 4 x 4 from max_pool2d."""
    first: dict[str, Row] = {}
    for r in trace.rows:
        if r.kind == "module" and r.name not in first:
            first[r.name] = r
    out = []
    for m in report.mismatches:
        row = first.get(m.module)
        if row is None or not row.input_shapes or not row.input_shapes[0]:
            out.append(m)
            continue
        x = row.input_shapes[0]
        need, got = _expected_input(m), None
        if m.layer_type in LINEARS:
            got = x[-1]
            origin = describe_origin(got, flatten_origin(trace.rows, row))
        elif m.layer_type in _CONV or m.layer_type.startswith(("BatchNorm", "InstanceNorm", "GroupNorm")):
            n = _CONV.get(m.layer_type, max(len(x) - 2, 1))
            got = x[len(x) - n - 1] if len(x) > n else None
            origin = f"{got} channels (input {shape_text(x)})"
        else:
            origin = f"input {shape_text(x)}"
        where = f" from {row.source}" if row.source and m.layer_type not in LINEARS else ""
        fits = None if need is None or got is None else need == got
        out.append(dataclasses.replace(m, receives=tuple(x), receives_from=origin + where, fits_forward=fits))
    return dataclasses.replace(report, mismatches=tuple(out))


def _expected_input(m: ShapeMismatch) -> int | None:
    """The input size the checkpoint's tensor implies for the layer (in_features, in_channels)."""
    shape, local = m.checkpoint_shape, m.key.rpartition(".")[2]
    if m.layer_type in LINEARS and local == "weight" and len(shape) == 2:
        return shape[1]
    if m.layer_type in _CONV and local == "weight" and len(shape) >= 3 and m.fix:
        # in_channels from the fix (groups and transposed layouts are already worked out there)
        return _in_channels(m.fix)
    if m.layer_type.startswith(("BatchNorm", "InstanceNorm")) and len(shape) == 1:
        return shape[0]
    return None


def _in_channels(fix: str) -> int | None:
    inside = fix.partition("(")[2]
    first = inside.split(",")[0].strip()
    return int(first) if first.isdigit() else None

