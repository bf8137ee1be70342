"""Where a function call's instructions go, and the floor under them. Runs itself under callgrind (valgrind), which
counts instructions, the same on an idle and on a busy machine (``benchmarks/instructions.py`` does the same to
compare two versions).

    python benchmarks/floor.py

Function chain (``torch.relu`` called directly by the model's forward, on the CPU), instructions per call from the
difference between 1,000 and 3,000 calls:

- the plain forward;
- the interception alone: the forward under a TorchFunctionMode that calls straight through, and the recorder's
  trampoline in ``Module._call_impl`` (what torch does to hand each call to Python, before anything is recorded);
- convshape with its rows left out (the recorder's ``_unary_row``, which makes the row of an ``f(x)`` call, doing
  nothing: no row is made, so none is frozen or checked after the pass);
- convshape.

Module chain (``nn.ReLU`` layers): the plain forward, and a trace split where the recorder starts and stops
recording: before the pass (the tree walk, parameter counts, flags), the pass, and after it (flags back, the rows
frozen and checked).

Then the instructions of the single Python steps a row is made of, each over an empty loop of 10,000 runs: a
builtin call, a tensor's shape, a weak reference to it, its bytes, a row's tuple.
"""

from __future__ import annotations

import argparse
import gc
import sys
import weakref
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1_000, 3_000)
VARIANTS = ("forward", "interception alone", "convshape without its rows", "convshape")
STEPS = 10_000
# One Python step each, as the recorder writes it (tracer.py, _unary_row); t is a (1, 16) tensor
PRIMITIVES = {
    "nothing (the empty loop)": "pass",
    "a builtin call": "id(t)",
    "a dict lookup": "d.get(id(t))",
    "the tensor's shape": "t.shape",
    "the shape as a tuple": "tuple(t.shape)",
    "the dtype's name": "names.get(t.dtype)",
    "a weak reference": "weakref.ref(t)",
    "its bytes": "t.numel() * t.element_size()",
    "whether it is a view": "t._base",
    "the caller's line, from its cache": "d.get((id(frame.f_code), frame.f_lasti))",
    "the row's arguments": "{'args': [None]}",
    "the row's tuple of 20 fields": "(i, 'function', 'relu', 'torch.relu', 0, s, s, n, 0, w, None, s, 0, False, a, 0, "
                                    "0, 0, 0, ())",
}


def inner() -> None:
    """Run under callgrind: each segment ends at a mark (``instructions.Marks``)."""
    import torch

    import convshape
    from benchmarks.instructions import Marks
    from benchmarks.models import FunctionChain, ModuleChain, interception_floor
    from convshape import tracer
    from convshape.tensors import DTYPE_NAMES

    x = torch.randn(1, 16)
    through = interception_floor(x)
    mark = Marks()

    def forward(model: torch.nn.Module) -> object:
        with torch.no_grad():
            return model(x)

    def rowless(model: torch.nn.Module) -> convshape.Trace:
        made = tracer.Recorder._unary_row
        tracer.Recorder._unary_row = lambda *args: None  # type: ignore[method-assign]
        try:
            return convshape.trace_model(model, x)
        finally:
            tracer.Recorder._unary_row = made  # type: ignore[method-assign]

    runs = dict(zip(VARIANTS, (forward, through, rowless, lambda m: convshape.trace_model(m, x)), strict=True))
    for fn in runs.values():  # warm up
        fn(FunctionChain(50))
        fn(ModuleChain(50))
    rows = len(rowless(FunctionChain(50)).rows)
    if rows != 1:  # the chain's rows are made elsewhere now: "without its rows" would measure nothing
        sys.exit(f"convshape without its rows still made {rows} rows: floor.py must leave out another method")
    for v, fn in runs.items():
        for n in SIZES:
            model = FunctionChain(n)
            gc.collect()
            mark("-")
            made = fn(model)
            mark(f"function {v}:{n}")
            del made
    # The module chain: the plain forward, and a trace split where the recorder starts and stops recording
    enter, leave = tracer.Recorder.__enter__, tracer.Recorder.__exit__

    def entered(self: tracer.Recorder) -> tracer.Recorder:
        got = enter(self)
        mark(f"module before:{n}")
        return got

    def leaving(self: tracer.Recorder, *exc: Any) -> None:
        mark(f"module pass:{n}")
        leave(self, *exc)

    for n in SIZES:
        plain = ModuleChain(n)
        gc.collect()
        mark("-")
        forward(plain)
        mark(f"module forward:{n}")
        del plain
        chain = ModuleChain(n)
        gc.collect()
        tracer.Recorder.__enter__, tracer.Recorder.__exit__ = entered, leaving  # type: ignore[method-assign]
        try:
            mark("-")
            made = convshape.trace_model(chain, x)
            mark(f"module after:{n}")
        finally:
            tracer.Recorder.__enter__, tracer.Recorder.__exit__ = enter, leave  # type: ignore[method-assign]
        del made, chain
    t = torch.relu(x)
    space: dict[str, Any] = {"mark": mark, "weakref": weakref, "t": t, "d": {}, "names": DTYPE_NAMES,
                             "frame": sys._getframe(), "s": ((1, 16),), "n": ("float32",), "w": "model.py:12",
                             "a": {"args": [None]}}
    loop = "    mark('-')\n    for i in range({steps}):\n        {step}\n    mark({label!r})\n"
    exec("def steps():\n" + "".join(loop.format(steps=STEPS, step=step, label=label)  # written out as loops
                                    for label, step in PRIMITIVES.items()), space)
    space["steps"]()
    mark.done()


def report(per: dict[str, int]) -> None:
    lo, hi = SIZES

    def slope(what: str) -> float:
        return (per[f"{what}:{hi}"] - per[f"{what}:{lo}"]) / (hi - lo)

    function = {v: slope(f"function {v}") for v in VARIANTS}
    print("Function chain, instructions per call (slope over 1,000 -> 3,000 calls):\n")
    print("| | per call | over the one before |\n|---|---:|---:|")
    before = None
    for v in VARIANTS:
        print(f"| {v} | {function[v]:,.0f} | {'' if before is None else f'+{function[v] - before:,.0f}'} |")
        before = function[v]
    print(f"\nconvshape over the plain forward: {function['convshape'] - function['forward']:,.0f}; its rows (made, "
          f"then frozen and checked after the pass): {function['convshape'] - function[VARIANTS[2]]:,.0f}\n")
    forward = slope("module forward")
    parts = {part: slope(f"module {part}") for part in ("before", "pass", "after")}
    print(f"Module chain, instructions per call: the plain forward {forward:,.0f}; convshape "
          f"{sum(parts.values()) - forward:,.0f} over it: {parts['before']:,.0f} before the pass (the tree walk, "
          f"counts, flags), {parts['pass'] - forward:,.0f} in it over the forward, {parts['after']:,.0f} after it "
          "(flags back, the rows frozen and checked)\n")
    print(f"One Python step, instructions (over the empty loop, per run of {STEPS:,}):\n")
    print("| step | as written | instructions |\n|---|---|---:|")
    empty = per[next(iter(PRIMITIVES))] / STEPS
    for label, step in list(PRIMITIVES.items())[1:]:
        print(f"| {label} | `{step}` | {per[label] / STEPS - empty:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    if parser.parse_args().inner:
        inner()
        return
    from benchmarks.instructions import under_callgrind

    report(under_callgrind(__file__, ["--inner"]))


if __name__ == "__main__":
    main()
