"""The tutorial's first example: a 1D convolution.

inputs (batch 2, 1 channel, width 2) convolved with filters (1 out, 1 in, kernel width 2), padding 0:
the output is (2, 1, 1), since out = floor((2 + 2*0 - 1*(2-1) - 1) / 1) + 1 = 1.

    convshape trace examples/conv1d_basics.py --input 2x1x2
"""

import torch
import torch.nn.functional as F
from torch import nn


class Conv1dBasics(nn.Module):
    def __init__(self, out_channels: int = 1, in_channels: int = 1, kernel_width: int = 2):
        super().__init__()
        # out, in, kW (kernel width)
        self.filters = nn.Parameter(torch.randn(out_channels, in_channels, kernel_width))

    def forward(self, inputs):
        # inputs: batch, in, iW (input width)
        return F.conv1d(inputs, self.filters, padding=0)
