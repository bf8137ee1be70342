"""Is a stride-2 convolution the same as a stride-1 convolution followed by max_pool2d(2)?

Same output shape, different values: on a (1, 1, 6, 6) input with a 3x3 kernel both give (1, 1, 2, 2).

    convshape trace examples/stride_vs_pool.py --input 1x1x6x6
"""

import torch
import torch.nn.functional as F
from torch import nn


class StrideVsPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.kk = nn.Parameter(torch.randn(1, 1, 3, 3))  # one 3x3 kernel shared by both paths

    def forward(self, tt):
        res1 = F.conv2d(tt, self.kk, stride=2)
        res2 = F.conv2d(tt, self.kk, stride=1)
        res2 = F.max_pool2d(res2, 2)
        return res1, res2
