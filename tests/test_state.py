"""A trace never changes the caller's model, nor the process around it.

For every model here and every ``device`` a library user can name, after a successful or a failing trace:
the state_dict is bit-identical (the same tensor objects, the same bytes, devices and dtypes), the module
classes, training flags, requires_grad flags and hooks are as before, and torch's global hook dicts and
mode stacks, the warnings filters, ``sys.path``, ``os._exit``, the SIGALRM handler and the global random
state are as before the trace.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.modules import module as nn_module

import convshape
from convshape.errors import TraceError

from .conftest import ASSETS, EXAMPLES, load_file

zoo = load_file(ASSETS / "zoo.py")
failing = load_file(ASSETS / "failing.py")
mnist = load_file(EXAMPLES / "mnist_net.py")
llama = load_file(EXAMPLES / "llama.py")


def _bits(t: torch.Tensor) -> torch.Tensor | None:
    if t.device.type == "meta" or isinstance(t, nn.parameter.UninitializedTensorMixin):
        return None
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).clone() if flat.dtype != torch.bool else flat.clone()


def model_state(model: nn.Module) -> dict[str, Any]:
    """Everything about a model that a trace must leave as it was."""
    tensors = {}
    for name, t in model.state_dict(keep_vars=True).items():
        tensors[name] = (id(t), type(t), t.dtype, str(t.device), tuple(t.shape) if not
                         isinstance(t, nn.parameter.UninitializedTensorMixin) else None, t.requires_grad, _bits(t))
    hooks = {}
    for name, m in model.named_modules():
        hooks[name] = tuple(dict(getattr(m, d)) for d in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs",
            "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_load_state_dict_pre_hooks"))
    return {
        "tensors": tensors,
        "classes": [(n, type(m)) for n, m in model.named_modules()],
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": hooks,
    }


def process_state() -> dict[str, Any]:
    """What a trace could leave behind in the process."""
    return {
        "global_hooks": {name: dict(getattr(nn_module, name)) for name in dir(nn_module) if name.startswith("_global")
                         and isinstance(getattr(nn_module, name), dict)},
        "torch_function_modes": torch._C._len_torch_function_stack(),
        "module_call": {name: nn.Module.__dict__.get(name) for name in ("__call__", "_wrapped_call_impl",
                                                                        "_call_impl")},
        "call_impl_code": nn.Module._call_impl.__code__,
        "torch_module_names": sorted(vars(nn_module)),
        "dispatch_modes": torch._C._len_torch_dispatch_stack(),
        "grad": torch.is_grad_enabled(),
        "warnings": list(warnings.filters),
        "sys_path": list(sys.path),
        "os_exit": os._exit,
        "sigalrm": signal.getsignal(signal.SIGALRM),
        "rng": torch.get_rng_state(),
    }


def _same_process(before: dict[str, Any], after: dict[str, Any]) -> None:
    rng_before, rng_after = before.pop("rng"), after.pop("rng")
    assert torch.equal(rng_before, rng_after), "the global random state changed"
    assert after == before


def _equal_model(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    for key in ("classes", "training", "requires_grad", "hooks"):
        assert after[key] == before[key], key
    assert before["tensors"].keys() == after["tensors"].keys()
    for name, old in before["tensors"].items():
        new = after["tensors"][name]
        assert old[:-1] == new[:-1], name
        assert (old[-1] is None) == (new[-1] is None) and (old[-1] is None or torch.equal(old[-1], new[-1])), name


class CountsCalls(nn.Module):
    """Writes into a buffer and its input in place, and draws random numbers, in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        self.calls += 1
        x.mul_(2)
        return self.fc(x) + torch.rand(4)


class LazyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.LazyConv2d(4, 3)
        self.fc = nn.LazyLinear(3)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def hooked() -> nn.Module:
    """A user's model with hooks of its own: one rewrites the output, one records shapes."""
    model = mnist.M()
    seen: list[tuple[int, ...]] = []
    model.conv1.register_forward_hook(lambda m, a, out: out * 2)
    model.fc1.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape)))
    return model


def train_mode(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return factory().train()

    return build


MODELS: dict[str, tuple[Callable[[], nn.Module], list[str], bool]] = {
    "batchnorm-train": (train_mode(zoo.BNNet), ["4x3x8x8"], False),
    "dropout-train": (train_mode(lambda: nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))), ["3x6"], False),
    "frozen": (zoo.FrozenBackbone, ["2x3x9x9"], False),
    "user-hooks": (hooked, ["64x784"], False),
    "lazy": (LazyNet, ["2x3x8x8"], False),
    "tied": (zoo.TiedLM, ["2x5:int64"], False),
    "writes-in-place": (CountsCalls, ["2x4"], False),
    "lstm": (zoo.Tagger, ["3x7:int64"], False),
    "transformer-train": (train_mode(zoo.TinyTransformer), ["2x10:int64"], False),
    "called-twice": (zoo.CalledTwice, ["4x8"], False),
    "failing": (failing.WrongChannels, ["2x1x28x28"], True),
    "failing-linear": (failing.BothWrong, ["2x3x16x16"], True),
    "llama-tiny-meta": (lambda: _on_meta(llama.llama_tiny), ["2x9:int64"], False),
}


def _on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return factory()


@pytest.mark.parametrize("device", [None, "auto", "meta", "cpu"])
@pytest.mark.parametrize("case", sorted(MODELS))
def test_trace_leaves_model_and_process_as_they_were(case: str, device: str | None) -> None:
    factory, inputs, fails = MODELS[case]
    torch.manual_seed(1)
    model = factory()
    for p in list(model.parameters())[:1]:
        p.requires_grad = False  # a frozen parameter, whatever the model (requires_grad_ refuses lazy ones)
    before, around = model_state(model), process_state()
    try:
        result = convshape.trace_model(model, *inputs, device=device)
    except TraceError as e:
        assert fails, e
        result = e.trace
    else:
        assert not fails
    _equal_model(before, model_state(model))
    _same_process(around, process_state())
    home = "meta" if case.endswith("-meta") else "cpu"
    assert result.device == (home if device in (None, "auto") else device)
    if case != "lazy":  # a stand-in keeps tied weights tied: the count is torch's, on every device
        assert result.totals.params == sum(p.numel() for p in model.parameters())
    assert result.rows and result.rows[0].depth == 0


def test_fc_size_and_a_callers_input_tensor_are_left_alone() -> None:
    model = CountsCalls()
    x = torch.randn(2, 4)
    saved, before = x.clone(), model_state(model)
    convshape.fc_size(model, x, device="meta")
    convshape.trace_model(model, x)
    assert torch.equal(x, saved)  # the forward doubles its input in place: on a copy
    _equal_model(before, model_state(model))


def test_keyboard_interrupt_restores_everything() -> None:
    class Interrupts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(3)

        def forward(self, x):
            self.bn(x)
            raise KeyboardInterrupt

    for device in (None, "meta"):
        model = Interrupts().train()
        before, around = model_state(model), process_state()
        with pytest.raises(KeyboardInterrupt):
            convshape.trace_model(model, "4x3", device=device)
        _equal_model(before, model_state(model))
        _same_process(around, process_state())


def test_many_traces_leave_no_global_hook_behind() -> None:
    """torch's handle.remove() leaves the with_kwargs entry behind; 34 traces once left 34."""
    model = zoo.CalledTwice()
    for _ in range(5):
        convshape.trace_model(model, "2x8")
        convshape.trace_model(model, "2x8", device="meta")
    assert not nn_module._global_forward_hooks_with_kwargs
    assert not nn_module._global_forward_hooks and not nn_module._global_forward_pre_hooks


def test_a_module_under_two_names_is_shown_under_its_first() -> None:
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    names = [r.name for r in convshape.trace_model(model, "1x3").module_rows()]
    first = next(n for n, m in model.named_modules(remove_duplicate=False) if m is shared)
    assert names == ["", first, "1", first] and first == "0"


def test_compiled_code_runs_eagerly_in_a_trace_and_the_stance_comes_back() -> None:
    """Dynamo must not trace convshape's hooks: a torch.compile'd function inside the model runs eagerly, through
    Dynamo's own stance switch (pinned: a torch that moves it fails here, not silently in users' traces)."""
    import torch._dynamo.eval_frame as eval_frame

    from convshape.isolation import _stance_setter

    assert _stance_setter() is not None, "torch moved DynamoStance/_set_stance: isolation falls back to set_stance"
    seen: list[bool] = []

    @torch.compile(backend="eager")
    def act(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.compiler.is_compiling())
        return torch.relu(x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return act(self.fc(x))

    before = eval_frame._stance
    trace = convshape.trace_model(Net(), "2x4")
    assert seen == [False], "the compiled function was traced by Dynamo, not run eagerly"
    assert eval_frame._stance is before
    assert [r.name for r in trace.rows][-1] == "relu"


def test_a_guard_that_fails_half_way_in_puts_back_what_it_took(monkeypatch: pytest.MonkeyPatch) -> None:
    """isolation's guard takes its parts one by one: when one fails, those taken before it come back, and the
    failure is the caller's to see."""
    from convshape import isolation

    before = process_state()
    monkeypatch.setattr(isolation, "_exit_instead", None)  # what os._exit becomes: a marker to check it came back

    class Boom(Exception):
        pass

    def fails(self: Any) -> None:
        raise Boom("the stance switch failed")

    monkeypatch.setattr(isolation._Guard, "_eager_compiled_code", fails)
    with pytest.raises(Boom), isolation.guarded(5.0):
        pass  # never reached
    monkeypatch.undo()
    _same_process(dict(before), process_state())
    assert not getattr(isolation._active, "on", False)
    with isolation.guarded(5.0):  # and the next guard works
        assert os._exit is isolation._exit_instead
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0
    _same_process(before, process_state())


class Watched(nn.Linear):
    """A class of the model's own ``__setattr__``: it must be called for the flag, as ``Module.train`` would."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "training":
            self.__dict__.setdefault("flag_sets", []).append(value)
        super().__setattr__(name, value)


class Flags(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.watched, self.drop, self.inner = Watched(4, 4), nn.Dropout(), nn.Sequential(nn.ReLU(), nn.Dropout())
        self.seen: list[list[bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append([m.training for m in self.modules()])
        return self.inner(self.drop(self.watched(x)))


@pytest.mark.parametrize("train", [False, True])
def test_the_pass_runs_with_every_flag_as_train_would_set_it_and_they_come_back(train: bool) -> None:
    """Mixed flags before; during the pass, what ``model.train(train)`` sets; after, each flag as it was."""
    model = Flags()
    model.drop.eval()
    model.inner[0].eval()
    before = [m.training for m in model.modules()]
    convshape.trace_model(model, "2x4", train=train)
    assert model.seen == [[train] * len(before)]
    assert [m.training for m in model.modules()] == before
    assert model.watched.__dict__.get("flag_sets", []) == ([] if train else [False, True])
