"""QAT's fake quantization: learned activation ranges and how they reach onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
from torch import nn
from torch.nn.utils import parametrize

from slimkit.techniques.fake_quant import LearnedRange, fake_quantized, tensor_overrides


class TwoHeads(nn.Module):
    """Two Linears reading the same tensor (like query and key), then a third."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 5)
        self.b = nn.Linear(6, 5)
        self.c = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.a(x)) * self.b(x))


def test_learned_range_starts_at_the_observed_range_and_learns() -> None:
    quant = LearnedRange()
    x = torch.linspace(-1.0, 3.0, 101)
    assert torch.equal(quant(x), x)  # observing only
    quant.start()
    low, high = quant.bounds()
    step = 4.0 / 255
    assert low == pytest.approx(-1.0, abs=step) and high == pytest.approx(3.0, abs=step)
    y = quant(x.clone().requires_grad_())
    levels = (y.detach() - low) / float(quant.scale)  # on the int8 grid, not the input
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert not torch.allclose(y, x, atol=1e-6)
    (y * torch.linspace(0, 1, 101)).sum().backward()
    assert quant.scale.grad is not None and float(quant.scale.grad.abs()) > 0


def test_fake_quantized_shares_one_range_per_tensor_and_cleans_up() -> None:
    torch.manual_seed(0)
    model = TwoHeads()
    weight = model.a.weight.detach().clone()
    calibration = [torch.randn(8, 6) for _ in range(3)]
    with fake_quantized(model, calibration, outputs=True) as state:
        assert model.a.qat_input is model.b.qat_input
        assert model.c.qat_input is not model.a.qat_input
        assert parametrize.is_parametrized(model.a, "weight")
        params = {id(p) for p in model.parameters()}
        assert id(model.a.qat_input.scale) in params and id(model.c.qat_output.scale) in params
        model(torch.randn(4, 6)).sum().backward()
    assert not parametrize.is_parametrized(model.a, "weight")
    assert torch.equal(model.a.weight, weight)  # the latent weights, untrained here
    assert not hasattr(model.a, "qat_input") and not hasattr(model.c, "qat_output")
    assert len(state.ranges) == 3
    assert state.ranges[0].input == state.ranges[1].input
    assert all(r.output is not None for r in state.ranges)


def test_learned_ranges_reach_the_static_quantizer(tmp_path) -> None:
    torch.manual_seed(0)
    model = TwoHeads().eval()
    calibration = [torch.randn(16, 6) * 2 for _ in range(2)]
    with fake_quantized(model, calibration, outputs=True) as state, torch.no_grad():
        for module in model.modules():  # pretend training moved every range
            if isinstance(module, LearnedRange):
                module.scale.mul_(0.5)
    src = tmp_path / "fp32.onnx"
    torch.onnx.export(model, (calibration[0],), str(src), input_names=["x"], dynamo=False)
    overrides = tensor_overrides(src, state.ranges)
    graph = onnx.load(str(src)).graph
    consumers = {n.input[0] for n in graph.node if n.op_type in ("MatMul", "Gemm")}
    assert consumers <= set(overrides)
    assert tensor_overrides(src, []) == {}

    class Reader:
        def __init__(self) -> None:
            self.batches = iter([{"x": b.numpy()} for b in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out = tmp_path / "int8.onnx"
    quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    extra_options={"TensorQuantOverrides": overrides})
    quantized = onnx.load(str(out)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in quantized.initializer}
    low, high = state.ranges[0].input
    q = next(n for n in quantized.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    assert float(inits[q.input[1]]) == pytest.approx((high - low) / 255, rel=1e-3)
