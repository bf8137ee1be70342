"""One walk over a module tree: what the run stage, the recorder and :class:`~convshape.isolation.Preserved` need.

A trace used to walk the tree seven times (names, parameter counts, held tensors, training flags, laziness,
device, totals), each through torch's generators; on a model of 1,000 modules that cost as much as the
forward pass's own hooks. :func:`walk` reads every module's own dicts once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from .params import unsized


@dataclass(slots=True)
class Structure:
    """What one walk over ``root`` found; every module, parameter and buffer once, in torch's order."""

    root: nn.Module
    names: dict[int, str] = field(default_factory=dict)  # id(module) -> its first qualified name
    modules: list[nn.Module] = field(default_factory=list)  # preorder, as named_modules()
    parameters: list[nn.Parameter] = field(default_factory=list)  # as parameters()
    buffers: list[torch.Tensor] = field(default_factory=list)  # as buffers()
    shared: bool = False  # a module or a parameter reachable under two names
    lazy: bool = False  # a parameter or buffer not yet sized by a forward pass
    _children: dict[int, list[nn.Module]] = field(default_factory=dict)  # of the modules that have any
    _containers: list[nn.Module] = field(default_factory=list)  # the modules with children, in preorder
    # id(module) -> its own parameters' elements, for the modules without children; lazy ones are left out
    _leaf_params: dict[int, int] = field(default_factory=dict)

    def device(self) -> torch.device | None:
        """Where the first parameter (else buffer) is; None for a model without either."""
        for tensors in (self.parameters, self.buffers):
            if tensors:
                return tensors[0].device
        return None

    def subtree_params(self) -> dict[int, int]:
        """id(module) -> parameters in its subtree, each counted once; lazy subtrees are left out."""
        if self.shared:
            return _shared_subtree_params(self)
        counts = dict(self._leaf_params)  # a module without children: counted by the walk
        lazy: set[int] = set()
        for module in reversed(self._containers):  # children before parents
            key = id(module)
            total = _own_count(_own_parameters(module))
            if total is None:
                lazy.add(key)
                total = 0
            for child in self._children[key]:
                got = counts.get(id(child))
                if got is None:  # lazy: its parent too
                    lazy.add(key)
                else:
                    total += got
            if key not in lazy:
                counts[key] = total
        return counts


def walk(root: nn.Module) -> Structure:
    """Every module of ``root`` in preorder (the order of ``named_modules``), with its first name."""
    found = Structure(root)
    names, modules, children = found.names, found.modules, found._children
    containers, leaf_params = found._containers, found._leaf_params
    seen_tensors: set[int] = set()
    stack: list[tuple[str, nn.Module]] = [("", root)]
    while stack:
        name, module = stack.pop()
        key = id(module)
        if key in names:
            found.shared = True
            continue
        names[key] = name
        modules.append(module)
        own = module.__dict__  # (a model of 10,000 activations: most modules have no tensors and no children)
        if not ("_parameters" in own and "_buffers" in own and "_modules" in own):  # kept elsewhere: ask the module
            own = {k: getattr(module, k) for k in ("_parameters", "_buffers", "_modules")}
        parameters = own["_parameters"]
        if parameters:
            _take(found, parameters.values(), found.parameters, seen_tensors, shared_if_seen=True)
        if own["_buffers"]:
            _take(found, own["_buffers"].values(), found.buffers, seen_tensors, shared_if_seen=False)
        kids = None
        if own["_modules"]:
            prefix = f"{name}." if name else ""
            kids = [(prefix + k, c) for k, c in own["_modules"].items() if c is not None]
        if kids:
            children[key] = [c for _, c in kids]
            containers.append(module)
            stack.extend(reversed(kids))
        else:
            count = _own_count(parameters)
            if count is not None:
                leaf_params[key] = count
    return found


def _take(found: Structure, tensors: Iterable[torch.Tensor | None], into: list[Any], seen: set[int],
          shared_if_seen: bool) -> None:
    """A module's parameters (or buffers) into ``into``, each once; one met before marks a shared model (a tied
    parameter: buffers are not counted, so a shared one is not), an uninitialized one a lazy model."""
    for t in tensors:
        if t is None:
            continue
        if id(t) in seen:
            found.shared = found.shared or shared_if_seen
            continue
        seen.add(id(t))
        into.append(t)
        if isinstance(t, (UninitializedParameter, UninitializedBuffer)):
            found.lazy = True


def set_training(found: Structure, mode: bool) -> None:
    """``root.train(mode)``, touching only the modules whose flag differs.

    A model whose own classes override ``train`` gets its ``train`` called, as the author meant it."""
    classes: set[type[nn.Module]] = set(map(type, found.modules))
    if any(cls.train is not nn.Module.train for cls in classes):
        found.root.train(mode)
        return
    set_flags(found.modules, [mode] * len(found.modules), classes)


def set_flags(modules: list[nn.Module], flags: list[bool], classes: set[type[nn.Module]] | None = None) -> None:
    """Each module's ``training`` flag to its flag, as ``Module.__setattr__`` would set it; only those that differ.

    A class of the model's own ``__setattr__`` gets it called; the others skip its checks (for a bool it ends in
    ``object.__setattr__``). Looked at once per class: a chain of 10,000 modules has one."""
    classes = classes if classes is not None else set(map(type, modules))
    plain = all(cls.__setattr__ is nn.Module.__setattr__ for cls in classes)
    for module, mode in zip(modules, flags, strict=True):
        if module.training != mode:
            if plain:
                _SET(module, "training", mode)
            else:
                module.training = mode


_SET = object.__setattr__


def _shared_subtree_params(found: Structure) -> dict[int, int]:
    """The exact count for a model that shares modules or parameters (a tied embedding): each parameter counts
    once toward every module above it, however many paths lead there.

    A parameter reached by one path only (most of them) is summed up the tree as in :meth:`Structure.subtree_params`;
    the others (held by two modules, or by a module reached twice) travel up as sets of ids, counted once each."""
    children = found._children
    order: list[nn.Module] = []  # children before parents, each module once
    done: set[int] = set()
    stack: list[tuple[nn.Module, bool]] = [(found.root, False)]
    while stack:
        module, expanded = stack.pop()
        key = id(module)
        if expanded:
            order.append(module)
            continue
        if key in done:
            continue
        done.add(key)
        stack.append((module, True))
        stack.extend((c, False) for c in reversed(children.get(key, ())) if id(c) not in done)
    paths = dict.fromkeys(done, 0)  # the number of paths from the root to each module
    paths[id(found.root)] = 1
    for module in reversed(order):  # parents before children
        through = paths[id(module)]
        for child in children.get(id(module), ()):
            paths[id(child)] += through
    held: dict[int, list[tuple[int, torch.Tensor]]] = {}  # id(module) -> its own (id, parameter)
    reached: dict[int, int] = {}  # id(parameter) -> paths to it
    for module in order:
        own = [(id(p), p) for p in _own_parameters(module).values() if p is not None]
        held[id(module)] = own
        for key, _ in own:
            reached[key] = reached.get(key, 0) + paths[id(module)]
    counts: dict[int, int] = {}
    sets: dict[int, frozenset[int]] = {}
    sizes: dict[int, int] = {}
    lazy: set[int] = set()
    nothing: frozenset[int] = frozenset()
    for module in order:
        key = id(module)
        plain = 0
        shared = set()
        for pid, p in held[key]:
            if unsized(p):
                lazy.add(key)
            elif reached[pid] > 1:
                shared.add(pid)
                sizes[pid] = p.numel()
            else:
                plain += p.numel()
        for child in children.get(key, ()):
            ck = id(child)
            if ck in lazy:
                lazy.add(key)
            plain += counts[ck]  # (0 for a child reached twice: all it holds is shared)
            shared |= sets[ck]
        sets[key] = frozenset(shared) if shared else nothing
        counts[key] = plain
    for key, ids in sets.items():
        if ids:
            counts[key] += sum(sizes[i] for i in ids)
    for key in lazy:
        del counts[key]
    return counts


def _own_count(parameters: dict[str, Any]) -> int | None:
    """The elements of a module's own parameters; None when one is not sized yet (a lazy module)."""
    total = 0
    for p in parameters.values():
        if p is not None:
            if unsized(p):
                return None
            total += p.numel()
    return total


def _own_parameters(module: nn.Module) -> dict[str, Any]:
    own = module.__dict__
    if "_parameters" in own:
        return own["_parameters"]
    return module._parameters  # kept elsewhere: ask the module, as walk does
