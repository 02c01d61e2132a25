"""A run folder is data: paths in it stay inside it, ids name its candidates, files are
readable by others, killed writes leave nothing behind, and resume notices changed files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from slimkit.cli import main
from slimkit.core.atomic import write_text
from slimkit.core.errors import StoreError
from slimkit.core.lock import writing
from slimkit.core.manifest import read_manifest
from slimkit.deploy.serve import resolve

RECIPE = ("version: 1\ntask: digits\nbaseline: {model: mlp, model_args: {width: 8},"
          " train: {epochs: 1}}\nsteps: []\n"
          "profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}\n")


def _copy(tiny_run, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    return run


def _edit(run: Path, change) -> None:
    data = json.loads((run / "run.json").read_text())
    change(data)
    (run / "run.json").write_text(json.dumps(data))


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.onnx"])
def test_artifact_paths_outside_the_run_are_refused(capsys, tiny_run, tmp_path: Path,
                                                    target: str) -> None:
    run = _copy(tiny_run, tmp_path)
    _edit(run, lambda d: d["candidates"][0]["artifacts"].update(onnx=target, torch=target))
    code = main(["export", str(run), "--to", str(tmp_path / "x.onnx")])
    assert code == 2 and "outside the run folder" in _error(capsys)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(StoreError, match="outside the run folder"):
        resolve(run)  # serve


def test_ids_that_name_no_candidate_are_a_clear_error(tiny_run, tmp_path: Path) -> None:
    run = _copy(tiny_run, tmp_path)
    _edit(run, lambda d: d.update(selected="c9"))
    with pytest.raises(StoreError, match="selected names candidate 'c9'"):
        read_manifest(run)


def test_export_does_not_create_folders(capsys, tiny_run, tmp_path: Path) -> None:
    code = main(["export", str(tiny_run.path), "--to", str(tmp_path / "no/such/x.onnx")])
    assert code == 2 and "does not exist" in _error(capsys)
    assert not (tmp_path / "no").exists()


def test_a_folder_given_as_the_recipe(capsys, tmp_path: Path) -> None:
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "is a folder; give a recipe YAML file" in _error(capsys)


def test_files_get_the_umask_mode_and_stale_temporaries_go(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "run" / "a.txt", "x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "run" / "a.txt").stat().st_mode)
    assert mode & 0o044 == 0o044  # others can read what people send each other
    stale = tmp_path / "run" / "candidates" / ".model.onnx.abc.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_text("half written")
    with writing(tmp_path / "run"):
        assert not stale.exists()
    assert (tmp_path / "run" / "a.txt").exists()


def test_a_bad_storage_url_fails_before_training(capsys, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--storage", "bogus://x"])
    assert code == 2 and "bogus://x" in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_resume_recomputes_a_candidate_whose_file_changed(capsys, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    c0 = json.loads((out / "run.json").read_text())["candidates"][0]
    assert set(c0["digests"]) == set(c0["artifacts"])
    onnx = out / c0["artifacts"]["onnx"]
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"corrupted!")
    _edit(out, lambda d: d.update(status="running"))  # as if killed before the end
    capsys.readouterr()
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    assert "c0's onnx file is missing or changed" in capsys.readouterr().err
    again = json.loads((out / "run.json").read_text())["candidates"][0]
    assert again["digests"]["onnx"] != "" and onnx.read_bytes()[-10:] != b"corrupted!"


def test_a_corrupt_study_db_is_one_line(capsys, tiny_run, tmp_path: Path) -> None:
    run = _copy(tiny_run, tmp_path)
    (run / "study.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 4000)  # truncated
    assert main(["report", str(run)]) == 2
    assert "study.db: cannot open the study storage" in _error(capsys)


def test_a_run_stopped_while_training_the_baseline_is_valid(capsys, monkeypatch,
                                                            tmp_path: Path) -> None:
    """run.json names c0 as the baseline only once c0 is stored (a kill in between leaves a
    manifest the next command reads)."""
    import slimkit.pipeline.engine as engine

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(engine, "train_baseline", killed)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    run = read_manifest(tmp_path / "run")
    assert run.baseline_id is None and run.running["candidate"] == "c0"
