from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.core.errors import ExportError
from slimkit.measure.onnx import check_onnx, export_onnx, run_onnx
from slimkit.measure.torchscript import export_torchscript


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU(),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(160, 5)).eval()


def _inputs(n: int = 32) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 1, 40)).astype(np.float32)


def _perturbed(model: nn.Module) -> nn.Module:
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken[-1].weight += 0.01
    return broken


def test_onnx_export_has_dynamic_batch_and_matches_torch(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.onnx"
    record = export_onnx(model, (1, 40), path, _inputs())
    assert record["max_abs_diff"] <= 1e-4 and record["samples"] == 32
    for batch in (1, 7, 300):
        x = _inputs(batch)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_onnx(path, x), expected, atol=1e-4)
    assert not list(tmp_path.glob(".*.tmp")) and not list(tmp_path.glob("*.data"))


def test_a_broken_export_is_caught_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = torch.onnx.export
    # an exporter bug: the graph it writes computes something else than the module
    monkeypatch.setattr(torch.onnx, "export",
                        lambda model, *a, **k: real_export(_perturbed(model), *a, **k))
    path = tmp_path / "broken.onnx"
    with pytest.raises(ExportError, match="ONNX export does not match the torch model"):
        export_onnx(_model(), (1, 40), path, _inputs())
    assert list(tmp_path.iterdir()) == []


def test_parity_check_catches_changed_weights(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.onnx"
    export_onnx(model, (1, 40), path, _inputs())
    with torch.no_grad():
        model[-1].bias += 1e-3
    with pytest.raises(ExportError, match=r"max abs difference 0\.001 > 0\.0001"):
        check_onnx(model, path, _inputs())


def test_torchscript_export_matches_and_catches_breakage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model()
    path = tmp_path / "m.ts"
    record = export_torchscript(model, (1, 40), path, _inputs())
    assert record["max_abs_diff"] <= 1e-4
    loaded = torch.jit.load(str(path))
    x = torch.from_numpy(_inputs(5))
    torch.testing.assert_close(loaded(x), model(x))
    real_trace = torch.jit.trace
    monkeypatch.setattr(torch.jit, "trace", lambda m, *a, **k: real_trace(_perturbed(m), *a, **k))
    with pytest.raises(ExportError, match="TorchScript export does not match"):
        export_torchscript(model, (1, 40), tmp_path / "s.ts", _inputs())
    assert not (tmp_path / "s.ts").exists()


def test_an_unexportable_model_is_a_clear_error(tmp_path: Path) -> None:
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) * 2 if float(x.sum()) > 0 else x.flatten(1)

    class PythonLoop(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            lengths = [len(str(v)) for v in x.flatten().tolist()]
            return torch.tensor(lengths).reshape(len(x), -1).float()

    with pytest.raises(ExportError, match=r"^ONNX export failed: Failed to export the model"):
        export_onnx(DataDependent(), (1, 40), tmp_path / "d.onnx", _inputs())
    with pytest.raises(ExportError, match=r"^exported ONNX model fails on real inputs: "):
        export_onnx(PythonLoop(), (1, 40), tmp_path / "d.onnx", _inputs())
    assert not (tmp_path / "d.onnx").exists()
