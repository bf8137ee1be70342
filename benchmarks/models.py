"""The benchmark models, built from the examples and from transformers configs, the scaling chains, and the
forward under convshape's interception doing nothing (the floor a recorder of every call stands on)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_TRANSFORMERS = importlib.util.find_spec("transformers") is not None


def placement(device: str | torch.device) -> AbstractContextManager[object]:
    """The device context a benchmark's forward and peers run under: ``torch.device("meta")`` on meta, as
    convshape's meta pass does; none on cpu, as users run a model and as convshape's cpu pass does
    (``torch.device("cpu")`` as a context is a Python TorchFunctionMode that every torch call goes through, about
    5 µs a call here, which would slow the baseline and flatter every cpu ratio)."""
    device = torch.device(device)
    return device if device.type == "meta" else nullcontext()


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class BenchModel:
    """One in-process benchmark model: how to build it, its input (``--input`` language) and its device."""

    name: str
    factory: Callable[[], nn.Module]
    spec: str
    device: str
    missing: str | None = None  # why it cannot be built here (a package not installed), None when it can

    @property
    def label(self) -> str:
        return f"{self.name} ({self.device})"


def hf_gpt2() -> nn.Module:
    """Hugging Face GPT-2 (124M) with its LM head, from transformers' default ``GPT2Config``."""
    import transformers

    return transformers.GPT2LMHeadModel(transformers.GPT2Config())


def hf_llama_7b() -> nn.Module:
    """Hugging Face LLaMA with the 7B sizes (6.7B parameters), from a ``LlamaConfig``: nothing downloaded."""
    import transformers

    config = transformers.LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
    return transformers.LlamaForCausalLM(config)


def catalogue() -> list[BenchModel]:
    """The in-process models, in the order of the table (issue 13's list)."""
    mnist, resnet, llama = example("mnist_net"), example("resnet50"), example("llama")
    no_hf = None if HAVE_TRANSFORMERS else 'transformers is not installed (pip install -e ".[hf]")'
    return [
        BenchModel("MNIST net", mnist.M, "64x784", "cpu"),
        BenchModel("MNIST net", mnist.M, "64x784", "meta"),
        BenchModel("ResNet-50", resnet.ResNet50, "1x3x224x224", "cpu"),
        BenchModel("ResNet-50", resnet.ResNet50, "1x3x224x224", "meta"),
        BenchModel("HF GPT-2 1x128", hf_gpt2, "1x128:int64", "meta", no_hf),
        BenchModel("HF LLaMA-7B 1x128", hf_llama_7b, "1x128:int64", "meta", no_hf),
        BenchModel("LLaMA 7B example 1x2048", llama.llama_7b, "1x2048:int64", "meta"),
        BenchModel("LLaMA 70B example 1x2048", llama.llama_70b, "1x2048:int64", "meta"),
    ]


class ModuleChain(nn.Module):
    """``calls`` module calls, each a leaf whose one op folds into its row."""

    def __init__(self, calls: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.ReLU() for _ in range(calls))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class FunctionChain(nn.Module):
    """``calls`` function calls made directly by the model's own forward."""

    def __init__(self, calls: int):
        super().__init__()
        self.calls = calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.calls):
            x = torch.relu(x)
        return x


def interception_floor(x: torch.Tensor) -> Callable[[nn.Module], object]:
    """The forward under what convshape installs, each part doing nothing: ``Module._call_impl``'s code swapped for
    the recorder's trampoline, whose handler runs ``_call_impl``'s own code at once, and a TorchFunctionMode that
    calls straight through. What a recorder of every call pays before it records anything."""
    from torch.overrides import TorchFunctionMode

    from convshape import tracer

    class Through(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            return func(*args, **(kwargs or {}))

    def handler(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        return tracer._inner(module, *args, **kwargs)

    def floor(model: nn.Module) -> object:
        taken = tracer._take_call_impl(handler)
        try:
            with torch.no_grad(), Through():
                return model(x)
        finally:
            tracer._give_back_call_impl(taken)

    return floor
