"""Check the inputs against ``forward``'s signature, before any tensor is made (and, where the model's
class is known, before the model is built): unknown keyword names, missing required arguments, too many
positional ones, each told with the signature. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import inspect
import typing
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InputSpecError

_HINT = "give one --input per argument, e.g. --input 64x784, or --input NAME=SHAPE for a keyword one"


def forward_of(obj: Any) -> Callable[..., Any] | None:
    """``forward`` of a model instance or class (unbound for a class: ``self`` is dropped later)."""
    forward = getattr(obj, "forward", None)
    return forward if callable(forward) else None


# function -> (what its signature is read from, its parameters): inspect.signature costs more than a small
# model's trace spends anywhere else outside its forward pass, and a model is traced again and again
_SIGNATURES: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], bool, list[inspect.Parameter]]] = \
    weakref.WeakKeyDictionary()


def _source_of(function: Any) -> tuple[Any, ...] | None:
    """Everything ``inspect.signature`` reads from a plain function (compared by identity: a default may be a
    tensor), or None for any other callable."""
    try:
        return (function.__code__, function.__defaults__, function.__kwdefaults__,
                vars(function).get("__signature__"), vars(function).get("__wrapped__"),
                function.__annotations__ if "__annotations__" in vars(function) else None)
    except (AttributeError, TypeError):
        return None


def _signature(forward: Callable[..., Any]) -> list[inspect.Parameter]:
    """``inspect.signature(forward)``'s parameters, read once per function (a bound method: per its function)."""
    function = getattr(forward, "__func__", None) if inspect.ismethod(forward) else forward
    source = _source_of(function) if function is not None else None
    if source is None:
        return list(inspect.signature(forward).parameters.values())
    bound = function is not forward
    known = _SIGNATURES.get(function)
    if known is not None and known[1] == bound and all(a is b for a, b in zip(known[0], source, strict=True)):
        return known[2]
    params = list(inspect.signature(forward).parameters.values())
    _SIGNATURES[function] = (source, bound, params)
    return params


def _parameters(forward: Callable[..., Any], unbound: bool) -> list[inspect.Parameter] | None:
    try:
        params = _signature(forward)
    except (TypeError, ValueError):
        return None
    if unbound and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return params


def _typed_kwargs(param: inspect.Parameter) -> set[str] | None:
    """The keys of ``**kwargs: Unpack[SomeTypedDict]`` (transformers types its extra keywords so)."""
    annotation = param.annotation
    if isinstance(annotation, str) or annotation is param.empty:
        return None
    args = typing.get_args(annotation)
    if getattr(annotation, "__origin__", None) is not None and args and typing.is_typeddict(args[0]):
        # the key sets, not get_type_hints: that would evaluate annotations the module may not import
        return set(getattr(args[0], "__required_keys__", ())) | set(getattr(args[0], "__optional_keys__", ()))
    return None


def signature_text(owner: str, params: Iterable[inspect.Parameter]) -> str:
    parts = []
    for p in params:
        prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        parts.append(prefix + p.name + ("" if p.default is p.empty or prefix else "=..."))
    text = f"{owner}.forward({', '.join(parts)})"
    return text if len(text) <= 300 else text[:297] + "..."


def check_inputs(obj: Any, owner: str, n_args: int, kwarg_names: Iterable[str], unbound: bool = False) -> None:
    """Raise :class:`InputSpecError` when ``n_args`` positional and ``kwarg_names`` keyword inputs can't
    bind to ``obj.forward``; ``unbound`` when ``obj`` is a class, not a built model."""
    forward = forward_of(obj)
    if forward is None:
        return
    params = _parameters(forward, unbound)
    if params is None:
        return
    names = list(kwarg_names)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    var_kw = next((p for p in params if p.kind is p.VAR_KEYWORD), None)
    by_keyword = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not variadic and n_args > len(positional):
        raise InputSpecError(f"{owner}.forward({', '.join(p.name for p in positional)}) takes "
                             f"{_count(positional)} input(s), got {n_args}; {_HINT} "
                             f"(signature: {signature_text(owner, params)})")
    filled = {p.name for p in positional[:n_args]}
    extra_ok = _typed_kwargs(var_kw) if var_kw is not None and names else set()  # (read only for names)
    for name in names:
        if name in filled:
            raise InputSpecError(f"--input {name}=...: {name} is already given by a positional --input "
                                 f"(signature: {signature_text(owner, params)})")
        if name in by_keyword:
            continue
        if var_kw is not None and (extra_ok is None or name in extra_ok):
            continue
        choices = sorted(by_keyword | (extra_ok or set()))
        close = difflib.get_close_matches(name, choices, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InputSpecError(f"--input {name}=...: {owner}.forward has no argument named {name!r}{hint} "
                             f"(signature: {signature_text(owner, params)})")
    missing = [p.name for p in params if p.default is p.empty and p.name not in filled and p.name not in names
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        if not names and all(p.kind is not p.KEYWORD_ONLY for p in params if p.name in missing):
            # the long-standing message for positional-only use
            raise InputSpecError(
                f"{owner}.forward({', '.join(p.name for p in positional)}) takes {_count(positional)} input(s), "
                f"got {n_args}; {_HINT} (2x16:int64 for token ids)")
        raise InputSpecError(f"{owner}.forward is missing required input(s): {', '.join(missing)}; "
                             f"give them as --input {missing[0]}=SHAPE "
                             f"(signature: {signature_text(owner, params)})")


def _count(positional: list[inspect.Parameter]) -> str:
    required = [p for p in positional if p.default is p.empty]
    return f"{len(required)}" if len(required) == len(positional) else f"{len(required)} to {len(positional)}"
