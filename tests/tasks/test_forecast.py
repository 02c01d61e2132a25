"""The built-in sequence regression task: generated offline, fixed, learnable, and run end to
end by a recurrent baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import slimkit
from slimkit.tasks import load_task
from slimkit.tasks.forecast import HISTORY, HORIZON

from ..conftest import FAST_PROFILE


def test_forecast_is_a_fixed_sequence_regression_task() -> None:
    task = load_task("forecast", seed=0)
    assert (task.kind, task.metric, task.direction) == ("regression", "mse", "minimize")
    assert task.input_shape == (1, HISTORY) and task.num_classes == HORIZON
    assert task.train.y.shape[1:] == (HORIZON,) and task.train.y.dtype == np.float32
    assert 0.8 < float(task.train.x.std()) < 1.2  # scaled by the training signals' spread
    again, other_seed = load_task("forecast", seed=0), load_task("forecast", seed=1)
    assert again.test.x.tobytes() == task.test.x.tobytes()  # generated the same, offline
    assert other_seed.test.x.tobytes() == task.test.x.tobytes()  # the seed only carves val
    assert other_seed.val.x.tobytes() != task.val.x.tobytes()


def test_the_next_values_are_predictable_from_the_history() -> None:
    task = load_task("forecast", seed=0)
    # a least-squares linear predictor already beats repeating the last value several times
    x, y = task.train.x[:, 0], task.train.y
    weights = np.linalg.lstsq(np.c_[x, np.ones(len(x))], y, rcond=None)[0]
    xt = task.test.x[:, 0]
    linear = float(((np.c_[xt, np.ones(len(xt))] @ weights - task.test.y) ** 2).mean())
    repeat = float(((xt[:, -1:] - task.test.y) ** 2).mean())
    assert linear < repeat / 3


def test_a_gru_baseline_runs_end_to_end(tmp_path: Path) -> None:
    run = slimkit.baseline("forecast", out=tmp_path / "run", model="gru",
                           model_args={"width": 8}, train={"epochs": 1},
                           profile=slimkit.ProfileSettings(**FAST_PROFILE), progress=False)
    base = run.baseline
    assert base is not None and base.status == "ok"
    assert base.model["family"] == "gru" and set(base.metrics["test"]) >= {"mse", "mae"}
