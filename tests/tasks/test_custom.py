"""Your own data, model and metric: every accepted form, and one clear line for every mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from slimkit.cli import main
from slimkit.core.errors import TaskError
from slimkit.core.usercode import trust
from slimkit.tasks import load_task

FAST = ["--set", "profile.min_runs=5", "--set", "profile.min_seconds=0",
        "--set", "profile.throughput_batch=16", "--set", "train.epochs=2", "--quiet"]

DATA = """
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

def _xy(n, seed, regression=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    if regression:
        return x, (x[:, :2] @ np.array([1.0, -2.0])).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)

def arrays():
    return {"train": _xy(120, 0), "val": _xy(40, 1), "test": _xy(40, 2)}

def tensors_no_val():
    (x, y), (xt, yt) = _xy(100, 0), _xy(30, 2)
    return (torch.from_numpy(x), torch.from_numpy(y)), None, (xt, yt)

def datasets():
    make = lambda s, n: TensorDataset(*map(torch.from_numpy, _xy(n, s)))
    return {"train": make(0, 80), "val": DataLoader(make(1, 30), batch_size=7),
            "test": make(2, 30)}

def regression():
    return {"train": _xy(120, 0, True), "val": _xy(40, 1, True), "test": _xy(40, 2, True)}

def mismatched():
    x, y = _xy(50, 0)
    return {"train": (x, y[:-3]), "val": None, "test": (x, y)}

def shapes():
    return {"train": _xy(50, 0), "val": None, "test": (np.zeros((5, 7), np.float32),
                                                       np.zeros(5, np.int64))}

def not_splits():
    return [1, 2]

def broken():
    return {"train": undefined_name}

def with_seed(seed):
    assert seed == 3
    return arrays()
"""

MODEL = """
from torch import nn

def build(input_shape, num_outputs, width=16):
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_outputs))

def three_outputs(input_shape):
    return nn.Linear(input_shape[0], 3)

def not_a_module():
    return "a model"

def fails(input_shape):
    raise ValueError("no model today")

def wrong_input():
    return nn.Linear(99, 2)
"""

METRIC = """
import numpy as np

def recall(outputs, targets):
    return float((outputs.argmax(1)[targets == 1] == 1).mean())

def text(outputs, targets):
    return "high"
"""


@pytest.fixture
def user(tmp_path: Path) -> Path:
    for name, text in (("data.py", DATA), ("model.py", MODEL), ("metric.py", METRIC)):
        (tmp_path / name).write_text(textwrap.dedent(text))
    (tmp_path / "syntax.py").write_text("def load(:\n    pass\n")
    return tmp_path


def _task(user: Path, fn: str, **kw):
    trust(f"{user}/data.py:{fn}", kw.get("metric"))
    return load_task({"name": "custom", "data": f"{user}/data.py:{fn}", **kw}, seed=0)


def test_arrays_make_a_classification_task(user: Path) -> None:
    task = _task(user, "arrays")
    assert (task.kind, task.metric, task.direction, task.num_classes) == (
        "classification", "accuracy", "maximize", 2)
    assert task.input_shape == (6,) and [len(s) for s in task.splits.values()] == [120, 40, 40]
    assert task.source["data"].endswith("data.py:arrays")


def test_tensors_without_val_hold_out_ten_percent(user: Path) -> None:
    task = _task(user, "tensors_no_val")
    assert len(task.val) == 10 and len(task.train) == 90 and task.train.x.dtype == np.float32


def test_datasets_and_loaders(user: Path) -> None:
    task = _task(user, "datasets")
    assert [len(s) for s in task.splits.values()] == [80, 30, 30]


def test_integer_features_become_float_inputs(user: Path, monkeypatch) -> None:
    import sys

    task = _task(user, "arrays")
    module = next(m for n, m in sys.modules.items() if n.startswith("slimkit_user_data_"))
    monkeypatch.setattr(module, "arrays", lambda: {
        s: (np.zeros((10, 4), np.int64), np.arange(10) % 2) for s in ("train", "val", "test")})
    task = _task(user, "arrays")
    assert task.input_dtype == "float32" and task.train.x.dtype == np.float32
    assert not task.token_inputs


def test_float_targets_make_a_regression_task(user: Path) -> None:
    task = _task(user, "regression", metric="mae")
    assert (task.kind, task.metric, task.direction, task.num_classes) == (
        "regression", "mae", "minimize", 1)
    assert task.train.y.shape == (120, 1)


def test_data_function_gets_the_seed(user: Path) -> None:
    trust(f"{user}/data.py:with_seed")
    task = load_task({"name": "custom", "data": f"{user}/data.py:with_seed"}, seed=3)
    assert task.seed == 3


@pytest.mark.parametrize(("fn", "kw", "message"), [
    ("mismatched", {}, "split 'train': x has shape (50, 6) and y (47,)"),
    ("shapes", {}, "splits have different input shapes"),
    ("not_splits", {}, "returned list; expected a dict {'train': ..., 'val': ..., 'test': ...}"),
    ("broken", {}, "data.py:broken raised NameError: name 'undefined_name' is not defined "
                   "(data.py line"),
    ("nothing", {}, "has no function 'nothing'; functions there: arrays, broken, datasets"),
    ("arrays", {"metric": "mse"}, "--metric mse: is a regression metric, but --data"),
    ("arrays", {"metric": "auc"}, "--metric 'auc': unknown; for a classification task choose "
                                  "accuracy, f1"),
])
def test_data_mistakes_name_the_function(user: Path, fn: str, kw: dict, message: str) -> None:
    with pytest.raises(TaskError) as err:
        _task(user, fn, **kw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_user_metric_needs_a_direction_and_a_number(user: Path) -> None:
    with pytest.raises(TaskError, match="give its direction with --metric-direction"):
        _task(user, "arrays", metric=f"{user}/metric.py:recall")
    task = _task(user, "arrays", metric=f"{user}/metric.py:text", direction="maximize")
    with pytest.raises(TaskError, match=r"metric\.py:text must return a number, got str"):
        task.score(np.zeros((4, 2), np.float32), np.zeros(4, np.int64))


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--data", "missing.py:load", "--model", "model.py:build"], "missing.py: no such file"),
    (["--data", "syntax.py:load", "--model", "model.py:build"],
     "syntax.py: import failed: SyntaxError: "),
    (["--data", "data.py:arrays", "--model", "model.py:three_outputs"],
     "outputs (3,) per sample, expected (2,)"),
    (["--data", "data.py:arrays", "--model", "model.py:not_a_module"],
     "model.py:not_a_module returned str, expected a torch.nn.Module"),
    (["--data", "data.py:arrays", "--model", "model.py:fails"],
     "model.py:fails raised ValueError: no model today (model.py line 14)"),
    (["--data", "data.py:arrays", "--model", "model.py:wrong_input"],
     "fails on a batch of the task's inputs (2, 6) float32: RuntimeError"),
    (["--data", "data.py:arrays", "--model", "model.py:build", "--set", "model.depth=3"],
     "model.py:build takes no parameter 'depth'; it takes: width"),
    (["--data", "data.py:arrays", "--model", "model.py:nope"],
     "has no function 'nope'; functions there: build, fails, not_a_module"),
    (["--data", "data.py:arrays"], "task 'custom' has no default model; give --model"),
    (["--task", "mnist1d", "--data", "data.py:arrays"], "data: is for task custom"),
])
def test_cli_user_code_errors_are_one_line(capsys, user: Path, monkeypatch, args, message
                                           ) -> None:
    monkeypatch.chdir(user)
    code, err = _run(capsys, "baseline", *args, "--out", "run", *FAST)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0]
    assert not (user / "run").exists()


def test_cli_baseline_with_user_model_data_and_metric(capsys, user: Path, monkeypatch) -> None:
    monkeypatch.chdir(user)
    code = main(["baseline", "--data", "data.py:arrays", "--model", "model.py:build",
                 "--set", "model.width=8", "--metric", "metric.py:recall",
                 "--metric-direction", "maximize", "--out", "run", *FAST])
    assert code == 0, capsys.readouterr().err
    import slimkit

    run = slimkit.load_run(user / "run")
    c0 = run.baseline
    assert run.task == "custom" and run.task_spec["metric"] == "recall"
    assert set(c0.metrics["val"]) >= {"recall", "accuracy", "f1", "loss"}
    assert c0.model["family"] == f"{user}/model.py:build" and c0.model["args"] == {"width": 8}
    # the data is found again from another folder (the reference is absolute)
    monkeypatch.chdir("/")
    parity = slimkit.export(run, user / "model.onnx")
    assert parity["max_abs_diff"] <= 1e-4


def test_pruned_user_model_loads_in_a_fresh_process(user: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    import slimkit

    recipe = {"version": 1, "task": "custom", "data": f"{user}/data.py:arrays",
              "model": f"{user}/model.py:build", "profile": {"min_runs": 5, "min_seconds": 0,
                                                             "throughput_batch": 16},
              "baseline": {"train": {"epochs": 2}},
              "steps": [{"technique": "prune", "params": {"ratio": 0.5,
                                                          "finetune": {"epochs": 1}}}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    path = run.path / run.candidate("c1").artifacts["torch"]
    code = ("import sys, torch; from slimkit.core.usercode import trusting; "
            "from slimkit.models import load_model\n"
            "with trusting(sys.argv[2] == 'trust'):\n"
            "    m, s = load_model(sys.argv[1])\n"
            "print(type(m).__name__, s['family'].endswith('model.py:build'), "
            "m(torch.zeros(1, 6)).shape[1])")
    out = subprocess.run([sys.executable, "-c", code, str(path), "trust"], capture_output=True,
                         text=True, cwd="/", check=True).stdout.split()
    assert out == ["Sequential", "True", "2"]
    # without the opt-in the user's model.py is not imported: one line saying how
    refused = subprocess.run([sys.executable, "-c", code, str(path), "no"], capture_output=True,
                             text=True, cwd="/")
    assert refused.returncode != 0 and "--trust-code" in refused.stderr
