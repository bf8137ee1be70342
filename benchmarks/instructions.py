"""Instructions, not seconds: two versions of convshape compared under callgrind, which counts the instructions
each runs. The count is the same on an idle and on a busy machine, so a change of a few percent shows that wall
time on this noisy machine would hide (``benchmarks/ab.py`` compares seconds). It does not see cache misses: a
model whose time goes to memory can differ more in seconds than in instructions.

    python benchmarks/instructions.py                         # module and function chains, HEAD vs the tree
    python benchmarks/instructions.py --ref HEAD~3 --what module,function,1   # and catalogue model 1 (MNIST meta)

Needs valgrind (``apt-get install valgrind``). Each segment (a plain forward, a trace by each version) runs between
two marks (``Marks``), where callgrind dumps its counts. Chains: instructions
per call over the plain forward, from the difference between 1,000 and 3,000 calls. A model: the instructions of
one trace over those of the hooked forward. About 5 minutes for the two chains; a transformers model takes longer.
"""

from __future__ import annotations

import argparse
import ast
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1_000, 3_000)
VERSIONS = ("forward", "ref", "tree")


class Marks:
    """Where callgrind dumps its counts (``--dump-before=os_getppid``): ``marks(label)`` ends the segment ``label``
    ("-" for what runs between two segments, not reported); ``done()`` prints the labels for ``under_callgrind``."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def __call__(self, label: str) -> None:
        self.labels.append(label)
        os.getppid()

    def done(self) -> None:
        print("SEGMENTS", self.labels, flush=True)


def segments(what: list[str]) -> list[tuple[str, str, int | None, str]]:
    """(label, chain or model index, size, version) in the order they run."""
    out = []
    for w in what:
        for size in SIZES if w in ("module", "function") else (None,):
            for v in VERSIONS:
                out.append((f"{w}:{size}:{v}", w, size, v))
    return out


def inner(ref: str, what: list[str]) -> None:
    """Run under callgrind: warm every segment once, then run each between two markers."""
    import torch

    from benchmarks.ab import versions
    from benchmarks.models import FunctionChain, ModuleChain, catalogue, placement

    with tempfile.TemporaryDirectory() as tmp:
        packages: dict[str, Any] = dict(zip(("ref", "tree"), versions(ref, Path(tmp)).values(), strict=True))
        chain_input = torch.randn(1, 16)

        def build(w: str, size: int | None) -> tuple[torch.nn.Module, torch.Tensor, torch.device | None]:
            if size is not None:
                return (ModuleChain if w == "module" else FunctionChain)(size), chain_input, None
            from convshape.inputs import make_input
            from convshape.loader import skipped_init
            from convshape.spec import parse_input

            bench = catalogue()[int(w)]
            device = torch.device(bench.device)
            with device, skipped_init():
                model = bench.factory().eval()
            return model, make_input(parse_input(bench.spec), device), device

        def run(w: str, size: int | None, version: str, mark: Callable[[str], None] | None, label: str) -> None:
            model, x, device = build(w, size)
            gc.collect()
            if mark is not None:
                mark("-")
            if version != "forward":
                packages[version].trace_model(model, x)
            elif device is None:  # a chain: the plain forward
                with torch.no_grad():
                    model(x)
            else:  # a model: the hooked forward, as run.py's ratios
                handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
                try:
                    with torch.no_grad(), placement(device):
                        model(x)
                finally:
                    handle.remove()
            if mark is not None:
                mark(label)

        plan = segments(what)
        for label, w, size, v in plan:
            run(w, min(size, 50) if size else None, v, None, label)
        marks = Marks()
        for label, w, size, v in plan:
            run(w, size, v, marks, label)
        marks.done()


def under_callgrind(script: str, args: list[str]) -> dict[str, int]:
    """Run ``python script args`` under callgrind: the instructions of each segment its ``Marks`` labelled."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind); benchmarks/ab.py compares seconds instead")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        with open(out / "log", "w") as log:
            subprocess.run([valgrind, "--tool=callgrind", "--dump-before=os_getppid",
                            f"--callgrind-out-file={out / 'cg.out'}", sys.executable, script, *args],
                           stdout=log, stderr=subprocess.STDOUT, check=False, cwd=ROOT)
        text = (out / "log").read_text()
        found = re.search(r"SEGMENTS (\[.*\])", text)
        if found is None:
            sys.exit(f"the run under callgrind failed:\n{text[-3000:]}")
        counts = []
        for dump in sorted(out.glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1])):
            for line in dump.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    counts.append(int(line.split()[1]))
                    break
    labels = ast.literal_eval(found.group(1))
    return {label: n for label, n in zip(labels, counts[-len(labels):], strict=True) if label != "-"}


def report(per: dict[str, int], ref: str) -> None:
    chains: dict[str, dict[str, dict[int, int]]] = {}
    for label, n in per.items():
        w, size, v = label.split(":")
        if size != "None":
            chains.setdefault(w, {}).setdefault(v, {})[int(size)] = n
    lo, hi = SIZES
    for w, by in chains.items():
        slope = {v: (by[v][hi] - by[v][lo]) / (hi - lo) for v in VERSIONS}
        print(f"{w} chain, instructions per call over the plain forward ({slope['forward']:,.0f}): "
              f"{ref} {slope['ref'] - slope['forward']:,.0f}, tree {slope['tree'] - slope['forward']:,.0f}")
    for label in per:
        w, size, v = label.split(":")
        if size == "None" and v == "forward":
            base = per[label]
            print(f"model {w}, instructions x the hooked forward ({base:,}): "
                  f"{ref} {per[f'{w}:None:ref'] / base:.3f}, tree {per[f'{w}:None:tree'] / base:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", default="HEAD", help="the git ref to compare the working tree with")
    parser.add_argument("--what", default="module,function",
                        help="module, function and catalogue model indexes (benchmarks/models.py), comma-separated")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    what = [w.strip() for w in args.what.split(",") if w.strip()]
    if args.inner:
        inner(args.ref, what)
        return
    report(under_callgrind(__file__, ["--inner", "--ref", args.ref, "--what", ",".join(what)]), args.ref)


if __name__ == "__main__":
    main()
