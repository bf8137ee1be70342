"""Shapes of code annotate must follow: helpers (torchvision style), lambdas, comprehensions, backslashes."""

import torch
import torch.nn as nn


class AlexLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


class ResLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 10)

    def _forward_impl(self, x):
        x = self.conv(x)
        x = x.mean((2, 3))
        return self.fc(x)

    def forward(self, x):
        return self._forward_impl(x)


class Tricky(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 1)
        self.b = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        f = lambda t: self.b(t)  # noqa: E731
        y = self.a(x) \
            + 1
        parts = [self.a(x[:, :, i:i + 4]) for i in range(3)]
        for _ in range(2):
            y = f(y)
        z = torch.cat(parts, 2)
        return y, z


def _double(layer, x):
    y = layer(x)
    return torch.cat([y, y], 1)


class Helpers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 1) for _ in range(2)])

    def forward(self, x):
        x = _double(self.conv, x)
        outs = {i: b(x) for i, b in enumerate(self.blocks)}
        for i in range(2):
            x = self.blocks[i](x) + \
                outs[i]
        x = x.flatten(2); y = x.mean(-1)  # noqa: E702
        return y


CASES = {
    "alex": (AlexLike, ["2x3x16x16"]),
    "res": (ResLike, ["2x3x16x16"]),
    "tricky": (Tricky, ["2x3x16x16"]),
    "helpers": (Helpers, ["2x3x8x8"]),
}
