"""Models whose forward takes more than one plain tensor: lists, tuples, dicts, keywords, plain values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class Detector(nn.Module):
    """Detection-style: a list of 3-D images of different sizes, resized to one batch, as torchvision does."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1))
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        batch = torch.stack([F.interpolate(im[None], size=(64, 64), mode="bilinear")[0] for im in images])
        features = self.backbone(batch)
        return list(self.head(features).unbind(0))


class StatefulLSTM(nn.Module):
    """An LSTM given its initial state as a (h0, c0) tuple."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        out, _ = self.lstm(x, state)
        return self.fc(out[:, -1])


class Packed(nn.Module):
    """pack_padded_sequence with the lengths given as an input: they must be real lengths, not zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.gru = nn.GRU(8, 12, batch_first=True)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)
        return padded


class DictInput(nn.Module):
    """A dict of tensors, as many multi-input models take."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.conv(batch["image"]) * batch["mask"][:, None]
        return self.fc(x.mean(dim=(2, 3)))


class Resize(nn.Module):
    """A string and a number beside the tensor: F.interpolate's mode and scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor, mode: str = "nearest", scale: int = 2,
                align: bool | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=scale, mode=mode, align_corners=align))


class Masked(nn.Module):
    """A keyword-only argument and an optional mask, as attention layers take them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None, *, temperature: float = 1.0) -> torch.Tensor:
        x = self.embed(ids) / temperature
        out, _ = self.attn(x, x, x, key_padding_mask=mask)
        return out


class Pinned(nn.Module):
    """Pins its tensors to the cpu when built: meta cannot build it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3).to("cpu")
        self.register_buffer("offset", torch.zeros(3, device="cpu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.offset


class WithAux(nn.Module):
    """BatchNorm and an auxiliary head that runs only in training mode (as GoogLeNet's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.aux = nn.Linear(8, 2)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        if self.training:
            return self.fc(x), self.aux(x)
        return self.fc(x)
