"""Two versions of convshape in one process, alternated: a steadier comparison than two runs of run.py on a noisy
machine. The working tree's package is compared with the one at a git ref (``HEAD`` by default).

    python benchmarks/ab.py                      # module and function chains, HEAD vs the working tree
    python benchmarks/ab.py --ref HEAD~3 --rounds 15 --model 4   # also catalogue model 4 (HF GPT-2)

Chains: the least-squares slope, over 1,000 and 4,000 calls, of each version's time minus the plain forward's,
each point the minimum of the rounds. A model: the median over rounds of each version's time over the hooked
forward's in the same round. Each version is a copy of its ``convshape/`` imported under its own name.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from benchmarks.models import FunctionChain, ModuleChain, catalogue, placement  # noqa: E402

SIZES = (1_000, 4_000)


def versions(ref: str, into: Path) -> dict[str, Any]:
    """``{ref: package at ref, "tree": the working tree's package}``, each imported from a copy in ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "convshape"], check=True,
                             capture_output=True).stdout
    (into / "ref").mkdir()
    subprocess.run(["tar", "-x", "-C", str(into / "ref")], input=archive, check=True)
    shutil.move(str(into / "ref" / "convshape"), str(into / "cs_ref"))
    shutil.copytree(ROOT / "convshape", into / "cs_tree", ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(into))
    return {ref: importlib.import_module("cs_ref"), "tree": importlib.import_module("cs_tree")}


def _timed(fn: Callable[[nn.Module], object], model: nn.Module) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn(model)
        return time.perf_counter() - start
    finally:
        gc.enable()


def _tracer(package: Any, x: torch.Tensor) -> Callable[[nn.Module], object]:
    def trace(model: nn.Module) -> object:
        return package.trace_model(model, x)
    return trace


def chain(label: str, cls: Callable[[int], nn.Module], packages: dict[str, Any], rounds: int) -> str:
    x = torch.randn(1, 16)

    def forward(model: nn.Module) -> object:
        with torch.no_grad():
            return model(x)

    runs: dict[str, Callable[[nn.Module], object]] = {"forward": forward}
    for name, package in packages.items():
        runs[name] = _tracer(package, x)
    for fn in runs.values():
        fn(cls(100))
    best = {(k, n): float("inf") for k in runs for n in SIZES}
    for _ in range(rounds):
        for k, fn in runs.items():
            for n in SIZES:
                best[k, n] = min(best[k, n], _timed(fn, cls(n)))
    slope = {k: (best[k, SIZES[1]] - best[k, SIZES[0]]) / (SIZES[1] - SIZES[0]) * 1e6 for k in runs}
    return f"{label} chain, µs per call over the plain forward ({slope['forward']:.2f} µs): " + ", ".join(
        f"{k} {slope[k] - slope['forward']:.2f}" for k in packages)


def model(index: int, packages: dict[str, Any], rounds: int) -> str:
    from convshape.inputs import make_input
    from convshape.loader import skipped_init
    from convshape.spec import parse_input

    bench = catalogue()[index]
    device = torch.device(bench.device)

    def build() -> nn.Module:
        with device, skipped_init():
            return bench.factory().eval()

    x = make_input(parse_input(bench.spec), device)

    def hooked(m: nn.Module) -> object:
        handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
        try:
            with torch.no_grad(), placement(device):
                return m(x)
        finally:
            handle.remove()

    runs: dict[str, Callable[[nn.Module], object]] = {"hooked": hooked}
    for name, package in packages.items():
        runs[name] = _tracer(package, x)
    for fn in runs.values():
        fn(build())
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            times[k].append(_timed(fn, build()))
    return f"{bench.label}, x hooked (median of per-round ratios): " + ", ".join(
        f"{k} {statistics.median(a / b for a, b in zip(times[k], times['hooked'], strict=True)):.3f}"
        for k in packages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="HEAD", help="the git ref to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--model", type=int, action="append", default=[],
                        help="also an in-process model of benchmarks/models.catalogue(), by index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        packages = versions(args.ref, Path(tmp))
        print(chain("module", ModuleChain, packages, args.rounds), flush=True)
        print(chain("function", FunctionChain, packages, args.rounds), flush=True)
        for index in args.model:
            print(model(index, packages, args.rounds), flush=True)


if __name__ == "__main__":
    main()
