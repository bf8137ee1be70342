"""Models that fail in their forward pass, each in a way users hit."""

import torch.nn.functional as F
from torch import nn


class WrongChannels(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(10, 50, 5)  # should be 20 in

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return self.conv2(x)


class BothWrong(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc1 = nn.Linear(100, 64)  # receives 8 x 7 x 7 = 392
        self.fc2 = nn.Linear(32, 10, bias=False)  # receives 64
        self.fc3 = nn.Linear(10, 2)

    def forward(self, x):
        x = torch_flatten(self.conv(x))
        x = F.relu(self.fc1(x))
        return self.fc3(self.fc2(x))


def torch_flatten(x):
    return x.flatten(1)


class BadView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        x = self.conv(x)
        return x.view(-1, 7)


class NoReshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)

    def forward(self, x):
        return self.conv1(x)


class KernelTooBig(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = nn.Conv2d(3, 4, 7)

    def forward(self, x):
        return self.conv(self.pool(x))


class UserRaises(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = self.fc(x)
        if x.dim() != 3:
            raise ValueError(f"expected a 3D input, got {x.dim()}D")
        return x


class LazyHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout())
        self.fc = nn.LazyLinear(5)

    def forward(self, x):
        return self.fc(self.features(x))
