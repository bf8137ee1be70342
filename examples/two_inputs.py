"""A model with two inputs: an image and a vector of metadata, joined with torch.cat.

    convshape trace examples/two_inputs.py --input 8x3x64x64 --input 8x5
"""

import torch
from torch import nn


class ImageAndMeta(nn.Module):
    def __init__(self, meta_features: int = 5, num_classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(8, 16, 3, dilation=2), nn.ReLU(),
            nn.AdaptiveMaxPool2d((4, 4)),
            nn.Flatten(),
        )
        self.meta = nn.Linear(meta_features, 16)
        self.head = nn.Linear(16 * 4 * 4 + 16, num_classes)

    def forward(self, image, meta):
        joined = torch.cat([self.features(image), self.meta(meta)], dim=1)
        return self.head(joined)
