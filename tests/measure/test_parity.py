"""The fp32 export check: within 1e-4 of torch, or, where torch's own float32 rounding is that
large, within 1e-4 of the float64 result plus torch's error (both recorded)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.core.errors import ExportError
from slimkit.measure.parity import compare_exact, float64_outputs


def rounding_model() -> nn.Module:
    """Large weights and cancellation: float32 is ~1e-3 off the exact result."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 2))
    with torch.no_grad():
        for layer in model:
            layer.weight.mul_(40.0)
    return model.eval()


def test_an_export_as_exact_as_torch_passes_with_the_float64_record() -> None:
    model = rounding_model()
    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    exact = float64_outputs(model, x)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)).numpy()
    assert np.abs(ours - exact).max() > 1e-4  # the premise: torch's float32 is that far off
    record = compare_exact("ONNX", model, x, exact.astype(np.float32), 1e-4)
    assert record["max_abs_diff"] > 1e-4
    assert record["float64_reference"]["export_error"] <= 1e-4


def test_an_export_worse_than_torch_fails() -> None:
    model = rounding_model()
    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    with torch.no_grad():
        off = model(torch.from_numpy(x)).numpy() + 0.5
    with pytest.raises(ExportError, match="does not match the torch model"):
        compare_exact("ONNX", model, x, off, 1e-4)
