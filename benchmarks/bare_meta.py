"""The floor for a meta trace: import torch, build the model on meta, run one forward, exit.

    python benchmarks/bare_meta.py examples/llama.py:llama_70b 1x2048:int64
"""

import importlib.util
import sys

import torch

path, _, name = sys.argv[1].partition(":")
spec = importlib.util.spec_from_file_location("model", path)
module = importlib.util.module_from_spec(spec)
sys.modules["model"] = module
spec.loader.exec_module(module)
with torch.device("meta"):
    model = getattr(module, name)()
shape, _, dtype = sys.argv[2].partition(":")
x = torch.empty([int(d) for d in shape.split("x")], dtype=getattr(torch, dtype or "float32"), device="meta")
with torch.no_grad(), torch.device("meta"):
    print(model(x).shape)
