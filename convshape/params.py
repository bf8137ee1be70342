"""Parameter accounting over a module tree: one record per tensor, tied weights counted once."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from .diagnose import SPATIAL
from .records import ModuleSubtotal, ParamRecord, ParamReport, Totals
from .tensors import dtype_name


def unique_parameters(model: nn.Module) -> dict[int, tuple[nn.Parameter, list[str]]]:
    """id -> (parameter, every name it has), in registration order."""
    found: dict[int, tuple[nn.Parameter, list[str]]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        found.setdefault(id(p), (p, []))[1].append(name)
    return found


def unsized(p: torch.Tensor) -> bool:
    """A lazy module's parameter, not yet sized by a forward pass (a plain Parameter skips the metaclass's
    isinstance, which is slow)."""
    return type(p) is not nn.Parameter and isinstance(p, UninitializedParameter)


def numel(p: nn.Parameter) -> int:
    """A parameter's element count; 0 for a lazy module's parameter not yet sized by a forward pass."""
    return 0 if unsized(p) else p.numel()


def totals_of(model: nn.Module) -> Totals:
    return totals_over(p for p, _ in unique_parameters(model).values())


def totals_over(parameters: Iterable[nn.Parameter]) -> Totals:
    """Totals over parameters given each once."""
    params = trainable = nbytes = 0
    for p in parameters:
        n = numel(p)
        params += n
        nbytes += n * p.dtype.itemsize  # not element_size(): a lazy (uninitialized) parameter has none
        if p.requires_grad:
            trainable += n
    return Totals(params, trainable, params - trainable, nbytes)


_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def formula(module: nn.Module, local: str, shape: tuple[int, ...]) -> str:
    """How a parameter's count follows from its layer's arguments: ``out 20 x in 1 x kH 5 x kW 5``."""
    kind = type(module).__name__
    n = math.prod(shape)
    if not shape:
        return "a scalar = 1"
    if isinstance(module, nn.modules.conv._ConvNd) and local == "weight":
        g = module.groups
        ks = dict(zip((f"k{d}" for d in SPATIAL[len(shape) - 2]), shape[2:], strict=True))
        kernel = " x ".join(f"{k} {v}" for k, v in ks.items())
        if module.transposed:
            per = f"out/groups {module.out_channels}/{g}={shape[1]}" if g > 1 else f"out {shape[1]}"
            return f"in {shape[0]} x {per} x {kernel} = {n:,}"
        per = f"in/groups {module.in_channels}/{g}={shape[1]}" if g > 1 else f"in {shape[1]}"
        return f"out {shape[0]} x {per} x {kernel} = {n:,}"
    if isinstance(module, nn.Linear) and local == "weight":
        return f"out {shape[0]} x in {shape[1]} = {n:,}"
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and local == "bias":
        return f"out {shape[0]} = {n:,}"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return f"num_embeddings {shape[0]} x embedding_dim {shape[1]} = {n:,}"
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
        return f"channels {shape[0]} = {n:,}"
    if isinstance(module, nn.LayerNorm):
        return f"normalized_shape {list(shape)} = {n:,}"
    if kind in _GATES and isinstance(module, nn.RNNBase):
        gates = _GATES[kind] if kind != "RNN" else 1
        proj = getattr(module, "proj_size", 0)
        what = ("proj" if proj else "hidden") if "_hh" in local else "in"
        if local.startswith("weight_hr"):
            return f"proj {shape[0]} x hidden {shape[1]} = {n:,}"
        if local.startswith("weight"):
            return f"gates {gates} x hidden {module.hidden_size} x {what} {shape[1]} = {n:,}"
        return f"gates {gates} x hidden {module.hidden_size} = {n:,}"
    if isinstance(module, nn.MultiheadAttention) and local.startswith("in_proj"):
        if local == "in_proj_weight":
            return f"q,k,v 3 x embed_dim {module.embed_dim} x embed_dim {shape[1]} = {n:,}"
        return f"q,k,v 3 x embed_dim {module.embed_dim} = {n:,}"
    return " x ".join(map(str, shape)) + f" = {n:,}"


def param_report(model: nn.Module, label: str) -> ParamReport:
    records: list[ParamRecord] = []
    owned: dict[str, list[ParamRecord]] = {}
    notes: list[str] = []
    # by name from one walk: ScriptModules have no get_submodule
    by_name = dict(model.named_modules(remove_duplicate=False))
    for p, names in unique_parameters(model).values():
        name = names[0]
        lazy = isinstance(p, UninitializedParameter)
        if lazy:
            notes.append(f"{name} belongs to a lazy layer and has no size until a forward pass; "
                         "run `convshape trace` with --input to size it")
        owner, _, local = name.rpartition(".")
        shape = () if lazy else tuple(p.shape)
        rec = ParamRecord(
            name=name, module=owner, shape=shape, numel=numel(p), trainable=p.requires_grad,
            dtype=dtype_name(p.dtype), shared_with=tuple(names[1:]),
            formula="unsized (lazy)" if lazy else formula(by_name[owner], local, shape),
        )
        records.append(rec)
        owned.setdefault(rec.module, []).append(rec)
    modules = []
    for mod_name, mod in model.named_modules():
        recs = owned.get(mod_name)
        if recs:
            modules.append(ModuleSubtotal(
                name=mod_name, type=type(mod).__name__, params=sum(r.numel for r in recs),
                trainable=sum(r.numel for r in recs if r.trainable),
            ))
    return ParamReport(label, tuple(records), tuple(modules), totals_of(model), tuple(notes))
