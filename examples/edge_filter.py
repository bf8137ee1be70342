"""The tutorial's 2D example: a fixed 3x3 horizontal-edge kernel over a 28x28 image.

With padding 1 the 28x28 image stays 28x28: floor((28 + 2*1 - 1*(3-1) - 1) / 1) + 1 = 28.

    convshape trace examples/edge_filter.py --input 28x28
"""

import torch
import torch.nn.functional as F
from torch import nn


class EdgeFilter(nn.Module):
    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0]).reshape(3, 3)
        self.register_buffer("kernel", k.unsqueeze(0).unsqueeze(0))  # (out 1, in 1, kH 3, kW 3)

    def forward(self, img):
        img2 = img.unsqueeze(0).unsqueeze(0)  # (28, 28) -> (N 1, C 1, H 28, W 28)
        res = F.conv2d(img2, self.kernel, padding=1)
        return res.squeeze()
