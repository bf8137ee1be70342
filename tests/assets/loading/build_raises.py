from torch import nn


def check(width: int) -> int:
    if width <= 0:
        raise ValueError("width must be positive")
    return width


class Net(nn.Module):
    def __init__(self, width: int = 0):
        super().__init__()
        self.fc = nn.Linear(check(width), 10)
