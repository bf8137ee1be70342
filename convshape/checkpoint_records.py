"""Plain-data records for files on disk: what a checkpoint holds, and how it fits a model.

No torch objects and no formatting live here; each report turns into JSON with ``to_dict()``,
tagged with its schema version (documented in the README's JSON contract section).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .records import Shape, _lists

CHECKPOINT_SCHEMA = "convshape.checkpoint/1"
WEIGHTS_SCHEMA = "convshape.weights/1"


@dataclass(frozen=True)
class TensorEntry:
    """One tensor in a checkpoint file, described from the file's header or pickle, never its data."""

    name: str  # full dotted path in the file: "model.fc1.weight", "optimizer.state.0.exp_avg"
    group: str  # the module prefix it belongs to: "model.fc1" ("" at the top level)
    shape: Shape
    dtype: str  # torch's name: "float32", "bfloat16", ...
    numel: int
    bytes: int  # numel x itemsize: what this tensor takes once loaded
    storage: str | None = None  # the storage it views (pickled checkpoints); tensors sharing one are tied
    shared_with: tuple[str, ...] = ()  # other tensors in the file viewing the same storage

    def to_dict(self) -> dict[str, Any]:
        return _lists(asdict(self))


@dataclass(frozen=True)
class GroupTotal:
    """Tensors, elements and bytes under one prefix."""

    name: str
    tensors: int
    numel: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckpointReport:
    """What a checkpoint file holds: every tensor, grouped by module prefix, with totals."""

    path: str
    format: str  # "torch.save (zip)", "torch.save (legacy)", "safetensors", "pickle (trusted)"
    file_bytes: int
    tensors: tuple[TensorEntry, ...]
    groups: tuple[GroupTotal, ...]  # one per module prefix that holds tensors, in file order
    top_level: tuple[GroupTotal, ...]  # one per first path component ("model", "optimizer", "layers", ...)
    totals: GroupTotal  # name "" : all tensors
    storage_bytes: int  # bytes of the distinct storages (tied or viewed tensors counted once)
    dtypes: dict[str, int] = field(default_factory=dict)  # elements per dtype
    state_dicts: tuple[GroupTotal, ...] = ()  # each dict of tensors in the file, by path ("" = the file itself)
    metadata: dict[str, Any] = field(default_factory=dict)  # plain values found beside the tensors
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CHECKPOINT_SCHEMA,
            "path": self.path,
            "format": self.format,
            "file_bytes": self.file_bytes,
            "tensors": [t.to_dict() for t in self.tensors],
            "groups": [g.to_dict() for g in self.groups],
            "top_level": [g.to_dict() for g in self.top_level],
            "totals": {**self.totals.to_dict(), "storage_bytes": self.storage_bytes},
            "dtypes": dict(self.dtypes),
            "state_dicts": [g.to_dict() for g in self.state_dicts],
            "metadata": dict(self.metadata),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ShapeMismatch:
    """A key both sides have, with different shapes, and the layer that would accept the checkpoint's."""

    key: str  # the model's key: "fc1.weight"
    checkpoint_key: str  # the same tensor's key in the file (with its prefix, if it has one)
    module: str  # "fc1"
    layer_type: str  # "Linear" ("" when the key belongs to no submodule)
    model_shape: Shape
    checkpoint_shape: Shape
    current: str | None  # the layer as the model builds it: "nn.Linear(320, 500)"
    fix: str | None  # the layer that takes the checkpoint's tensors: "nn.Linear(800, 500)"
    # with trace --weights: what the layer receives in the forward pass, and whether that fits the checkpoint
    receives: Shape | None = None
    receives_from: str | None = None  # "800 = 50 x 4 x 4 from max_pool2d at mnist_net.py:23"
    fits_forward: bool | None = None  # True: the fix also fits what the forward gives the layer

    def to_dict(self) -> dict[str, Any]:
        return _lists(asdict(self))


@dataclass(frozen=True)
class PrefixFix:
    """A key prefix on one side only, and the rename that makes the keys match."""

    action: str  # "strip" (remove from the checkpoint's keys) or "add" (prepend to them)
    prefix: str  # "module.", "_orig_mod.", "model." ...
    cause: str  # "nn.DataParallel / DistributedDataParallel", "torch.compile", ...
    matched_before: int
    matched_after: int
    code: str  # one line of Python that renames the keys

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WeightsReport:
    """A model compared with a checkpoint, key by key, as ``load_state_dict(strict=True)`` would."""

    model: str
    checkpoint: str
    state_dict: str  # where the weights sit in the file: "" (the top level), "model", "state_dict", ...
    model_keys: int
    checkpoint_keys: int
    matched: int  # keys on both sides with the same shape (after the prefix fix, if any)
    missing: tuple[str, ...]  # in the model, not in the checkpoint
    unexpected: tuple[str, ...]  # in the checkpoint, not in the model
    mismatches: tuple[ShapeMismatch, ...]
    prefix: PrefixFix | None = None
    dtype_casts: tuple[str, ...] = ()  # keys whose dtype differs (load_state_dict casts them; not an error)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatches or self.prefix)

    @property
    def fixes(self) -> dict[str, str]:
        """module -> the constructor that takes the checkpoint's tensors, one per mismatching layer."""
        out: dict[str, str] = {}
        for m in self.mismatches:
            if m.fix and m.module not in out:
                out[m.module] = m.fix
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": WEIGHTS_SCHEMA,
            "model": self.model,
            "checkpoint": self.checkpoint,
            "state_dict": self.state_dict,
            "ok": self.ok,
            "model_keys": self.model_keys,
            "checkpoint_keys": self.checkpoint_keys,
            "matched": self.matched,
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatches": [m.to_dict() for m in self.mismatches],
            "fixes": self.fixes,
            "prefix": self.prefix.to_dict() if self.prefix else None,
            "dtype_casts": list(self.dtype_casts),
            "notes": list(self.notes),
        }
