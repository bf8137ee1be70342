"""convshape against the floor and against its peers, side by side, in one run, then issue 13's targets.

    python benchmarks/run.py                          # full run (about 9-10 minutes on 2 quiet cores)
    python benchmarks/run.py --quick                  # 3 repeats instead of 5 (about 6 minutes)
    python benchmarks/run.py --repeats 9              # more repeats: steadier medians on a noisy machine
    python benchmarks/run.py --only in_process scaling  # some sections; Targets covers what ran
    python benchmarks/run.py --threads 1              # one torch thread in process: steadier on a busy machine

Needs `pip install -e ".[bench,hf]"` (torchinfo, torchscan, transformers); a peer that is not
installed is left out and said so. convshape's own modules are byte-compiled first, as pip leaves an
installed wheel (an editable install under PYTHONDONTWRITEBYTECODE=1 would compile them from source in
every process). Prints Markdown, one section at a time:

- cold_cli: whole processes, cold: `python -c "import torch"`, `convshape --help`, `convshape trace`
  (MACs counted: the default) and a torchinfo script on MNIST and ResNet-50. Wall time, peak RSS.
- big_processes: `convshape trace` on GPT-2 small against a torchinfo script, and on the LLaMA-70B
  example against benchmarks/bare_meta.py (import torch, build on meta, one forward).
- in_process: one process, every contender timed on the same model, each call on an instance built for
  it (building is not timed; no contender meets an instance it has seen before): a plain forward, the
  "hooked" forward (one no-op global forward hook, `register_module_forward_hook`, so one no-op call
  per module call: the floor for any tool that sees every module), convshape.trace_model with
  costs=False and with MACs (the default), torchinfo.summary(verbose=0, depth=10), torchscan's
  structure-only report (`crawl_module(mode="structure")`: what `torchscan.summary(mode="structure")`
  prints, without formatting it; no FLOPs, MACs, DMAs or receptive fields), and a forward under
  torch's FlopCounterMode(display=False). Every contender is given as a ratio to "hooked". Models:
  MNIST and ResNet-50 on cpu and meta, Hugging Face GPT-2 and LLaMA-7B built on meta from
  transformers configs (nothing downloaded), the LLaMA 7B and 70B examples on meta. A contender that
  cannot run a model shows "fails", with its reason under the table.
- scaling: chains of N module calls and of N function calls, N up to 10,000 rows. Time per call is
  the slope of a least-squares line over N of (traced - plain forward), process time, medians of
  interleaved repeats; peak Python-heap growth per row (tracemalloc) likewise. Either is linear when the
  slope over the upper half of N (2,500-10,000) is at most 1.3x the slope over the lower half (a cost
  that grows with N shows there); when r² < 0.99 the points scatter too much to judge (a busy machine).
- Targets (always last): every target of issue 13 with its limit, the value measured in this same
  invocation and ok/over; a target whose section was not run is listed as skipped.

Every timing is a median over interleaved repeats, so drift hits every contender alike; ratios
compare numbers measured in this same run. In process, the heap that imports and warm-ups built is
frozen (gc.freeze) while timing, and a collection (not timed) before each call clears what the call
before left, so no contender pays for another's garbage; freeing what a call returned is not timed.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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

    from benchmarks.models import BenchModel

torch: Any = None
HAVE_TORCHINFO = importlib.util.find_spec("torchinfo") is not None
HAVE_TORCHSCAN = importlib.util.find_spec("torchscan") is not None

SECTIONS = ("cold_cli", "big_processes", "in_process", "scaling")

# issue 13's limits
MAX_HOOKED_RATIO = 1.15  # in-process with MACs, x the hooked forward
MAX_MODULE_CALL_US = 15.0  # with MACs
MAX_FUNCTION_CALL_US = 5.0  # with MACs
MAX_COLD_RATIO = 0.9  # cold `convshape trace` with MACs, x `python -c "import torch"`
MAX_HELP_S = 0.1
MAX_LLAMA70B_RATIO = 0.6  # whole process, x benchmarks/bare_meta.py
MAX_LLAMA70B_RSS_MB = 400
MAX_HALF_SLOPE_RATIO = 1.3  # linear: the upper half of N costs per row at most this much more than the lower
MIN_R2 = 0.99  # below it, the points scatter too much to judge linearity

SCALING_SIZES = (625, 1250, 2500, 5000, 10000)  # doubling: the upper half of N is 2,500-10,000


def load_torch() -> None:
    global torch
    import torch as _torch

    torch = _torch


# what the CLI is given for each benchmark model: the same files the in-process runs build
CLI_MODELS = {
    "MNIST net": ("examples/mnist_net.py:M", "64x784"),
    "ResNet-50": ("examples/resnet50.py:ResNet50", "1x3x224x224"),
    "GPT-2 small": ("examples/gpt2_small.py:GPT", "1x1024:int64"),
    "LLaMA 70B": ("examples/llama.py:llama_70b", "1x2048:int64"),
}


# ---------------------------------------------------------------------------------------------------
# What the sections measured, for the Targets section


@dataclass
class ModelResult:
    label: str
    ms: dict[str, float] = field(default_factory=dict)  # contender -> median ms
    fails: dict[str, str] = field(default_factory=dict)  # contender -> short reason
    missing: str | None = None  # the model could not be built here
    samples: dict[str, list[float]] = field(default_factory=dict)  # contender -> seconds, one per round

    def ratio(self, key: str, base: str = "hooked") -> float | None:
        """The median over rounds of ``key``'s time over ``base``'s in the same round: the two ran seconds apart,
        so a slow spell of the machine (minutes, here) moves both; a ratio of the two medians can pair a slow
        spell of one with a quiet one of the other."""
        if key not in self.ms or base not in self.ms:
            return None
        pairs = list(zip(self.samples.get(key, ()), self.samples.get(base, ()), strict=False))
        if not pairs:
            return self.ms[key] / self.ms[base]
        return statistics.median(a / b for a, b in pairs)


@dataclass(frozen=True)
class Fit:
    """A least-squares line over N, and how straight it is."""

    slope: float
    intercept: float
    r2: float
    half_ratio: float  # slope over the upper half of N / slope over the lower half

    @property
    def linear(self) -> bool | None:
        """Whether the upper half of N costs no more per row than the lower half allows; None when the points
        scatter too much to say (r² below MIN_R2: a busy machine)."""
        if self.r2 < MIN_R2:
            return None
        return self.half_ratio <= MAX_HALF_SLOPE_RATIO


@dataclass
class ChainResult:
    label: str  # "module" or "function"
    time: dict[str, Fit] = field(default_factory=dict)  # variant -> fit of seconds added over N
    heap: dict[str, Fit] = field(default_factory=dict)  # variant -> fit of peak heap bytes over N
    held: dict[str, Fit] = field(default_factory=dict)  # variant -> fit of bytes the returned trace holds
    cyclic: dict[str, Fit] = field(default_factory=dict)  # ... still allocated once the trace is dropped
    left: dict[str, Fit] = field(default_factory=dict)  # ... still allocated after a collection as well


@dataclass
class Results:
    ran: set[str] = field(default_factory=set)
    cold: dict[str, float] = field(default_factory=dict)  # command -> median s
    big: dict[str, tuple[float, int, float]] = field(default_factory=dict)  # name -> (s, MB, x baseline)
    models: list[ModelResult] = field(default_factory=list)
    chains: dict[str, ChainResult] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Whole processes


def run_process(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        assert proc.stderr is not None
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
    """The console script installed beside this interpreter: what a user of this environment runs. Not the
    first one on PATH, which may be a version manager's shim (pyenv's costs some 0.1 s a start)."""
    beside = Path(sys.executable).with_name("convshape")
    exe = str(beside) if beside.is_file() else shutil.which("convshape")
    return [exe, *args] if exe else [sys.executable, "-m", "convshape", *args]


def cold_cli(repeats: int, results: Results) -> list[str]:
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
    results.cold = {k: t for k, (t, _) in res.items()}
    lines = ["| command (whole process) | median s | x `import torch` | peak RSS MB |", "|---|---:|---:|---:|"]
    for key, (t, m) in res.items():
        lines.append(f"| `{key}` | {t:.2f} | {t / floor:.2f} | {m} |")
    lines.append("")
    lines.append("`convshape trace` counts MACs (the default).")
    return lines


def big_processes(repeats: int, results: Results) -> list[str]:
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
        results.big[name] = (t, m, t / bt)
        lines.append(f"| `convshape trace` {name} (default device) | {t:.2f} | {m} | {t / bt:.2f} | {m / bm:.2f} |")
        lines.append(f"| {base_name}, {name} | {bt:.2f} | {bm} | 1.00 | 1.00 |")
    return lines


# ---------------------------------------------------------------------------------------------------
# In process


CONTENDERS = {  # key -> column title
    "forward": "forward",
    "hooked": "hooked forward",
    "convshape_nomacs": "convshape, no MACs",
    "convshape": "convshape (MACs, default)",
    "torchinfo": "torchinfo",
    "torchscan": "torchscan (structure)",
    "flopcounter": "FlopCounterMode",
}


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(e).__name__}: {first[:110]}{'...' if len(first) > 110 else ''}"


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze what imports and warm-ups built (torch, transformers: some 375,000 objects) for the timed
    rounds, so the collection before each call (``_timed``) scans only what the last call left, in ms, not
    the whole heap (0.5 s a time here)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()


def _timed(fn: Callable[[nn.Module], object], model: nn.Module) -> float:
    gc.collect()  # garbage left by the contender before is not this one's to collect
    start = time.perf_counter()
    made = fn(model)
    elapsed = time.perf_counter() - start
    del made  # freeing what it made is not timed, for any contender
    return elapsed


def _contenders(x: Any, device: str) -> dict[str, Callable[[nn.Module], object]]:
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.models import placement

    def forward(model: nn.Module) -> object:
        with torch.no_grad(), placement(device):
            return model(x)

    def hooked(model: nn.Module) -> object:
        handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
        try:
            return forward(model)
        finally:
            handle.remove()

    def ours(model: nn.Module) -> object:
        return convshape.trace_model(model, x)  # MACs counted: the default

    def ours_bare(model: nn.Module) -> object:
        return convshape.trace_model(model, x, costs=False)

    def torchinfo_summary(model: nn.Module) -> object:
        import torchinfo

        with placement(device):
            return torchinfo.summary(model, input_data=[x], device=device, verbose=0, depth=10)

    def torchscan_structure(model: nn.Module) -> object:
        import torchscan  # type: ignore[import-untyped]

        with placement(device):
            return torchscan.crawl_module(model, args=(x,), mode="structure")

    def flop_counter(model: nn.Module) -> object:
        with torch.no_grad(), placement(device), FlopCounterMode(display=False) as counter:
            model(x)
        return counter

    fns: dict[str, Callable[[nn.Module], object]] = {"forward": forward, "hooked": hooked,
                                                    "convshape_nomacs": ours_bare, "convshape": ours}
    if HAVE_TORCHINFO:
        fns["torchinfo"] = torchinfo_summary
    if HAVE_TORCHSCAN:
        fns["torchscan"] = torchscan_structure
    fns["flopcounter"] = flop_counter
    return fns


def _measure(bench: BenchModel, repeats: int) -> ModelResult:
    """Every contender on ``bench``, interleaved; each call gets a model built for it (not timed), so no
    contender meets an instance it has seen before (a cache kept on the instance would not count)."""
    from convshape.inputs import make_input
    from convshape.loader import skipped_init
    from convshape.spec import parse_input

    result = ModelResult(bench.label, missing=bench.missing)
    if bench.missing:
        return result

    def build() -> nn.Module:
        with torch.device(bench.device), skipped_init():
            return bench.factory().eval()

    try:
        build()
        x = make_input(parse_input(bench.spec), torch.device(bench.device))
    except Exception as e:  # the model itself cannot be built here: say so, keep going
        result.missing = f"cannot be built: {_short(e)}"
        return result
    contenders = _contenders(x, bench.device)
    for key, fn in list(contenders.items()):  # warm up: first-call costs (meta kernels, imports)
        try:
            fn(build())
        except Exception as e:  # a peer (or convshape) cannot run this model, e.g. on meta
            result.fails[key] = _short(e)
            del contenders[key]
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    with frozen_heap():
        for _ in range(repeats):
            for key, fn in contenders.items():
                samples[key].append(_timed(fn, build()))
    result.ms = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    result.samples = samples
    return result


def _cell(result: ModelResult, key: str) -> str:
    if key in result.fails:
        return "fails"
    if key not in result.ms:
        return "not installed"
    ratio = result.ratio(key)
    return f"{result.ms[key]:.1f}" + (f" ({ratio:.2f}x)" if ratio is not None and key != "hooked" else "")


def _vs(result: ModelResult, peer: str) -> str:
    ratio = result.ratio("convshape", peer)
    return "n/a" if ratio is None else f"{ratio:.2f}"


def in_process(repeats: int, results: Results) -> list[str]:
    from benchmarks.models import catalogue

    titles = [f"{t} ms" + ("" if k == "hooked" else " (x hooked)") for k, t in CONTENDERS.items()]
    lines = ["| model (device) | " + " | ".join(titles) + " | convshape ÷ torchinfo | convshape ÷ torchscan |",
             "|---|" + "---:|" * (len(CONTENDERS) + 2)]
    for bench in catalogue():
        result = _measure(bench, repeats)
        results.models.append(result)
        if result.missing:
            lines.append(f"| {result.label} | not run: {result.missing} |" + " |" * (len(CONTENDERS) + 1))
            continue
        cells = [_cell(result, k) for k in CONTENDERS]
        lines.append(f"| {result.label} | " + " | ".join(cells) + f" | {_vs(result, 'torchinfo')} | "
                     f"{_vs(result, 'torchscan')} |")
        print(f"  measured {result.label}", file=sys.stderr, flush=True)
    lines.append("")
    lines.append('ms: median wall time of one call; "hooked": a forward with one no-op global forward hook '
                 "(one no-op call per module call). Every ratio (x hooked, convshape ÷ peer) is the median over the "
                 "rounds of the two times measured in the same round, seconds apart. convshape ÷ peer: convshape "
                 f"with MACs over the peer, below 1 is faster. torch threads: {torch.get_num_threads()}.")
    failures = [(r.label, CONTENDERS[k], why) for r in results.models for k, why in r.fails.items()]
    if failures:
        lines.append("")
        lines.append("Fails:")
        lines.extend(f"- {who} on {label}: {why}" for label, who, why in failures)
    return lines


# ---------------------------------------------------------------------------------------------------
# Scaling


def fit(points: list[tuple[int, float]]) -> Fit:
    xs = [float(n) for n, _ in points]
    ys = [y for _, y in points]
    slope, intercept = statistics.linear_regression(xs, ys)
    r = statistics.correlation(xs, ys) if len(set(ys)) > 1 else 0.0
    mid = statistics.median(xs)
    lower = [(n, y) for n, y in zip(xs, ys, strict=True) if n <= mid]
    upper = [(n, y) for n, y in zip(xs, ys, strict=True) if n >= mid]

    def half_slope(half: list[tuple[float, float]]) -> float:
        return statistics.linear_regression([n for n, _ in half], [y for _, y in half])[0]

    low = half_slope(lower)
    ratio = half_slope(upper) / low if low > 0 else float("inf")
    return Fit(slope, intercept, r * r, ratio)


def _bytes(per_row: float) -> str:
    return f"{round(per_row) or 0:,}"  # no "-0"


@dataclass(frozen=True)
class HeapUse:
    """Python-heap growth (bytes, tracemalloc) of one traced call, from just before it."""

    peak: int  # the most while it ran
    held: int  # when it returned, its result held
    cyclic: int  # once its result is dropped: garbage in reference cycles waits for the collector
    left: int  # after a collection as well: a leak, or a cache


def _heap_growth(fn: Callable[[nn.Module], object], model: nn.Module) -> HeapUse:
    """What ``fn(model)`` allocates (the model is built before, so it is not counted)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = fn(model)
        held, peak = tracemalloc.get_traced_memory()
        del kept
        cyclic = tracemalloc.get_traced_memory()[0]
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return HeapUse(peak - before, held - before, cyclic - before, left - before)


def _chain(label: str, cls: Callable[[int], nn.Module], repeats: int) -> tuple[ChainResult, list[str]]:
    from benchmarks.models import interception_floor

    x = torch.randn(1, 16)

    every = _contenders(x, "cpu")
    runs = {k: every[k] for k in ("forward", "hooked", "convshape", "convshape_nomacs")}
    runs["floor"] = interception_floor(x)
    variants = tuple(runs)
    times: dict[tuple[str, int], list[float]] = {(v, n): [] for v in variants for n in SCALING_SIZES}
    heap: dict[tuple[str, int], HeapUse] = {}
    for fn in runs.values():  # warm up
        fn(cls(SCALING_SIZES[0]))
    with frozen_heap():
        for n in SCALING_SIZES:
            for v in ("convshape", "convshape_nomacs"):
                heap[v, n] = _heap_growth(runs[v], cls(n))
        for _ in range(repeats):  # interleaved: every size and variant once per round, each on a fresh chain
            for n in SCALING_SIZES:
                for v, fn in runs.items():
                    model = cls(n)
                    gc.collect()
                    start = time.process_time()
                    made = fn(model)
                    times[v, n].append(time.process_time() - start)
                    del made
    med = {k: statistics.median(v) for k, v in times.items()}
    result = ChainResult(label)
    for v in ("hooked", "convshape", "convshape_nomacs"):  # what each adds over the plain forward
        result.time[v] = fit([(n, med[v, n] - med["forward", n]) for n in SCALING_SIZES])
    for v in ("convshape", "convshape_nomacs"):
        for name, fits in (("peak", result.heap), ("held", result.held), ("cyclic", result.cyclic),
                           ("left", result.left)):
            fits[v] = fit([(n, float(getattr(heap[v, n], name))) for n in SCALING_SIZES])
    result.time["floor"] = fit([(n, med["floor", n] - med["forward", n]) for n in SCALING_SIZES])
    lines = [f"{label.capitalize()} chain (one row per {label} call):", "",
             "| calls | forward ms | hooked ms | convshape ms | no MACs ms | interception alone ms | heap peak MB | "
             "no MACs | held by the trace MB | no MACs |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in SCALING_SIZES:
        ms = [f"{med[v, n] * 1e3:.1f}" for v in variants]
        mb = [f"{getattr(heap[v, n], what) / 1e6:.2f}" for what in ("peak", "held")
              for v in ("convshape", "convshape_nomacs")]
        lines.append(f"| {n:,} | " + " | ".join(ms + mb) + " |")
    lines.append("")
    t, tb, th = result.time["convshape"], result.time["convshape_nomacs"], result.time["hooked"]
    lines.append(f"- time: convshape adds **{t.slope * 1e6:.1f} µs per {label} call** with MACs "
                 f"({tb.slope * 1e6:.1f} µs without; a no-op hook: {th.slope * 1e6:.1f} µs; convshape's interception "
                 f"alone, its trampoline and mode doing nothing: {result.time['floor'].slope * 1e6:.1f} µs), "
                 f"{t.intercept * 1e3:+.1f} ms fixed; r² {t.r2:.4f}, upper/lower-half slope {t.half_ratio:.2f} "
                 f"(no MACs: r² {tb.r2:.4f}, {tb.half_ratio:.2f}).")
    for v, title in (("convshape", "with MACs"), ("convshape_nomacs", "without")):
        h = result.heap[v]
        lines.append(f"- memory {title}: peak heap growth **{h.slope:,.0f} bytes per row** (r² {h.r2:.4f}, "
                     f"upper/lower-half slope {h.half_ratio:.2f}); the trace holds {_bytes(result.held[v].slope)} "
                     f"bytes per row; dropped, it leaves {_bytes(result.cyclic[v].slope)} bytes per row in "
                     f"reference cycles until the collector runs, and {_bytes(result.left[v].slope)} after it.")
    return result, lines


def scaling(repeats: int, results: Results) -> list[str]:
    from benchmarks.models import FunctionChain, ModuleChain

    lines = [f"N = {', '.join(f'{n:,}' for n in SCALING_SIZES)} calls on a 1x16 cpu tensor; ms: median process "
             "time; heap: Python heap measured by tracemalloc in a separate run (convshape with MACs, then "
             "without). Per call: the slope of a least-squares line over N of (traced - forward).", ""]
    for label, cls in (("module", ModuleChain), ("function", FunctionChain)):
        result, chain_lines = _chain(label, cls, repeats)
        results.chains[label] = result
        lines.extend(chain_lines)
        lines.append("")
        print(f"  measured the {label} chain", file=sys.stderr, flush=True)
    return lines


# ---------------------------------------------------------------------------------------------------
# Targets


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("ok" if ok else "**over**")


def targets(results: Results) -> list[str]:
    rows: list[tuple[str, str, str, bool | None]] = []  # target, limit, measured, ok
    skipped: list[str] = []

    if "in_process" in results.ran:
        for r in results.models:
            if r.missing:
                skipped.append(f"in-process targets on {r.label}: {r.missing}")
                continue
            ratio = r.ratio("convshape")
            if "convshape" in r.fails:
                rows.append((f"in-process with MACs, {r.label}", f"<= {MAX_HOOKED_RATIO:.2f}x hooked",
                             "convshape fails", False))
                continue
            rows.append((f"in-process with MACs, {r.label}", f"<= {MAX_HOOKED_RATIO:.2f}x hooked",
                         "n/a" if ratio is None else f"{ratio:.2f}x",
                         None if ratio is None else ratio <= MAX_HOOKED_RATIO))
            for peer in ("torchinfo", "torchscan"):
                title = f"faster than {CONTENDERS[peer]}, {r.label}"
                if peer in r.fails:
                    rows.append((title, f"< 1.00x {peer}", f"{peer} fails", None))
                elif peer not in r.ms:
                    rows.append((title, f"< 1.00x {peer}", f"{peer} not installed", None))
                else:
                    vs = r.ratio("convshape", peer) or 0.0
                    rows.append((title, f"< 1.00x {peer}", f"{vs:.2f}x", vs < 1.0))
    else:
        skipped.append("in-process targets (1.15x hooked; faster than torchinfo and torchscan): section "
                       "in_process not run")

    if "scaling" in results.ran:
        for label, limit in (("module", MAX_MODULE_CALL_US), ("function", MAX_FUNCTION_CALL_US)):
            us = results.chains[label].time["convshape"].slope * 1e6
            rows.append((f"per {label} call, with MACs", f"<= {limit:.0f} µs", f"{us:.1f} µs", us <= limit))
        for label, chain in results.chains.items():
            for what, fits in (("time", chain.time), ("memory (heap peak)", chain.heap)):
                f = fits["convshape"]
                noisy = "" if f.linear is not None else " (too scattered to judge: rerun on a quiet machine)"
                rows.append((f"{what} linear to {SCALING_SIZES[-1]:,} rows, {label} chain, with MACs",
                             f"upper/lower-half slope <= {MAX_HALF_SLOPE_RATIO}x (at r² >= {MIN_R2})",
                             f"{f.half_ratio:.2f}x, r² {f.r2:.4f}{noisy}", f.linear))
    else:
        skipped.append("per-call and linearity targets: section scaling not run")

    if "cold_cli" in results.ran:
        floor = results.cold["import torch"]
        for name in ("MNIST net", "ResNet-50"):
            ratio = results.cold[f"convshape trace {name}"] / floor
            rows.append((f"cold `convshape trace` {name}, with MACs", f"<= {MAX_COLD_RATIO:.2f}x `import torch`",
                         f"{ratio:.2f}x", ratio <= MAX_COLD_RATIO))
        helps = results.cold["convshape --help"]
        rows.append(("`convshape --help`", f"<= {MAX_HELP_S:.1f} s", f"{helps:.2f} s", helps <= MAX_HELP_S))
    else:
        skipped.append("cold command-line targets (0.9x `import torch`, --help 0.1 s): section cold_cli not run")

    if "big_processes" in results.ran:
        t, mb, ratio = results.big["LLaMA 70B"]
        rows.append(("LLaMA-70B whole process, time", f"<= {MAX_LLAMA70B_RATIO:.2f}x bare_meta.py",
                     f"{ratio:.2f}x ({t:.2f} s)", ratio <= MAX_LLAMA70B_RATIO))
        rows.append(("LLaMA-70B whole process, peak RSS", f"<= {MAX_LLAMA70B_RSS_MB} MB", f"{mb} MB",
                     mb <= MAX_LLAMA70B_RSS_MB))
    else:
        skipped.append("LLaMA-70B whole-process targets (0.6x bare script, 400 MB): section big_processes not run")

    lines = ["| target | limit | measured | |", "|---|---|---:|---|"]
    lines.extend(f"| {t} | {lim} | {m} | {_status(ok)} |" for t, lim, m, ok in rows)
    met = sum(ok is True for *_, ok in rows)
    over = sum(ok is False for *_, ok in rows)
    na = sum(ok is None for *_, ok in rows)
    lines.append("")
    na_why = "a peer fails or is missing, or the points scatter too much"
    lines.append(f"{met} met, {over} over" + (f", {na} n/a ({na_why})" if na else "") + ".")
    for s in skipped:
        lines.append(f"- skipped: {s}")
    return lines


# ---------------------------------------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (3 instead of 5)")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="interleaved repeats of every measurement (default 5): more steady a noisy machine's "
                             "medians")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"run only these sections ({', '.join(SECTIONS)}); Targets covers what ran")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads for the in-process sections (default: torch's choice); 1 steadies the "
                             "cpu rows on a busy machine")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    # convshape's own modules byte-compiled, as pip leaves an installed wheel: an editable install under
    # PYTHONDONTWRITEBYTECODE=1 (this machine's environment) would compile them from source in every process
    compileall.compile_dir(str(ROOT / "convshape"), quiet=1)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {_version('torch')}, torchinfo {_version('torchinfo')}, torchscan {_version('torchscan')}, "
          f"transformers {_version('transformers')}, convshape {convshape.__version__}. "
          f"Medians of {repeats} interleaved runs.\n")
    results = Results()
    began = time.perf_counter()
    sections: tuple[tuple[str, Callable[[int, Results], list[str]]], ...] = (
        ("Cold command line", cold_cli), ("Whole process, large models", big_processes),
        ("In-process trace, ratios to a hooked forward", in_process),
        ("Scaling with the number of calls (cpu, 1x16 tensors)", scaling))
    for title, section in sections:
        if args.only and section.__name__ not in args.only:
            continue
        if section in (in_process, scaling):
            load_torch()
            if args.threads:
                torch.set_num_threads(args.threads)
        print(f"### {title}\n")
        print("\n".join(section(repeats, results)), end="\n\n", flush=True)
        results.ran.add(section.__name__)
    print("### Targets (issue 13)\n")
    print("\n".join(targets(results)))
    print(f"\nThis run took {(time.perf_counter() - began) / 60:.1f} minutes.")


if __name__ == "__main__":
    main()
