"""The sequence families (gru, lstm, tcn, transformer): each builds for signals (and images
read row by row, when asked), trains a step, exports to ONNX with a dynamic batch axis checked
against torch, and saves and loads to the same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from slimkit.core.errors import ModelError
from slimkit.measure.onnx import export_onnx, run_onnx
from slimkit.models import build_model, load_model, model_args, save_model
from slimkit.training import TrainConfig, fit

from ..conftest import tiny_task

SMALL = {"gru": {"width": 8, "depth": 2, "bidirectional": True},
         "lstm": {"width": 8, "depth": 2},
         "tcn": {"width": 8, "depth": 2},
         "transformer": {"width": 16, "depth": 1, "heads": 2, "patch": 4}}
ONNX_OPS = {"gru": "GRU", "lstm": "LSTM", "tcn": "Conv", "transformer": "Softmax"}


def _spec(family: str, shape: tuple[int, ...], outputs: int, **extra: object) -> dict:
    return {"family": family, "args": model_args(family, {**SMALL[family], **extra}),
            "input_shape": list(shape), "num_classes": outputs, "input_dtype": "float32"}


@pytest.mark.parametrize("family", list(SMALL))
def test_family_trains_exports_with_parity_and_round_trips(family: str, tmp_path: Path) -> None:
    task = tiny_task("classification", n=48)
    spec = _spec(family, task.input_shape, task.num_classes)
    torch.manual_seed(0)
    model = build_model(family, spec["args"], task.input_shape, task.num_classes)
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, task, TrainConfig(epochs=1, batch_size=16), seed=0, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    record = export_onnx(model, task.input_shape, tmp_path / "m.onnx", task.test.x)
    assert record["max_abs_diff"] <= 1e-4
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert ONNX_OPS[family] in {n.op_type for n in graph.node}
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch
    for batch in (1, 5):  # one file for every batch size
        x = task.test.x[:batch]
        expected = model.eval()(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), expected, atol=1e-4)

    save_model(tmp_path / "m.safetensors", model, spec)
    loaded, loaded_spec = load_model(tmp_path / "m.safetensors")
    x = torch.from_numpy(task.test.x)
    assert loaded_spec == spec
    torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize("family", list(SMALL))
def test_images_are_read_by_rows_only_when_asked(family: str) -> None:
    with pytest.raises(ModelError, match=rf"model '{family}' reads sequences .* set rows: true"):
        build_model(family, SMALL[family], (1, 8, 8), 10)
    model = build_model(family, {**SMALL[family], "rows": True}, (1, 8, 8), 10)
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_tcn_is_causal_and_the_bidirectional_readout_sees_both_ends() -> None:
    torch.manual_seed(0)
    tcn = build_model("tcn", SMALL["tcn"], (1, 16), 2).eval()
    x = torch.randn(1, 1, 16)
    later = x.clone()
    later[..., 10:] += 1.0  # only steps 10.. change
    with torch.no_grad():
        a, b = tcn.levels(x), tcn.levels(later)
    assert torch.equal(a[..., :10], b[..., :10]) and not torch.equal(a[..., 10:], b[..., 10:])

    gru = build_model("gru", {"width": 4, "bidirectional": True, "dropout": 0.0}, (1, 16), 2)
    first = x.clone()
    first[..., 0] += 1.0  # the forward pass's last state hardly sees step 0; the backward's does
    with torch.no_grad():
        out = gru.eval().rnn(gru.steps(x))[0]
        readout = torch.cat([out[:, -1, :4], out[:, 0, 4:]], dim=1)
        assert torch.allclose(gru.head(readout), gru(x))
        assert not torch.allclose(gru(first), gru(x))


def test_transformer_heads_must_divide_the_width() -> None:
    with pytest.raises(ModelError, match=r"heads \(4\) must divide width \(30\)"):
        build_model("transformer", {"width": 30, "heads": 4}, (1, 16), 2)
    model = build_model("transformer", {"width": 16, "heads": 2, "patch": 5}, (1, 16), 2)
    assert model.position.shape[1] == 4  # 16 steps in patches of 5: 4 tokens (last padded)
