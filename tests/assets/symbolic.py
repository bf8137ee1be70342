"""Models where symbols cannot follow everywhere, or where the model ties sizes together."""

import torch
from torch import nn


class ItemSized(nn.Module):
    """Its output size comes from a value in the data: .item() (symbols stop there)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        x = self.fc(x.repeat(1, 8)[:, :8])
        n = int(x.abs().sum().item() > -1) + 2  # data-dependent: always 3, but only a real value says so
        return torch.zeros(n, x.shape[0]) + x.sum()


class FixedByInt(nn.Module):
    """Turns a size into a plain Python number (range over it): the size is fixed from that row on."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        y = self.proj(x)
        parts = [y[:, i] for i in range(x.shape[1])]
        return torch.stack(parts, dim=1)


class SquareOnly(nn.Module):
    """Adds the input to its transpose: H must equal W."""

    def forward(self, x):
        return x + x.transpose(-1, -2)


class Branchy(nn.Module):
    """Pools only long sequences: an if on a size in the model's own code."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool1d(2)

    def forward(self, x):
        if x.shape[-1] > 40:
            x = self.pool(x)
        return x * 2
