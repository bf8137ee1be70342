"""convshape against the floor and against torchinfo, side by side, in one run. Prints markdown.

    python benchmarks/run.py            # full run (a few minutes on 2 cores)
    python benchmarks/run.py --quick    # fewer repeats

Every timing is a median over interleaved repeats, so drift hits every contender alike; ratios
compare numbers measured in this same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# torch is imported only after the whole-process sections: a child's peak RSS (ru_maxrss) keeps the
# high-water mark of the parent it was forked from, so a parent holding torch would inflate it.
from importlib import metadata  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import convshape  # noqa: E402  (imports no torch)

if TYPE_CHECKING:
    from torch import nn

torch: Any = None
torchinfo: Any = None
HAVE_TORCHINFO = importlib.util.find_spec("torchinfo") is not None


def load_torch() -> None:
    global torch, torchinfo
    import torch as _torch

    torch = _torch
    if HAVE_TORCHINFO:
        import torchinfo as _torchinfo

        torchinfo = _torchinfo


def catalogue() -> dict[str, tuple[str, Any, str, str]]:
    from benchmarks.models import catalogue as models

    return models()


# what the CLI is given for each benchmark model: the same files the in-process runs build
CLI_MODELS = {
    "MNIST net": ("examples/mnist_net.py:M", "64x784"),
    "ResNet-50": ("examples/resnet50.py:ResNet50", "1x3x224x224"),
    "GPT-2 small": ("examples/gpt2_small.py:GPT", "1x1024:int64"),
    "LLaMA 70B": ("examples/llama.py:llama_70b", "1x2048:int64"),
}


def run_process(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss // 1024


def interleave(cmds: dict[str, list[str]], repeats: int) -> dict[str, tuple[float, int]]:
    times: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, list[int]] = {k: [] for k in cmds}
    for _ in range(repeats):
        for key, cmd in cmds.items():
            t, m = run_process(cmd)
            times[key].append(t)
            rss[key].append(m)
    return {k: (statistics.median(times[k]), max(rss[k])) for k in cmds}


def convshape_cmd(*args: str) -> list[str]:
    exe = shutil.which("convshape")
    return [exe, *args] if exe else [sys.executable, "-m", "convshape", *args]


def cold_cli(repeats: int) -> list[str]:
    py = sys.executable
    cmds = {
        "import torch": [py, "-c", "import torch"],
        "convshape --help": convshape_cmd("--help"),
    }
    for name in ("MNIST net", "ResNet-50"):
        ref, spec = CLI_MODELS[name]
        cmds[f"convshape trace {name}"] = convshape_cmd("trace", ref, "--input", spec)
        if HAVE_TORCHINFO:
            cmds[f"torchinfo script {name}"] = [py, "benchmarks/torchinfo_script.py", ref, spec]
    res = interleave(cmds, repeats)
    floor = res["import torch"][0]
    lines = ["| command (whole process) | median s | x `import torch` | peak RSS MB |", "|---|---:|---:|---:|"]
    for key, (t, m) in res.items():
        lines.append(f"| `{key}` | {t:.2f} | {t / floor:.2f} | {m} |")
    return lines


def big_processes(repeats: int) -> list[str]:
    py = sys.executable
    lines = ["| command (whole process) | median s | peak RSS MB | time ratio | memory ratio |",
             "|---|---:|---:|---:|---:|"]
    gpt_ref, gpt_spec = CLI_MODELS["GPT-2 small"]
    pairs = []
    if HAVE_TORCHINFO:
        pairs.append(("GPT-2 small", convshape_cmd("trace", gpt_ref, "--input", gpt_spec),
                      "torchinfo script (cpu)", [py, "benchmarks/torchinfo_script.py", gpt_ref, gpt_spec]))
    ref70, spec70 = CLI_MODELS["LLaMA 70B"]
    pairs.append(("LLaMA 70B", convshape_cmd("trace", ref70, "--input", spec70),
                  "bare script: import, build on meta, forward", [py, "benchmarks/bare_meta.py", ref70, spec70]))
    for name, ours, base_name, base in pairs:
        res = interleave({"ours": ours, "base": base}, repeats)
        (t, m), (bt, bm) = res["ours"], res["base"]
        lines.append(f"| `convshape trace` {name} (default device) | {t:.2f} | {m} | {t / bt:.2f} | {m / bm:.2f} |")
        lines.append(f"| {base_name}, {name} | {bt:.2f} | {bm} | 1.00 | 1.00 |")
    return lines


def median_time(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _measure(name: str, factory: Callable[[], nn.Module], spec: str, device: str, repeats: int) -> str:
    from convshape.inputs import make_input
    from convshape.loader import skipped_init
    from convshape.spec import parse_input

    with torch.device(device), skipped_init():
        model = factory().eval()
    x = make_input(parse_input(spec), torch.device(device))

    def placement() -> torch.device:
        return torch.device("meta") if device == "meta" else torch.device("cpu")

    def plain() -> None:
        with torch.no_grad(), placement():
            model(x)

    def hooked() -> None:
        handles = [m.register_forward_hook(lambda *a: None) for m in model.modules()]
        try:
            plain()
        finally:
            for h in handles:
                h.remove()

    def ours() -> None:
        convshape.trace_model(model, x)  # MACs counted: the default

    def ours_bare() -> None:
        convshape.trace_model(model, x, costs=False)

    def theirs() -> None:
        with placement():
            torchinfo.summary(model, input_data=[x], device=device, verbose=0, depth=10)

    contenders = {"plain": plain, "hooked": hooked, "ours_bare": ours_bare, "ours": ours}
    if HAVE_TORCHINFO:
        contenders["torchinfo"] = theirs
    for key, fn in list(contenders.items()):  # warm up: first-call costs (meta kernels, imports)
        try:
            fn()
        except Exception as e:  # torchinfo cannot run some models (e.g. on meta)
            print(f"  ({key} failed on {name}: {type(e).__name__}: {str(e).splitlines()[0][:100]})",
                  file=sys.stderr)
            del contenders[key]
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for key, fn in contenders.items():
            samples[key].append(median_time(fn, 1))
    med = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    ti = med.get("torchinfo")
    return (f"| {name} ({device}) | {med['plain']:.1f} | {med['hooked']:.1f} | {_fmt(ti, '.1f')} | "
            f"{med['ours_bare']:.1f} | {med['ours_bare'] / med['hooked']:.2f} | "
            f"{med['ours']:.1f} | {med['ours'] / med['hooked']:.2f} | "
            f"{_fmt(med['ours'] / ti if ti else None, '.2f')} |")


def in_process(repeats: int) -> list[str]:
    lines = ["| model (device) | forward ms | + trivial hooks ms | torchinfo ms | convshape, no MACs ms | "
             "x hooked forward | convshape with MACs (default) ms | x hooked forward | x torchinfo |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, (_, factory, spec, device) in catalogue().items():
        lines.append(_measure(name, factory, spec, device, repeats))
    return lines


def scaling(repeats: int) -> list[str]:
    from benchmarks.models import FunctionChain, ModuleChain

    x = torch.randn(1, 16)
    lines = ["| calls | module chain: forward ms | traced ms | function chain: forward ms | traced ms |",
             "|---:|---:|---:|---:|---:|"]
    fits = {}
    for label, cls in (("module", ModuleChain), ("function", FunctionChain)):
        points = []
        for blocks in (8, 16, 32, 64, 128, 256):
            calls = 4 * blocks
            model = cls(calls)
            convshape.trace_model(model, x)

            def bare(model: nn.Module = model) -> None:
                with torch.no_grad():
                    model(x)

            def traced(model: nn.Module = model) -> None:
                convshape.trace_model(model, x)

            t_bare = median_time(bare, repeats * 3)
            t_ours = median_time(traced, repeats * 3)
            points.append((calls, t_bare, t_ours))
        fits[label] = points
    for (calls, mb, mo), (_, fb, fo) in zip(fits["module"], fits["function"], strict=True):
        lines.append(f"| {calls} | {mb * 1e3:.2f} | {mo * 1e3:.2f} | {fb * 1e3:.2f} | {fo * 1e3:.2f} |")
    lines.append("")
    for label, points in fits.items():
        xs = [p[0] for p in points]
        ys = [p[2] - p[1] for p in points]  # what convshape adds
        slope, intercept = statistics.linear_regression(xs, ys)
        r = statistics.correlation(xs, ys)
        lines.append(f"- convshape adds **{slope * 1e6:.1f} µs per {label} call** "
                     f"(+{intercept * 1e3:.2f} ms fixed; linear fit r² = {r * r:.4f}).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", nargs="*", help="run only these sections: cold_cli big_processes in_process scaling")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    ti_version = metadata.version("torchinfo") if HAVE_TORCHINFO else "not installed"
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {metadata.version('torch')}, torchinfo {ti_version}, "
          f"convshape {convshape.__version__}. Medians of {repeats} interleaved runs.\n")
    for title, section in (("Cold command line", cold_cli), ("Whole process, large models", big_processes),
                           ("In-process trace (function rows on)", in_process),
                           ("Scaling with the number of calls (cpu, 1x16 tensors)", scaling)):
        if args.only and section.__name__ not in args.only:
            continue
        if section in (in_process, scaling):
            load_torch()
        print(f"### {title}\n")
        print("\n".join(section(repeats)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
