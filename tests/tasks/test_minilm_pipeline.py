"""all-MiniLM-L6-v2 through the pipeline on a short subset: the pretrained model as the
baseline, exported the way onnxruntime fuses it, dynamic and static int8, measured at batch 1 and
8 with sequence 128."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import slimkit
from slimkit.measure.onnx import run_onnx
from slimkit.models import load_model


@pytest.fixture(scope="module")
def minilm_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    recipe = {"version": 1, "task": "minilm-embed-small", "seed": 0,
              "profile": {"warmup": 0, "min_runs": 2, "min_seconds": 0},
              "baseline": {"model": "minilm", "train": {"epochs": 0}},
              "steps": [{"technique": "quantize", "params": {
                  "mode": "dynamic", "per_channel": True, "preprocess": False}},
                        {"technique": "quantize", "from": "baseline", "params": {
                            "mode": "static", "calibration_samples": 64}}]}
    here, cwd = Path.cwd(), tmp_path_factory.mktemp("cwd")
    os.chdir(cwd)  # nothing may be written into the current folder (quantizer temp files)
    try:
        run = slimkit.run_recipe(recipe, tmp_path_factory.mktemp("minilm") / "run",
                                 progress=False, cache_dir=cache_dir)
    finally:
        os.chdir(here)
    assert list(cwd.iterdir()) == []
    return run


def test_pretrained_baseline_and_int8(minilm_run) -> None:
    run = minilm_run
    c0, c1, _ = run.candidates
    assert run.task_spec["kind"] == "embedding" and run.task_spec["input_dtype"] == "int64"
    assert c0.params["epochs"] == 0  # measured as given, not trained
    assert c0.metrics["test"]["cosine"] > 0.9999 and c0.metrics["test"]["top10"] > 0.99
    assert c1.metrics["val"]["cosine"] >= 0.98 and 0.0 <= c1.metrics["test"]["top10"] <= 1.0
    assert c1.parity["check"] == "cosine" and c1.parity["cosine"] >= 0.98
    assert c1.profile["size_bytes"] < c0.profile["size_bytes"] / 3
    for cand in (c0, c1):
        ort = cand.profile["onnxruntime"]
        assert ort["latency_ms"]["batch"] == 1 and ort["throughput_batch"] == 8
    assert c0.profile["torch"]["throughput_batch"] == 8
    assert c0.profile["macs"] > 1e9  # 128 tokens through 6 layers


def test_the_export_is_fused_and_checked(minilm_run) -> None:
    c0 = minilm_run.candidates[0]
    route = c0.parity["fused_route"]
    assert route["fusions"] == {"EmbedLayerNormalization": 1, "Attention": 6,
                                "SkipLayerNormalization": 12, "BiasGelu": 6}
    assert set(route["timed here (b=1 / b=8)"]) == {"plain", "torchscript", "fused"}
    exporters = {"plain": "torch.onnx.export(dynamo=True)",  # the fastest here is kept
                 "torchscript": "torch.onnx.export(dynamo=False)",
                 "fused": "torch.onnx.export(dynamo=False) + onnxruntime.transformers "
                          "optimize_model(model_type='bert')"}
    assert c0.parity["exporter"] == exporters[route["kept"]]
    assert c0.parity["max_abs_diff"] <= 1e-4  # whichever file was kept matches torch


def test_static_int8_keeps_the_embeddings(minilm_run) -> None:
    static = minilm_run.candidates[2]
    assert static.status == "ok", static.error
    assert static.parity["check"] == "cosine" and static.parity["cosine"] >= 0.98
    assert static.params["implementation"].startswith("nncf")  # SmoothQuant, float softmax
    assert static.metrics["test"]["cosine"] >= 0.98


def test_onnx_has_dynamic_batch_and_sequence(minilm_run) -> None:
    run = minilm_run
    ids = np.random.default_rng(0).integers(1, 30000, size=(3, 57)).astype(np.int64)
    ids[0, 20:] = 0  # padding
    out = run_onnx(run.path / run.candidates[0].artifacts["onnx"], ids)
    model, _ = load_model(run.path / run.candidates[0].artifacts["torch"])
    with torch.inference_mode():
        expected = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
