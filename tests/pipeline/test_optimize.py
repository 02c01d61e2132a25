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

from slimkit.api import optimize
from slimkit.cli import main
from slimkit.core.studies import default_url
from slimkit.measure.onnx import run_onnx
from slimkit.models import load_model
from slimkit.pipeline.optimize import budget, runner
from slimkit.pipeline.search.chains import fresh_chain, sample_chain, seed_chains
from slimkit.pipeline.search.records import is_new
from slimkit.tasks import load_task
from slimkit.techniques import SearchSpec

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


def test_a_resumed_search_continues_and_the_selected_onnx_matches_torch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # the objective is the file size: which candidate wins does not depend on the CPU
    first = optimize("mnist1d", out=out, techniques=["prune"], trials=2, objective="size",
                     max_accuracy_drop=0.9, **TINY)
    trials_before = [(t.number, t.params) for t in _study(out).trials]
    c0_before = first.candidate("c0").to_dict()
    second = optimize("mnist1d", out=out, techniques=["prune"], trials=4, objective="size",
                      max_accuracy_drop=0.9, **TINY)
    study = _study(out)
    assert sum(is_new(t) for t in study.trials) == 4  # repeats of a measured chain not counted
    assert [(t.number, t.params) for t in study.trials][:2] == trials_before
    assert second.candidate("c0").to_dict() == c0_before  # the baseline was not retrained
    chosen = second.selected
    assert chosen is not None and chosen.id != "c0" and chosen.technique == "prune"
    assert chosen.size_bytes == min(c.size_bytes for c in second.candidates if c.feasible)
    model, _ = load_model(out / chosen.artifacts["torch"])
    x = load_task("mnist1d").test.x[:256]
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    assert np.abs(run_onnx(out / chosen.artifacts["onnx"], x) - expected).max() <= 1e-4


def test_the_budget_stops_the_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what is left of the budget when the search starts is given (8 s), and so is the up-front
    # estimate: the deadline logic is tested the same on a fast or a slow, loaded machine
    monkeypatch.setattr(runner, "epoch_seconds", lambda *args: 0.05)
    monkeypatch.setattr(budget.Clock, "left", lambda self: 8.0)
    monkeypatch.setattr(runner, "reserve", lambda *args: 0.0)
    run = optimize("mnist1d", out=tmp_path / "run", techniques=["prune", "quantize"],
                   **{**TINY, "finalists": 1})
    study = _study(run.path)
    deadline = study.user_attrs["slimkit"]["deadline"]
    started = [t for t in study.trials if t.datetime_start is not None]  # not still queued
    worked = [t for t in started if not t.user_attrs.get("budget_reached")]
    assert worked and all(t.datetime_start.timestamp() <= deadline for t in worked)
    late = [t for t in study.trials if t.user_attrs.get("budget_reached")]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in late)  # ended at once
    assert run.status == "complete" and run.config["optimize_spent_s"] > 0
    assert run.config["search"]["stopped"] == "deadline"


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
    while time.monotonic() < deadline and proc.poll() is None:  # until 2 trials are recorded
        if manifest.is_file():
            trials = json.loads(manifest.read_text()).get("config", {}).get("search", {})
            if len(trials.get("trials", [])) >= 2:
                break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the search recorded no 2 trials before it ended or 240 s passed")
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


SPEC = SearchSpec(model={"family": "cnn1d", "args": {"width": 16, "depth": 2},
                         "input_shape": [1, 40], "num_classes": 10, "input_dtype": "float32"},
                  train={"epochs": 1})


@pytest.mark.parametrize(("techniques", "allowed"), [
    (["prune"], {("prune",)}),
    (["quantize"], {("quantize",)}),
    (["distill", "quantize"], {("distill",), ("distill", "quantize"), ("quantize",)}),
    (["arch", "prune", "quantize"], {("arch",), ("prune",), ("arch", "quantize"),
                                     ("prune", "quantize"), ("quantize",)}),
])
def test_chains_follow_the_allowed_techniques(techniques: list[str], allowed: set) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0),
                                directions=["maximize", "minimize"])
    for params in seed_chains(techniques, SPEC):
        study.enqueue_trial(params)
    seen = set()
    for _ in range(40):
        trial = study.ask()
        chain = sample_chain(trial, techniques, SPEC)
        seen.add(tuple(link.technique for link in chain))
        study.tell(trial, [0.5, 1.0])
    assert seen == allowed


def test_seed_chains_come_from_the_techniques_own_seeds() -> None:
    seeds = seed_chains(["arch", "distill", "prune", "quantize"], SPEC)
    assert seeds[0] == {"compress": "arch", "arch.family": "mobilenet", "arch.width_mult": 0.5,
                        "arch.depth": 3, "arch.kernel_size": 5, "arch.expansion": 4,
                        "arch.head": "flatten", "precision": "none"}
    assert {"compress": "prune", "prune.ratio": 0.75, "precision": "quantize",
            "quantize.mode": "static"} in seeds
    assert seeds[-1] == {"compress": "none", "quantize.mode": "static"}
    assert len(seeds) == len({json.dumps(s, sort_keys=True) for s in seeds}) == 5
    tabular = SearchSpec(model={**SPEC.model, "input_shape": [10]})  # arch does not apply
    assert not any(s.get("compress") == "arch" for s in seed_chains(["arch", "prune"], tabular))


@pytest.mark.parametrize("techniques", [
    ["arch", "distill", "prune", "quantize"], ["arch", "distill", "prune"], ["prune"],
    ["quantize"], ["distill", "quantize"]])
def test_every_seed_chain_is_sampled_as_itself(techniques: list[str]) -> None:
    """A seed names its parameters as the sampler does, with or without a precision role."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1),
                                directions=["maximize", "minimize"])
    seeds = seed_chains(techniques, SPEC)
    for params in seeds:
        study.enqueue_trial(params)
    for params in seeds:
        trial = study.ask()
        sample_chain(trial, techniques, SPEC)
        assert trial.params == params
        study.tell(trial, [0.5, 1.0])


@pytest.mark.parametrize("args, message", [
    (["--max-accuracy-drop", "-0.1"], "max_accuracy_drop: input should be greater than or "
                                      "equal to 0"),
    (["--max-accuracy-drop", "1"], "max_accuracy_drop: input should be less than 1"),
    (["--objective", "speed"], "objective: input should be 'latency', 'size' or 'throughput'"),
    (["--techniques", "prune,magic"], "technique 'magic' is unknown; a search chains: arch, "
                                      "distill, prune, quantize"),
    (["--techniques", "tune"], "technique 'tune' has no role in a chain"),
    (["--budget", "soon"], "budget: "),
    (["--budget", "1s"], "--budget 1s: the baseline alone needs up to"),
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
    mine = 0

    def until_the_worker_finished_one(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
        """The search goes on until a trial of the worker is complete (the condition the
        storage records), not for a time: on a fast machine the worker may start late."""
        nonlocal mine
        mine += 1
        done = [t for t in study.get_trials(deepcopy=False) if is_new(t)
                and t.user_attrs.get("worker", "").endswith(f":{worker.pid}")]
        if done or mine >= 60:
            study.stop()

    try:
        run = optimize("mnist1d", out=tmp_path / "run", techniques=["prune", "quantize"],
                       storage=url, max_accuracy_drop=0.9,
                       callbacks=[until_the_worker_finished_one], **TINY)
        out, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    study = optuna.load_study(study_name=run.config["search"]["study"], storage=url)
    owners = {t.user_attrs.get("worker", "").rsplit(":", 1)[-1] for t in study.trials
              if is_new(t)}
    assert str(worker.pid) in owners, f"no complete trial of the worker after {mine} of ours"
    assert str(os.getpid()) in owners
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
    techniques = ["quantize"]  # three chains: dynamic, static, qat
    study = optuna.create_study(directions=["maximize", "minimize"])
    for mode in ("dynamic", "static"):
        study.enqueue_trial({"quantize.mode": mode})
        trial = study.ask()
        sample_chain(trial, techniques, SPEC)
        study.tell(trial, [0.5, 1.0])
    assert fresh_chain(study, techniques, SPEC, seed=0) == {"quantize.mode": "qat"}
    study.enqueue_trial({"quantize.mode": "qat"})
    trial = study.ask()
    sample_chain(trial, techniques, SPEC)
    study.tell(trial, [0.5, 1.0])
    assert fresh_chain(study, techniques, SPEC, seed=0) is None  # the space is exhausted


def test_the_epoch_estimate_of_a_token_model_times_trimmed_typical_batches() -> None:
    from types import SimpleNamespace

    from slimkit.training import TrainConfig

    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 20, size=96)
    ids = np.zeros((96, 128), dtype=np.int64)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(1, 50, size=length)
    widths: list[int] = []

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(50, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            widths.append(x.shape[1])
            return self.embed(x).mean(dim=1)

    split = SimpleNamespace(x=ids, y=rng.standard_normal((96, 4)).astype(np.float32))
    task = SimpleNamespace(train=split, val=split, token_inputs=True, kind="regression")
    assert budget.epoch_seconds(Bag(), task, TrainConfig(batch_size=16)) > 0
    assert widths and max(widths) < 20  # not the 128 padded columns
    task.token_inputs = False
    widths.clear()
    budget.epoch_seconds(Bag(), task, TrainConfig(batch_size=16))
    assert set(widths) == {128}
