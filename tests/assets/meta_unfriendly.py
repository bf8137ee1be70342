"""Models that meta tensors cannot run, each for a different reason; all run on the CPU."""

import torch
from torch import nn


class DataDependentBranch(nn.Module):
    """Python control flow on a tensor's value: needs .item(), which meta tensors cannot give."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(6, 8)
        self.down = nn.Linear(6, 3)

    def forward(self, x):
        if x.mean() > -100:  # always true on real data
            return self.up(x)
        return self.down(x)


class NoMetaKernel(nn.Module):
    """torch.unique has no meta kernel (its output size depends on the values)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)

    def forward(self, tokens):
        classes = torch.unique(tokens)
        return self.embed(classes)


class FixedDevice(nn.Module):
    """Builds a tensor on a fixed device inside forward."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 5)

    def forward(self, x):
        return self.fc(x) + torch.ones(5, device="cpu")
