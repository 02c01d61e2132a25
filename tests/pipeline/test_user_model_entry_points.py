"""Your own model function (``file.py:fn`` taking no arguments) and data (a ``(train, val,
test)`` tuple) through every entry point, from a folder other than the file's: the tuning pass
and the search must rebuild the model from the reference as the baseline did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import slimkit
from tests.conftest import FAST_PROFILE

USER_FILE = '''
import numpy as np
from torch import nn


def build_model():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def load_data():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 3))

    def split(n):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        return x, (x @ w).argmax(1)

    return split(120), split(60), split(60)
'''
PROFILE = [f"--set=profile.{k}={v}" for k, v in FAST_PROFILE.items()]
SMALL = ["--set", "train.epochs=2", "--quiet"]


@pytest.fixture
def user_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """The user's code in ``code/``; commands run from ``work/`` (a sibling folder)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mine.py").write_text(USER_FILE)
    (tmp_path / "work").mkdir()
    return tmp_path / "code", tmp_path / "work"


def slimkit_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slimkit", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=280)


def check_run(out: Path, tuned: bool) -> None:
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete"
    family = manifest["candidates"][0]["model"]["family"]
    assert family.endswith("code/mine.py:build_model") and Path(family.split(":")[0]).is_absolute()
    techniques = [c["technique"] for c in manifest["candidates"]]
    assert ("tune" in techniques) == tuned and all(
        c["status"] == "ok" for c in manifest["candidates"])


def test_cli_optimize_with_a_relative_model_file(user_dirs: tuple[Path, Path]) -> None:
    _, work = user_dirs
    proc = slimkit_cli(["optimize", "--model", "../code/mine.py:build_model", "--data",
                        "../code/mine.py:load_data", "--max-accuracy-drop", "0.5",
                        "--tune-trials", "1", "--trials", "1", "--epochs", "1",
                        "--finalists", "1", "--techniques", "prune", "--budget", "10m",
                        "--out", "runs/byo", *SMALL, *PROFILE], work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_run(work / "runs" / "byo", tuned=True)


def test_cli_run_a_recipe_naming_the_model_file(user_dirs: tuple[Path, Path]) -> None:
    _, work = user_dirs  # paths in a recipe are relative to the recipe's folder
    (work / "recipes").mkdir()
    (work / "recipes" / "byo.yaml").write_text(
        "version: 1\ntask: custom\ndata: ../../code/mine.py:load_data\n"
        "baseline: {model: ../../code/mine.py:build_model, train: {epochs: 2}}\n"
        "steps:\n  - {technique: tune, params: {trials: 1, train: {epochs: 2}, "
        "space: {train.lr: {low: 0.001, high: 0.01, log: true}}}}\n")
    proc = slimkit_cli(["run", "recipes/byo.yaml", "--out", "runs/recipe", "--quiet", *PROFILE],
                       work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_run(work / "runs" / "recipe", tuned=True)


def test_python_optimize_with_a_model_function(user_dirs: tuple[Path, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, work = user_dirs
    monkeypatch.chdir(work)
    run = slimkit.optimize(task="custom", data="../code/mine.py:load_data",
                           model="../code/mine.py:build_model", out="runs/py",
                           max_accuracy_drop=0.5, tune_trials=1, trials=1, epochs=1,
                           finalists=1, techniques=["quantize"], trainer={"epochs": 2},
                           profile=FAST_PROFILE, progress=False, budget="10m")
    assert run.selected is not None
    check_run(work / "runs" / "py", tuned=True)
