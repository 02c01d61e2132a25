from __future__ import annotations

import contextlib
import json
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

import slimkit
from slimkit.core.errors import RecipeError, StoreError, TechniqueError
from slimkit.core.studies import counted, open_storage
from slimkit.techniques.budgeted import run_trials, start_trial
from slimkit.techniques.space import suggest
from slimkit.techniques.tune import TuneConfig, make_pruner, resume_study, tune_sampler

from ..conftest import FAST_PROFILE

BASE = {"version": 1, "task": "digits", "seed": 0, "profile": FAST_PROFILE,
        "baseline": {"model": "mlp", "model_args": {"width": 16, "depth": 1},
                     "train": {"epochs": 2}}}


def _tune(tmp_path: Path, **params):
    recipe = {**BASE, "steps": [{"technique": "tune", "params": params}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    return run, run.candidate("c1")


def _only_study(db: Path) -> optuna.Study:
    url = f"sqlite:///{db}"
    (name,) = optuna.get_all_study_names(url)
    return optuna.load_study(study_name=name, storage=url)


def _study(run) -> optuna.Study:
    study = _only_study(run.path / "study.db")
    assert study.study_name == f"run-{run.config['recipe_digest']}-c1"
    return study


def test_tune_searches_retrains_and_records_insight(tmp_path) -> None:
    run, cand = _tune(tmp_path, sampler="tpe", trials=5, pruner="none",
                      train={"epochs": 3, "patience": None},
                      space={"train.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                             "model.width": {"choices": [8, 32]}})
    study = _study(run)
    assert counted(study) == 5
    summary = cand.params["study"]
    assert summary["counts"] == {"complete": 5}
    assert summary["best_value"] == study.best_value
    assert summary["best_params"] == study.best_params
    assert cand.model["args"]["width"] == study.best_params["model.width"]
    assert cand.training["history"]  # retrained with the best values, measured like any other
    assert cand.profile["onnxruntime"]["latency_ms"]["p50"] > 0
    assert set(summary["importances"]) == {"train.lr", "model.width"}
    assert len(summary["history"]) == 5
    artifacts = [t.user_attrs["model_artifact"] for t in study.trials]
    assert all((run.path / "artifacts" / a).is_file() for a in artifacts)


def test_grid_visits_every_point_once(tmp_path) -> None:
    run, _ = _tune(tmp_path, sampler="grid", trials=50, pruner="none",
                      train={"epochs": 1},
                      space={"train.batch_size": {"choices": [32, 64]},
                             "model.width": {"low": 8, "high": 24, "step": 8}})
    points = sorted((t.params["train.batch_size"], t.params["model.width"])
                    for t in _study(run).trials)
    assert points == sorted((b, w) for b in (32, 64) for w in (8, 16, 24))


def test_bad_trials_are_pruned_and_failures_recorded(tmp_path) -> None:
    run, cand = _tune(tmp_path, sampler="random", trials=12, pruner="median",
                      train={"epochs": 8, "patience": None},
                      space={"train.lr": {"choices": [1e-7, 1e-2]},
                             "model.width": {"choices": [0, 16]}})
    states = cand.params["study"]["counts"]
    assert states.get("pruned", 0) >= 1  # lr=1e-7 trials fall below the median and stop
    assert states.get("fail", 0) >= 1  # width 0 cannot be built: recorded, the search goes on
    assert states.get("complete", 0) + states.get("pruned", 0) == 12
    study = _study(run)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(len(t.intermediate_values) < 8 for t in pruned)


def test_multi_objective_gives_a_pareto_set(tmp_path) -> None:
    run, cand = _tune(tmp_path, sampler="nsga2", trials=4, objectives=["accuracy", "latency"],
                      train={"epochs": 1}, space={"model.width": {"choices": [8, 64, 256]}})
    front = cand.params["study"]["pareto_trials"]
    assert front and all(len(t["values"]) == 2 and t["values"][1] > 0 for t in front)
    assert _study(run).directions == [optuna.study.StudyDirection.MAXIMIZE,
                                      optuna.study.StudyDirection.MINIMIZE]


@pytest.mark.parametrize(("params", "message"), [
    ({"space": {"train.lrate": {"low": 0.1, "high": 1}}},
     r"space\.train\.lrate: unknown trainer parameter"),
    ({"space": {"train.lr": {"low": 0.1, "high": 0.01}}}, r"low 0\.1 > high 0\.01"),
    ({"space": {"train.lr": {"low": 0.0, "high": 0.1, "log": True}}}, r"log needs low > 0"),
    ({"sampler": "grid", "space": {"train.lr": {"low": 0.001, "high": 0.1}}},
     r"space\.train\.lr: grid search needs choices or a step"),
    ({"sampler": "bayes", "space": {"train.lr": {"choices": [0.1]}}},
     r"steps\[0\]\.params\.sampler: input should be 'grid'"),
    ({"timeout": "soon", "space": {"train.lr": {"choices": [0.1]}}}, r"expected a duration"),
    ({"space": {}}, r"steps\[0\]\.params\.space: dictionary should have at least 1 item"),
])
def test_bad_tune_params_name_the_field(params, message) -> None:
    with pytest.raises(RecipeError, match=message):
        slimkit.load_recipe({**BASE, "steps": [{"technique": "tune", "params": params}]})


def test_unknown_model_parameter_is_named(tmp_path) -> None:
    with pytest.raises(TechniqueError, match=r"tune\.space\.model\.height: 'mlp' has no "
                                             r"parameter 'height'; allowed: dropout, width"):
        _tune(tmp_path, trials=1, space={"model.height": {"choices": [1]}})


def test_unreachable_storage_is_a_quick_clear_error() -> None:
    start = time.monotonic()
    with pytest.raises(StoreError, match=r"--storage 127\.0\.0\.1:9/nope: cannot open"):
        open_storage("postgresql://someone@127.0.0.1:9/nope")
    assert time.monotonic() - start < 15  # not a hang (generous: a loaded CI machine)
    with pytest.raises(StoreError, match="cannot open the study storage"):
        open_storage("notadb://x")


def test_sigkill_mid_trial_then_resume_keeps_the_budget(tmp_path) -> None:
    recipe = {**BASE, "steps": [{"technique": "tune", "params": {
        "sampler": "random", "trials": 5, "pruner": "none",
        "train": {"epochs": 40, "patience": None},
        "space": {"train.lr": {"low": 1e-3, "high": 1e-2, "log": True}}}}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "slimkit.cli", "run", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:  # a trial reports every epoch: one with 1 to 36 of its 40 is mid-training
            # (only once slimkit made it: sqlite would create an empty file in the run folder)
            trials = _only_study(out / "study.db").trials if (out / "study.db").exists() else []
        except Exception:  # the database or the study is not there yet
            trials = []
        states = [t.state for t in trials]
        if (states.count(optuna.trial.TrialState.COMPLETE) >= 2
                and states[-1] == optuna.trial.TrialState.RUNNING
                and 1 <= len(trials[-1].intermediate_values) <= 36):
            break  # killed right after this read, with at least 4 epochs still to go
        time.sleep(0.05)
    else:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail("no trial after the second was seen training before the step ended or "
                    f"240 s passed (exit {proc.returncode}: {err.decode()[-300:]})")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study = _only_study(out / "study.db")
    assert counted(study) == 5
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1  # the interrupted trial
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == failed[0].number]
    assert len(retried) == 1 and retried[0].params == failed[0].params
    # the resumed sampler went on from its last draw: 5 distinct learning rates, the very ones
    # of an uninterrupted run (a random sampler's draws do not depend on the values)
    config = TuneConfig.model_validate(recipe["steps"][0]["params"])
    uninterrupted = optuna.create_study(sampler=tune_sampler(config, 0))
    for _ in range(5):
        trial = uninterrupted.ask()
        uninterrupted.tell(trial, suggest(trial, config.space)["train.lr"])
    lrs = [t.params["train.lr"] for t in study.get_trials(states=COUNTED)]
    assert len(set(lrs)) == 5 and lrs == [t.params["train.lr"] for t in uninterrupted.trials]
    data = json.loads((out / "run.json").read_text())
    assert data["status"] == "complete" and data["candidates"][1]["technique"] == "tune"


COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class _Kill(BaseException):
    """Escapes ``study.optimize`` like a kill -9: the trial stays RUNNING, nothing is told."""


def _dead_worker() -> str:
    """The ``host:pid`` of a process that has exited (the owner a killed trial names)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}:{proc.pid}"


class _Objective:
    """A tune objective without the training: scores from the values, reported per epoch."""

    def __init__(self, config: TuneConfig, kill_at: int | None = None) -> None:
        self.config, self.kill_at, self.dead = config, kill_at, _dead_worker()

    def __call__(self, trial: optuna.Trial) -> float:
        start_trial(trial, self.config.trial_budget)
        values = suggest(trial, self.config.space)
        lr = float(values.get("train.lr", 0.01))
        score = -abs(math.log10(lr) + 2) - abs(values["model.width"] - 30) / 50
        for epoch in range(self.config.train.epochs):
            trial.report(score * (epoch + 1) / self.config.train.epochs, epoch)
            if trial.number == self.kill_at:
                trial.set_user_attr("worker", self.dead)
                raise _Kill
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score


def _session(url: str, config: TuneConfig, kill_at: int | None = None) -> optuna.Study:
    """One process's part of a tune step: open the study as ``open_study`` does, resume it as
    ``Tune.apply`` does, run trials (until the budget, or a kill at trial ``kill_at``)."""
    study = optuna.create_study(storage=open_storage(url), study_name="tune",
                                load_if_exists=True, sampler=tune_sampler(config, 0),
                                pruner=make_pruner(config), direction="maximize")
    resume_study(study, config, 0)
    with contextlib.suppress(_Kill):
        run_trials(study, _Objective(config, kill_at), config)
    return study


def _points(study: optuna.Study) -> list[tuple[Any, ...]]:
    """The parameters of the trials that count against the budget, in order."""
    return [tuple(sorted(t.params.items())) for t in study.get_trials(states=COUNTED)]


@pytest.mark.parametrize(("sampler", "pruner"), [
    ("random", "none"), ("tpe", "median"), ("tpe", "hyperband"), ("nsga2", "none"),
    ("cmaes", "none"), ("grid", "none")])
def test_a_resumed_study_draws_new_points_as_an_uninterrupted_one(
        tmp_path: Path, sampler: str, pruner: str) -> None:
    space = ({"train.batch_size": {"choices": [16, 32, 64]},
              "model.width": {"low": 8, "high": 24, "step": 8}} if sampler == "grid" else
             {"train.lr": {"low": 1e-4, "high": 1e-1, "log": True},
              "model.width": {"low": 8, "high": 64}})
    config = TuneConfig(sampler=sampler, pruner=pruner, trials=14, space=space,
                        train={"epochs": 4})
    budget = config.trial_budget  # 9 grid points, else 14 (past TPE's 10 random startups)
    uninterrupted = _points(_session(f"sqlite:///{tmp_path / 'a.db'}", config))
    url = f"sqlite:///{tmp_path / 'b.db'}"
    killed = _session(url, config, kill_at=5)
    assert [t.state for t in killed.trials][-1] == optuna.trial.TrialState.RUNNING
    resumed = _session(url, config)  # a fresh process: new study, sampler and pruner objects
    points = _points(resumed)
    assert counted(resumed) == budget
    assert len(set(points)) == len(points) == budget  # no measured point drawn again
    (failed,) = resumed.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed.number == 5  # the killed trial: failed, not counted, and run again
    (retry,) = [t for t in resumed.trials if t.user_attrs.get("retry_of") == 5]
    assert retry.params == failed.params and retry.state in COUNTED
    if sampler == "grid":  # every point once (in another order: grid ids follow numbers)
        assert set(points) == set(uninterrupted)
    elif sampler == "cmaes" or pruner == "hyperband":
        # the retry has a later number: outside the killed point's CMA-ES generation, in
        # another Hyperband bracket (brackets follow numbers), so only the draws up to it match
        assert points[:6] == uninterrupted[:6]
    else:  # the sampler went on from its last draw: the very points of an uninterrupted run
        assert points == uninterrupted


def test_a_resumed_study_of_another_sampler_history_still_draws_new_points(tmp_path) -> None:
    """Trials the replay cannot reproduce (here drawn by another seed, as by a worker) leave
    the sampler on a seed of its own: its draws are new all the same."""
    config = TuneConfig(sampler="random", trials=8, pruner="none", train={"epochs": 1},
                        space={"train.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                               "model.width": {"low": 8, "high": 64}})
    url = f"sqlite:///{tmp_path / 'w.db'}"
    other = optuna.create_study(storage=open_storage(url), study_name="tune",
                                sampler=tune_sampler(config, 7), direction="maximize")
    run_trials(other, _Objective(config), config.model_copy(update={"trials": 4}))
    resumed = _session(url, config)
    points = _points(resumed)
    assert len(set(points)) == len(points) == 8
    fresh = _points(_session(f"sqlite:///{tmp_path / 'f.db'}", config))
    assert not set(points[4:]) & set(fresh)  # not seed 0's first draws either


def test_the_progress_line_gives_the_best_value_its_unit() -> None:
    from slimkit.techniques.budgeted import status
    from slimkit.techniques.tune import best_text

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.972))
    config = TuneConfig(space={"train.lr": {"low": 1e-3, "high": 1e-1}})
    assert status(study, best_text(config, "accuracy")) == "best val accuracy 97.20%"
    assert status(study, best_text(config, "mse")) == "best val mse 0.9720"
    latency = config.model_copy(update={"objectives": ["latency"]})
    assert status(study, best_text(latency, "accuracy")) == "best latency 0.972 ms"
