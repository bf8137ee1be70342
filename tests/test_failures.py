"""A failing forward pass: the failing layer is named, with what it received and expected."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module

import convshape
from convshape.errors import TraceError

from .conftest import ASSETS, EXAMPLES, line_of, load_file

failing = load_file(ASSETS / "failing.py")


def _fail(model: nn.Module, *inputs: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        convshape.trace_model(model, *inputs)
    return info.value


def _interceptors_gone() -> None:
    assert not nn_module._global_forward_hooks
    assert not nn_module._global_forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0


def test_wrong_in_channels_names_layer_and_fix() -> None:
    model = failing.WrongChannels()
    err = _fail(model, "2x1x28x28")
    e = err.trace.error
    assert e.summary == "conv2 (Conv2d) expects 10 input channels, received 20 (input [2, 20, 12, 12])"
    assert e.fix == "nn.Conv2d(20, 50, kernel_size=5)"
    assert e.module == "conv2" and e.layer_type == "Conv2d"
    # the shape it received is what torch itself feeds conv2
    seen: dict[str, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen["x"] = tuple(args[0].shape)

    model.conv2.register_forward_pre_hook(record)
    with pytest.raises(RuntimeError) as raw:
        model(torch.randn(2, 1, 28, 28))
    assert e.received == (seen["x"],)
    assert e.message == str(raw.value)
    assert isinstance(err.__cause__, RuntimeError)
    # the partial trace: every row up to the failure, the failing one marked
    rows = err.trace.rows
    assert [r.name for r in rows] == ["", "conv1", "relu", "max_pool2d", "conv2"]
    assert rows[-1].failed and not any(r.failed for r in rows[:-1])
    assert err.trace.error.row == rows[-1].index


def test_broken_fc_summary_explains_the_number() -> None:
    model = load_file(EXAMPLES / "broken_fc.py").BrokenNet()
    e = _fail(model, "64x784").trace.error
    pool = line_of(EXAMPLES / "broken_fc.py", "F.max_pool2d(x, 2)", occurrence=1)
    assert e.summary == ("fc1 (Linear) expects in_features=320 but receives 800 = 50 x 4 x 4 from "
                         f"max_pool2d at {pool}; write nn.Linear(800, 500)")
    assert e.source == line_of(EXAMPLES / "broken_fc.py", "F.relu(self.fc1(x))")


def test_failing_function_row_is_marked() -> None:
    err = _fail(failing.BadView(), "1x1x5x5")
    rows = err.trace.rows
    assert rows[-1].kind == "function" and rows[-1].name == "view" and rows[-1].failed
    assert err.trace.error.received == ((1, 4, 3, 3),)
    where = line_of(ASSETS / "failing.py", "x.view(-1, 7)")
    assert err.trace.error.summary.startswith(f"Tensor.view at {where} failed on input [1, 4, 3, 3]")


def test_missing_reshape_gets_a_hint() -> None:
    e = _fail(failing.NoReshape(), "64x784").trace.error
    assert e.summary.startswith("conv1 (Conv2d) expects a 3D or 4D input (N, C, H, W), received a 2D input")
    assert "x.view(-1, 1, 28, 28)" in (e.fix or "")


def test_kernel_larger_than_input() -> None:
    e = _fail(failing.KernelTooBig(), "1x3x10x10").trace.error
    assert e.module == "conv" and "kernel reach 7" in e.summary and "H=5" in e.summary


def test_user_exception_points_at_user_line() -> None:
    e = _fail(failing.UserRaises(), "2x4").trace.error
    assert e.error_type == "ValueError" and e.message == "expected a 3D input, got 2D"
    assert e.source == line_of(ASSETS / "failing.py", "raise ValueError")
    assert e.module == ""  # the root module's own code raised


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_state_is_unchanged_after_success_and_failure(device: str) -> None:
    for model, inputs, fails in ((load_file(ASSETS / "zoo.py").BNNet(), ["4x3x8x8"], False),
                                 (failing.WrongChannels(), ["2x1x28x28"], True)):
        model.train()
        model.conv1.requires_grad_(False) if hasattr(model, "conv1") else model.conv.requires_grad_(False)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        flags = [m.training for m in model.modules()]
        grads = [p.requires_grad for p in model.parameters()]
        try:
            result = convshape.trace_model(model, *inputs, device=device)
            assert not fails and result.device == device
        except TraceError as e:
            assert fails and e.trace.device == device  # the failure was found on the device asked for
        _interceptors_gone()
        after = model.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert [m.training for m in model.modules()] == flags
        assert [p.requires_grad for p in model.parameters()] == grads


def test_interceptors_removed_when_the_hook_machinery_itself_is_interrupted() -> None:
    class Boom(nn.Module):
        def forward(self, x):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convshape.trace_model(Boom(), "2")
    _interceptors_gone()


def test_a_convshape_bug_is_not_blamed_on_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from convshape import tracer

    monkeypatch.setattr(tracer, "layer_attrs", None)  # calling it fails inside convshape's own hook
    with pytest.raises(RuntimeError, match="convshape internal error while tracing"):
        convshape.trace_model(nn.Sequential(nn.Linear(2, 2)), "1x2")
    _interceptors_gone()


def test_a_forward_that_never_ends_is_stopped_by_the_call_limit() -> None:
    """A deterministic bound, before the clock's: the pass stops after max_rows calls, with what it saw."""
    from convshape.run import RunOptions, trace_module

    class Loops(nn.Module):
        def forward(self, x):
            while True:
                x = x + 1

    result, exception = trace_module(Loops(), ["2x3"], RunOptions(max_rows=50))
    assert result.error is not None and len(result.rows) == 50
    assert result.error.summary.startswith("the forward pass made more than 50 calls and was stopped; the last "
                                           "call was Tensor.add at test_failures.py:")
    assert result.error.summary.endswith("does it loop without end?")
    assert type(exception).__name__ == "TooManyCalls"
    _interceptors_gone()
