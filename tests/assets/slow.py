"""A model whose forward takes about 1.5 s: twelve layers that each wait a little."""

import time

from torch import nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(12))

    def forward(self, x):
        for layer in self.layers:
            time.sleep(0.125)
            x = layer(x)
        return x
