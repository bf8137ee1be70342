"""Models built from a configuration object: Hugging Face classes (a ``config_class``) and ``AutoModel*``.

``convshape trace transformers:BertModel --arg num_hidden_layers=2`` builds ``BertConfig(num_hidden_layers=2)``
and then ``BertModel(config)``; ``--config path/config.json`` starts from a local file instead (the one the
hub cache already holds); ``transformers:AutoModel --arg model_type=llama`` picks the architecture.
Nothing is downloaded: only ``from_config``-style construction is used, on the device the run stage asks
for (meta by default, so no weights are allocated).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import os
from collections.abc import Callable
from typing import Any

from .errors import LoadError

NAME_ARGS = ("model_name", "model_type", "name", "arch", "variant")  # shown in the label when given


def takes_config(obj: Any) -> bool:
    """A class built from one config object: transformers' ``config_class`` convention, or an ``AutoModel*``."""
    return inspect.isclass(obj) and (getattr(obj, "config_class", None) is not None or is_auto(obj))


def is_auto(obj: Any) -> bool:
    return inspect.isclass(obj) and hasattr(obj, "_model_mapping") and hasattr(obj, "from_config")


def labelled(label: str, kwargs: dict[str, Any], config_path: str | None = None) -> str:
    """``timm:create_model(model_name='convnext_tiny')``: the label names the model a name argument chose."""
    shown = [f"{k}={v!r}" for k, v in kwargs.items() if k in NAME_ARGS and isinstance(v, str)]
    if config_path:
        shown.insert(0, f"config={os.path.basename(config_path)}")
    return f"{label}({', '.join(shown)})" if shown else label


def read_config_file(path: str) -> dict[str, Any]:
    """The dict of a local ``config.json`` (a directory holding one will do)."""
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.exists(path):
        raise LoadError(f"--config {path}: file not found; expected a local config.json "
                        "(e.g. from ~/.cache/huggingface/hub/models--.../snapshots/*/config.json)")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise LoadError(f"--config {path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"--config {path}: cannot be read ({e})") from None
    if not isinstance(data, dict):
        raise LoadError(f"--config {path}: expected a JSON object of config fields, got a {type(data).__name__}")
    return data


def _known_fields(config_cls: Any) -> set[str]:
    names: set[str] = set()
    with contextlib.suppress(TypeError, ValueError):
        names.update(p for p in inspect.signature(config_cls.__init__).parameters if p not in ("self", "kwargs"))
    with contextlib.suppress(Exception):  # a config that cannot be built with defaults still has its signature
        names.update(config_cls().to_dict())
    names.update(getattr(config_cls, "attribute_map", None) or {})
    return names


def _check_fields(config_cls: type, fields: dict[str, Any], label: str) -> None:
    """transformers configs keep any unknown keyword silently: a typo would change nothing. Refuse it."""
    known = _known_fields(config_cls)
    if not known:
        return
    for name in fields:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise LoadError(f"{label}: {config_cls.__name__} has no field {name!r}{hint} "
                            f"(--arg values go into the config; it has {len(known)} fields, "
                            "e.g. num_hidden_layers, hidden_size)")


def config_factory(obj: Any, kwargs: dict[str, Any], config_path: str | None,
                   label: str) -> tuple[Callable[[], Any], type]:
    """A function building ``obj`` from its config (the config is made and checked now, the model built
    later), and the class it builds (an ``AutoModel*``'s choice for the config): its forward is known."""
    fields = read_config_file(config_path) if config_path else {}
    if is_auto(obj):
        return _auto_factory(obj, fields, kwargs, label)
    config_cls = obj.config_class
    wanted = getattr(config_cls, "model_type", "") or ""
    found = fields.get("model_type")
    if found and wanted and found != wanted:
        raise LoadError(f"--config {config_path}: model_type {found!r}, but {label} takes a {wanted!r} config "
                        f"({config_cls.__name__}); use the matching class, or transformers:AutoModel")
    _check_fields(config_cls, kwargs, label)
    try:
        config = config_cls.from_dict({**fields, **kwargs}) if fields else config_cls(**kwargs)
    except Exception as e:
        raise LoadError(f"building {config_cls.__name__} for {label} raised {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300] if str(e) else ''}") from e
    return (lambda: obj(config)), obj


def _auto_factory(obj: Any, file_fields: dict[str, Any], kwargs: dict[str, Any],
                  label: str) -> tuple[Callable[[], Any], type]:
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    fields = {**file_fields, **kwargs}
    model_type = fields.pop("model_type", None)
    if not model_type:
        raise LoadError(f"{label} needs the architecture: --arg model_type=llama (or bert, gpt2, t5, ...), "
                        "or --config path/to/config.json")
    if model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(str(model_type), list(CONFIG_MAPPING.keys()), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LoadError(f"{label}: unknown model_type {model_type!r}{hint}")
    config_cls = CONFIG_MAPPING[model_type]
    _check_fields(config_cls, {k: v for k, v in kwargs.items() if k != "model_type"}, label)
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except Exception as e:
        raise LoadError(f"building a {model_type!r} config for {label} raised {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300] if str(e) else ''}") from e
    if type(config) not in obj._model_mapping:
        names = sorted({c.model_type for c in obj._model_mapping if hasattr(c, "model_type")})
        raise LoadError(f"{label} has no model for model_type {model_type!r}; it has: "
                        f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}")
    return (lambda: obj.from_config(config)), obj._model_mapping[type(config)]
