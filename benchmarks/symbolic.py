"""Symbolic vs concrete tracing time, in process: ResNet-50 and LLaMA 7B (meta).

    python benchmarks/symbolic.py            # median of 3 runs each
    python benchmarks/symbolic.py --runs 1

Each model is built once (ResNet-50 on the cpu with its own init, LLaMA 7B on meta), then traced by the
library's run stage (:func:`convshape.run.trace_module`, MACs counted, as the CLI does by default) with
concrete sizes and with symbolic ones. A symbolic trace runs one pass of a shape-only copy with torch's
ShapeEnv at sample sizes (32 for each name): all of its cost is torch's symbolic shape machinery (sympy),
which a concrete trace does not pay.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from convshape.run import RunOptions, trace_module  # noqa: E402


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _time(model: torch.nn.Module, spec: str, runs: int) -> tuple[float, int]:
    times = []
    rows = 0
    for _ in range(runs):
        start = time.perf_counter()
        trace = trace_module(model, [spec], RunOptions(costs=True)).trace
        times.append(time.perf_counter() - start)
        assert trace.error is None, trace.error
        rows = len(trace.rows)
    return statistics.median(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    resnet = _load(ROOT / "examples" / "resnet50.py").ResNet50().eval()
    with torch.device("meta"):
        llama = _load(ROOT / "examples" / "llama.py").llama_7b().eval()
    cases = [
        ("ResNet-50 (cpu)", resnet, "1x3x224x224", "1x3xHxW"),
        ("ResNet-50 (cpu)", resnet, "1x3x32x32", "Bx3xHxW"),
        ("LLaMA 7B (meta)", llama, "1x2048:int64", "1xS:int64"),
        ("LLaMA 7B (meta)", llama, "1x32:int64", "BxS:int64"),
    ]
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}; "
          f"median of {args.runs} run(s), in process, MACs counted.\n")
    print("| model | concrete input | concrete s | symbolic input | symbolic s | rows | x concrete |")
    print("|---|---|---:|---|---:|---:|---:|")
    for label, model, concrete, symbolic in cases:
        _time(model, concrete, 1)  # warm: first-call costs (imports, kernels) are not the comparison
        c, rows = _time(model, concrete, args.runs)
        s, _ = _time(model, symbolic, args.runs)
        print(f"| {label} | `{concrete}` | {c:.2f} | `{symbolic}` | {s:.2f} | {rows} | {s / c:.1f} |", flush=True)


if __name__ == "__main__":
    main()
