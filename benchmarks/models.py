"""The benchmark models, built from the examples, and the scaling chains."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", EXAMPLES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# name -> (example file:factory as the CLI takes it, factory, input spec, device for in-process runs)
def catalogue() -> dict[str, tuple[str, Callable[[], nn.Module], str, str]]:
    mnist, resnet, gpt, llama = example("mnist_net"), example("resnet50"), example("gpt2_small"), example("llama")
    return {
        "MNIST net": ("examples/mnist_net.py:M", mnist.M, "64x784", "cpu"),
        "ResNet-50": ("examples/resnet50.py:ResNet50", resnet.ResNet50, "1x3x224x224", "cpu"),
        "GPT-2 small": ("examples/gpt2_small.py:GPT", gpt.GPT, "1x1024:int64", "cpu"),
        "LLaMA 7B": ("examples/llama.py:llama_7b", llama.llama_7b, "1x2048:int64", "meta"),
        "LLaMA 70B": ("examples/llama.py:llama_70b", llama.llama_70b, "1x2048:int64", "meta"),
    }


class ModuleChain(nn.Module):
    """``calls`` module calls, each a leaf whose one op folds into its row."""

    def __init__(self, calls: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.ReLU() for _ in range(calls))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class FunctionChain(nn.Module):
    """``calls`` function calls made directly by the model's own forward."""

    def __init__(self, calls: int):
        super().__init__()
        self.calls = calls

    def forward(self, x):
        for _ in range(self.calls):
            x = torch.relu(x)
        return x
