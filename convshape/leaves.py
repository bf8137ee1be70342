"""Torch's own leaf layers whose torch calls are known before they run: their calls need not be intercepted.

The recorder's function mode sees every torch call; inside ``nn.ReLU.forward`` it sees ``F.relu`` only to
fold it into the layer's row (a call torch made, not the user). For the layers listed here that call is
known from the layer and its input alone:

* :data:`ZERO_LAYERS` make only calls that :func:`convshape.costs.plan` prices zero (activations, norms,
  pools, dropout, padding, resampling, embedding lookups, views);
* :data:`PRICED_LAYERS` make one priced call (``F.linear``, ``F.convNd``, ``F.conv_transposeNd``) besides
  zero ones, priced here with the same formula :func:`~convshape.costs.plan` gives that call.

So the recorder takes its mode off the stack for the length of such a layer's forward (and puts it back
when the forward returns or raises) and prices the row from here: the same
numbers, without a Python dispatch per call inside. ``tests/test_leaves.py`` runs every layer listed here
under a probe mode and fails when a torch version makes one of them call anything else.

A layer qualifies only as its exact class, with no children, no hooks of its own and no ``forward``
replaced on the instance: anything else is the user's code and keeps the mode.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .costs import DISPATCH, conv_flops, product_flops

ZERO_LAYERS: frozenset[type[nn.Module]] = frozenset({
    nn.Identity, nn.Flatten, nn.Unflatten,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink, nn.Softshrink,
    nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.GLU, nn.LogSigmoid,
    nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.Softmax2d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
    nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
    nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d,
    nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
    nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d,
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.PixelShuffle, nn.PixelUnshuffle,
    nn.Unfold, nn.Embedding,
})


LeafFormula = Callable[[tuple[int, ...], Any], int]  # (the input's shape, the output) -> FLOPs


def _linear_leaf(layer: nn.Module, args: tuple[Any, ...]) -> LeafFormula | object:
    """``F.linear(x, layer.weight, ...)`` as :func:`convshape.costs.plan` prices it, from the input's shape
    (a formula that held the input would keep every Linear's input alive until the pass ends)."""
    if len(args) != 1:
        return DISPATCH  # the input given by keyword, or a call torch's forward would refuse
    x, w = args[0], layer.__dict__["_parameters"].get("weight")
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or x.dim() < 2 or w.dim() != 2:
        return DISPATCH  # what plan gives F.linear for a vector input (mv), or a weight that is not the layer's
    return product_flops


def _conv_leaf(transposed: bool) -> Callable[[nn.Module, tuple[Any, ...]], LeafFormula | object]:
    def price(layer: nn.Module, args: tuple[Any, ...]) -> LeafFormula | object:
        if len(args) != 1:
            return DISPATCH
        x, w = args[0], layer.__dict__["_parameters"].get("weight")
        if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor):
            return DISPATCH
        return functools.partial(conv_flops, tuple(w.shape), transposed)
    return price


PRICED_LAYERS: dict[type[nn.Module], Callable[[nn.Module, tuple[Any, ...]], LeafFormula | object]] = {
    nn.Linear: _linear_leaf,
    nn.Conv1d: _conv_leaf(False), nn.Conv2d: _conv_leaf(False), nn.Conv3d: _conv_leaf(False),
    nn.ConvTranspose1d: _conv_leaf(True), nn.ConvTranspose2d: _conv_leaf(True), nn.ConvTranspose3d: _conv_leaf(True),
}

ZERO = object()  # a layer plan: every call inside is priced zero


def layer_plan(layer: nn.Module, args: tuple[Any, ...]) -> LeafFormula | object:
    """:data:`ZERO`, the formula of ``(input shape, out)`` pricing the layer's one priced call, or
    :data:`~convshape.costs.DISPATCH` when its calls must be seen (any layer not listed above)."""
    kind = type(layer)
    zero = kind in ZERO_LAYERS
    pricer = None if zero else PRICED_LAYERS.get(kind)
    if not zero and pricer is None:
        return DISPATCH
    own = layer.__dict__
    if own["_modules"] or own["_forward_pre_hooks"] or own["_forward_hooks"] or "forward" in own:
        return DISPATCH
    return ZERO if pricer is None else pricer(layer, args)
