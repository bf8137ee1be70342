from torch import nn

SIZES = {"small": 16}
WIDTH = SIZES["large"]


class Net(nn.Module):
    pass
