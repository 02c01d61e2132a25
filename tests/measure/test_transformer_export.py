"""The transformer export route on a 2-layer random BERT folder: onnxruntime fuses the whole
encoder, the fused file is checked against torch like every export, a fused file that does not
match is never kept, and dynamic int8 quantizes every weight MatMul of the fused graph."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from slimkit.measure import onnx as onnx_export
from slimkit.measure.onnx import export_onnx, run_onnx
from slimkit.measure.transformer_export import attention_shape
from slimkit.models.hf import HFConfig, build_hf

EXAMPLES = Path(__file__).parents[2] / "examples" / "hf"
sys.path.insert(0, str(EXAMPLES))
from make_tiny_bert import make  # noqa: E402

FULL = {"EmbedLayerNormalization": 1, "Attention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2}


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    folder = make(tmp_path_factory.mktemp("hf") / "tiny-bert", hidden=32, layers=2, heads=4)
    return build_hf(f"hf:{folder}", HFConfig(head="embed"), 32).eval()


def token_ids(rows: int = 16, seq: int = 24) -> np.ndarray:
    ids = np.random.default_rng(0).integers(1, 30, size=(rows, seq)).astype(np.int64)
    ids[::3, seq // 2:] = 0  # padded rows: the mask must be fused right
    return ids


def test_the_encoder_fuses_and_matches_torch(bert: torch.nn.Module, tmp_path: Path) -> None:
    assert attention_shape(bert) == (4, 32)
    record = export_onnx(bert, (24,), tmp_path / "m.onnx", token_ids())
    assert record["fused_route"]["fusions"] == FULL
    assert record["max_abs_diff"] <= 1e-4
    ids = token_ids(5, 11)  # another batch and sequence length
    with torch.no_grad():
        expected = bert(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", ids), expected, atol=1e-4)


def test_a_fused_file_that_does_not_match_is_not_kept(bert: torch.nn.Module, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = onnx_export.fuse_transformer

    def wrong(src: Path, dst: Path, shape: tuple[int, int] | None) -> dict[str, int]:
        fusions = real(src, dst, shape)
        model = onnx.load(str(dst))
        weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        values = onnx.numpy_helper.to_array(weight) * 1.5
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        onnx.save(model, str(dst))
        return fusions

    monkeypatch.setattr(onnx_export, "fuse_transformer", wrong)
    record = export_onnx(bert, (24,), tmp_path / "m.onnx", token_ids())
    assert record["fused_route"].startswith(
        "not used: ONNX export does not match the torch model")
    assert record["exporter"] == "torch.onnx.export(dynamo=True)"
    assert record["max_abs_diff"] <= 1e-4


def test_dynamic_int8_quantizes_every_weight_matmul_of_the_fused_graph(
        bert: torch.nn.Module, tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slimkit.techniques.quantize import FUSED_GRAPH_TYPES

    onnx_export.export_torchscript(bert, torch.from_numpy(token_ids()[:2]),
                                   tmp_path / "ts.onnx", "input", "logits")
    onnx_export.fuse_transformer(tmp_path / "ts.onnx", tmp_path / "f.onnx", (4, 32))
    quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8, extra_options=FUSED_GRAPH_TYPES)
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node)
    assert ops["QAttention"] == 2 and ops["MatMul"] == 0 and ops["Attention"] == 0
