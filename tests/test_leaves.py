"""Torch's own leaf layers run without the recorder's mode (convshape/leaves.py): the same rows, and the mode
always comes back.

Truth: a probe TorchFunctionMode shows which torch calls each listed layer makes in this torch; the reference
trace keeps the mode on inside every layer and counts every call under the dispatch counter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as nn_module
from torch.overrides import TorchFunctionMode

import convshape
from convshape import costs, leaves, tracer

from .conftest import keep_the_mode, priced_and_counted


def x(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(0, 10, shape)


# every listed layer, in the configurations whose forward takes a different path
CONFIGS: list[tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = [
    (nn.Identity, lambda: x(2, 3)), (lambda: nn.Flatten(), lambda: x(2, 3, 4)),
    (lambda: nn.Unflatten(1, (2, 2)), lambda: x(2, 4)),
    *[(cls, lambda: x(2, 4, 6)) for cls in (
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid,
        nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink, nn.Softplus,
        nn.Softsign, nn.Tanhshrink, nn.GLU, nn.LogSigmoid, nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Dropout,
        nn.AlphaDropout, nn.FeatureAlphaDropout)],
    (lambda: nn.ReLU(inplace=True), lambda: x(2, 4)), (lambda: nn.GELU("tanh"), lambda: x(2, 4)),
    (lambda: nn.Threshold(0.1, 0.0), lambda: x(2, 4)), (lambda: nn.PReLU(4), lambda: x(2, 4, 3)),
    (lambda: nn.Softmax(dim=1), lambda: x(2, 4)), (nn.Softmax2d, lambda: x(2, 3, 4, 4)),
    (nn.Dropout1d, lambda: x(2, 3, 4)), (nn.Dropout2d, lambda: x(2, 3, 4, 4)), (nn.Dropout3d, lambda: x(2, 3, 2, 4, 4)),
    (lambda: nn.MaxPool1d(2), lambda: x(2, 3, 8)), (lambda: nn.MaxPool2d(2), lambda: x(2, 3, 8, 8)),
    (lambda: nn.MaxPool2d(3, 2, 1, return_indices=True), lambda: x(2, 3, 8, 8)),
    (lambda: nn.MaxPool3d(2), lambda: x(1, 2, 4, 4, 4)), (lambda: nn.AvgPool1d(2), lambda: x(2, 3, 8)),
    (lambda: nn.AvgPool2d(2, ceil_mode=True), lambda: x(2, 3, 7, 7)),
    (lambda: nn.AvgPool3d(2), lambda: x(1, 2, 4, 4, 4)), (lambda: nn.AdaptiveAvgPool1d(3), lambda: x(2, 3, 8)),
    (lambda: nn.AdaptiveAvgPool2d((2, 3)), lambda: x(2, 3, 8, 8)),
    (lambda: nn.AdaptiveAvgPool3d(2), lambda: x(1, 2, 4, 4, 4)), (lambda: nn.AdaptiveMaxPool1d(3), lambda: x(2, 3, 8)),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices=True), lambda: x(2, 3, 8, 8)),
    (lambda: nn.AdaptiveMaxPool3d(2), lambda: x(1, 2, 4, 4, 4)),
    (lambda: nn.BatchNorm1d(3), lambda: x(4, 3)), (lambda: nn.BatchNorm2d(3), lambda: x(2, 3, 4, 4)),
    (lambda: nn.BatchNorm2d(3).train(), lambda: x(2, 3, 4, 4)),
    (lambda: nn.BatchNorm2d(3, momentum=None).train(), lambda: x(2, 3, 4, 4)),
    (lambda: nn.BatchNorm2d(3, affine=False, track_running_stats=False), lambda: x(2, 3, 4, 4)),
    (lambda: nn.BatchNorm3d(2), lambda: x(2, 2, 2, 4, 4)), (lambda: nn.InstanceNorm1d(3), lambda: x(3, 8)),
    (lambda: nn.InstanceNorm2d(3, affine=True), lambda: x(2, 3, 4, 4)),
    (lambda: nn.InstanceNorm2d(3, track_running_stats=True).train(), lambda: x(2, 3, 4, 4)),
    (lambda: nn.InstanceNorm3d(2), lambda: x(1, 2, 2, 4, 4)), (lambda: nn.LayerNorm(5), lambda: x(2, 4, 5)),
    (lambda: nn.LayerNorm((4, 5), bias=False), lambda: x(2, 4, 5)), (lambda: nn.GroupNorm(2, 4), lambda: x(2, 4, 5)),
    (lambda: nn.RMSNorm(5), lambda: x(2, 4, 5)),
    (lambda: nn.RMSNorm(5, eps=1e-5, elementwise_affine=False), lambda: x(2, 5)),
    (lambda: nn.LocalResponseNorm(2), lambda: x(2, 4, 5, 5)),
    *[(lambda c=cls, d=dims: c(1), lambda d=dims: x(1, 2, *[5] * d)) for cls, dims in (
        (nn.ZeroPad1d, 1), (nn.ZeroPad2d, 2), (nn.ZeroPad3d, 3), (nn.ReflectionPad1d, 1), (nn.ReflectionPad2d, 2),
        (nn.ReflectionPad3d, 3), (nn.ReplicationPad1d, 1), (nn.ReplicationPad2d, 2), (nn.ReplicationPad3d, 3),
        (nn.CircularPad1d, 1), (nn.CircularPad2d, 2), (nn.CircularPad3d, 3))],
    *[(lambda c=cls: c(1, 0.5), lambda d=dims: x(1, 2, *[5] * d)) for cls, dims in (
        (nn.ConstantPad1d, 1), (nn.ConstantPad2d, 2), (nn.ConstantPad3d, 3))],
    (lambda: nn.Upsample(scale_factor=2), lambda: x(1, 2, 4, 4)),
    (lambda: nn.Upsample(size=(5, 7), mode="bilinear", align_corners=False), lambda: x(1, 2, 4, 4)),
    (lambda: nn.UpsamplingNearest2d(scale_factor=2), lambda: x(1, 2, 4, 4)),
    (lambda: nn.UpsamplingBilinear2d(scale_factor=2), lambda: x(1, 2, 4, 4)),
    (lambda: nn.PixelShuffle(2), lambda: x(1, 8, 3, 3)), (lambda: nn.PixelUnshuffle(2), lambda: x(1, 2, 4, 4)),
    (lambda: nn.Unfold(2), lambda: x(1, 2, 4, 4)),
    (lambda: nn.Embedding(10, 4), lambda: ids(2, 3)), (lambda: nn.Embedding(10, 4, padding_idx=0), lambda: ids(3)),
    (lambda: nn.Embedding(10, 4, max_norm=1.0), lambda: ids(2, 3)),
    # the priced ones
    (lambda: nn.Linear(5, 3), lambda: x(2, 4, 5)), (lambda: nn.Linear(5, 3, bias=False), lambda: x(2, 5)),
    (lambda: nn.Linear(5, 3), lambda: x(5)),  # a vector: mv, which the layer leaves to the counter
    (lambda: nn.Conv1d(2, 4, 3, padding=1), lambda: x(2, 2, 8)), (lambda: nn.Conv1d(2, 4, 3), lambda: x(2, 8)),
    (lambda: nn.Conv2d(4, 6, 3, stride=2, groups=2), lambda: x(2, 4, 9, 9)),
    (lambda: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), lambda: x(1, 2, 6, 6)),
    (lambda: nn.Conv2d(2, 3, 3, padding="same", dilation=2, padding_mode="circular"), lambda: x(2, 6, 6)),
    (lambda: nn.Conv3d(2, 3, 2), lambda: x(1, 2, 4, 4, 4)),
    (lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), lambda: x(1, 2, 5)),
    (lambda: nn.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1, groups=2), lambda: x(2, 4, 5, 5)),
    (lambda: nn.ConvTranspose2d(2, 3, 2), lambda: x(2, 4, 4)),
    (lambda: nn.ConvTranspose3d(2, 3, 2, dilation=2), lambda: x(1, 2, 3, 3, 3)),
]


class Probe(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def _case_id(i: int) -> str:
    layer = CONFIGS[i][0]()
    return f"{i}-{type(layer).__name__}"


def test_every_listed_layer_has_a_configuration_here() -> None:
    tried = {type(make()) for make, _ in CONFIGS}
    assert leaves.ZERO_LAYERS | leaves.PRICED_LAYERS.keys() <= tried


@pytest.mark.parametrize("i", range(len(CONFIGS)), ids=_case_id)
def test_a_listed_layer_makes_only_the_calls_it_is_priced_for(i: int) -> None:
    """In this torch: a zero layer's every call prices zero, a priced layer's one priced call is the formula."""
    make, data = CONFIGS[i]
    torch.manual_seed(0)
    layer, given = make(), data()
    planned = leaves.layer_plan(layer, (given,))
    probe = Probe()
    with torch.no_grad(), probe:
        out = layer(given)
    plans = [(func, costs.plan(func, args, kwargs)) for func, args, kwargs in probe.calls]
    others = [(func, p) for func, p in plans if p is not None]
    if planned is leaves.ZERO:
        assert not others, f"{type(layer).__name__} calls {others}, which are not priced zero"
        return
    if planned is costs.DISPATCH:  # the call the layer makes is not priced from shapes: the mode stays on
        assert len(others) == 1 and others[0][1] is costs.DISPATCH
        return
    assert len(others) == 1, f"{type(layer).__name__} calls {others}"
    func, formula = others[0]
    args, kwargs = next((a, k) for f, a, k in probe.calls if f is func)
    assert callable(formula)
    assert planned(tuple(given.shape), out) == formula(args, kwargs, out)  # type: ignore[operator]
    counted = torch.utils.flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counted:
        layer(given)
    assert planned(tuple(given.shape), out) == counted.get_total_flops()  # type: ignore[operator]


class Holder(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, t: torch.Tensor) -> Any:
        out = self.layer(t)
        return torch.relu((out[0] if isinstance(out, tuple) else out).float())


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_rows_equal_the_rows_of_a_trace_that_sees_every_call(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for make, data in CONFIGS:
        torch.manual_seed(0)
        model, given = Holder(make()).eval(), data()
        if isinstance(model.layer, nn.Embedding) and device == "meta":
            continue  # an embedding's indices have no values on meta
        ours, reference = priced_and_counted(model, [given], {}, device, monkeypatch)
        assert ours.error is None and reference.error is None
        assert ours.to_dict() == reference.to_dict(), type(model.layer).__name__


def _stack_is_clean() -> None:
    assert torch._C._len_torch_function_stack() == 0
    assert nn.Module.__dict__["_call_impl"] is tracer._CALL_IMPL_FN  # torch's own, with its own code, are back
    assert tracer._CALL_IMPL_FN.__code__ is tracer._CALL_IMPL_CODE and tracer._HANDLER not in vars(nn_module)
    assert nn.Module.__dict__["__call__"] is nn.Module.__dict__["_wrapped_call_impl"]
    assert not nn_module._global_forward_hooks and not nn_module._global_forward_pre_hooks
    assert not nn_module._global_forward_hooks_always_called and not nn_module._global_forward_hooks_with_kwargs


class CatchesALeaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(RuntimeError):
            self.fc(t[:, :3])  # a shape mismatch raised inside the leaf, caught here
        return torch.sigmoid(t) * 2  # direct calls after it: still rows


def test_a_leaf_that_raises_gives_the_mode_back() -> None:
    trace = convshape.trace_model(CatchesALeaf(), "2x4")
    _stack_is_clean()
    assert trace.error is None
    assert [r.name for r in trace.rows if r.kind == "function"] == ["getitem", "sigmoid", "mul"]


class Stop(BaseException):
    pass


class CatchesEverything(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act, self.fc = nn.ReLU(), nn.Linear(4, 4)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(Stop):
            self.act(t)
        t = torch.tanh(t)  # the mode came back when the leaf raised: this call is seen
        return torch.sigmoid(self.fc(t))


def test_a_base_exception_inside_a_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(*args: Any, **kwargs: Any) -> Any:
        raise Stop()

    monkeypatch.setattr(F, "relu", stop)
    for device in ("cpu", "meta"):  # on meta torch.device("meta")'s mode sits below the recorder's
        with pytest.raises(convshape.TraceError) as failed:
            convshape.trace_model(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "2x4", device=device)
        _stack_is_clean()
        assert failed.value.trace.error is not None and failed.value.trace.error.layer_type == "ReLU"
    assert torch.empty(1).device.type == "cpu"
    trace = convshape.trace_model(CatchesEverything(), "2x4")
    _stack_is_clean()
    assert trace.error is None
    assert [r.name for r in trace.rows if r.kind == "function"] == ["tanh", "sigmoid"]


class Hooked(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.act.register_forward_pre_hook(lambda m, a: (torch.tanh(a[0]),))
        self.fc = nn.Linear(4, 4)
        self.fc.forward = lambda t: torch.sigmoid(F.linear(t, self.fc.weight))  # type: ignore[method-assign]

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.act(t)))


def test_the_users_own_code_in_a_leaf_is_still_seen() -> None:
    """A leaf with its own hooks or a replaced forward is the user's code: its calls are rows."""
    trace = convshape.trace_model(Hooked(), "2x4")
    _stack_is_clean()
    assert [r.name for r in trace.rows if r.kind == "function"] == ["tanh", "linear", "sigmoid", "relu"]
    assert trace.flops == 2 * 2 * 4 * 4


class UnderAnotherMode(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(8, 3)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        with torch.device("cpu"):  # a mode above convshape's: the layers keep the mode, and are counted
            return self.fc(self.conv(t).flatten(1))


def test_a_mode_above_the_recorders() -> None:
    model = UnderAnotherMode()
    trace = convshape.trace_model(model, "2x1x4x4")
    _stack_is_clean()
    assert trace.flops == costs.flop_counter_total(model, torch.randn(2, 1, 4, 4)) > 0
    assert [r.flops for r in trace.rows[1:]] == [2 * 2 * 2 * 2 * 9 * 2, 2 * 2 * 8 * 3]


def test_another_tools_global_hook_keeps_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another tool's global hook runs around every layer; the torch calls it makes are seen as before."""
    handle = nn_module.register_module_forward_hook(lambda m, a, o: torch.relu(o))
    try:
        model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        ours = convshape.trace_model(model, "2x4")
        with monkeypatch.context() as patched:
            patched.setattr(tracer, "layer_plan", keep_the_mode)
            reference = convshape.trace_model(model, "2x4")
    finally:
        handle.remove()
    _stack_is_clean()
    assert ours.to_dict() == reference.to_dict()
    assert [r.name for r in ours.rows if r.kind == "function"] == ["relu"] * 3


def test_torch_leaves_do_not_enter_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point: a stack of torch's own layers makes no call through the recorder's mode."""
    seen: list[Any] = []
    original = tracer.Recorder.__torch_function__

    def counting(self: Any, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        seen.append(func)
        return original(self, func, types, args, kwargs)

    monkeypatch.setattr(tracer.Recorder, "__torch_function__", counting)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 13 * 13, 10), nn.Dropout(), nn.LogSoftmax(-1))
    trace = convshape.trace_model(model, "2x1x28x28")
    assert seen == []
    assert trace.flops == costs.flop_counter_total(model, torch.randn(2, 1, 28, 28))
