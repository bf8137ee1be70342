"""What the recorder keeps while the pass runs, and where it says each call came from.

Truth: the layer's own instance attributes (``vars``), the lines of this file, and weak references that show
whether a tensor is still alive.
"""

from __future__ import annotations

import gc
import inspect
import weakref
from typing import Any

import pytest
import torch
from torch import nn

import convshape
from convshape import diagnose, tracer
from convshape.tensors import jsonable

LAYERS = [
    nn.ReLU(), nn.Linear(3, 4), nn.Linear(3, 4, bias=False), nn.Conv2d(1, 20, 5, 1),
    nn.Conv2d(2, 4, (3, 1), stride=(2, 1), padding=1, dilation=(1, 2), groups=2),
    nn.Conv1d(2, 2, 3, padding="same", padding_mode="reflect"), nn.ConvTranspose2d(3, 2, 3, output_padding=0),
    nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d((2, 3), count_include_pad=False), nn.AdaptiveAvgPool2d((5, None)),
    nn.LayerNorm((4, 5)), nn.GroupNorm(2, 4), nn.BatchNorm2d(3), nn.Embedding(10, 4, padding_idx=0),
    nn.LSTM(3, 4, num_layers=2, batch_first=True), nn.MultiheadAttention(8, 2, batch_first=True),
    nn.Upsample(scale_factor=(2.0, 1.5), mode="bilinear"), nn.Flatten(1, -1), nn.Dropout(0.25), nn.Softmax(dim=-1),
]


def reference_attrs(module: nn.Module) -> dict[str, Any]:
    """The layer arguments as their definition reads: each of diagnose.LAYER_ATTRS the instance holds, in that
    order, as JSON; then whether there is a bias."""
    own = vars(module)
    attrs = {key: jsonable(own[key]) for key in diagnose.LAYER_ATTRS
             if key in own and isinstance(own[key], (bool, int, float, str, tuple, list))}
    if isinstance(own.get("bias"), bool):
        attrs["bias"] = own["bias"]
    elif "bias" in own["_parameters"]:
        attrs["bias"] = own["_parameters"]["bias"] is not None
    return attrs


@pytest.mark.parametrize("layer", LAYERS, ids=lambda m: type(m).__name__)
def test_layer_arguments_are_the_instances_own(layer: nn.Module) -> None:
    got = tracer.layer_attrs(layer)
    assert got == reference_attrs(layer)
    assert list(got) == list(reference_attrs(layer))  # in the order of the table's columns


def test_an_attribute_set_on_one_instance_shows_on_that_instance_only() -> None:
    marked, plain = nn.Linear(2, 3), nn.Linear(2, 3)
    marked.dim = 3  # an order remembered for the first instance must not be read for the second
    assert tracer.layer_attrs(marked) == {"in_features": 2, "out_features": 3, "dim": 3, "bias": True}
    assert tracer.layer_attrs(plain) == {"in_features": 2, "out_features": 3, "bias": True}
    assert tracer.layer_attrs(marked) == reference_attrs(marked)


class Freed(nn.Module):
    """Records, right after each layer has run, whether that layer's input is still alive."""

    def __init__(self, layer: nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.layer = layer
        self.shape = shape
        self.alive: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            h = torch.ones(self.shape) + x.sum()  # a fresh tensor, referenced only here
            seen = weakref.ref(h)
            x = self.layer(h)
            del h
            gc.collect()
            self.alive.append(seen() is not None)
        return x


@pytest.mark.parametrize("layer, shape", [
    (nn.Linear(8, 8), (2, 8)), (nn.Conv2d(3, 3, 3, padding=1), (1, 3, 6, 6)),
    (nn.ConvTranspose1d(2, 2, 3, padding=1), (1, 2, 7)), (nn.ReLU(), (2, 8)),
], ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_a_priced_layer_does_not_keep_its_input_alive(layer: nn.Module, shape: tuple[int, ...]) -> None:
    """A leaf priced from its shapes (leaves.py) once kept a formula that held its input until the pass ended:
    on the CPU, every activation of the model alive at once."""
    model = Freed(layer, shape)
    trace = convshape.trace_model(model, torch.zeros(1), costs=True)
    assert trace.error is None
    assert model.alive == [False, False, False]
    rows = [r for r in trace.rows if r.name == "layer"]
    assert len(rows) == 3 and all(r.flops is not None for r in rows)


class Calls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)  # line: called
        return self.b._call_impl(x)  # line: through _call_impl


def _line(marker: str) -> str:
    lines, first = inspect.getsourcelines(Calls)
    return f"test_recording.py:{first + next(i for i, text in enumerate(lines) if marker in text)}"


def test_a_module_row_names_the_line_that_called_it_however_it_was_called() -> None:
    trace = convshape.trace_model(Calls(), torch.zeros(2, 4))
    rows = {r.name: r for r in trace.rows}
    assert rows["a"].source == _line("# line: called")
    assert rows["b"].source == _line("# line: through _call_impl")


_T = torch.zeros(2)
_P = nn.Parameter(torch.zeros(3))
LITERALS: list[Any] = [
    torch.float16, torch.device("cpu"), slice(1, 4), Ellipsis, (2, 3), [2, 3.5, None, "x", True], torch.Size([4, 5]),
    (Ellipsis, slice(None, 4)), (slice(None), None, 0), [_T, _T], (_T, 2, _T), [_T, (_T, 1)], (_P, 1), [1, [2, 3]],
    ({"a": _T}, 1), {"a": _T, "b": 2}, (torch.float32, 2), (), [], (1, torch.device("meta")), object(),
]


@pytest.mark.parametrize("value", LITERALS, ids=lambda v: type(v).__name__)
def test_a_call_argument_reads_as_jsonable_and_tensors_in_read_it(value: Any) -> None:
    """tracer._literal's shortcuts give what the two general scans give, tensors in the same order."""
    from convshape.tensors import tensors_in

    found: list[torch.Tensor] = [_T]  # tensors met before this argument stay as they were
    got = tracer._literal(value, found)
    expected = [_T, *tensors_in(value)]
    assert got == jsonable(value)
    assert len(found) == len(expected) and all(a is b for a, b in zip(found, expected, strict=True))


class WithHooks(nn.Module):
    """A layer whose own hooks change what it is given and what it returns, and a global hook of another tool."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(2)
        self.pool.register_forward_pre_hook(lambda m, a: (a[0].unsqueeze(1),))  # (2, 8) -> (2, 1, 8)
        self.pool.register_forward_hook(lambda m, a, out: out.flatten(1))  # (2, 1, 4) -> (2, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x))


def _torch_view(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[list[Any], list[Any], int]]:
    """What each module call is given and returns, as the caller sees it: a wrapper around ``Module.__call__``."""
    seen: dict[str, tuple[list[Any], list[Any], int]] = {}
    names = {id(m): n for n, m in model.named_modules()}
    outer = nn.Module.__call__

    def call(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        out = outer(module, *args, **kwargs)
        key = names[id(module)]
        seen[key] = ([tuple(a.shape) for a in args], [tuple(out.shape)], seen.get(key, ([], [], 0))[2] + 1)
        return out

    nn.Module.__call__ = call  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            model(x)
    finally:
        nn.Module.__call__ = outer  # type: ignore[method-assign]
    return seen


def test_a_module_call_shows_what_its_caller_gave_and_got_back_through_every_hook() -> None:
    """Module calls are recorded around torch's _call_impl: the row's shapes are the call's, hooks included
    (a layer's own pre-hook reshapes its input inside the call; its forward hook, the output it returns)."""
    model, x = WithHooks(), torch.randn(2, 8)
    truth = _torch_view(model, x)
    other = nn.modules.module.register_module_forward_hook(lambda m, a, out: None)  # another tool's, around all
    try:
        for trace in (convshape.trace_model(model, x), convshape.trace_model(model, x, device="meta")):
            rows = {r.name: r for r in trace.rows if r.kind == "module"}
            assert {n: ([list(s) for s in r.input_shapes], [list(s) for s in r.output_shapes], r.call + 1)
                    for n, r in rows.items()} == \
                {n: ([list(s) for s in given], [list(s) for s in got], calls) for n, (given, got, calls) in
                 truth.items()}
            assert [r.name for r in trace.rows if r.kind == "function"] == ["unsqueeze", "flatten"]  # hooks' calls
    finally:
        other.remove()
    assert nn.Module.__dict__["_call_impl"] is tracer._CALL_IMPL_FN
    assert nn.Module._call_impl.__code__ is tracer._CALL_IMPL_CODE


def test_another_tools_call_impl_still_runs_under_the_recorder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool that replaced Module._call_impl before the trace keeps seeing every module call, and has its
    replacement back after."""
    calls: list[str] = []
    torch_own = nn.Module._call_impl

    def theirs(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        calls.append(type(module).__name__)
        return torch_own(module, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "_call_impl", theirs)
    model = WithHooks()
    trace = convshape.trace_model(model, torch.randn(2, 8))
    assert calls == [r.op for r in trace.rows if r.kind == "module"] == ["WithHooks", "MaxPool1d", "Linear"]
    assert nn.Module.__dict__["_call_impl"] is theirs


class Compiled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.block.compile()  # its calls go to its compiled _call_impl, which runs eagerly in a trace
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block(x))


def test_a_compiled_module_has_its_row() -> None:
    model, x = Compiled(), torch.randn(2, 4)
    compiled = model.block._compiled_call_impl
    truth = _torch_view(model, x)
    trace = convshape.trace_model(model, x)
    assert {r.name: [list(s) for s in r.output_shapes] for r in trace.rows if r.kind == "module"} == \
        {n: [list(s) for s in got] for n, (_, got, _) in truth.items()}
    assert [r.name for r in trace.rows] == ["", "block", "block.0", "block.1", "fc"]
    assert model.block._compiled_call_impl is compiled and "_compiled_call_impl" not in vars(model.fc)


def test_the_torch_internals_the_module_calls_rely_on() -> None:
    """Module.__call__ runs ``self._call_impl`` (looked up by name), and ``_call_impl`` is a function without a
    closure, whose code the recorder swaps for its trampoline: a torch that changes either fails here first."""
    assert nn.Module.__call__ is nn.Module._wrapped_call_impl
    assert "_call_impl" in nn.Module._wrapped_call_impl.__code__.co_names
    assert nn.Module._call_impl is tracer._CALL_IMPL_FN and tracer._CALL_IMPL_FN.__closure__ is None
    assert not tracer._CALL_IMPL_CODE.co_freevars and not tracer._TRAMPOLINE.co_freevars
