"""Symbolic sizes (``--input Bx1xHxW``): every formula convshape reports, evaluated at sizes on the traced
path, is what a concrete forward pass with plain forward hooks shows at those sizes; what ``sizes`` says runs
runs in torch, what it says fails fails in torch.

Truth always comes from torch itself: the models are run concretely, hooked with plain forward hooks
(:func:`tests.conftest.torch_module_calls`), never compared with convshape's own output at another size.
"""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from convshape import symexpr
from convshape.cli import app
from convshape.inputlang import parse_inputs
from convshape.records import Trace
from convshape.run import RunOptions, trace_module
from convshape.sizes import sizes_report
from convshape.symbolic import module_target
from convshape.symbolic_records import SizeExpr, expr_of

from .conftest import ASSETS, EXAMPLES, load_file, torch_module_calls

runner = CliRunner()


# -- helpers -------------------------------------------------------------------------------------------------

def symbolic_trace(model: nn.Module, *inputs: str, costs: bool = False) -> Trace:
    ran = trace_module(model, list(inputs), RunOptions(costs=costs))
    assert ran.trace.symbols is not None
    return ran.trace


def on_path(trace: Trace, sizes: dict[str, int]) -> bool:
    """True when ``sizes`` meets every condition of the trace's path (the sizes its formulas hold for)."""
    assert trace.symbols is not None
    for name, formula in (trace.symbols.equal or {}).items():
        if sizes[name] != symexpr.evaluate(formula, sizes):
            return False
    return all(symexpr.evaluate(r.condition, sizes) for r in trace.symbols.requirements)


def valid_sizes(trace: Trace, candidates: dict[str, list[int]], rng: random.Random, count: int
                ) -> list[dict[str, int]]:
    assert trace.symbols is not None
    names = trace.symbols.names
    pool = [dict(zip(names, values, strict=True)) for values in itertools.product(*(candidates[n] for n in names))]
    rng.shuffle(pool)
    pool.append(dict(trace.symbols.sample))  # the sample sizes are always on the path (a size fixed there: only)
    out = []
    for sizes in pool:
        if on_path(trace, sizes):
            out.append(sizes)
            if len(out) == count:
                break
    return out


def evaluated(shape: tuple[Any, ...], sizes: dict[str, int]) -> list[int]:
    return [symexpr.evaluate(expr_of(d), sizes) for d in shape]


def make(spec: str, sizes: dict[str, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    shape = [sizes[d] if not d.isdigit() else int(d) for d in spec.split("x")]
    if dtype is torch.int64:
        return torch.ones(shape, dtype=dtype)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def assert_formulas_match_torch(model: nn.Module, trace: Trace, spec: str, sizes: dict[str, int],
                                dtype: torch.dtype = torch.float32) -> int:
    """Every module row's formulas at ``sizes`` equal a concrete pass's shapes (plain forward hooks).
    Returns how many shapes were compared."""
    truth = torch_module_calls(model, make(spec, sizes, dtype))
    rows = trace.module_rows()
    assert [(r.name, r.op) for r in rows] == [(c["name"], c["type"]) for c in truth]
    compared = 0
    for row, call in zip(rows, truth, strict=True):
        if trace.symbols is not None and row.index >= trace.symbols.exact_rows:
            break
        got_in = [evaluated(s, sizes) for s in row.input_shapes]
        assert got_in == [list(s) for s in call["in"]], (row.name, sizes)
        if not row.failed:
            got_out = [evaluated(s, sizes) for s in row.output_shapes]
            assert got_out == [list(s) for s in call["out"]], (row.name, sizes)
        compared += len(row.input_shapes) + len(row.output_shapes)
    return compared


# -- random stacks -------------------------------------------------------------------------------------------

class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Concat(nn.Module):
    def __init__(self, c: int, extra: int) -> None:
        super().__init__()
        self.branch = nn.Conv2d(c, extra, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.branch(x)], dim=1)


class Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Stack(nn.Module):
    def __init__(self, layers: list[nn.Module], head: nn.Module | None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        if self.head is not None:
            x = self.head(x.flatten(1))
        return x


@st.composite
def stacks(draw: Any) -> tuple[nn.Module, list[str]]:
    c = 3
    layers: list[nn.Module] = []
    kinds = draw(st.lists(st.sampled_from(["conv", "pool", "transposed", "residual", "cat", "up", "avg"]),
                          min_size=1, max_size=5))
    for kind in kinds:
        if kind == "conv":
            out = draw(st.integers(2, 6))
            layers.append(nn.Conv2d(c, out, draw(st.sampled_from([1, 3, 5])), stride=draw(st.sampled_from([1, 2])),
                                    padding=draw(st.sampled_from([0, 1, 2])), dilation=draw(st.sampled_from([1, 2]))))
            c = out
        elif kind == "pool":
            layers.append(nn.MaxPool2d(draw(st.sampled_from([2, 3])), stride=draw(st.sampled_from([1, 2])),
                                       ceil_mode=draw(st.booleans())))
        elif kind == "avg":
            layers.append(nn.AvgPool2d(2, padding=draw(st.sampled_from([0, 1]))))
        elif kind == "transposed":
            stride = draw(st.sampled_from([1, 2]))
            out = draw(st.integers(2, 6))
            layers.append(nn.ConvTranspose2d(c, out, draw(st.sampled_from([2, 3])), stride=stride,
                                             padding=draw(st.sampled_from([0, 1])),
                                             output_padding=draw(st.integers(0, stride - 1))))
            c = out
        elif kind == "residual":
            layers.append(Residual(c))
        elif kind == "cat":
            extra = draw(st.integers(1, 3))
            layers.append(Concat(c, extra))
            c += extra
        else:
            layers.append(Upsample())
    head = None
    if draw(st.booleans()):
        layers.append(nn.AdaptiveAvgPool2d(2))
        head = nn.Linear(c * 4, draw(st.integers(1, 5)))
    names = draw(st.sampled_from([["B", "H", "W"], ["B", "H", "H"], ["1", "H", "W"]]))
    spec = f"{names[0]}x3x{names[1]}x{names[2]}"
    return Stack(layers, head).eval(), [spec]


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(stacks(), st.integers(0, 2**16))
def test_random_stacks_formulas_equal_concrete_runs(made: tuple[nn.Module, list[str]], seed: int) -> None:
    rng = random.Random(seed)
    torch.manual_seed(0)
    model, (spec,) = made
    trace = symbolic_trace(model, spec, costs=True)
    if trace.error is not None:  # no sample size runs this stack: nothing to compare
        event("no sample size runs")
        return
    event("symbols stop" if trace.symbols and trace.symbols.stop else "formulas all the way")
    assert trace.symbols is not None
    sizes_list = valid_sizes(trace, {"B": [1, 2, 3], "H": list(range(1, 90)), "W": list(range(1, 90))}, rng, 3)
    assert sizes_list, "the sample sizes themselves are on the path"
    for sizes in sizes_list:
        assert assert_formulas_match_torch(model, trace, spec, sizes) > 0


def test_a_wrong_formula_fails_the_comparison() -> None:
    """The comparison above can fail: a formula shifted by one is caught by the torch run."""
    model = Stack([nn.Conv2d(3, 4, 3)], None).eval()
    trace = symbolic_trace(model, "1x3xHxW")
    row = trace.module_rows()[-1]
    bad = (*row.output_shapes[0][:2], SizeExpr(row.output_shapes[0][2], "H - 1"), *row.output_shapes[0][3:])
    broken = trace.rows[row.index]._replace(output_shapes=(bad,))
    rows = list(trace.rows)
    rows[row.index] = broken
    from dataclasses import replace

    with pytest.raises(AssertionError):
        assert_formulas_match_torch(model, replace(trace, rows=tuple(rows)), "1x3xHxW", {"H": 40, "W": 40})


# -- the examples --------------------------------------------------------------------------------------------

EXAMPLE_CASES = [
    ("mnist_images.py", "M", "Bx1xHxW", torch.float32, {"B": [1, 2], "H": list(range(16, 80)),
                                                        "W": list(range(16, 80))}),
    ("resnet_style.py", "resnet_small", "Bx3xHxW", torch.float32, {"B": [1, 2], "H": list(range(8, 70)),
                                                                   "W": list(range(8, 70))}),
    ("unet.py", "UNet", "1x3xHxW", torch.float32, {"H": list(range(16, 129)), "W": list(range(16, 129))}),
    ("llama.py", "llama_tiny", "BxS:int64", torch.int64, {"B": [1, 2, 3], "S": list(range(1, 80))}),
]


@pytest.mark.parametrize(("file", "name", "spec", "dtype", "candidates"), EXAMPLE_CASES,
                         ids=[c[0] for c in EXAMPLE_CASES])
def test_example_formulas_equal_concrete_runs(file: str, name: str, spec: str, dtype: torch.dtype,
                                              candidates: dict[str, list[int]]) -> None:
    module = load_file(EXAMPLES / file)
    torch.manual_seed(0)
    model = getattr(module, name)().eval()
    trace = symbolic_trace(model, spec, costs=True)
    assert trace.error is None and trace.symbols is not None
    assert trace.symbols.exact_rows == len(trace.rows) and trace.symbols.stop is None
    assert any(isinstance(d, SizeExpr) for r in trace.rows for s in r.output_shapes for d in s)
    rng = random.Random(0)
    chosen = valid_sizes(trace, candidates, rng, 4)
    assert len(chosen) >= 2
    for sizes in chosen:
        assert_formulas_match_torch(model, trace, spec.split(":")[0], sizes, dtype)


def test_macs_are_formulas_that_equal_the_counts_at_each_size() -> None:
    """MNIST (convolutions and Linears): the FLOPs formula equals torch's FlopCounterMode at other sizes.
    LLaMA: equals a concrete trace's count (torch's counter leaves the cpu flash-attention kernel at 0)."""
    from convshape.costs import flop_counter_total

    mnist = load_file(EXAMPLES / "mnist_images.py").M().eval()
    trace = symbolic_trace(mnist, "Bx1xHxW", costs=True)
    assert isinstance(trace.flops, SizeExpr) and {"B", "H", "W"} <= set(trace.flops.expr)
    for b, h, w in ((1, 28, 28), (3, 29, 31)):
        assert symexpr.evaluate(trace.flops.expr, {"B": b, "H": h, "W": w}) == \
            flop_counter_total(mnist, torch.zeros(b, 1, h, w))
    llama = load_file(EXAMPLES / "llama.py").llama_tiny().eval()
    trace = symbolic_trace(llama, "1xS:int64", costs=True)
    assert isinstance(trace.macs, SizeExpr) and ("S ** 2" in trace.macs.expr or "S * (S" in trace.macs.expr)
    for s in (5, 17):
        concrete = trace_module(llama, [f"1x{s}:int64"], RunOptions(costs=True)).trace
        assert symexpr.evaluate(trace.macs.expr, {"S": s}) == concrete.macs  # type: ignore[union-attr]


# -- the MNIST net on images: fc1 --------------------------------------------------------------------------

def runs(model: nn.Module, *shape: int) -> bool:
    try:
        with torch.no_grad():
            model(torch.zeros(shape))
    except RuntimeError:
        return False
    return True


def test_mnist_images_fc1_formula_and_exactly_28_to_31() -> None:
    result = runner.invoke(app, ["fc-size", str(EXAMPLES / "mnist_images.py"), "-i", "Bx1xHxW", "-f", "json"])
    assert result.exit_code in (0, 1), result.output
    fc1 = next(layer for layer in json.loads(result.stdout)["layers"] if layer["name"] == "fc1")
    formula = fc1["required_formula"]
    assert set("HW") <= set(formula)
    model = load_file(EXAMPLES / "mnist_images.py").M().eval()
    for h, w in ((28, 28), (31, 31), (32, 32), (40, 56)):  # the formula is torch's in_features
        x = torch.zeros(1, 1, h, w)
        feats = F.max_pool2d(model.conv2(F.max_pool2d(model.conv1(x), 2)), 2).flatten(1).shape[1]
        assert symexpr.evaluate(formula, {"H": h, "W": w, "B": 1}) == feats
    square = [box for box in fc1["fits"] if box["H"] == box["W"]]
    assert square == [{"B": "any", "H": "28..31", "W": "28..31"}]
    assert "fits H, W in 28..31" in fc1["fits_text"]
    for box in fc1["fits"]:  # every box claimed runs in torch, at its corners
        lo_h, hi_h = map(int, box["H"].split(".."))
        lo_w, hi_w = map(int, box["W"].split(".."))
        for h, w in itertools.product((lo_h, hi_h), (lo_w, hi_w)):
            assert runs(model, 1, 1, h, w), (h, w)
    for n in range(20, 40):  # square inputs: exactly 28..31 run (31 -> 27 -> 13 -> 9 -> 4, 32 -> ... -> 5)
        assert runs(model, 1, 1, n, n) == (28 <= n <= 31), n


def test_mnist_images_trace_picks_sample_sizes_that_run() -> None:
    result = runner.invoke(app, ["trace", str(EXAMPLES / "mnist_images.py"), "-i", "Bx1xHxW", "-f", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    sample = doc["symbols"]["sample"]
    assert 28 <= sample["H"] <= 31 and 28 <= sample["W"] <= 31
    assert "fails at fc1" in doc["symbols"]["sample_note"]
    flatten = next(r for r in doc["rows"] if r["name"] == "flatten")
    assert flatten["output_exprs"][0][1] == "50 * (H // 4 - 3) * (W // 4 - 3)"
    assert flatten["output_shapes"][0][1] == 800


# -- sizes ---------------------------------------------------------------------------------------------------

def _claims(report: Any) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    """Sizes the report says run (from its boxes) and fail (its rules' examples)."""
    ran = []
    for box in report.runs:
        picked = {}
        for name, text in box.items():
            first = int("".join(itertools.takewhile(str.isdigit, text.lstrip(">= ").replace("any", "1"))))
            picked[name] = first
        ran.append(picked)
    return ran, [rule.example for rule in report.fails]


@pytest.mark.parametrize(("file", "name", "spec", "limit"), [
    ("mnist_images.py", "M", "1x1xHxW", 40), ("unet.py", "UNet", "1x3xHxW", 48)])
def test_sizes_claims_hold_in_torch(file: str, name: str, spec: str, limit: int) -> None:
    module = load_file(EXAMPLES / file)
    torch.manual_seed(0)
    model = getattr(module, name)().eval()
    given = parse_inputs([spec])
    target = module_target(model, name, ())
    report = sizes_report(target, given, RunOptions(), (), limit=limit, budget=10, inputs_text=(spec,))
    ran, failed = _claims(report)
    assert ran and failed
    shape = [int(d) if d.isdigit() else d for d in spec.split("x")]
    for sizes in ran:
        assert runs(model, *[sizes.get(str(d), d) for d in shape]), sizes  # type: ignore[misc]
    for sizes in failed:
        assert not runs(model, *[sizes.get(str(d), d) for d in shape]), sizes  # type: ignore[misc]
    # every decided size agrees with torch, on a sample of the grid
    rng = random.Random(1)
    for _ in range(25):
        sizes = {"H": rng.randint(1, limit), "W": rng.randint(1, limit)}
        said = [b for b in report.runs if all(_in(sizes[n], text) for n, text in b.items())]
        if said:
            assert runs(model, *[sizes.get(str(d), d) for d in shape]), sizes  # type: ignore[misc]
    if name == "UNet":  # the U-Net's four poolings and cats: only multiples of 16 run
        claimed = [h for h in range(1, limit + 1) if _in(h, report.each["H"])]
        assert claimed and all(h % 16 == 0 for h in claimed), report.each
        assert any("% 16 == 0" in rule.needs for rule in report.fails), report.fails


def _in(value: int, text: str) -> bool:
    """Whether ``value`` is in a described set (the forms describe_values writes)."""
    if text == "any":
        return True
    if text.startswith(">= "):
        return value >= int(text[3:])
    if "%" in text:
        step = int(text.split("% ")[1].split(" ")[0])
        low = int(text.split(">= ")[1].rstrip(")"))
        return value >= low and value % step == low % step
    for part in text.split(", "):
        lo, _, hi = part.partition("..")
        if part.isdigit() and value == int(part):
            return True
        if hi and int(lo) <= value <= int(hi):
            return True
    return False


def test_sizes_cli_try_says_which_run_and_why_not() -> None:
    result = runner.invoke(app, ["sizes", str(EXAMPLES / "unet.py"), "-i", "1x3xHxW", "--limit", "40",
                                 "--passes", "8", "--try", "32,40,48x64"])
    assert result.exit_code == 1, result.output  # one tried size fails
    out = result.output
    assert "✓ H=32, W=32 runs" in out and "✓ H=48, W=64 runs" in out
    assert "✗ H=40, W=40 fails" in out and "torch.cat" in out and "% 16 == 0" in out
    model = load_file(EXAMPLES / "unet.py").UNet().eval()
    assert runs(model, 1, 3, 48, 64) and not runs(model, 1, 3, 40, 40)


# -- where symbols stop, sizes tied together, the user's own ifs ---------------------------------------------

def test_item_stops_symbols_and_the_rest_is_a_concrete_trace() -> None:
    model = load_file(ASSETS / "symbolic.py").ItemSized().eval()
    trace = symbolic_trace(model, "2xN")
    sym = trace.symbols
    assert sym is not None and sym.stop is not None
    assert "data-dependent" in sym.stop.reason and sym.stop.source == "symbolic.py:16"
    assert 0 < sym.exact_rows <= len(trace.rows)
    assert trace.error is None
    repeat = next(r for r in trace.rows if r.name == "repeat")
    assert repeat.output_shapes[0][1].expr == "8 * N"
    assert all(not isinstance(d, SizeExpr) for r in trace.rows[sym.exact_rows:] for s in r.output_shapes for d in s)
    assert_formulas_match_torch(model, trace, "2xN", {"N": 5})


def test_a_size_made_a_python_number_stops_the_formulas_there() -> None:
    model = load_file(ASSETS / "symbolic.py").FixedByInt().eval()
    trace = symbolic_trace(model, "2xNx4")
    sym = trace.symbols
    assert sym is not None and sym.stop is not None and "N became a plain number here" in sym.stop.reason
    assert sym.stop.source == "symbolic.py:29"
    later = trace.rows[sym.exact_rows:]
    assert later and all(not isinstance(d, SizeExpr) for r in later for s in r.output_shapes for d in s)
    proj = next(r for r in trace.rows if r.name == "proj")
    assert proj.output_shapes[0][1].expr == "N"  # before the stop: still a formula


def test_sizes_the_model_ties_together_are_reported() -> None:
    model = load_file(ASSETS / "symbolic.py").SquareOnly()
    trace = symbolic_trace(model, "1xHxW")
    assert trace.symbols is not None and trace.symbols.equal == {"W": "H"}
    assert [expr_of(d) for d in trace.rows[-1].output_shapes[0]] == ["1", "H", "H"]


def test_an_if_on_a_size_in_the_model_is_a_condition_of_the_formulas() -> None:
    model = load_file(ASSETS / "symbolic.py").Branchy()
    trace = symbolic_trace(model, "1x3xL")
    own = [r for r in trace.symbols.requirements if r.in_your_code]  # type: ignore[union-attr]
    assert [(r.condition, r.source) for r in own] == [("L <= 40", "symbolic.py:48")]
    assert on_path(trace, {"L": 40}) and not on_path(trace, {"L": 41})
    assert_formulas_match_torch(model, trace, "1x3xL", {"L": 17})


def test_the_users_model_is_not_changed() -> None:
    module = load_file(EXAMPLES / "resnet_style.py")
    model = module.resnet_small().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = {k: id(v) for k, v in [*model.named_parameters(), *model.named_buffers()]}
    trace_module(model, ["Bx3xHxW"], RunOptions(train=True))
    after = model.state_dict()
    assert model.training
    assert all(torch.equal(before[k], after[k]) and type(after[k]) is torch.Tensor for k in before)
    assert {k: id(v) for k, v in [*model.named_parameters(), *model.named_buffers()]} == ids
    assert not any("Fake" in type(v).__name__ for v in vars(model).values())


# -- the command line: bad symbolic input ------------------------------------------------------------------

@pytest.mark.parametrize(("args", "start"), [
    (["trace", str(EXAMPLES / "mnist_images.py"), "-i", "Bx1xH-1xW"],
     "error: --input 'Bx1xH-1xW': got 'H-1', neither a whole number nor a size name"),
    (["sizes", str(EXAMPLES / "mnist_images.py"), "-i", "1x1x28x28"],
     "error: sizes needs at least one size given as a name in --input"),
    (["sizes", str(EXAMPLES / "mnist_images.py"), "-i", "1x1xHxW", "--try", "28x"],
     "error: --try '28x': '28x' is not a size"),
    (["sizes", str(EXAMPLES / "mnist_images.py"), "-i", "1x1xHxW", "--try", "2x3x4"],
     "error: --try '2x3x4': '2x3x4' gives 3 sizes, but the inputs name 2 (H, W)"),
    (["layer", "nn.Conv2d(3, 10, 2)", "-i", "1x3xHxW"],
     "error: --input '1x3xHxW': 'H' is a symbolic size; symbolic sizes work with trace, fc-size and sizes"),
])
def test_bad_symbolic_input_is_one_clear_line(args: list[str], start: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(start), result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
