"""Varied models for checking convshape against torch's own hooks. Each factory builds one."""

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 5, stride=2, padding=2, dilation=1)
        self.dil = nn.Conv1d(8, 8, 3, dilation=3, padding="same")
        self.pool = nn.AvgPool1d(3, stride=2, ceil_mode=True)
        self.fc = nn.Linear(8 * 12, 2)

    def forward(self, x):
        x = self.pool(F.gelu(self.dil(self.conv(x))))
        return self.fc(x.flatten(1))


class Conv3dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, (3, 5, 5), stride=(1, 2, 2), padding=(1, 0, 0))
        self.bn = nn.BatchNorm3d(4)
        self.pool = nn.MaxPool3d(2, ceil_mode=True)
        self.up = nn.ConvTranspose3d(4, 2, 2, stride=2, output_padding=0)

    def forward(self, x):
        return self.up(self.pool(F.relu(self.bn(self.conv(x)))))


class TransposeNet(nn.Module):
    """A decoder: ConvTranspose2d with output_padding, dilation, groups."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.up2 = nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1, dilation=1)

    def forward(self, z):
        x = self.fc(z).view(-1, 8, 7, 7)
        x = torch.tanh(self.up1(x))
        return torch.sigmoid(self.up2(x))


class PoolZoo(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, dilation=2)
        self.maxp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.avgp = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.adapt = nn.AdaptiveAvgPool2d((5, 3))
        self.adapt_max = nn.AdaptiveMaxPool1d(4)

    def forward(self, x):
        x = self.avgp(self.maxp(self.conv(x)))
        x = self.adapt(x)
        y = self.adapt_max(x.flatten(2))
        return x, y


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 6 * 6, 4), nn.BatchNorm1d(4))

    def forward(self, x):
        return self.head(self.gn(F.relu(self.bn(self.conv(x)))))


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True)
        self.gru = nn.GRU(24, 12, bidirectional=True)
        self.out = nn.Linear(24, 5)

    def forward(self, tokens):
        seq, (h, c) = self.lstm(self.embed(tokens))
        seq2, h2 = self.gru(seq.transpose(0, 1))
        return self.out(seq2), h.shape[0]


class TinyTransformer(nn.Module):
    def __init__(self, d_model: int = 32, nhead: int = 4, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(100, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 100)

    def forward(self, tokens):
        x = self.embed(tokens) * (self.embed.embedding_dim ** 0.5)
        return self.head(self.encoder(x))


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(40, 12)
        self.proj = nn.Linear(12, 12)
        self.decoder = nn.Linear(12, 40, bias=False)
        self.decoder.weight = self.embed.weight  # tied

    def forward(self, tokens):
        return self.decoder(torch.tanh(self.proj(self.embed(tokens))))


class FrozenBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.register_buffer("scale", torch.ones(1))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = self.backbone(x) * self.scale
        return self.head(x.mean(dim=(2, 3)))


class CalledTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        x = self.block(x)
        x = self.block(x)  # same module, second call
        return self.out(x)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(2, 2, 3))),
            nn.ModuleDict({"a": nn.Conv2d(2, 3, 1)})["a"],
        )

    def forward(self, x):
        return self.body(x)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Conv1d(2, 4, 3)

    def forward(self, x, seq):
        s = self.b(seq).amax(dim=-1)
        return self.a(x) + s, {"seq": seq[:, :1], "both": torch.stack([s, s])}


def make_mlp(sizes=(10, 20, 5)) -> nn.Module:
    """A factory: an MLP built from a list of sizes."""
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class MultiheadNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x):
        out, weights = self.attn(x, x, x, need_weights=True)
        return self.norm(out + x), weights


# (factory, input specs) for the ground-truth tests
CASES = {
    "conv1d": (Conv1dNet, ["2x4x50"]),
    "conv3d": (Conv3dNet, ["2x1x6x20x20"]),
    "transpose": (TransposeNet, ["3x16"]),
    "pools": (PoolZoo, ["2x3x33x31"]),
    "batchnorm": (BNNet, ["4x3x8x8"]),
    "lstm": (Tagger, ["3x7:int64"]),
    "transformer": (TinyTransformer, ["2x10:int64"]),
    "tied": (TiedLM, ["2x5:int64"]),
    "frozen": (FrozenBackbone, ["2x3x9x9"]),
    "twice": (CalledTwice, ["4x8"]),
    "nested": (Nested, ["1x1x9x9"]),
    "two_inputs": (TwoInputs, ["5x6", "5x2x9"]),
    "factory": (make_mlp, ["3x10"]),
    "mha": (MultiheadNet, ["2x6x16"]),
}
