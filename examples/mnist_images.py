"""The tutorial's MNIST net `M`, written to take images of any size (no view to 28x28).

Which image sizes does nn.Linear(4 * 4 * 50, 500) fit?

    convshape trace examples/mnist_images.py --input Bx1xHxW
    convshape fc-size examples/mnist_images.py --input Bx1xHxW
    convshape sizes examples/mnist_images.py --input Bx1xHxW
"""

import torch.nn.functional as F
from torch import nn


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return x
