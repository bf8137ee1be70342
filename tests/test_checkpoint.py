"""Checkpoint files, read without their data or their code: every number checked against torch.load."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from convshape import checkpoint_report
from convshape.checkpoint import CheckpointError, UnsafePickleError
from convshape.cli import app

from .conftest import EXAMPLES, load_file

runner = CliRunner()
ST_CODES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
            torch.int8: "I8", torch.bool: "BOOL", torch.float64: "F64", torch.uint8: "U8"}


def mnist() -> nn.Module:
    torch.manual_seed(0)
    return load_file(EXAMPLES / "mnist_net.py").M()


def torch_tensors(obj: Any, path: str = "") -> dict[str, torch.Tensor]:
    """What torch.load gives, flattened to dotted names: the truth each report is checked against."""
    if isinstance(obj, torch.Tensor):
        return {path: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(torch_tensors(v, f"{path}.{k}" if path else str(k)))
    return out


def assert_matches_torch(path: Path, **load: Any) -> None:
    report = checkpoint_report(path)
    truth = torch_tensors(torch.load(path, weights_only=True, **load))
    assert [t.name for t in report.tensors] == list(truth)
    for entry in report.tensors:
        t = truth[entry.name]
        assert entry.shape == tuple(t.shape), entry.name
        assert entry.dtype == str(t.dtype).removeprefix("torch."), entry.name
        assert entry.numel == t.numel(), entry.name
        assert entry.bytes == t.numel() * t.element_size(), entry.name
    assert report.totals.numel == sum(t.numel() for t in truth.values())
    assert report.totals.tensors == len(truth)
    assert report.file_bytes == os.path.getsize(path)


def test_plain_state_dict(tmp_path: Path) -> None:
    model = mnist()
    path = tmp_path / "mnist.pt"
    torch.save(model.state_dict(), path)
    assert_matches_torch(path)
    report = checkpoint_report(path)
    assert report.format == "torch.save (zip)"
    assert report.totals.numel == sum(p.numel() for p in model.parameters())  # 431,080
    assert [g.name for g in report.groups] == ["conv1", "conv2", "fc1", "fc2"]
    assert report.groups[2].numel == model.fc1.weight.numel() + model.fc1.bias.numel()
    assert [s.name for s in report.state_dicts] == [""]
    data = json.loads(runner.invoke(app, ["params", str(path), "-f", "json"]).stdout)
    assert data["schema"] == "convshape.checkpoint/1"
    assert data["totals"]["numel"] == 431080


def test_never_reads_tensor_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import convshape.checkpoint as ck

    path = tmp_path / "mnist.pth"
    torch.save(mnist().state_dict(), path)
    opened: list[str] = []
    real_record = ck._record

    def spy(z: zipfile.ZipFile, f: Any, name: str) -> bytes:
        opened.append(name)
        return real_record(z, f, name)

    def no_read(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("a record was read through zipfile")

    monkeypatch.setattr(ck, "_record", spy)
    monkeypatch.setattr(zipfile.ZipFile, "read", no_read)
    checkpoint_report(path)
    assert opened == ["mnist/data.pkl", "mnist/byteorder"], opened


def test_nested_checkpoint_with_optimizer(tmp_path: Path) -> None:
    model = mnist()
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 784)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 7, "best": 0.91}, path)
    assert_matches_torch(path)
    report = checkpoint_report(path)
    assert report.metadata == {"epoch": 7, "best": 0.91}
    model_dict = next(s for s in report.state_dicts if s.name == "model")
    assert model_dict.tensors == len(model.state_dict())
    assert {g.name for g in report.top_level} == {"model", "optimizer"}
    table = runner.invoke(app, ["params", str(path)]).stdout
    assert "checkpoint['model'] (8 tensors" in table and "Metadata: epoch=7" in table


def test_legacy_format(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save(mnist().state_dict(), path, _use_new_zipfile_serialization=False)
    assert_matches_torch(path)
    assert checkpoint_report(path).format == "torch.save (legacy)"


def test_dtypes_and_tied_storage(tmp_path: Path) -> None:
    lin = nn.Linear(3, 4)
    path = tmp_path / "mixed.bin"
    state = {"w": lin.weight, "tied": lin.weight, "row": lin.weight[1], "h": torch.zeros(5, 7, dtype=torch.float16),
             "b": torch.zeros(3, dtype=torch.bfloat16), "i": torch.arange(6), "u": torch.zeros(2, dtype=torch.uint16),
             "f8": torch.zeros(4, dtype=torch.float8_e4m3fn), "mask": torch.ones(9, dtype=torch.bool)}
    torch.save(state, path)
    assert_matches_torch(path)
    report = checkpoint_report(path)
    by_name = {t.name: t for t in report.tensors}
    assert set(by_name["w"].shared_with) == {"tied", "row"}
    truth = torch.load(path, weights_only=True)
    distinct = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in truth.values()}
    assert report.storage_bytes == sum(distinct.values())


@pytest.mark.filterwarnings("ignore")
def test_quantized_falls_back_to_torch_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "q.pt"
    q = torch.quantize_per_tensor(torch.randn(4, 5), 0.1, 0, torch.qint8)
    torch.save({"q": q, "w": torch.randn(3)}, path)
    report = checkpoint_report(path)
    assert {t.name: t.shape for t in report.tensors} == {"q": (4, 5), "w": (3,)}
    assert "weights_only=True" in report.notes[0]


# ---- safetensors, written by the format's spec ---------------------------------------------------


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None,
                      truncate: int = 0) -> None:
    """8-byte little-endian header length, a JSON header, then the tensors' bytes back to back."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = struct.pack("<Q", len(text)) + text + b"".join(blobs)
    path.write_bytes(data[:len(data) - truncate])


def test_safetensors_by_spec(tmp_path: Path) -> None:
    state = {k: v.to(torch.bfloat16) if k.startswith("fc") else v for k, v in mnist().state_dict().items()}
    path = tmp_path / "model.safetensors"
    write_safetensors(path, state, {"format": "pt"})
    report = checkpoint_report(path)
    assert report.format == "safetensors"
    assert [(t.name, t.shape, t.dtype, t.numel, t.bytes) for t in report.tensors] == [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."), v.numel(), v.numel() * v.element_size())
        for k, v in state.items()]
    assert report.metadata == {"format": "pt"}
    assert report.storage_bytes == sum(v.numel() * v.element_size() for v in state.values())


def test_safetensors_from_the_package(tmp_path: Path) -> None:
    save_file = pytest.importorskip("safetensors.torch").save_file
    state = mnist().state_dict()
    path = tmp_path / "pkg.safetensors"
    save_file(state, str(path))
    report = checkpoint_report(path)
    assert {t.name: t.shape for t in report.tensors} == {k: tuple(v.shape) for k, v in state.items()}


def test_safetensors_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="header of 1,000,000,000,000 bytes"):
        checkpoint_report(bad)
    short = tmp_path / "short.safetensors"
    write_safetensors(short, {"w": torch.zeros(10, 10)}, truncate=40)
    assert "truncated" in checkpoint_report(short).notes[0]
    result = runner.invoke(app, ["params", str(bad)])
    assert result.exit_code == 2 and "not a valid safetensors file" in result.output


# ---- pickles that ask for more than tensors ------------------------------------------------------


class _Payload:
    """Unpickling this runs os.system: it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    in_zip, raw = tmp_path / "evil.pt", tmp_path / "evil_raw.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "x": _Payload(marker)}, in_zip)
    raw.write_bytes(pickle.dumps({"x": _Payload(marker)}, protocol=2))
    for path in (in_zip, raw):
        with pytest.raises(UnsafePickleError, match=r"system.*--trust-pickle"):
            checkpoint_report(path)
        result = runner.invoke(app, ["params", str(path)])
        assert result.exit_code == 2 and "--trust-pickle" in result.output
        for command in (["params", str(EXAMPLES / "mnist_net.py"), "--weights", str(path)],
                        ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "1x784", "--weights", str(path)]):
            assert runner.invoke(app, command).exit_code == 2
        assert not marker.exists()
    pickle.loads(raw.read_bytes())  # the payload is real: a plain unpickler runs it
    assert marker.exists()


def test_whole_pickled_module_needs_trust(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    model(torch.randn(1, 3, 8, 8))
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(UnsafePickleError, match=r"torch\.nn\.modules\.container\.Sequential.*torch\.save\(model\)"):
        checkpoint_report(path)
    report = checkpoint_report(path, trust_pickle=True)
    assert {t.name: t.shape for t in report.tensors} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert report.format == "pickle (trusted)"
    assert runner.invoke(app, ["params", str(path), "--trust-pickle"]).exit_code == 0


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    result = runner.invoke(app, ["params", str(path)])
    assert result.exit_code == 2 and "not a file torch.save or safetensors wrote" in result.output
    assert runner.invoke(app, ["params", str(tmp_path / "missing.pt")]).exit_code == 2


def test_archive_written_without_crc(tmp_path: Path) -> None:
    path = tmp_path / "nocrc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(mnist().state_dict(), path)
    finally:
        torch.serialization.set_crc32_options(True)
    with pytest.raises(zipfile.BadZipFile):  # Python's zipfile rejects it; torch and convshape read it
        zipfile.ZipFile(path).read("nocrc/data.pkl")
    assert_matches_torch(path)


@pytest.mark.parametrize("suffix", ["safetensors", "bin"])
def test_sharded_checkpoint_index(tmp_path: Path, suffix: str) -> None:
    state = mnist().state_dict()
    names = list(state)
    shards = {f"model-0000{i + 1}-of-00002.{suffix}": names[i * 4:(i + 1) * 4] for i in range(2)}
    for shard, keys in shards.items():
        part = {k: state[k] for k in keys}
        if suffix == "safetensors":
            write_safetensors(tmp_path / shard, part)
        else:
            torch.save(part, tmp_path / shard)
    index = tmp_path / f"model.{suffix}.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 1724320},
                                 "weight_map": {k: s for s, keys in shards.items() for k in keys}}))
    report = checkpoint_report(index)
    assert {t.name: t.shape for t in report.tensors} == {k: tuple(v.shape) for k, v in state.items()}
    assert report.format == "sharded (2 files)"
    assert report.totals.bytes == sum(v.numel() * v.element_size() for v in state.values())
    assert report.file_bytes == sum(os.path.getsize(tmp_path / s) for s in shards)
    from convshape import compare_weights

    assert compare_weights(mnist(), index).ok
    os.remove(tmp_path / next(iter(shards)))
    with pytest.raises(CheckpointError, match="names the shard model-00001-of-00002"):
        checkpoint_report(index)


def test_damaged_files_give_a_clear_error(tmp_path: Path) -> None:
    """Random damage to a legacy (plain pickle) checkpoint: a listing or a CheckpointError, never a traceback."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = tmp_path / "good.pt"
    torch.save(mnist().state_dict(), good, _use_new_zipfile_serialization=False)
    data = good.read_bytes()[:4000]  # the pickles come first; the storages' bytes follow

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=4))
    def damaged(flips: list[tuple[int, int]]) -> None:
        raw = bytearray(data)
        for at, value in flips:
            raw[at] = value
        path = tmp_path / "damaged.pt"
        path.write_bytes(bytes(raw))
        with contextlib.suppress(CheckpointError):
            checkpoint_report(path)

    damaged()
