"""One writer per run folder: a second writer (another process) is refused with the holder's
pid, ``--restart`` cannot delete a live run, and a dead holder leaves nothing locked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slimkit.cli import main
from slimkit.core.errors import StoreError
from slimkit.core.lock import HOLDER_FILE, writing

RECIPE = ("version: 1\ntask: digits\nbaseline: {model: mlp, model_args: {width: 8},"
          " train: {epochs: 1}}\nsteps: []\n"
          "profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}\n")


def _hold(folder: Path) -> subprocess.Popen[str]:
    """Another process holding ``folder``'s lock until it is killed."""
    code = ("import sys, time\nfrom slimkit.core.lock import writing\n"
            f"with writing({str(folder)!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_and_the_run_is_left_alone(capsys, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    holder = _hold(out)
    try:
        for extra in ([], ["--restart", "--set", "seed=3"]):
            code = main(["run", str(recipe), "--out", str(out), "--quiet", *extra])
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1
            assert f"pid {holder.pid}" in err[0] and "being written by another" in err[0]
        after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()
                 and p.name != HOLDER_FILE}
        assert after == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with writing(out):  # the OS released a killed holder's lock
        assert json.loads((out / HOLDER_FILE).read_text())["pid"] > 0
    assert not (out / HOLDER_FILE).exists()


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    with writing(tmp_path / "run"), writing(tmp_path / "run"):
        pass
    with writing(tmp_path / "run"):  # and free again afterwards
        pass


def test_a_file_is_not_a_run_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="is a file"), writing(tmp_path / "f"):
        pass
