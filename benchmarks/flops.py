"""MAC totals of the same models from convshape, torchinfo, ptflops and torch's FlopCounterMode.

    python benchmarks/flops.py     # prints a markdown table (needs pip install -e ".[bench]")

FlopCounterMode counts FLOPs = 2 x MACs; its column is halved to compare.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import convshape  # noqa: E402
from benchmarks.models import example  # noqa: E402
from convshape.costs import flop_counter_total  # noqa: E402
from convshape.inputs import make_input  # noqa: E402
from convshape.spec import parse_input  # noqa: E402


def models() -> dict[str, tuple[nn.Module, str]]:
    return {
        "MNIST net": (example("mnist_net").M(), "64x784"),
        "ResNet-50": (example("resnet50").ResNet50(), "1x3x224x224"),
        "ResNet (small, residual adds)": (example("resnet_style").resnet_small(), "2x3x32x32"),
        "LSTM tagger": (example("lstm_tagger").LSTMTagger(), "2x16:int64"),
        "LLaMA tiny (SDPA, SwiGLU)": (example("llama").llama_tiny(), "1x128:int64"),
        "GPT-2 small": (example("gpt2_small").GPT(), "1x256:int64"),
    }


def torchinfo_macs(model: nn.Module, x: torch.Tensor) -> int | str:
    try:
        import torchinfo
    except ImportError:
        return "not installed"
    return int(torchinfo.summary(model, input_data=[x], verbose=0, device="cpu").total_mult_adds)


def ptflops_macs(model: nn.Module, x: torch.Tensor, backend: str) -> int | str:
    try:
        from ptflops import get_model_complexity_info
    except ImportError:
        return "not installed"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        macs, _ = get_model_complexity_info(model, tuple(x.shape), input_constructor=lambda _: x,
                                            as_strings=False, print_per_layer_stat=False, backend=backend)
    return int(macs) if macs is not None else "failed"


def fmt(value: int | str, ours: int) -> str:
    if isinstance(value, str):
        return value
    ratio = value / ours if ours else float("nan")
    return f"{value / 1e6:,.2f} M ({ratio:.2f}x)"


def main() -> None:
    torch.manual_seed(0)
    lines = ["| model | convshape MACs | FlopCounterMode / 2 | torchinfo | ptflops (pytorch backend) | "
             "ptflops (aten backend) |", "|---|---:|---:|---:|---:|---:|"]
    for name, (model, spec) in models().items():
        model.eval()
        x = make_input(parse_input(spec), torch.device("cpu"))
        ours = convshape.trace_model(model, x, costs=True).macs or 0
        fcm = flop_counter_total(model, x) // 2
        cells = [fmt(fcm, ours), fmt(torchinfo_macs(model, x), ours)]
        for backend in ("pytorch", "aten"):
            try:
                cells.append(fmt(ptflops_macs(model, x, backend), ours))
            except Exception as e:  # ptflops cannot run some models
                cells.append(f"error: {type(e).__name__}")
        lines.append(f"| {name} | {ours / 1e6:,.2f} M | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
