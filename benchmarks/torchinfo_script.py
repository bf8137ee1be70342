"""What a torchinfo user runs: import torch, build the model on the CPU, torchinfo.summary.

    python benchmarks/torchinfo_script.py examples/mnist_net.py:M 64x784
"""

import importlib.util
import sys

import torch
import torchinfo

path, _, name = sys.argv[1].partition(":")
spec = importlib.util.spec_from_file_location("model", path)
module = importlib.util.module_from_spec(spec)
sys.modules["model"] = module
spec.loader.exec_module(module)
model = getattr(module, name)()
shape, _, dtype = sys.argv[2].partition(":")
dims = [int(d) for d in shape.split("x")]
dtype = getattr(torch, dtype or "float32")
x = torch.zeros(dims, dtype=dtype) if not dtype.is_floating_point else torch.randn(dims)
print(torchinfo.summary(model, input_data=[x], device="cpu", verbose=0, depth=10))
