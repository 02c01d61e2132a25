from __future__ import annotations

import json
from pathlib import Path

import pytest

import slimkit
from slimkit.core.atomic import write_json
from slimkit.core.errors import StoreError
from slimkit.core.manifest import prepare_folder, read_manifest
from slimkit.core.runs import Run
from slimkit.models import load_model

CONTRACT_KEYS = {"schema", "run", "task", "seed", "env", "baseline", "candidates", "pareto",
                 "selected", "constraints"}
CANDIDATE_KEYS = {"id", "parent", "technique", "params", "status", "metrics", "profile",
                  "artifacts"}


def test_run_json_follows_the_contract(tiny_run: Run) -> None:
    data = json.loads((tiny_run.path / "run.json").read_text())
    assert set(data) >= CONTRACT_KEYS
    assert data["schema"] == 1 and data["baseline"] == "c0" and data["selected"] == "c0"
    assert data["pareto"] == ["c0"] and data["task"] == "mnist1d"
    for key in ("cpu", "threads", "python", "torch", "onnxruntime"):
        assert key in data["env"]
    c0 = data["candidates"][0]
    assert set(c0) >= CANDIDATE_KEYS
    assert c0["id"] == "c0" and c0["parent"] is None and c0["technique"] == "train"
    for split in ("val", "test"):
        assert 0 <= c0["metrics"][split]["accuracy"] <= 1
    profile = c0["profile"]
    for backend in ("onnxruntime", "torch"):
        assert set(profile[backend]["latency_ms"]) >= {"p50", "p95", "p99", "batch"}
        assert profile[backend]["throughput_sps"] > 0
    for key in ("params", "nonzero_params", "macs", "size_bytes", "peak_rss_mb"):
        assert profile[key] > 0
    assert profile["size_bytes"] == (tiny_run.path / c0["artifacts"]["onnx"]).stat().st_size
    assert c0["artifacts"] == {"torch": "candidates/c0/model.safetensors",
                               "onnx": "candidates/c0/model.onnx"}


def test_run_json_round_trips(tiny_run: Run) -> None:
    loaded = slimkit.load_run(tiny_run.path)
    assert loaded.to_dict() == tiny_run.to_dict()
    on_disk = json.loads((tiny_run.path / "run.json").read_text())
    assert Run.from_dict(on_disk).to_dict() == on_disk


def test_saved_model_rebuilds_with_the_same_outputs(tiny_run: Run) -> None:
    import numpy as np

    from slimkit.measure.evaluate import predict
    from slimkit.measure.onnx import run_onnx
    from slimkit.tasks import load_task

    model, spec = load_model(tiny_run.path / "candidates/c0/model.safetensors")
    assert spec["family"] == "cnn1d" and spec["args"]["width"] == 8
    x = load_task("mnist1d").test.x[:64]
    np.testing.assert_allclose(predict(model, x), run_onnx(
        tiny_run.path / "candidates/c0/model.onnx", x), atol=1e-4)


def test_a_folder_holding_other_files_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=r"holds other files and no run\.json"):
        prepare_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        prepare_folder(tmp_path / "file")


def test_a_finished_run_is_never_overwritten(tiny_run: Run) -> None:
    before = (tiny_run.path / "run.json").read_bytes()
    with pytest.raises(StoreError, match="already holds a finished run"):
        prepare_folder(tiny_run.path)
    assert (tiny_run.path / "run.json").read_bytes() == before


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "corrupt run manifest"),
    ('{"schema": 99}', "unsupported run.json schema 99"),
    ("[1, 2]", "not a JSON object"),
    ('{"schema": 1}', "corrupt run manifest: run: field required"),
    ('{"schema": 1, "run": "r", "task": "t", "seed": 0, "candidates": "abc"}',
     "corrupt run manifest: candidates: input should be a valid list"),
    ('{"schema": 1, "run": "r", "task": "t", "seed": 0, "candidates": '
     '[{"id": "c0", "technique": "train", "profile": null}]}',
     r"candidates\[0\].profile: input should be a valid dictionary"),
])
def test_corrupt_manifests_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(StoreError, match=message):
        read_manifest(tmp_path)


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(StoreError, match=r"corrupt model file"):
        load_model(tmp_path / "model.pt")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})  # not serializable: fails half way
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
