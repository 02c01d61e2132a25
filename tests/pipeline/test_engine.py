from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import slimkit
from slimkit.cli import main
from slimkit.core.errors import RecipeError
from slimkit.core.runs import Candidate
from slimkit.pipeline.select import pareto_front, select
from slimkit.techniques import TECHNIQUES

from ..conftest import FAST_PROFILE

RECIPE = {
    "version": 1, "task": "digits", "seed": 0, "profile": FAST_PROFILE,
    "baseline": {"model": "mlp", "model_args": {"width": 32, "depth": 1},
                 "train": {"epochs": 6}},
    "steps": [
        {"name": "tune", "technique": "train", "params": {"epochs": 2, "lr": 0.0005}},
        {"name": "scratch", "technique": "train", "from": "baseline",
         "params": {"epochs": 1, "from_scratch": True, "lr": 0.0001}},
        {"name": "ship", "technique": "export", "from": "tune"},
    ],
    "constraints": {"max_accuracy_drop": 0.02},
}


def _metrics(run) -> dict:
    return {c.id: (c.parent, c.technique, c.metrics) for c in run.candidates}


def test_steps_form_a_measured_lineage_tree(tmp_path: Path) -> None:
    run = slimkit.run_recipe(RECIPE, tmp_path / "run", progress=False)
    assert [(c.id, c.parent, c.step) for c in run.candidates] == [
        ("c0", None, "baseline"), ("c1", "c0", "tune"), ("c2", "c0", "scratch"),
        ("c3", "c1", "ship")]
    for c in run.candidates:
        assert c.status == "ok"
        assert c.profile["onnxruntime"]["latency_ms"]["p50"] > 0
        assert c.profile["torch"]["throughput_sps"] > 0
        assert (run.path / c.artifacts["onnx"]).is_file()
        assert set(c.timing) == {"total_s", "train_s", "measure_s", "overhead_s"}
    assert (run.path / run.candidates[3].artifacts["torchscript"]).is_file()
    # one epoch from scratch at a tiny lr cannot stay within 2 points: kept, marked infeasible
    scratch = run.candidates[2]
    assert not scratch.feasible and "val accuracy drop" in scratch.violations[0]
    assert run.selected is not None and run.selected.feasible
    assert run.selected.id != "c2" and run.baseline.id == "c0"
    assert run.pareto and run.pareto_ids == pareto_front(run.candidates, "accuracy", "maximize")
    on_disk = json.loads((run.path / "run.json").read_text())
    assert on_disk["status"] == "complete" and on_disk["selected"] == run.selected.id
    assert on_disk["constraints"] == {"max_accuracy_drop": 0.02}


def test_resume_skips_finished_steps_and_refuses_a_changed_recipe(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = slimkit.run_recipe(RECIPE, out, progress=False)
    again = slimkit.run_recipe(RECIPE, out, progress=False)
    assert [c.to_dict() for c in again.candidates] == [c.to_dict() for c in first.candidates]
    with pytest.raises(RecipeError, match=r"holds a run of another recipe or seed .* --restart"):
        slimkit.run_recipe(RECIPE, out, overrides=["seed=1"], progress=False)
    assert json.loads((out / "run.json").read_text())["seed"] == 0
    restarted = slimkit.run_recipe(RECIPE, out, overrides=["seed=1", "steps.0.params.epochs=1"],
                                   restart=True, progress=False)
    assert restarted.seed == 1 and restarted.candidates[1].params["epochs"] == 1


def test_an_internal_failure_is_recorded_and_dependents_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = TECHNIQUES.get("train")

    class Broken(train):  # type: ignore[misc, valid-type]
        name = "broken"

        def apply(self, parent, context):
            raise RuntimeError("boom")

    monkeypatch.setitem(TECHNIQUES._items, "broken", Broken)
    recipe = {**RECIPE, "steps": [{"name": "bad", "technique": "broken"},
                                  {"technique": "export", "from": "bad"},
                                  {"technique": "export", "from": "baseline"}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    assert [c.status for c in run.candidates] == ["ok", "failed", "skipped", "ok"]
    assert run.candidates[1].error == "RuntimeError: boom"


def test_selection_and_pareto_front() -> None:
    def cand(cid: str, acc: float, latency: float, size: int) -> Candidate:
        return Candidate(id=cid, parent=None, technique="t",
                         metrics={"val": {"accuracy": acc}},
                         profile={"onnxruntime": {"latency_ms": {"p50": latency}},
                                  "size_bytes": size})

    base, fast, small, bad = (cand("c0", 0.95, 1.0, 100), cand("c1", 0.945, 0.4, 90),
                              cand("c2", 0.95, 0.9, 50), cand("c3", 0.90, 0.1, 10))
    dominated = cand("c4", 0.94, 0.95, 95)
    cands = [base, fast, small, bad, dominated]
    chosen, front = select(cands, base, {"max_accuracy_drop": 0.01}, "accuracy", "maximize")
    assert chosen == "c1" and not bad.feasible and fast.feasible
    # c2 is as accurate as c0, faster and smaller: c0 is dominated, like c4
    assert front == ["c1", "c2", "c3"] == pareto_front(cands, "accuracy", "maximize")
    chosen, _ = select(cands, base, {"max_accuracy_drop": 0.0}, "accuracy", "maximize")
    assert chosen == "c2"  # only c0 and c2 lose nothing; c2 is faster
    chosen, _ = select(cands, base, {"max_latency_ms": 0.05}, "accuracy", "maximize")
    assert chosen is None


def _start(recipe_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimkit.cli", "run", str(recipe_path),
                             "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"})


def test_sigkill_mid_step_then_resume_equals_an_uninterrupted_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    recipe = {**RECIPE, "steps": [
        {"name": "tune", "technique": "train", "params": {"epochs": 2, "lr": 0.0005}},
        {"name": "long", "technique": "train", "from": "baseline",
         "params": {"epochs": 40, "patience": None, "lr": 0.0005}},
        {"name": "ship", "technique": "export", "from": "long"}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    killed = tmp_path / "killed"
    proc = _start(path, killed)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        manifest = killed / "run.json"
        if manifest.exists():  # the engine records the step it is computing
            running = json.loads(manifest.read_text()).get("running") or {}
            if running.get("candidate") == "c2":
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("step 'long' (c2) was not seen running before the run ended or 240 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((killed / "run.json").read_text())
    assert state["status"] == "running" and [c["id"] for c in state["candidates"]] == ["c0", "c1"]
    assert state["running"]["step"] == "long"
    assert main(["show", str(killed)]) == 0
    assert "interrupted while computing c2 (step long)" in capsys.readouterr().out

    resumed = _start(path, killed)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    whole = slimkit.run_recipe(path, tmp_path / "whole", progress=False)
    assert _metrics(slimkit.load_run(killed)) == _metrics(whole)
    assert slimkit.load_run(killed).status == "complete"
