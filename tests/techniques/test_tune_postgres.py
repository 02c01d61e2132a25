"""A real PostgreSQL server started by the test, a coordinator and a worker sharing one study."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from ..conftest import FAST_PROFILE

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*cmd: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                   capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if not PG_BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL is not installed here (no /usr/lib/postgresql/*/bin/initdb)")
    bin_dir = Path(PG_BIN[-1])
    folder = Path(tempfile.mkdtemp(prefix="slimkit-pg-"))
    os.chmod(folder, 0o777)
    data = folder / "data"
    port = _free_port()
    _as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"),
                 "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        _as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                     "-U", "postgres", "slimkit")
        yield f"postgresql://postgres@127.0.0.1:{port}/slimkit"
    finally:
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _owned(trial: optuna.trial.FrozenTrial, proc: subprocess.Popen) -> bool:
    return str(trial.user_attrs.get("worker", "")).endswith(f":{proc.pid}")


def _hold_until_the_worker_completes_a_trial(url: str, coordinator: subprocess.Popen,
                                             worker: subprocess.Popen) -> None:
    """Pause the coordinator (SIGSTOP) once it has started a trial, until the worker has
    completed one: the storage says when, so a fast coordinator cannot take the whole budget
    first."""
    deadline, paused = time.monotonic() + 180, False
    while time.monotonic() < deadline and coordinator.poll() is None:
        try:
            (name,) = optuna.get_all_study_names(url)
            trials = optuna.load_study(study_name=name, storage=url).trials
        except Exception:  # no study (or schema) yet
            trials = []
        if not paused and any(_owned(t, coordinator) for t in trials):
            coordinator.send_signal(signal.SIGSTOP)
            paused = True
        if any(t.state == optuna.trial.TrialState.COMPLETE and _owned(t, worker)
               for t in trials):
            return
        time.sleep(0.2)
    pytest.fail("the worker completed no trial within 180 s (or the coordinator ended first)")


def test_two_processes_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    budget = 6
    recipe = {"version": 1, "task": "digits", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "mlp", "model_args": {"width": 16}, "train": {"epochs": 2}},
              "steps": [{"technique": "tune", "params": {
                  "sampler": "random", "trials": budget, "pruner": "none",
                  "train": {"epochs": 10, "patience": None},
                  "space": {"train.lr": {"low": 1e-3, "high": 3e-2, "log": True},
                            "model.width": {"choices": [16, 32, 64]}}}}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "slimkit.cli"]
    coordinator = subprocess.Popen(
        [*cli, "run", str(path), "--out", str(out), "--storage", postgres_url, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen(
        [*cli, "worker", str(tmp_path / "worker"), "--storage", postgres_url,
         "--artifacts", str(out / "artifacts"), "--follow", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _hold_until_the_worker_completes_a_trial(postgres_url, coordinator, worker)
    finally:
        coordinator.send_signal(signal.SIGCONT)
    _, c_err = coordinator.communicate(timeout=400)
    _, w_err = worker.communicate(timeout=400)
    assert coordinator.returncode == 0, c_err
    assert worker.returncode == 0, w_err

    run_json = json.loads((out / "run.json").read_text())
    name = f"run-{run_json['config']['recipe_digest']}-c1"
    assert optuna.get_all_study_names(postgres_url) == [name]
    study = optuna.load_study(study_name=name, storage=postgres_url)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))  # every trial number is unique
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                    optuna.trial.TrialState.PRUNED)]
    assert len(done) == budget  # the total is the budget, across both processes
    leftovers = [t for t in study.trials if t.state not in (
        optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert all(t.user_attrs.get("budget_reached") for t in leftovers)  # nothing lost
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, workers  # both processes ran trials
    for t in done:  # every trial's model went through Optuna's artifact store
        assert (out / "artifacts" / t.user_attrs["model_artifact"]).is_file()

    shown = json.loads(subprocess.run([*cli, "show", str(out), "--json"], capture_output=True,
                                      text=True, check=True).stdout)
    summary = shown["candidates"][1]["params"]["study"]
    assert summary["best_value"] == study.best_value
    assert summary["best_params"] == study.best_params
    table = subprocess.run([*cli, "show", str(out)], capture_output=True, text=True,
                           check=True).stdout
    assert f"best val value {study.best_value:.4f}" in table
