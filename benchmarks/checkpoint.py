"""Listing a LLaMA-7B-shaped checkpoint: `convshape params FILE` against torch.load(mmap=True, weights_only=True).

    PYTHONPATH=. python benchmarks/checkpoint.py [--dir DIR] [--repeats 3]

The benchmark writes its own files (nothing is downloaded): the 291 tensors of examples/llama.py's
llama_7b in float16 (13.5 GB of data), as a torch.save zip archive (written by torch.save itself) and
as a safetensors file. Both are sparse: the data regions are holes, so they take almost no disk and
write in seconds, yet every reader sees a full-size file (torch.load maps it, exactly as it would a
real checkpoint).

Each contender runs as its own process (a cold start, the way a user runs it); the table gives the
median wall time and the peak RSS (ru_maxrss) over the repeats. The parent never imports torch, so
no child inherits its memory high-water mark.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOLE = 1 << 20


class SparseFile:
    """A writable file that leaves a hole (a seek) for every write of HOLE bytes or more.

    torch.save writes each tensor's data in one call and everything else (the pickle of a 7B state dict
    is 30 kB, zip headers a few bytes) in small ones, so only tensor data becomes holes: its values,
    zeros once read back, play no part in listing a checkpoint.
    """

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")  # noqa: SIM115  closed in close()

    def write(self, data: object) -> int:
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        if len(view) >= HOLE:
            self.f.seek(len(view), os.SEEK_CUR)
        else:
            self.f.write(view)
        return len(view)

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.truncate(self.f.tell())  # a hole at the very end still counts towards the size
        self.f.close()


def write_files(directory: Path) -> None:
    """Run in a child process: the only place torch is imported."""
    import json
    import struct

    import torch

    sys.path.insert(0, str(ROOT / "examples"))
    from llama import llama_7b

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in llama_7b().state_dict().items()}
    # safetensors: header per the spec, then a hole as large as the data
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = 2 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(directory / "llama7b.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    # torch.save: the tensors' data become holes (see SparseFile); no CRC, so the data is never read
    torch.serialization.set_crc32_options(False)
    state = {k: torch.empty(s, dtype=torch.float16) for k, s in shapes.items()}
    out = SparseFile(directory / "llama7b.pt")
    torch.save(state, out)
    out.close()


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")  # type: ignore[union-attr]
    return elapsed, usage.ru_maxrss // 1024


TORCH_LOAD = ("import sys, torch; sd = torch.load(sys.argv[1], mmap=True, weights_only=True); "
              "print(len(sd), sum(t.numel() for t in sd.values()))")
SAFE_OPEN = ("import sys; from safetensors import safe_open; f = safe_open(sys.argv[1], 'pt'); "
             "print(sum(len(f.get_slice(k).get_shape()) for k in f.keys()))")


IN_PROCESS = """
import statistics, sys, time
import torch
from convshape.checkpoint import checkpoint_report
def best(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return statistics.median(times)
n = int(sys.argv[3])
ours = best(lambda: checkpoint_report(sys.argv[1]), n)
st = best(lambda: checkpoint_report(sys.argv[2]), n)
theirs = best(lambda: torch.load(sys.argv[1], mmap=True, weights_only=True), n)
print(f"| `checkpoint_report(llama7b.pt)` | {ours * 1000:.1f} ms |")
print(f"| `checkpoint_report(llama7b.safetensors)` | {st * 1000:.1f} ms |")
print(f"| `torch.load(llama7b.pt, mmap=True, weights_only=True)` | {theirs * 1000:.1f} ms |")
print()
print(f"in-process, torch already imported: checkpoint_report {theirs / ours:.1f}x faster than torch.load")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write the files (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_only is not None:
        write_files(args.write_only)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write-only", str(directory)], check=True)
        wrote = time.perf_counter() - start
        pt, st = directory / "llama7b.pt", directory / "llama7b.safetensors"
        py = sys.executable
        cmds = {
            "python -c 'import torch' (the floor of any torch.load)": [py, "-c", "import torch"],
            "convshape params llama7b.pt": [py, "-m", "convshape", "params", str(pt)],
            "torch.load(llama7b.pt, mmap=True, weights_only=True)": [py, "-c", TORCH_LOAD, str(pt)],
            "convshape params llama7b.safetensors": [py, "-m", "convshape", "params", str(st)],
        }
        try:
            import importlib.util

            if importlib.util.find_spec("safetensors") is not None:
                cmds["safetensors.safe_open(llama7b.safetensors): shapes"] = [py, "-c", SAFE_OPEN, str(st)]
        except ImportError:
            pass
        times: dict[str, list[float]] = {k: [] for k in cmds}
        peaks: dict[str, int] = dict.fromkeys(cmds, 0)
        for _ in range(args.repeats):  # interleaved, so drift hits every contender alike
            for name, cmd in cmds.items():
                t, m = run(cmd)
                times[name].append(t)
                peaks[name] = max(peaks[name], m)
        sizes = {p.name: (p.stat().st_size, p.stat().st_blocks * 512) for p in (pt, st)}
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        in_process = subprocess.run([py, "-c", IN_PROCESS, str(pt), str(st), str(2 * args.repeats + 1)], env=env,
                                    check=True, capture_output=True, text=True).stdout
    print(f"files written in {wrote:.1f} s; " + "; ".join(
        f"{n}: {size / 1e9:.2f} GB apparent, {disk / 1e6:.1f} MB on disk" for n, (size, disk) in sizes.items()))
    print(f"\n{args.repeats} runs each, median wall time and peak RSS:\n")
    print("| command | wall | peak RSS |")
    print("|---|---:|---:|")
    for name in cmds:
        print(f"| `{name}` | {statistics.median(times[name]):.2f} s | {peaks[name]} MB |")
    ours, theirs = "convshape params llama7b.pt", "torch.load(llama7b.pt, mmap=True, weights_only=True)"
    t_ratio = statistics.median(times[theirs]) / statistics.median(times[ours])
    m_ratio = peaks[theirs] / peaks[ours]
    print(f"\nconvshape params on the .pt: {t_ratio:.1f}x faster than torch.load(mmap=True, weights_only=True), "
          f"{m_ratio:.1f}x less peak memory")
    print(f"\nIn one process (median of {2 * args.repeats + 1}), reading only:\n")
    print("| call | time |")
    print("|---|---:|")
    print(in_process, end="")
    print(f"\nload average while measuring: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
