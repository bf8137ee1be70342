"""convshape's rows and counts against torch's own answers, on a dozen varied models."""

from __future__ import annotations

import pytest
import torch

import convshape
from convshape.inputs import make_input
from convshape.spec import parse_input

from .conftest import ASSETS, load_file, torch_module_calls, unique_numel

zoo = load_file(ASSETS / "zoo.py")
CASES = sorted(zoo.CASES)


def _inputs(specs: list[str]) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [make_input(parse_input(s), torch.device("cpu")) for s in specs]


@pytest.mark.parametrize("case", CASES)
def test_module_rows_match_plain_hooks(case: str) -> None:
    factory, specs = zoo.CASES[case]
    model = factory()
    tensors = _inputs(specs)
    truth = torch_module_calls(model, *tensors)
    trace = convshape.trace_model(model, *tensors)
    rows = trace.module_rows()
    got = [(r.name, r.op, list(r.input_shapes), list(r.output_shapes)) for r in rows]
    want = [(c["name"], c["type"], c["in"], c["out"]) for c in truth]
    assert got == want


@pytest.mark.parametrize("case", CASES)
def test_params_match_numel(case: str) -> None:
    factory, _ = zoo.CASES[case]
    model = factory()
    params = list(model.parameters())
    report = convshape.parameters(model)
    assert report.totals.params == unique_numel(model)
    assert report.totals.trainable == sum(p.numel() for p in params if p.requires_grad)
    assert report.totals.bytes == sum(p.numel() * p.element_size() for p in params)
    assert [r.numel for r in report.parameters] == [p.numel() for p in params]
    assert [r.shape for r in report.parameters] == [tuple(p.shape) for p in params]


@pytest.mark.parametrize("case", CASES)
def test_row_params_are_each_modules_own_count(case: str) -> None:
    factory, specs = zoo.CASES[case]
    model = factory()
    modules = dict(model.named_modules(remove_duplicate=False))
    trace = convshape.trace_model(model, *specs)
    for row in trace.module_rows():
        assert row.params == sum(p.numel() for p in modules[row.name].parameters()), row.name
    assert trace.totals.params == unique_numel(model)


@pytest.mark.parametrize("case", CASES)
def test_meta_trace_equals_cpu_trace(case: str) -> None:
    factory, specs = zoo.CASES[case]
    cpu = convshape.trace_model(factory(), *specs)
    with torch.device("meta"):
        meta_model = factory()
    meta = convshape.trace_model(meta_model, *specs)
    assert meta.device == "meta"
    assert [(r.name, r.input_shapes, r.output_shapes) for r in meta.rows] == [
        (r.name, r.input_shapes, r.output_shapes) for r in cpu.rows
    ]
    assert all(p.device.type == "meta" for p in meta_model.parameters())


def test_module_called_twice_has_two_rows_counted_once() -> None:
    model = zoo.CalledTwice()
    trace = convshape.trace_model(model, "4x8")
    block_rows = [r for r in trace.rows if r.name == "block"]
    assert [r.call for r in block_rows] == [0, 1]
    assert trace.totals.params == unique_numel(model) == 8 * 8 + 8 + 8 + 1


def test_tied_and_frozen_parameters() -> None:
    tied = convshape.parameters(zoo.TiedLM())
    emb = next(p for p in tied.parameters if p.name == "embed.weight")
    assert emb.shared_with == ("decoder.weight",)
    assert tied.totals.params == unique_numel(zoo.TiedLM())
    assert not any(p.name == "decoder.weight" for p in tied.parameters)

    frozen_model = zoo.FrozenBackbone()
    frozen = convshape.parameters(frozen_model)
    backbone = sum(p.numel() for p in frozen_model.backbone.parameters())
    assert frozen.totals.non_trainable == backbone
    assert frozen.totals.trainable == sum(p.numel() for p in frozen_model.head.parameters())
    assert {p.name for p in frozen.parameters if not p.trainable} == {
        n for n, p in frozen_model.named_parameters() if not p.requires_grad
    }


def test_output_shapes_flatten_tuples_and_dicts() -> None:
    model = zoo.TwoInputs()
    tensors = _inputs(["5x6", "5x2x9"])
    with torch.no_grad():
        out = model(*tensors)
    trace = convshape.trace_model(model, *tensors)
    root = trace.rows[0]
    assert root.name == "" and root.depth == 0
    assert list(root.output_shapes) == [tuple(out[0].shape), tuple(out[1]["seq"].shape),
                                        tuple(out[1]["both"].shape)]


class _SharedEverywhere(torch.nn.Module):
    """One Linear called at three places, a weight held by two Linears, and a block reached under two names."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = torch.nn.Linear(6, 6)
        a, b = torch.nn.Linear(6, 6), torch.nn.Linear(6, 6, bias=False)
        b.weight = a.weight
        self.block = torch.nn.Sequential(a, torch.nn.ReLU(), b)
        self.again = torch.nn.Sequential(self.shared, torch.nn.ModuleDict({"inner": self.block}))
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.again[1]["inner"](self.block(self.shared(x)))
        return self.head(self.again[0](x))


@pytest.mark.parametrize("factory", [zoo.TiedLM, _SharedEverywhere], ids=["tied", "shared-everywhere"])
def test_row_params_of_shared_models_match_torch(factory: type[torch.nn.Module]) -> None:
    """Each module row counts the parameters of its subtree once, as ``module.parameters()`` (which drops
    duplicates) gives them."""
    model = factory()
    spec = "2x5:int64:randint(10)" if factory is zoo.TiedLM else "3x6"
    trace = convshape.trace_model(model, spec)
    modules = dict(model.named_modules())
    rows = trace.module_rows()
    assert rows
    for row in rows:
        assert row.params == sum(p.numel() for p in modules[row.name].parameters()), row.name
