"""examples/byo/ runs end to end as a user copies it (tiny sizes): the recipe with your own
model, data and metric, and the Python script that optimizes a model object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import slimkit

BYO = Path(__file__).parents[1] / "examples" / "byo"
FAST = ["profile.min_runs=5", "profile.min_seconds=0", "profile.throughput_batch=16"]


def test_byo_recipe(tmp_path: Path) -> None:
    run = slimkit.run_recipe(BYO / "recipe.yaml", tmp_path / "run", progress=False,
                             overrides=[*FAST, "baseline.train.epochs=3",
                                        "steps.0.params.finetune.epochs=1"])
    assert run.status == "complete" and [c.status for c in run.candidates] == ["ok"] * 3
    assert run.task == "custom" and run.task_spec["metric"] == "malignant_recall"
    c0, c1, c2 = run.candidates
    assert c0.model["family"] == f"{BYO.resolve()}/model.py:build_model"
    assert c1.profile["params"] < c0.profile["params"]  # structured pruning shrank it
    assert c2.parity["check"] == "class_agreement" and c2.parity["agreement"] >= 0.9
    assert 0.0 <= c2.metrics["test"]["malignant_recall"] <= 1.0
    assert (run.path / "report.html").is_file()


def test_byo_python_script(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(BYO / "optimize_from_python.py"), "--out", str(out), "--epochs",
         "5", "--trials", "1", "--budget", "10m", "--quick"],
        capture_output=True, text=True, cwd=tmp_path, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote" in proc.stdout and (out / "selected.onnx").is_file()
    run = slimkit.load_run(out)
    assert run.candidates[0].params["epochs"] == 0  # the object as given, not retrained
    assert run.status == "complete" and run.selected is not None
