"""A small U-Net: four 2x downsamplings, then upsampling with skip connections joined by torch.cat.

The cat needs the upsampled map and the skip to have the same size, so H and W must be divisible by 16:

    convshape trace examples/unet.py --input 1x3xHxW --depth 1
    convshape sizes examples/unet.py --input 1x3xHxW --try 224,250,256
"""

import torch
from torch import nn


def block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, channels: int = 3, classes: int = 2, width: int = 8):
        super().__init__()
        widths = [width * 2**i for i in range(5)]
        ins = [channels, *widths[:-2]]
        self.down = nn.ModuleList(block(c_in, c_out) for c_in, c_out in zip(ins, widths[:-1], strict=True))
        self.pool = nn.MaxPool2d(2)
        self.bottom = block(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in reversed(widths[1:]))
        self.merge = nn.ModuleList(block(c, c // 2) for c in reversed(widths[1:]))
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x):
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)
