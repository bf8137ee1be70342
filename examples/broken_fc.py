"""The MNIST net with fc1 written wrong: 320 is what a 20x20 input would need, not 28x28.

    convshape fc-size examples/broken_fc.py --input 64x784    # says: nn.Linear(800, 500)
    convshape trace examples/broken_fc.py --input 64x784      # shows where it fails, and why
"""

import torch.nn.functional as F
from torch import nn


class BrokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(320, 500)  # wrong: the flattened conv output has 50 x 4 x 4 = 800 features
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = x.view(-1, 1, 28, 28)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)
