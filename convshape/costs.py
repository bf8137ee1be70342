"""FLOPs and MACs counted from the aten operations a forward pass actually executes.

A TorchDispatchMode sees every aten op (below torch's Python layers, after decompositions), and prices
it with torch's own flop formulas (``torch.utils.flop_counter``: mm, addmm, bmm, convolutions, attention)
plus formulas for the CPU kernels that FlopCounterMode leaves at zero (the fused LSTM layer
``mkldnn_rnn_layer`` and ``_scaled_dot_product_flash_attention_for_cpu``). Elementwise ops, reductions and
data movement count zero, as in FlopCounterMode. Heavy ops no formula covers (FFTs, linear algebra,
cdist, other fused RNN kernels) make the cost *unknown*, never zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

# Heavy ops that no formula here prices: their cost is reported unknown, not zero.
_UNKNOWN_PREFIXES = ("fft_", "_fft_", "linalg_", "_linalg_", "_thnn_fused_", "cudnn_rnn", "_cudnn_rnn", "miopen_rnn")
_UNKNOWN_NAMES = frozenset({
    "cdist", "_cdist_forward", "cholesky", "cholesky_solve", "cholesky_inverse", "triangular_solve", "svd",
    "qr", "geqrf", "ormqr", "lu_unpack", "lu_solve", "matrix_exp", "slogdet", "logdet", "det", "inverse",
    "pinverse", "matrix_power", "stft", "istft", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
})


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape)


def _rnn_layer_flops(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """mkldnn_rnn_layer(input, w_ih, w_hh, ...): one layer, one direction, every time step."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    steps = x.numel() // x.shape[-1]
    return 2 * steps * (w_ih.numel() + w_hh.numel())


def _count(n: Any) -> Any:
    """A count as an int; a symbolic one (a SymInt, from a trace with symbolic sizes) stays a formula:
    int() would fix its sizes to the sample values."""
    return n if isinstance(n, torch.SymInt) else int(n)


def _cpu_sdpa_flops(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    q, k, v = args[0], args[1], args[2]
    return _count(flop_counter.sdpa_flop_count(_shape(q), _shape(k), _shape(v)))


_EXTRA: dict[str, Callable[[tuple[Any, ...], dict[str, Any], Any], int]] = {
    "mkldnn_rnn_layer": _rnn_layer_flops,
    "_scaled_dot_product_flash_attention_for_cpu": _cpu_sdpa_flops,
}


def op_flops(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int | None:
    """FLOPs of one aten op; 0 for ops that do no multiply-accumulate work; None when unknown."""
    packet = func.overloadpacket
    formula = flop_counter.flop_registry.get(packet)
    if formula is not None:
        return _count(formula(*args, **kwargs, out_val=out))
    name = packet.__name__
    extra = _EXTRA.get(name)
    if extra is not None:
        return extra(args, kwargs, out)
    if name in _UNKNOWN_NAMES or name.startswith(_UNKNOWN_PREFIXES):
        return None
    return 0


class CostCounter(TorchDispatchMode):
    """Adds each op's FLOPs to ``sink`` (None for an op whose cost is unknown)."""

    def __init__(self, sink: Callable[[int | None, str], None]) -> None:
        super().__init__()
        self.sink = sink

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a dispatch mode's __torch_dispatch__ in torch._disable_dynamo, whose first call imports
        # torch._dynamo (800+ modules, about 0.7 s). Counting needs no Dynamo, and compiled code runs eagerly
        # while convshape traces (isolation.guarded), so there is nothing for the wrapper to keep Dynamo out of.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flops = op_flops(func, args, kwargs, out)
        if flops is None or type(flops) is not int or flops != 0:  # a SymInt compared would make a guard
            self.sink(flops, str(func.overloadpacket))
        return out


def flop_counter_total(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """torch's own FlopCounterMode total for one no-grad forward (what tests compare against)."""
    counter = flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops())
