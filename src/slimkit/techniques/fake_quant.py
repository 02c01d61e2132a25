"""Quantization-aware training with PyTorch's core fake-quantization ops.

``torch.fake_quantize_per_channel_affine`` / ``..._per_tensor_affine`` are plain aten ops with a
straight-through gradient; they are not part of the deprecated ``torch.ao.quantization`` flow, so
this keeps working as PyTorch moves quantization to torchao. The model is fine-tuned with
weights fake-quantized like onnxruntime's int8 QDQ per-channel symmetric weights and layer
inputs fake-quantized like its per-tensor int8 activations; then the fake quantization is
removed and onnxruntime's static quantizer produces the deployable QDQ graph from the adapted
weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import fusion, parametrize

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
_BN = {nn.Conv1d: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d}


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv (in a Sequential) into the conv, as the
    ONNX exporter does, so that QAT sees the weights that will be quantized."""
    model.eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = module._modules[a], module._modules[b]
            if type(conv) in _BN and isinstance(bn, _BN[type(conv)]):
                module._modules[a] = fusion.fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return model


class FakeQuantWeight(nn.Module):
    """Symmetric int8 fake quantization of a weight, per output channel or per tensor."""

    def __init__(self, per_channel: bool = True) -> None:
        super().__init__()
        self.per_channel = per_channel

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.per_channel:
            scale = max(float(weight.detach().abs().max()) / 127.0, 1e-8)
            return torch.fake_quantize_per_tensor_affine(weight, scale, 0, -127, 127)
        dims = tuple(range(1, weight.dim()))
        scale = (weight.detach().abs().amax(dim=dims) / 127.0).clamp(min=1e-8)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -127, 127)


class FakeQuantInput:
    """Asymmetric int8 per-tensor fake quantization of a layer input, with running min/max."""

    def __init__(self, momentum: float = 0.1, symmetric: bool = False) -> None:
        self.momentum = momentum
        self.symmetric = symmetric
        self.low: float | None = None
        self.high: float | None = None

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        x = args[0]
        if module.training:
            low, high = float(x.detach().min()), float(x.detach().max())
            if self.low is None or self.high is None:
                self.low, self.high = low, high
            else:
                self.low += self.momentum * (low - self.low)
                self.high += self.momentum * (high - self.high)
        if self.low is None or self.high is None:
            return (x,)
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        if self.symmetric:
            bound = max(-low, high)
            return (torch.fake_quantize_per_tensor_affine(x, max(bound / 127.0, 1e-8), 0,
                                                          -128, 127),)
        scale = max((high - low) / 255.0, 1e-8)
        zero = round(-128 - low / scale)
        return (torch.fake_quantize_per_tensor_affine(x, scale, max(-128, min(127, zero)),
                                                      -128, 127),)


@contextmanager
def fake_quantized(model: nn.Module, per_channel: bool = True,
                   symmetric_activations: bool = False) -> Iterator[nn.Module]:
    """Fake-quantize every Conv/Linear's weight and input while the context is open; on exit
    the float (latent) weights remain, now adapted to int8 rounding."""
    layers = [m for m in model.modules() if isinstance(m, LAYERS)]
    hooks = []
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight(per_channel))
        hooks.append(layer.register_forward_pre_hook(
            FakeQuantInput(symmetric=symmetric_activations)))
    try:
        yield model
    finally:
        for hook in hooks:
            hook.remove()
        for layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
