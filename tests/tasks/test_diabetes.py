"""The built-in regression task end to end: optimize on mse (minimized), in the metric's units."""

from __future__ import annotations

from pathlib import Path

import slimkit
from slimkit.tasks import load_task

from ..conftest import FAST_PROFILE


def test_diabetes_is_a_standardized_regression_task() -> None:
    task = load_task("diabetes", seed=0)
    assert (task.kind, task.metric, task.direction, task.num_classes) == (
        "regression", "mse", "minimize", 1)
    assert task.train.y.shape[1] == 1 and abs(float(task.train.y.mean())) < 0.1
    assert load_task("diabetes", seed=1).test.x.tobytes() == task.test.x.tobytes()


def test_optimize_regression_end_to_end(tmp_path: Path) -> None:
    run = slimkit.optimize("diabetes", out=tmp_path / "run", max_accuracy_drop=0.05,
                           trainer={"epochs": 8}, tune_trials=1, trials=2, epochs=3,
                           finalists=1, budget="15m", profile=FAST_PROFILE, progress=False)
    assert run.status == "complete"
    assert run.task_spec["metric"] == "mse" and run.task_spec["direction"] == "minimize"
    assert "arch" not in run.config["optimize"]["techniques"]  # tabular inputs: no conv family
    base, chosen = run.baseline, run.selected
    assert base is not None and chosen is not None
    assert set(base.metrics["val"]) >= {"mse", "mae", "loss"}
    # within the budget, in the metric's units: a lower mse is better
    assert chosen.metrics["val"]["mse"] <= base.metrics["val"]["mse"] + 0.05 + 1e-9
    trials = run.config["search"]["trials"]
    assert trials and all(t["state"] in ("complete", "fail", "pruned") for t in trials)
    assert (run.path / "report.html").is_file()
