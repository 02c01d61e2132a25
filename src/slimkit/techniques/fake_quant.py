"""Quantization-aware training with PyTorch's core fake-quantization ops.

``torch.fake_quantize_per_channel_affine`` / ``..._per_tensor_affine`` are plain aten ops with a
straight-through gradient (``_fake_quantize_learnable_per_tensor_affine`` also learns the
activation ranges, LSQ+); they are not part of the deprecated ``torch.ao.quantization`` flow, so
this keeps working as PyTorch moves quantization to torchao. The model is fine-tuned with
weights fake-quantized like onnxruntime's int8 QDQ per-channel symmetric weights and layer
inputs (and Linear outputs) fake-quantized like its per-tensor int8 activations, with ranges
that start at calibration min/max and are trained. Then the fake quantization is removed and
onnxruntime's static quantizer produces the deployable QDQ graph from the adapted weights,
with the learned ranges passed as tensor overrides (``tensor_overrides``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
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


class LearnedRange(nn.Module):
    """Int8 fake quantization of an activation tensor with a trained range (LSQ+: scale and
    zero point are parameters, through PyTorch's ``_fake_quantize_learnable_per_tensor_affine``).

    Until ``start`` it only records min/max of what passes through, as the static quantizer's
    calibration does; from ``start`` on it fake-quantizes and learns. ``bounds`` gives the
    range the deployed Q/DQ pair must use."""

    def __init__(self, symmetric: bool = False) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.qmin, self.qmax = (-128, 127) if symmetric else (0, 255)
        self.scale = nn.Parameter(torch.ones(1))
        self.zero_point = nn.Parameter(torch.zeros(1), requires_grad=not symmetric)
        self.low = math.inf
        self.high = -math.inf
        self.learning = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.learning:
            self.low = min(self.low, float(x.detach().min()))
            self.high = max(self.high, float(x.detach().max()))
            return x
        grad_factor = 1.0 / math.sqrt(x.numel() * self.qmax)
        return torch._fake_quantize_learnable_per_tensor_affine(
            x, self.scale, self.zero_point, self.qmin, self.qmax, grad_factor)

    def start(self) -> None:
        """Begin fake quantization from the observed range (0 always inside it)."""
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        with torch.no_grad():
            if self.symmetric:
                self.scale.fill_(max(max(-low, high) / 127.0, 1e-8))
            else:
                scale = max((high - low) / 255.0, 1e-8)
                self.scale.fill_(scale)
                self.zero_point.fill_(round(-low / scale))
        self.learning = True

    def bounds(self) -> tuple[float, float]:
        """The real range ``[low, high]`` that the learned scale and zero point represent."""
        scale = float(self.scale.detach().abs().clamp(min=1e-8))
        zero = round(float(self.zero_point.detach().clamp(self.qmin, self.qmax)))
        return (self.qmin - zero) * scale, (self.qmax - zero) * scale


@dataclass
class LayerRange:
    """What the deployed model must reproduce for one layer: its float weight (to find the
    layer in the exported graph) and the learned ranges of its input and, for Linear layers, of
    its output before the bias."""

    weight: np.ndarray
    input: tuple[float, float]
    output: tuple[float, float] | None


@dataclass
class FakeQuantized:
    """A model under fake quantization; ``ranges`` is filled when the context closes."""

    model: nn.Module
    quantizers: list[LearnedRange]
    ranges: list[LayerRange] = field(default_factory=list)

    def range_parameters(self) -> list[nn.Parameter]:
        """The activation ranges' trainable parameters (scales and zero points)."""
        return [p for q in self.quantizers for p in q.parameters() if p.requires_grad]


def _shared_inputs(model: nn.Module, layers: list[nn.Module],
                   batch: torch.Tensor) -> list[list[nn.Module]]:
    """Layers grouped by the tensor they read (query, key and value read the same one): one
    quantizer per tensor, as in the exported graph."""
    seen: dict[nn.Module, int] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.setdefault(module, args[0].data_ptr())

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    try:
        with torch.no_grad():
            model.eval()(batch)
    finally:
        for hook in hooks:
            hook.remove()
    groups: dict[int, list[nn.Module]] = {}
    for layer in layers:
        groups.setdefault(seen.get(layer, id(layer)), []).append(layer)
    return list(groups.values())


def _quantize_output(module: nn.Module, args: tuple[torch.Tensor, ...],
                     out: torch.Tensor) -> torch.Tensor:
    """A Linear's output fake-quantized before its bias: the exported MatMul's output."""
    bias = module.bias
    if bias is None:
        return module.qat_output(out)
    return module.qat_output(out - bias) + bias


@contextmanager
def fake_quantized(model: nn.Module, calibration: list[torch.Tensor], per_channel: bool = True,
                   symmetric_activations: bool = False,
                   outputs: bool = False) -> Iterator[FakeQuantized]:
    """Fake-quantize every Conv/Linear's weight and input (and, with ``outputs``, every Linear's
    output before its bias, as onnxruntime's static quantizer does for MatMuls) while the
    context is open.

    The activation ranges start from min/max on ``calibration`` (train batches), then are
    learned with the weights. On exit the float (latent) weights remain, adapted to int8
    rounding, and ``ranges`` holds what the exported graph's Q/DQ pairs must use."""
    layers = [m for m in model.modules() if isinstance(m, LAYERS)]
    quantizers: list[LearnedRange] = []
    hooks = []
    for group in _shared_inputs(model, layers, calibration[0]):
        shared = LearnedRange(symmetric_activations)
        quantizers.append(shared)
        for layer in group:
            layer.add_module("qat_input", shared)
            hooks.append(layer.register_forward_pre_hook(
                lambda module, args: (module.qat_input(args[0]), *args[1:])))
    for layer in layers:
        if outputs and isinstance(layer, nn.Linear):
            layer.add_module("qat_output", LearnedRange(symmetric_activations))
            quantizers.append(layer.qat_output)
            hooks.append(layer.register_forward_hook(_quantize_output))
    with torch.no_grad():  # calibration, like the static quantizer's, on the float model
        model.eval()
        for batch in calibration:
            model(batch)
    for quantizer in quantizers:
        quantizer.start()
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight(per_channel))
    state = FakeQuantized(model, quantizers)
    try:
        yield state
    finally:
        for hook in hooks:
            hook.remove()
        for layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            output = layer._modules.pop("qat_output", None)
            state.ranges.append(LayerRange(
                layer.weight.detach().numpy().copy(), layer._modules.pop("qat_input").bounds(),
                output.bounds() if output is not None else None))


def tensor_overrides(path: Path, ranges: list[LayerRange]) -> dict[str, list[dict[str, Any]]]:
    """onnxruntime ``TensorQuantOverrides`` that make the static quantizer use the learned
    ranges: each layer is found in the ONNX graph by its weight (MatMul B = W^T, Gemm B = W or
    W^T, Conv W), and its input tensor (and MatMul output) gets ``rmin``/``rmax``. Layers not
    found keep onnxruntime's own calibration."""
    by_weight: dict[bytes, LayerRange] = {}
    for layer in ranges:
        for array in (layer.weight, layer.weight.T):
            by_weight[_fingerprint(array)] = layer
    graph = onnx.load(str(path)).graph
    weights = {init.name: init for init in graph.initializer}
    overrides: dict[str, list[dict[str, Any]]] = {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv") or len(node.input) < 2:
            continue
        init = weights.get(node.input[1])
        layer = by_weight.get(_fingerprint(numpy_helper.to_array(init))) if init else None
        if layer is None:
            continue
        _widen(overrides, node.input[0], layer.input)
        if node.op_type == "MatMul" and layer.output is not None:
            _widen(overrides, node.output[0], layer.output)
    return overrides


def _fingerprint(array: np.ndarray) -> bytes:
    data = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha1(repr(data.shape).encode() + data.tobytes()).digest()


def _widen(overrides: dict[str, list[dict[str, Any]]], tensor: str,
           bounds: tuple[float, float]) -> None:
    """Set the range of ``tensor``; a tensor read by two layers gets the union of theirs."""
    low, high = bounds
    if tensor in overrides:
        low = min(low, float(overrides[tensor][0]["rmin"]))
        high = max(high, float(overrides[tensor][0]["rmax"]))
    overrides[tensor] = [{"rmin": np.float32(low), "rmax": np.float32(high)}]
