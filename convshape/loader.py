"""Turn a :class:`~convshape.spec.ModelRef` into a built ``nn.Module``, saying how it was chosen.

The user's file runs as ordinary Python, as ``python file.py`` would run it (its directory first on
``sys.path``), except that ``if __name__ == "__main__":`` blocks do not run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import nn

from .errors import ConvshapeError, LoadError, RunTimeout, safe_str
from .isolation import ModelExit, TimedOut
from .paths import user_frame_summary, user_where
from .spec import ModelRef, check_model_file


@dataclass
class ModelSource:
    """The chosen class, factory or instance, ready to build as many times as needed."""

    obj: Any
    kwargs: dict[str, Any]
    label: str  # "mnist_net.py:M"
    how: str  # "M, the only nn.Module subclass defined in mnist_net.py"
    notes: tuple[str, ...] = ()  # what the loader did that the user should know (a shadowed stdlib module)

    @property
    def is_instance(self) -> bool:
        return isinstance(self.obj, nn.Module)

    def build(self, device: str | None = None, skip_init: bool = False) -> nn.Module:
        """Build the model under ``torch.device(device)``; ``skip_init`` leaves weights uninitialized.

        On meta, initialization is always skipped: meta tensors hold no values, and an init op
        such as ``normal_`` would be the process's first meta op, which costs about a second.
        """
        return _build(self.obj, self.kwargs, self.label, device, skip_init or device == "meta")


_INIT_FUNCTIONS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)  # fmt: skip


@contextmanager
def skipped_init() -> Iterator[None]:
    """Make ``torch.nn.init`` a no-op while a model is built: shapes don't need initial values.

    Parameters keep whatever their memory held; buffers, which models fill with explicit values
    (position ids, masks, running statistics), are unaffected.
    """
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS if hasattr(nn.init, name)}
    try:
        for name in saved:
            setattr(nn.init, name, _keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


def _keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


def _user_line(exc: BaseException) -> str:
    """The innermost traceback line in the user's code, with its text: ``net.py:4: WIDTH = SIZES["large"]``."""
    where = user_where(exc)
    entry = user_frame_summary(exc)
    if where is None or entry is None:
        return ""
    return f"{where}: {entry.line}" if entry.line else where


def _raised(doing: str, exc: BaseException) -> ConvshapeError:
    """``importing net.py raised KeyError: 'large'`` and the user's line where it happened.

    A model that exits (``sys.exit``, ``os._exit``) or runs past ``--timeout`` is told as such.
    """
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    line = _user_line(exc)
    at = f"\n  at {line}" if line else ""
    if isinstance(exc, TimedOut):
        return RunTimeout(f"{doing} did not finish within {exc.seconds:g} s (--timeout){at}")
    if isinstance(exc, (SystemExit, ModelExit)):
        how = exc.how if isinstance(exc, ModelExit) else "sys.exit"
        return LoadError(f"{doing} exited: the model's code called {how}({exc.code!r}); "
                         f"convshape cannot trace a model that exits{at}")
    if isinstance(exc, RecursionError):
        return LoadError(f"{doing} raised RecursionError: {safe_str(exc)} (does a function call itself "
                         f"without end?){at}")
    message = safe_str(exc)
    message = message if len(message) <= 2000 else message[:2000] + " ..."
    return LoadError(f"{doing} raised {type(exc).__name__}: {message}{at}")


# Modules of the standard library that are harmless to import early (not these, which act on import).
_NOT_PREIMPORTED = frozenset({"this", "antigravity", "idlelib", "tkinter", "turtle", "turtledemo", "__main__"})


def _protect_stdlib(directory: str) -> tuple[str, ...]:
    """Import now the standard-library modules that a file beside the model would shadow.

    With the model's directory first on ``sys.path``, a ``profile.py`` there would be what torch gets when
    it imports ``profile`` later, and torch would fail far from the cause. Returns a note per module.
    """
    try:
        entries = os.listdir(directory)
    except OSError:
        return ()
    notes = []
    for entry in sorted(entries):
        stem = entry[:-3] if entry.endswith(".py") else entry
        if stem == entry and not os.path.isfile(os.path.join(directory, entry, "__init__.py")):
            continue
        if stem in sys.stdlib_module_names and stem not in sys.modules and stem not in _NOT_PREIMPORTED:
            try:
                importlib.import_module(stem)
            except Exception:
                continue
            notes.append(f"{entry} beside your model has the name of Python's standard module {stem!r}; "
                         f"`import {stem}` gets the standard one (rename your file to use it)")
    return tuple(notes)


def _import_file(ref: ModelRef) -> tuple[ModuleType, tuple[str, ...]]:
    check_model_file(ref)
    path = os.path.abspath(ref.target)
    directory = os.path.dirname(path)
    notes = _protect_stdlib(directory)
    stem = os.path.splitext(os.path.basename(path))[0]
    fresh = stem.isidentifier() and stem not in sys.modules
    mod_name = stem if fresh else f"_convshape_user_{abs(hash(path))}"
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)  # as `python file.py` has it; the run stage's guard takes it out again
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"cannot import {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(mod_name, None)
        if "null bytes" in e.msg:
            raise LoadError(f"{os.path.basename(path)} contains NUL bytes: it is not a Python source file "
                            "(expected a .py file defining an nn.Module)") from e
        where = os.path.basename(e.filename or path) + (f":{e.lineno}" if e.lineno else "")
        text = (e.text or "").rstrip().replace("\0", "")
        raise LoadError(f"syntax error in {where}: {e.msg}" + (f"\n    {text}" if text else "")) from e
    except ValueError as e:
        sys.modules.pop(mod_name, None)
        if "null bytes" in safe_str(e):
            raise LoadError(f"{os.path.basename(path)} contains NUL bytes: it is not a Python source file "
                            "(expected a .py file defining an nn.Module)") from e
        raise _raised(f"importing {os.path.basename(path)}", e) from e
    except BaseException as e:
        sys.modules.pop(mod_name, None)
        raise _raised(f"importing {os.path.basename(path)}", e) from e
    return module, notes


def _import_module(ref: ModelRef) -> ModuleType:
    try:
        return importlib.import_module(ref.target)
    except ModuleNotFoundError as e:
        if e.name and ref.target.startswith(e.name):
            raise LoadError(f"no module named {e.name!r} (from MODEL {ref}); expected a .py file or an "
                            "importable package.module:Name") from e
        raise LoadError(f"importing {ref.target} raised ModuleNotFoundError: {e}") from e
    except BaseException as e:
        raise _raised(f"importing {ref.target}", e) from e


def _candidates(module: ModuleType) -> dict[str, str]:
    """What the module defines that could be a model: name -> kind."""
    found: dict[str, str] = {}
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(value) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
            found[name] = "nn.Module subclass"
        elif isinstance(value, nn.Module):
            found[name] = "nn.Module instance"
        elif inspect.isfunction(value) and value.__module__ == module.__name__:
            found[name] = "function"
    return found


def _describe(found: dict[str, str], label: str) -> str:
    if not found:
        return f"{label} defines no nn.Module subclass, instance or function"
    return f"{label} defines: " + ", ".join(f"{n} ({k})" for n, k in found.items())


def _check_signature(obj: Any, kwargs: dict[str, Any], label: str) -> None:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = list(sig.parameters.values())
    if inspect.isclass(obj) and params and params[0].name == "self":
        params = params[1:]
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = [k for k in kwargs if k not in names]
    if unknown and not accepts_any:
        raise LoadError(f"{label} takes no argument named {', '.join(unknown)}; "
                        f"it accepts: {', '.join(sorted(names)) or 'nothing'}")
    missing = [p.name for p in params if p.default is p.empty
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in kwargs]
    if missing:
        example = " ".join(f"--arg {m}=..." for m in missing)
        raise LoadError(f"{label} needs constructor arguments: {', '.join(missing)}; "
                        f"pass them as {example} (values are Python literals)")


def resolve(ref: ModelRef) -> ModelSource:
    """Import the file or module of ``ref`` and pick the model in it, saying how it was chosen."""
    module, notes = _import_file(ref) if ref.is_file else (_import_module(ref), ())
    label = os.path.basename(ref.target) if ref.is_file else ref.target
    found = _candidates(module)
    if ref.name:
        if not hasattr(module, ref.name):
            raise LoadError(f"{ref.name!r} not found in {label}; {_describe(found, label)}")
        obj, chosen, how = getattr(module, ref.name), ref.name, f"{ref.name}, named in MODEL"
    else:
        classes = [n for n, k in found.items() if k == "nn.Module subclass"]
        if not found:
            raise LoadError(f"{label} defines no nn.Module subclass, instance or factory function; "
                            "expected a file with e.g. `class Net(nn.Module): ...`")
        if len(classes) != 1:
            what = "several nn.Module subclasses" if classes else "no nn.Module subclass"
            # Models are usually defined bottom-up: the last class is the likeliest whole model.
            hint = f"{ref.target}:{classes[-1] if classes else 'Name'}"
            raise LoadError(f"{label} defines {what}; choose one as {hint}. {_describe(found, label)}")
        chosen = classes[0]
        obj, how = getattr(module, chosen), f"{chosen}, the only nn.Module subclass defined in {label}"
    label = f"{label}:{chosen}"
    if isinstance(obj, nn.Module):
        if ref.kwargs:
            raise LoadError(f"{label} is an nn.Module instance, already built; --arg does not apply")
    elif not callable(obj):
        raise LoadError(f"{label} is a value of type {type(obj).__name__}, "
                        "not an nn.Module subclass, instance or factory")
    else:
        _check_signature(obj, ref.kwargs, label)
    return ModelSource(obj, dict(ref.kwargs), label, how, notes)


def _build(obj: Any, kwargs: dict[str, Any], label: str, device: str | None, skip_init: bool) -> nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    context = torch.device(device) if device else nullcontext()
    try:
        with context, skipped_init() if skip_init else nullcontext():
            built = obj(**kwargs)
    except BaseException as e:
        raise _raised(f"building {label}", e) from e
    if not isinstance(built, nn.Module):
        raise LoadError(f"{label} returned a value of type {type(built).__name__}, not an nn.Module")
    return built
