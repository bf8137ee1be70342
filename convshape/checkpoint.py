"""Read what a checkpoint file holds without reading its tensor data, and without running its code.

* ``.safetensors``: the 8-byte little-endian header length and the JSON header, per the format's spec.
* ``torch.save`` files (``.pt``/``.pth``/``.bin``/``.ckpt``, zip or legacy): the archive's pickle is
  read by a restricted unpickler that knows only torch's tensor-rebuild functions, storage types,
  dtypes and plain containers, each replaced by a stand-in that records a shape and a dtype. No
  storage is materialised and no other global is ever looked up, so a malicious pickle cannot run
  code: it is refused, naming what it asked for.
* Anything torch's own ``weights_only=True`` loader accepts but the stand-ins cannot describe
  (quantized or sparse tensors) falls back to ``torch.load(mmap=True, weights_only=True)``.
* A file that needs more than that (a whole pickled ``nn.Module``) is refused unless the caller
  trusts it (``--trust-pickle``); then it is loaded as ``torch.load(weights_only=False)`` would.

torch is not imported on the header paths, so listing a 70B checkpoint takes a fraction of a second.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .checkpoint_records import CheckpointReport, GroupTotal, TensorEntry
from .errors import LoadError
from .records import ITEMSIZE, Shape

# File suffixes the CLI treats as checkpoints or saved programs rather than Python model files.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".pt2", ".tar", ".index.json")

DTYPE_BYTES: dict[str, float] = {
    **ITEMSIZE, "uint16": 2, "uint32": 4, "uint64": 8, "complex32": 4, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1, "float4_e2m1fn_x2": 1, "qint8": 1, "quint8": 1, "qint32": 4,
    "quint4x2": 1, "quint2x4": 1,
}  # fmt: skip

# torch's legacy typed storages name their dtype
_STORAGE_DTYPES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}  # fmt: skip

# the safetensors spec's dtype names
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64",
    "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu",
    "C64": "complex64",
}  # fmt: skip

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MAX_SAFETENSORS_HEADER = 100_000_000  # the spec's own limit


class CheckpointError(LoadError):
    """A checkpoint that cannot be read (not a checkpoint, truncated, or refused as unsafe)."""


class UnsafePickleError(CheckpointError):
    """The file's pickle asks for Python objects beyond tensors and plain containers."""


# ---- stand-ins the restricted unpickler builds instead of torch objects ------------------------


@dataclass
class StorageRef:
    key: str
    dtype: str
    numel: int  # elements of ``dtype`` (bytes for an untyped storage)

    @property
    def nbytes(self) -> int:
        return int(self.numel * DTYPE_BYTES.get(self.dtype, 1))


@dataclass
class TensorRef:
    """A tensor as the file describes it: no data."""

    dtype: str
    shape: Shape
    storage: StorageRef | None = None  # None: saved without data (meta) or described by a header only
    parameter: bool = False
    nbytes: int | None = None  # set by formats that state it (safetensors data_offsets)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class _DType:
    name: str


@dataclass(frozen=True)
class _StorageType:
    dtype: str


class _NeedsTorch(Exception):
    """An allowed rebuild this reader cannot describe (quantized, sparse, ...): ask torch's safe loader."""


class _Refused(Exception):
    def __init__(self, qualname: str) -> None:
        super().__init__(qualname)
        self.qualname = qualname


def _rebuild_tensor(storage: StorageRef, offset: int, size: Any, stride: Any, *rest: Any) -> TensorRef:
    return TensorRef(storage.dtype, tuple(int(s) for s in size), storage)


def _rebuild_tensor_v3(storage: StorageRef, offset: int, size: Any, stride: Any, requires_grad: bool,
                       hooks: Any, dtype: _DType, metadata: Any = None) -> TensorRef:
    return TensorRef(dtype.name, tuple(int(s) for s in size), storage)


def _rebuild_parameter(data: TensorRef, *rest: Any) -> TensorRef:
    if not isinstance(data, TensorRef):
        raise _NeedsTorch("a Parameter around something other than a tensor")
    data.parameter = True
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    return func(*args)


def _rebuild_meta(dtype: _DType, size: Any, *rest: Any) -> TensorRef:
    return TensorRef(dtype.name, tuple(int(s) for s in size), None)


def _needs_torch(*args: Any, **kwargs: Any) -> Any:
    raise _NeedsTorch("a tensor kind the header reader does not describe")


def _encode(obj: str, encoding: str = "utf-8") -> bytes:
    # pickle protocol 2 writes bytes as _codecs.encode(str, "latin1"); only text codecs are allowed
    if encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, encoding)


def _marker(name: str) -> Any:
    return lambda *args, **kwargs: f"<{name}>"


_ALLOWED: dict[str, Any] = {
    "collections.OrderedDict": OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._utils._rebuild_meta_tensor_no_storage": _rebuild_meta,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.Tensor": "torch.Tensor",
    "torch.nn.parameter.Parameter": "torch.nn.Parameter",
    "torch.Size": lambda dims=(): tuple(dims),
    "torch.device": _marker("device"),
    "torch.serialization._get_layout": _marker("layout"),
    "_codecs.encode": _encode,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
    "builtins.bytearray": lambda data=b"", *rest: bytearray(data if not isinstance(data, int) else b""),
    # numpy scalars beside the weights (a best accuracy, an epoch): named, never built by numpy
    "numpy.core.multiarray.scalar": _marker("numpy scalar"),
    "numpy._core.multiarray.scalar": _marker("numpy scalar"),
    "numpy.dtype": _marker("numpy dtype"),
}
for _name in ("_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_nested_tensor", "_rebuild_sparse_csr_tensor",
              "_rebuild_wrapper_subclass", "_rebuild_device_tensor_from_numpy",
              "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_xla_tensor", "_rebuild_mtia_tensor",
              "_rebuild_tensor_from_cpu_tensor"):
    _ALLOWED[f"torch._utils.{_name}"] = _needs_torch
for _storage, _dtype in _STORAGE_DTYPES.items():
    _ALLOWED[f"torch.{_storage}"] = _StorageType(_dtype)
_ALLOWED["torch.storage.UntypedStorage"] = _StorageType("uint8")
for _dt in DTYPE_BYTES:
    _ALLOWED[f"torch.{_dt}"] = _DType(_dt)
for _q in ("QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage"):
    _ALLOWED[f"torch.{_q}"] = _StorageType("quantized")
for _q in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
           "per_channel_affine_float_qparams"):
    _ALLOWED[f"torch.{_q}"] = _q


class _HeaderUnpickler(pickle.Unpickler):
    """Knows only the stand-ins above: any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        if qualname not in _ALLOWED:
            raise _Refused(qualname)
        return _ALLOWED[qualname]

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata (legacy)])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise _Refused(f"persistent id {str(pid)[:60]}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if storage_type.dtype == "quantized":
            raise _NeedsTorch("quantized storage")
        return StorageRef(key, storage_type.dtype, numel)


# ---- reading files ------------------------------------------------------------------------------


@dataclass
class Contents:
    """What a file holds: a tree of containers with TensorRef leaves, and how it was read."""

    path: str
    format: str
    tree: Any
    file_bytes: int
    notes: list[str] = field(default_factory=list)
    storage_bytes: int | None = None  # when the format states it directly
    metadata: dict[str, Any] | None = None  # the format's own metadata (safetensors __metadata__)


def is_checkpoint_path(text: str) -> bool:
    return text.lower().endswith(CHECKPOINT_SUFFIXES)


def _zip_names(path: str) -> list[str] | None:
    """The archive's member names; None for a file that is not a zip archive."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def archive_kind(path: str, names: list[str] | None = None) -> str | None:
    """'torch.save', 'torch.export' or 'torchscript' for a zip archive torch wrote; 'zip' for another zip
    archive; None for a file that is not one."""
    names = names if names is not None else _zip_names(path)
    if names is None:
        return None
    tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails):
        return "torch.export"
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "torch.save"
    return "zip"


def read(path: str, trust_pickle: bool = False) -> Contents:
    """Read the tensors' names, shapes and dtypes of a checkpoint, never their data."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory; expected a checkpoint file (.pt, .pth, .bin, .safetensors)")
    size = os.path.getsize(path)
    if path.lower().endswith(".safetensors"):
        return _read_safetensors(path, size)
    if path.lower().endswith(".index.json"):
        return _read_sharded(path, trust_pickle)
    names = _zip_names(path)
    kind = archive_kind(path, names)
    if kind in ("torch.export", "torchscript"):
        what = "a torch.export program (.pt2)" if kind == "torch.export" else "a TorchScript archive"
        raise CheckpointError(f"{path} is {what}, not a checkpoint of tensors; "
                              f"show its shapes with `convshape trace {path}`")
    if kind == "zip":
        raise CheckpointError(f"{path} is a zip archive but not one torch.save wrote (no data.pkl in it)")
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes); expected a torch.save or safetensors file")
    try:
        if kind == "torch.save":
            return _read_torch_zip(path, size, trust_pickle, names or [])
        return _read_torch_legacy(path, size, trust_pickle)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    except _NeedsTorch as e:
        return _torch_load(path, size, weights_only=True,
                           note=f"read with torch.load(weights_only=True) because the file holds {e}")


def _read_safetensors(path: str, size: int) -> Contents:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is too short for a safetensors file ({size} bytes; the header "
                                  "length alone takes 8)")
        n = int.from_bytes(head, "little")
        if n > _MAX_SAFETENSORS_HEADER or n > size - 8:
            raise CheckpointError(f"{path} is not a valid safetensors file: its first 8 bytes give a header "
                                  f"of {n:,} bytes, but the file has {size:,} bytes")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    tree: dict[str, Any] = {}
    notes: list[str] = []
    meta = header.pop("__metadata__", None)
    end_max = 0
    ranges: set[tuple[int, int]] = set()
    for name, info in header.items():
        try:
            dtype_code, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: tensor {name!r} in the header lacks dtype, shape or data_offsets "
                                  f"(got {str(info)[:80]})") from None
        dtype = SAFETENSORS_DTYPES.get(dtype_code, dtype_code.lower())
        numel = math.prod(shape)
        itemsize = DTYPE_BYTES.get(dtype)
        if itemsize is not None and end - begin != numel * itemsize:
            raise CheckpointError(f"{path}: tensor {name!r} is {dtype_code} {list(shape)} ({numel * itemsize:,} "
                                  f"bytes) but its data_offsets span {end - begin:,} bytes")
        tree[name] = TensorRef(dtype, shape, None, nbytes=end - begin)
        end_max = max(end_max, end)
        ranges.add((begin, end))
    if 8 + n + end_max > size:
        notes.append(f"the file is truncated: its header describes {end_max:,} bytes of tensor data, "
                     f"the file holds {size - 8 - n:,}")
    return Contents(path, "safetensors", tree, size, notes, sum(e - b for b, e in ranges),
                    dict(meta) if isinstance(meta, dict) else None)


def _read_sharded(path: str, trust: bool) -> Contents:
    """A sharded checkpoint's index (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``):
    each shard's tensors, as the index's weight_map assigns them."""
    try:
        with open(path) as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        assert isinstance(weight_map, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise CheckpointError(f"{path} is not a sharded checkpoint index: expected JSON with a \"weight_map\" "
                              "of tensor name -> shard file") from None
    base = os.path.dirname(path)
    tree: dict[str, Any] = {}
    total, stored = 0, 0
    notes: list[str] = []
    for shard in dict.fromkeys(weight_map.values()):
        shard_path = os.path.join(base, shard)
        if not os.path.exists(shard_path):
            raise CheckpointError(f"{path} names the shard {shard}, which is not in {base or '.'}")
        part = read(shard_path, trust)
        flat = flatten(part.tree).tensors
        tree.update({k: v for k, v in flat.items() if weight_map.get(k) == shard})
        total += part.file_bytes
        storages = {t.storage.key: t.storage.nbytes for t in flat.values() if t.storage is not None}
        stored += part.storage_bytes if part.storage_bytes is not None else sum(storages.values())
        notes += [f"{shard}: {n}" for n in part.notes]
    missing = [k for k in weight_map if k not in tree]
    if missing:
        notes.append(f"{len(missing)} tensor(s) in the index are not in their shard: {', '.join(missing[:5])}")
    shards = len(set(weight_map.values()))
    meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else None
    return Contents(path, f"sharded ({shards} files)", tree, total, notes, stored, meta)


def _refused(path: str, qualname: str) -> UnsafePickleError:
    module, _, name = qualname.rpartition(".")
    if qualname.startswith("torch.nn."):
        why = f"a whole torch.nn module ({qualname}): the file was saved with torch.save(model)"
    elif name[:1].isupper() and not module.startswith(("builtins", "posix", "os", "nt", "subprocess")):
        why = (f"a pickled Python object ({qualname}): a whole model saved with torch.save(model), or another "
               "object saved beside the weights")
    else:
        why = f"the Python global {qualname}, which loading would call"
    return UnsafePickleError(
        f"{path} holds more than tensors and plain containers: it asks for {why}. Loading it runs code "
        "from the file, so convshape never does that silently. If you trust the file, pass --trust-pickle "
        "(it runs torch.load(weights_only=False)); better, save model.state_dict() instead of the model."
    )


def _read_torch_zip(path: str, size: int, trust: bool, names: list[str]) -> Contents:
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        pkl = next(n for n in names if n.endswith("data.pkl") and n.count("/") == 1)
        prefix = pkl.rsplit("/", 1)[0]
        data = _record(z, f, pkl)
        byteorder = _record(z, f, f"{prefix}/byteorder").decode() if f"{prefix}/byteorder" in names else "little"
    try:
        tree = _HeaderUnpickler(io.BytesIO(data)).load()
    except _Refused as e:
        if trust:
            return _torch_load(path, size, weights_only=False, note="loaded with --trust-pickle")
        raise _refused(path, e.qualname) from None
    except _NeedsTorch:
        raise
    except Exception as e:  # a malformed pickle: any error the unpickler raises means the same
        raise CheckpointError(f"{path}: the archive's data.pkl is not a pickle torch.save wrote "
                              f"({type(e).__name__}: {str(e)[:80]})") from None
    notes = [] if byteorder == "little" else [f"the file was written {byteorder}-endian"]
    return Contents(path, "torch.save (zip)", tree, size, notes)


def _record(z: zipfile.ZipFile, f: Any, name: str) -> bytes:
    """A stored record's bytes, read from its local header. torch writes records uncompressed and, with
    torch.serialization.set_crc32_options(False), with no CRC, which zipfile's reader would reject."""
    info = z.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        return z.read(name)
    f.seek(info.header_offset)
    local = f.read(30)
    if local[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{z.filename}: the zip record {name} has no local header")
    name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    f.seek(info.header_offset + 30 + name_len + extra_len)
    return f.read(info.compress_size)


def _read_torch_legacy(path: str, size: int, trust: bool) -> Contents:
    with open(path, "rb") as f:
        try:
            unpickler = _HeaderUnpickler(f)
            first = unpickler.load()
            if first != _LEGACY_MAGIC:
                raise CheckpointError(f"{path} is neither a zip archive torch.save wrote, nor its legacy format, "
                                      "nor safetensors; expected a file made by torch.save or safetensors")
            unpickler.load()  # protocol version
            unpickler.load()  # sys info
            tree = unpickler.load()
        except _Refused as e:
            if trust:
                return _torch_load(path, size, weights_only=False, note="loaded with --trust-pickle")
            raise _refused(path, e.qualname) from None
        except (CheckpointError, _NeedsTorch):
            raise
        except Exception as e:  # a malformed pickle: any error the unpickler raises means the same
            raise CheckpointError(f"{path} is not a file torch.save or safetensors wrote: reading it as a "
                                  f"pickle failed ({type(e).__name__}: {str(e)[:80]})") from None
    return Contents(path, "torch.save (legacy)", tree, size, [])


def _torch_load(path: str, size: int, weights_only: bool, note: str) -> Contents:
    """torch's own loader, memory-mapped where the format allows; tensors become TensorRefs."""
    import sys

    import torch

    if not weights_only:
        # a pickled model's class lives in the user's code: look beside the file and in the current directory
        for directory in (os.path.dirname(os.path.abspath(path)), os.getcwd()):
            if directory not in sys.path:
                sys.path.insert(0, directory)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=weights_only, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise UnsafePickleError(f"{path}: torch.load(weights_only=True) refused it: {str(e).splitlines()[0]}; "
                                "if you trust the file, pass --trust-pickle") from None
    except (ModuleNotFoundError, AttributeError) as e:
        raise CheckpointError(f"{path} holds a pickled object whose class cannot be imported ({e}); run from the "
                              "directory of the code that saved it, or add that code to PYTHONPATH") from None
    except Exception as e:
        raise CheckpointError(f"torch.load({path}) raised {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
    notes = [note]
    if isinstance(obj, torch.nn.Module):
        notes.append(f"the file is a whole pickled {type(obj).__module__}.{type(obj).__name__}; "
                     "listed its state_dict()")
        obj = obj.state_dict()
    fmt = "pickle (trusted)" if not weights_only else "torch.save (torch.load)"
    return Contents(path, fmt, _from_torch(obj), size, notes)


def _from_torch(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        from .tensors import dtype_name

        storage = obj.untyped_storage() if obj.device.type != "meta" and not obj.is_sparse else None
        ref = StorageRef(str(storage.data_ptr()), "uint8", storage.nbytes()) if storage is not None else None
        return TensorRef(dtype_name(obj.dtype), tuple(obj.shape), ref, isinstance(obj, torch.nn.Parameter))
    if isinstance(obj, torch.nn.Module):
        return _from_torch(obj.state_dict())
    if isinstance(obj, dict):
        return {k: _from_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_from_torch(v) for v in obj]
    return obj if isinstance(obj, (int, float, str, bool, type(None))) else f"<{type(obj).__name__}>"


# ---- from the tree to records -------------------------------------------------------------------


@dataclass
class Flat:
    """The tree flattened: tensors by dotted path, the dicts of tensors (state dicts), plain values."""

    tensors: dict[str, TensorRef] = field(default_factory=dict)
    state_dicts: dict[str, dict[str, TensorRef]] = field(default_factory=dict)  # each dict's tensor values
    metadata: dict[str, Any] = field(default_factory=dict)


def flatten(tree: Any) -> Flat:
    flat = Flat()
    _walk(tree, "", flat, 0)
    return flat


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _walk(obj: Any, path: str, flat: Flat, depth: int) -> None:
    if isinstance(obj, TensorRef):
        flat.tensors[path] = obj
    elif isinstance(obj, dict):
        items = list(obj.items())
        tensors = {str(k): v for k, v in items if isinstance(v, TensorRef)}
        if tensors:  # a state dict, possibly with plain values beside its tensors
            flat.state_dicts[path] = tensors
        for k, v in items:
            _walk(v, _join(path, k), flat, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _walk(v, _join(path, i), flat, depth + 1)
    elif isinstance(obj, (bool, int, float, str)) and path and depth <= 2 and len(str(obj)) <= 200:
        flat.metadata[path] = obj


def _group_totals(entries: list[TensorEntry], key: Any) -> tuple[GroupTotal, ...]:
    out: dict[str, list[int]] = {}
    for e in entries:
        g = out.setdefault(key(e), [0, 0, 0])
        g[0] += 1
        g[1] += e.numel
        g[2] += e.bytes
    return tuple(GroupTotal(name, *v) for name, v in out.items())


def _nbytes(t: TensorRef) -> int:
    return t.nbytes if t.nbytes is not None else int(t.numel * DTYPE_BYTES.get(t.dtype, 0))


def report_of(contents: Contents) -> CheckpointReport:
    flat = flatten(contents.tree)
    by_storage: dict[str, list[str]] = {}
    storages: dict[str, int] = {}
    for name, t in flat.tensors.items():
        if t.storage is not None:
            by_storage.setdefault(t.storage.key, []).append(name)
            storages[t.storage.key] = t.storage.nbytes
    entries = []
    dtypes: dict[str, int] = {}
    for name, t in flat.tensors.items():
        numel = t.numel
        nbytes = _nbytes(t)
        shared = tuple(n for n in by_storage.get(t.storage.key, ()) if n != name) if t.storage else ()
        entries.append(TensorEntry(name=name, group=name.rpartition(".")[0], shape=t.shape, dtype=t.dtype,
                                   numel=numel, bytes=nbytes, storage=t.storage.key if t.storage else None,
                                   shared_with=shared))
        dtypes[t.dtype] = dtypes.get(t.dtype, 0) + numel
    groups = _group_totals(entries, lambda e: e.group)
    top = _group_totals(entries, lambda e: e.name.partition(".")[0])
    totals = GroupTotal("", len(entries), sum(e.numel for e in entries), sum(e.bytes for e in entries))
    storage_bytes = contents.storage_bytes if contents.storage_bytes is not None else sum(storages.values())
    notes = list(contents.notes)
    no_data = [e.name for e in entries if e.storage is None] if contents.format != "safetensors" else []
    if no_data:
        notes.append(f"{len(no_data)} tensor(s) were saved without data (from the meta device): shapes only")
    tied = {tuple(sorted(v)) for v in by_storage.values() if len(v) > 1}
    if tied:
        notes.append(f"{len(tied)} storage(s) are shared by several tensors (tied weights or views); "
                     "storage_bytes counts each once")
    if not entries:
        notes.append("the file holds no tensors")
    metadata = contents.metadata if contents.metadata is not None else flat.metadata
    return CheckpointReport(
        path=contents.path, format=contents.format, file_bytes=contents.file_bytes, tensors=tuple(entries),
        groups=groups, top_level=top, totals=totals, storage_bytes=storage_bytes, dtypes=dtypes,
        state_dicts=tuple(GroupTotal(where, len(sd), sum(t.numel for t in sd.values()),
                                     sum(_nbytes(t) for t in sd.values())) for where, sd in flat.state_dicts.items()),
        metadata=metadata, notes=tuple(notes),
    )


def checkpoint_report(path: str | os.PathLike[str], trust_pickle: bool = False) -> CheckpointReport:
    """Every tensor in a checkpoint file (name, shape, dtype, count, bytes), grouped, with totals.

    Reads ``.safetensors`` headers and ``torch.save`` pickles (zip or legacy) without reading tensor
    data and without running code from the file. A file that holds more than tensors and plain
    containers (a whole pickled ``nn.Module``) raises :class:`UnsafePickleError` unless
    ``trust_pickle=True``.
    """
    return report_of(read(os.fspath(path), trust_pickle))
