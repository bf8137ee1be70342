"""FLOPs and MACs counted from the aten operations a forward pass actually executes.

Each torch call the recorder intercepts is priced one of three ways (:func:`plan`):

* a call that runs no multiply-accumulate op (activations, elementwise maths, views, norms, pools,
  reductions, creation) counts zero: every aten op it can run is priced zero below;
* a call that runs exactly one priced aten op (``F.linear``, ``F.conv2d``, ``matmul`` of two matrices or
  batches, ``mm``, ``bmm``, ``addmm``, ``baddbmm``) is priced from its shapes with torch's own formulas,
  the numbers a dispatch mode would count for that op;
* any other call runs under :class:`CostCounter`, a TorchDispatchMode that sees every aten op it executes
  (below torch's Python layers, after decompositions) and prices it with torch's own flop formulas
  (``torch.utils.flop_counter``: mm, addmm, bmm, convolutions, attention) plus formulas for the CPU kernels
  that FlopCounterMode leaves at zero (the fused LSTM layer ``mkldnn_rnn_layer`` and
  ``_scaled_dot_product_flash_attention_for_cpu``). Elementwise ops, reductions and data movement count
  zero, as in FlopCounterMode. Heavy ops no formula covers (FFTs, linear algebra, cdist, other fused RNN
  kernels) make the cost *unknown*, never zero.

Only the last way pays for a Python dispatch per aten op, and only for the calls that need it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
    return sdpa_flops(_shape(q), _shape(k), _shape(v))


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


# -- pricing a call from its shapes ------------------------------------------------------------------

Formula = Callable[[tuple[Any, ...], dict[str, Any], Any], int]
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
DISPATCH = object()  # "run the call under CostCounter": no shortcut is known to be exact for it


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    return args[i] if len(args) > i else kwargs.get(name)


def _matrices(*tensors: Any) -> bool:
    """Every operand a tensor with at least two dims: a matrix product that runs as aten mm or bmm (one-dim
    operands run as mv or dot, which torch's formulas leave at zero)."""
    return all(isinstance(t, torch.Tensor) and t.dim() >= 2 for t in tensors)


# torch's formulas themselves: the registered ones are wrapped to take tensors, and each wrapped call leaves
# reference cycles for the collector (7 objects), which a trace would make for every priced call
_MM_FLOP = getattr(flop_counter.mm_flop, "__wrapped__", flop_counter.mm_flop)
_BMM_FLOP = getattr(flop_counter.bmm_flop, "__wrapped__", flop_counter.bmm_flop)


def _product(left: torch.Tensor, out: Any) -> int:
    """``left @ right`` as aten runs it (mm or bmm over the broadcast batch): torch's ``mm_flop`` with the
    batch and rows folded into M."""
    return product_flops(left.shape, out)


def product_flops(left: Sequence[Any], out: Any) -> int:
    """:func:`_product` from the shape of the left factor."""
    k, n = left[-1], out.shape[-1]
    return _count(_MM_FLOP((out.numel() // n, k), (k, n)))


def sdpa_flops(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> int:
    """torch's ``sdpa_flop_count``: ``q @ k^T`` and ``attention @ v`` as two bmm over batch x heads."""
    b, h, s_q, d_q = q
    s_k, d_v = k[2], v[3]
    return _count(_BMM_FLOP((b * h, s_q, d_q), (b * h, d_q, s_k)) + _BMM_FLOP((b * h, s_q, s_k), (b * h, s_k, d_v)))


def _linear(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Formula | object:
    x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    if not _matrices(x, w) or w.dim() != 2:
        return DISPATCH  # a vector input runs as mv: priced as aten prices it
    return lambda _a, _k, out: _product(x, out)


def _matrix_product(first: tuple[int, str], second: tuple[int, str], left: int = 0
                    ) -> Callable[[tuple[Any, ...], dict[str, Any]], Formula | object]:
    """A pricer for a product of the operands at ``first`` and ``second`` (position, keyword name); ``left``
    says which of the two is the left factor (1 for ``__rmatmul__``)."""
    def price(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Formula | object:
        a, b = _arg(args, kwargs, *first), _arg(args, kwargs, *second)
        if not _matrices(a, b):
            return DISPATCH
        factor = (a, b)[left]
        return lambda _a, _k, out: _product(factor, out)
    return price


def _attention(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Formula | object:
    q, k, v = (_arg(args, kwargs, i, name) for i, name in enumerate(("query", "key", "value")))
    tensors = (q, k, v)
    if not all(isinstance(t, torch.Tensor) and t.dim() == 4 for t in tensors) or kwargs.get("enable_gqa") or \
            any(tuple(t.shape[:2]) != tuple(q.shape[:2]) for t in tensors):  # no set: a symbolic size has no hash
        return DISPATCH  # broadcast or grouped heads: the kernel's own shapes decide
    # every kernel (math: two bmm; CPU flash: _EXTRA; CUDA flash and efficient) is priced by this formula
    return lambda _a, _k, out: sdpa_flops(tuple(q.shape), tuple(k.shape), tuple(v.shape))


def _conv(transposed: bool) -> Callable[[tuple[Any, ...], dict[str, Any]], Formula | object]:
    def price(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Formula | object:
        x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
        if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor):
            return DISPATCH

        return lambda _a, _k, out: conv_flops(w.shape, transposed, x.shape, out)
    return price


def conv_flops(w: Sequence[Any], transposed: bool, x: Sequence[Any], out: Any) -> int:
    """torch's ``conv_flop_count`` for an input of shape ``x`` and a weight of shape ``w``."""
    batched = len(x) == len(w)  # an unbatched input runs as a batch of one
    x_shape = list(x) if batched else [1, *x]
    out_shape = list(out.shape) if batched else [1, *out.shape]
    return _count(flop_counter.conv_flop_count(x_shape, list(w), out_shape, transposed=transposed))


# Calls whose every aten op is priced zero (no mm, bmm, convolution or attention kernel; no op that prices
# as unknown): activations, elementwise maths, comparisons, views and copies, creation, reductions, norms,
# pools, padding, resampling, embedding lookups. Each name is looked up in torch, torch.Tensor and F.
_ZERO_NAMES = """
abs absolute acos acosh add addcdiv addcmul all amax amin angle any arange argmax argmin argsort as_strided
as_tensor asin asinh atan atan2 atanh avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d
adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d adaptive_max_pool1d_with_indices
adaptive_max_pool2d_with_indices adaptive_max_pool3d_with_indices batch_norm bernoulli
bfloat16 bitwise_and bitwise_not bitwise_or bitwise_xor bool broadcast_to bucketize byte cat ceil celu char
chunk clamp clamp_max clamp_min clip clone concat concatenate contiguous copy_ cos cosh count_nonzero cpu cuda
cummax cummin cumprod cumsum deg2rad detach diag_embed diagonal diff digamma div divide double dropout
dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout dsplit dstack elu embedding empty empty_like
eq equal erf erfc erfinv exp exp2 expand expand_as expm1 eye fill_ fill_diagonal_ flatten flip fliplr flipud
float float_power floor floor_divide fmax fmin fmod frac full full_like gather ge gelu glu greater
greater_equal group_norm gt half hardshrink hardsigmoid hardswish hardtanh heaviside hsplit hstack
index_add index_copy index_fill index_put index_select instance_norm int interpolate is_complex
is_floating_point is_nonzero isclose isfinite isinf isnan item layer_norm le leaky_relu lerp less less_equal
lgamma linspace local_response_norm log log10 log1p log2 log_softmax logaddexp logaddexp2 logcumsumexp
logical_and logical_not logical_or logical_xor logit logsigmoid logspace logsumexp long lt masked_fill
masked_scatter masked_select max max_pool1d max_pool2d max_pool3d max_pool1d_with_indices
max_pool2d_with_indices max_pool3d_with_indices maximum mean median min minimum mish movedim moveaxis mul
multiply nan_to_num nanmean nansum narrow narrow_copy ne neg negative new_empty new_full new_ones new_tensor
new_zeros nonzero not_equal numel outer ger ones ones_like one_hot pad permute pixel_shuffle pixel_unshuffle polar pow
prelu prod rad2deg rand rand_like randint randint_like randn randn_like randperm reciprocal relu relu6
remainder repeat repeat_interleave reshape reshape_as requires_grad_ rms_norm roll rot90 round rrelu rsqrt
rsub scatter scatter_add scatter_reduce select select_scatter selu sigmoid sign signbit silu sin sinc sinh
size slice_scatter softmax softmin softplus softshrink softsign sort split split_with_sizes sqrt square
squeeze stack std std_mean sub subtract sum swapaxes swapdims t take take_along_dim tan tanh tanhshrink
tensor tensor_split threshold tile to tolist topk transpose tril triu true_divide trunc type type_as unbind
unflatten unfold unique unique_consecutive unsqueeze upsample upsample_bilinear upsample_nearest var var_mean
view view_as vsplit vstack where xlogy zero_ zeros zeros_like dim stride storage_offset is_contiguous
element_size data_ptr is_nested get_device new ndimension nelement __len__ __bool__
__float__ __int__ __index__ __format__ __getitem__ __setitem__ __iter__ __contains__ __reversed__ __hash__
__add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ __imul__ __truediv__ __rtruediv__
__itruediv__ __div__ __rdiv__ __floordiv__ __rfloordiv__ __ifloordiv__ __mod__ __rmod__ __pow__ __rpow__
__ipow__ __neg__ __pos__ __abs__ __invert__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __and__ __rand__
__iand__ __or__ __ror__ __ior__ __xor__ __rxor__ __ixor__ __lshift__ __rshift__
""".split()  # noqa: SIM905  (a word list reads better than 330 quoted strings)

_PRICED: dict[Any, Callable[[tuple[Any, ...], dict[str, Any]], Formula | object]] = {
    F.linear: _linear,
    **dict.fromkeys((torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__),
                    _matrix_product((0, "input"), (1, "other"))),
    torch.Tensor.__rmatmul__: _matrix_product((0, "input"), (1, "other"), left=1),
    **dict.fromkeys((torch.mm, torch.Tensor.mm, torch.bmm, torch.Tensor.bmm),
                    _matrix_product((0, "input"), (1, "mat2"))),
    **dict.fromkeys((torch.addmm, torch.Tensor.addmm), _matrix_product((1, "mat1"), (2, "mat2"))),
    **dict.fromkeys((torch.baddbmm, torch.Tensor.baddbmm), _matrix_product((1, "batch1"), (2, "batch2"))),
    F.scaled_dot_product_attention: _attention,
    F.conv1d: _conv(False), F.conv2d: _conv(False), F.conv3d: _conv(False),
    F.conv_transpose1d: _conv(True), F.conv_transpose2d: _conv(True), F.conv_transpose3d: _conv(True),
}


def _zero_calls() -> set[Any]:
    found: set[Any] = set()
    for name in _ZERO_NAMES:
        for owner in (torch, torch.Tensor, torch._C.TensorBase, F):
            for candidate in (name, f"{name}_"):
                value = getattr(owner, candidate, None)
                if value is not None and callable(value) and not isinstance(value, type):
                    try:
                        hash(value)
                    except TypeError:
                        continue
                    if value not in _PRICED:
                        found.add(value)
    return found


_ZERO = _zero_calls()
# func -> None (zero), a pricer, or DISPATCH: decided once per function (the recorder reads it first, then plan)
PLANS: dict[Any, Any] = {}


def _kind(func: Any) -> Any:
    if func in _PRICED:
        return _PRICED[func]
    if func in _ZERO:
        return None
    if isinstance(func, types.MethodWrapperType) and func.__name__ == "__get__":
        return None  # a tensor attribute (x.shape, x.T): reading it computes nothing
    return DISPATCH


def plan(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Formula | object | None:
    """How to price one call: None (zero), a formula of ``(args, kwargs, out)``, or :data:`DISPATCH`."""
    try:
        kind = PLANS.get(func, PLANS)
    except TypeError:  # an unhashable callable
        return DISPATCH
    if kind is PLANS:
        kind = PLANS[func] = _kind(func)
    if kind is None or kind is DISPATCH:
        return kind
    with _NO_TORCH_FUNCTION():  # t.dim(), t.shape: not through a mode below (torch.device("meta"): 1.4 µs each)
        return kind(args, kwargs)


def flop_counter_total(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """torch's own FlopCounterMode total for one no-grad forward (what tests compare against)."""
    counter = flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops())
