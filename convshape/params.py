"""Parameter accounting over a module tree: one record per tensor, tied weights counted once."""

from __future__ import annotations

from torch import nn
from torch.nn.parameter import UninitializedParameter

from .records import ModuleSubtotal, ParamRecord, ParamReport, Totals
from .tensors import dtype_name


def unique_parameters(model: nn.Module) -> dict[int, tuple[nn.Parameter, list[str]]]:
    """id -> (parameter, every name it has), in registration order."""
    found: dict[int, tuple[nn.Parameter, list[str]]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        found.setdefault(id(p), (p, []))[1].append(name)
    return found


def numel(p: nn.Parameter) -> int:
    """A parameter's element count; 0 for a lazy module's parameter not yet sized by a forward pass."""
    return 0 if isinstance(p, UninitializedParameter) else p.numel()


def totals_of(model: nn.Module) -> Totals:
    params = trainable = nbytes = 0
    for p, _ in unique_parameters(model).values():
        n = numel(p)
        params += n
        nbytes += n * p.element_size()
        if p.requires_grad:
            trainable += n
    return Totals(params, trainable, params - trainable, nbytes)


def param_report(model: nn.Module, label: str) -> ParamReport:
    records: list[ParamRecord] = []
    owned: dict[str, list[ParamRecord]] = {}
    notes: list[str] = []
    for p, names in unique_parameters(model).values():
        name = names[0]
        lazy = isinstance(p, UninitializedParameter)
        if lazy:
            notes.append(f"{name} belongs to a lazy layer and has no size until a forward pass; "
                         "run `convshape trace` with --input to size it")
        rec = ParamRecord(
            name=name, module=name.rpartition(".")[0], shape=() if lazy else tuple(p.shape), numel=numel(p),
            trainable=p.requires_grad, dtype=dtype_name(p.dtype), shared_with=tuple(names[1:]),
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
