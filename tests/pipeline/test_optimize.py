"""`slimkit optimize`: constraint, budget, resume, parity of the selected model, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from slimkit.cli import main
from slimkit.deploy.export import run_onnx
from slimkit.models.io import load_model
from slimkit.pipeline.optimize import optimize
from slimkit.pipeline.search import (
    SearchConfig,
    fresh_chain,
    is_new,
    sample_chain,
    seed_chains,
)
from slimkit.studies import default_url
from slimkit.tasks import load_task

from ..conftest import FAST_PROFILE

TINY: dict[str, Any] = {"model": "cnn1d", "model_args": {"width": 16, "depth": 2},
                        "trainer": {"epochs": 3}, "tune_trials": 0, "epochs": 2, "finalists": 2,
                        "profile": FAST_PROFILE, "progress": False, "budget": "10m"}


def _study(run_dir: Path) -> optuna.Study:
    name = json.loads((run_dir / "run.json").read_text())["config"]["search"]["study"]
    return optuna.load_study(study_name=name, storage=default_url(run_dir))


def test_a_tight_constraint_selects_the_baseline_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = optimize("mnist1d", out=tmp_path / "run", max_accuracy_drop=0.0,
                   techniques=["arch"], trials=2, **{**TINY, "trainer": {"epochs": 12},
                                                     "epochs": 1})
    study = _study(run.path)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sum(is_new(t) for t in complete) == 2
    assert all(t.constraints["accuracy_drop"] > 0 for t in complete)  # all infeasible
    assert study.best_trials == []
    assert run.selected_id == run.baseline_id == "c0"
    assert [c.id for c in run.candidates] == ["c0"]
    capsys.readouterr()
    assert main(["show", str(run.path)]) == 0
    shown = capsys.readouterr().out
    assert "2 trials, 0 feasible" in shown and "selected: the baseline c0" in shown


def test_a_loose_constraint_selects_a_feasible_searched_model(tmp_path: Path) -> None:
    run = optimize("mnist1d", out=tmp_path / "run", max_accuracy_drop=0.5, objective="size",
                   techniques=["quantize"], trials=2, **TINY)
    chosen, base = run.selected, run.baseline
    assert chosen is not None and base is not None and chosen.id != base.id
    assert chosen.technique == "quantize" and chosen.feasible
    assert chosen.profile["size_bytes"] < base.profile["size_bytes"]
    assert base.metric("val", "accuracy") - chosen.metric("val", "accuracy") <= 0.5
    assert chosen.parity["check"] == "class_agreement" and chosen.parity["agreement"] >= 0.75
    assert run.config["search"]["trials"] and run.status == "complete"
    report = (run.path / "report.html").read_text()
    assert "Baseline versus selected" in report and "-search: optimization history" in report


@pytest.mark.serial  # the selection compares latencies: measured with nothing else running
def test_a_resumed_search_continues_and_the_selected_onnx_matches_torch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = optimize("mnist1d", out=out, techniques=["prune"], trials=2,
                     max_accuracy_drop=0.9, **TINY)
    trials_before = [(t.number, t.params) for t in _study(out).trials]
    c0_before = first.candidate("c0").to_dict()
    second = optimize("mnist1d", out=out, techniques=["prune"], trials=4,
                      max_accuracy_drop=0.9, **TINY)
    study = _study(out)
    assert sum(is_new(t) for t in study.trials) == 4  # repeats of a measured chain not counted
    assert [(t.number, t.params) for t in study.trials][:2] == trials_before
    assert second.candidate("c0").to_dict() == c0_before  # the baseline was not retrained
    chosen = second.selected
    assert chosen is not None and chosen.id != "c0" and chosen.technique == "prune"
    model, _ = load_model(out / chosen.artifacts["torch"])
    x = load_task("mnist1d").test.x[:256]
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(run_onnx(out / chosen.artifacts["onnx"], x) - expected).max() <= 1e-4


def test_the_budget_stops_the_search(tmp_path: Path) -> None:
    run = optimize("mnist1d", out=tmp_path / "run", techniques=["prune", "quantize"],
                   **{**TINY, "budget": "45s", "finalists": 1})
    study = _study(run.path)
    deadline = study.user_attrs["slimkit"]["deadline"]
    started = [t.datetime_start.timestamp() for t in study.trials if t.datetime_start]
    assert started and max(started) <= deadline  # no trial began after the deadline
    assert run.status == "complete" and run.config["optimize_spent_s"] > 0


def test_a_killed_search_resumes_with_its_trials(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "slimkit", "optimize", "--task", "mnist1d", "--model",
           "cnn1d", "--set", "model.width=16", "--set", "model.depth=2", "--set",
           "train.epochs=3", "--tune-trials", "0", "--epochs", "2", "--techniques",
           "prune,quantize", "--max-accuracy-drop", "0.9", "--finalists", "1", "--quiet",
           "--out", str(out), *(f"--set=profile.{k}={v}" for k, v in FAST_PROFILE.items())]
    proc = subprocess.Popen([*cmd, "--trials", "50"], env=os.environ.copy())
    manifest = out / "run.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if manifest.is_file():
            trials = json.loads(manifest.read_text()).get("config", {}).get("search", {})
            if len(trials.get("trials", [])) >= 2:
                break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = json.loads(manifest.read_text())
    assert killed["status"] == "running"
    before = {t["number"] for t in killed["config"]["search"]["trials"]
              if t["state"] == "complete"}
    done = subprocess.run([*cmd, "--trials", str(len(before) + 1)], capture_output=True,
                          text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    final = json.loads(manifest.read_text())
    after = {t["number"] for t in final["config"]["search"]["trials"]
             if t["state"] == "complete"}
    assert before < after and final["status"] == "complete"
    assert final["selected"] is not None


def test_chains_follow_the_allowed_techniques() -> None:
    spec = {"family": "cnn1d", "args": {"width": 16, "depth": 2}}
    train = {"epochs": 1}
    for techniques, allowed in ((["prune"], {("prune",)}),
                                (["quantize"], {("quantize",)}),
                                (["distill", "quantize"], {("distill",), ("distill", "quantize"),
                                                           ("quantize",)})):
        config = SearchConfig(techniques=techniques)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
                                    directions=["maximize", "minimize"])
        for params in seed_chains(config, spec):
            study.enqueue_trial(params)
        seen = set()
        for _ in range(12):
            trial = study.ask()
            chain = sample_chain(trial, config, spec, train)
            seen.add(tuple(link["link"] for link in chain))
            study.tell(trial, [0.5, 1.0])
        assert seen == allowed, techniques


@pytest.mark.parametrize("args, message", [
    (["--max-accuracy-drop", "-0.1"], "max_accuracy_drop: input should be greater than or "
                                      "equal to 0"),
    (["--max-accuracy-drop", "1"], "max_accuracy_drop: input should be less than 1"),
    (["--objective", "speed"], "objective: input should be 'latency', 'size' or 'throughput'"),
    (["--techniques", "prune,magic"], "techniques[1]: input should be 'prune'"),
    (["--budget", "soon"], "budget: "),
    (["--budget", "5s"], "--budget 5s: cannot fit one search trial; the estimate is"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          args: list[str], message: str) -> None:
    out = tmp_path / "run"
    assert main(["optimize", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_a_task_without_default_model_needs_model(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from slimkit.tasks import TASKS

    entry = TASKS.get("digits")
    monkeypatch.setattr(entry, "default_model", "", raising=False)
    assert main(["optimize", "--task", "digits", "--out", str(tmp_path / "r")]) == 2
    assert "task 'digits' has no default model; give --model" in capsys.readouterr().err


def test_a_worker_process_joins_the_search(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "slimkit", "worker", str(tmp_path / "worker"), "--storage", url,
         "--wait", "120", "--follow", "0", "--quiet"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True, env=os.environ.copy())
    try:
        run = optimize("mnist1d", out=tmp_path / "run", techniques=["prune", "quantize"],
                       trials=6, storage=url, max_accuracy_drop=0.9, **TINY)
        out, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    study = optuna.load_study(study_name=run.config["search"]["study"], storage=url)
    owners = {t.user_attrs.get("worker", "").rsplit(":", 1)[-1] for t in study.trials}
    assert str(worker.pid) in owners and str(os.getpid()) in owners
    assert "this worker ran" in out and run.status == "complete"


def test_the_tuning_pass_gives_the_reference_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = optimize("mnist1d", out=out, techniques=["quantize"], trials=1, objective="size",
                   max_accuracy_drop=0.5, **{**TINY, "tune_trials": 1})
    c0, c1 = run.candidate("c0"), run.candidate("c1")
    assert c1.technique == "tune" and c1.parent == "c0"
    best = max((c0, c1), key=lambda c: c.metric("val", "accuracy"))
    assert run.baseline_id == run.config["reference"] == best.id
    assert all(int(c.id[1:]) >= 2 for c in run.candidates if c.step and "search" in c.step)
    again = optimize("mnist1d", out=out, techniques=["quantize"], trials=1, objective="size",
                     max_accuracy_drop=0.5, **{**TINY, "tune_trials": 1})
    assert again.baseline_id == best.id  # a resumed run keeps its reference


def test_a_fresh_chain_is_one_not_measured_yet() -> None:
    spec, train = {"family": "cnn1d", "args": {"width": 16}}, {"epochs": 1}
    config = SearchConfig(techniques=["quantize"])  # three chains: dynamic, static, qat
    study = optuna.create_study(directions=["maximize", "minimize"])
    for mode in ("dynamic", "static"):
        study.enqueue_trial({"quantize.mode": mode})
        trial = study.ask()
        sample_chain(trial, config, spec, train)
        study.tell(trial, [0.5, 1.0])
    assert fresh_chain(study, config, spec, train, seed=0) == {"quantize.mode": "qat"}
    study.enqueue_trial({"quantize.mode": "qat"})
    trial = study.ask()
    sample_chain(trial, config, spec, train)
    study.tell(trial, [0.5, 1.0])
    assert fresh_chain(study, config, spec, train, seed=0) is None  # the space is exhausted
