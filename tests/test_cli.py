"""The command line as a user runs it: real processes for the entry point, in-process for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slimkit.cli import main
from slimkit.core.runs import Run

FAST = ["--set", "profile.min_runs=5", "--set", "profile.min_seconds=0",
        "--set", "profile.throughput_batch=16", "--quiet"]


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _marks(table: str, cid: str) -> list[str]:
    """The marks (baseline, selected) of candidate ``cid`` in a printed run table: beside its
    id, or under it when the table is stacked."""
    lines = table.splitlines()
    row = next(i for i, line in enumerate(lines) if line.split()[:1] == [cid])
    words = lines[row].split()[1:]
    marks = [w for w in words if w in ("baseline", "selected")]
    for line in lines[row + 1:]:
        first = line.split()[:1]
        if first not in (["baseline"], ["selected"]):
            break
        marks += first
    return marks


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def test_entry_point_bad_flag_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "slimkit.cli", "baseline", "--bogus"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such option: --bogus" in _one_line_error(proc.stderr)


@pytest.mark.parametrize(("args", "message"), [
    (["baseline", "--task", "nope"], "unknown task 'nope'; choose one of: diabetes, digits"),
    (["baseline", "--model", "resnet"], "unknown model 'resnet'; choose one of: cnn1d"),
    (["baseline", "--set", "model.widht=3"], "model.widht: unknown parameter; allowed: "),
    (["baseline", "--set", "train.lr=fast"], "train.lr: input should be a valid number"),
    (["baseline", "--set", "train.epochs=-1"], "train.epochs: input should be greater than"),
    (["baseline", "--set", "train.momentum=1.5"], "train.momentum: input should be less than 1"),
    (["baseline", "--set", "lr=0.1"], "--set lr: expected model.<param>, train.<param>"),
    (["baseline", "--set", "train.lr"], "--set 'train.lr': expected key=value"),
    (["baseline", "--task", "digits", "--model", "cnn1d"], "model 'cnn1d' takes 2-d inputs"),
    (["baseline", "--threads", "0"], "Invalid value for '--threads'"),
    (["profile", "missing.onnx"], "missing.onnx: no such ONNX file"),
    (["profile", "x.onnx", "--batch", "1,a"], "--batch '1,a': expected comma-separated"),
    (["show", "."], "not a slimkit run (no run.json)"),
    (["frobnicate"], "No such command 'frobnicate'"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, *args, "--out", "run") if args[0] == "baseline" else _cli(
        capsys, *args)
    assert code == 2
    assert message in _one_line_error(err)
    assert not (tmp_path / "run").exists()  # validation happens before anything is written


def test_corrupt_onnx_file(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    code, _, err = _cli(capsys, "profile", str(bad))
    assert code == 2 and "not a valid ONNX model" in _one_line_error(err)


def test_out_folder_with_other_files_is_left_alone(capsys, tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = _cli(capsys, "baseline", "--out", str(tmp_path), *FAST)
    assert code == 2 and "holds other files" in _one_line_error(err)
    assert [p.name for p in tmp_path.iterdir()] == ["precious.txt"]


def test_finished_run_is_not_overwritten(capsys, tiny_run: Run) -> None:
    before = (tiny_run.path / "run.json").read_bytes()
    code, _, err = _cli(capsys, "baseline", "--out", str(tiny_run.path), *FAST)
    assert code == 2 and "already holds a finished run" in _one_line_error(err)
    assert (tiny_run.path / "run.json").read_bytes() == before


def test_baseline_show_profile_export(capsys, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, _ = _cli(capsys, "baseline", "--task", "digits", "--model", "mlp",
                           "--set", "model.width=16", "--set", "train.epochs=2",
                           "--set", "train.l1=1e-5", "--out", str(out), *FAST)
    assert code == 0 and _marks(stdout, "c0") == ["baseline", "selected"]
    data = json.loads((out / "run.json").read_text())
    assert data["candidates"][0]["params"]["l1"] == 1e-5
    assert data["candidates"][0]["model"]["args"]["width"] == 16

    code, stdout, _ = _cli(capsys, "show", str(out), "--json")
    assert code == 0 and json.loads(stdout) == data
    code, stdout, _ = _cli(capsys, "show", str(out))
    assert code == 0 and "test" in stdout and "accuracy" in stdout
    assert _marks(stdout, "c0") == ["baseline", "selected"]

    onnx_path = out / "candidates/c0/model.onnx"
    code, stdout, _ = _cli(capsys, "profile", str(onnx_path), "--json", "--batch", "2,8")
    result = json.loads(stdout)
    assert code == 0 and result["latency_ms"]["batch"] == 2 and result["throughput_batch"] == 8
    assert result["input_shape"] == [1, 8, 8]

    for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.ts")):
        code, stdout, _ = _cli(capsys, "export", str(out), "--format", fmt,
                               "--to", str(tmp_path / name))
        assert code == 0 and "outputs match torch" in stdout and (tmp_path / name).is_file()
    before = (tmp_path / "m.onnx").read_bytes()
    code, _, err = _cli(capsys, "export", str(out), "--to", str(tmp_path / "m.onnx"))
    assert code == 2 and "already exists; pass --force" in _one_line_error(err)
    assert (tmp_path / "m.onnx").read_bytes() == before
    code, _, err = _cli(capsys, "export", str(out), "--candidate", "c9", "--to", "x.onnx")
    assert code == 2 and "has no candidate 'c9'" in _one_line_error(err)
    code, _, err = _cli(capsys, "export", str(out), "--format", "tflite", "--to", "x")
    assert code == 2 and "choose onnx or torchscript" in _one_line_error(err)


def test_listing_commands_read_the_registries(capsys) -> None:
    code, out, _ = _cli(capsys, "tasks")
    assert code == 0 and "mnist1d" in out and "digits" in out and "forecast" in out
    code, out, _ = _cli(capsys, "models")
    assert code == 0 and all(name in out for name in ("mlp", "cnn1d", "cnn2d", "dropout=", "gru",
                                                      "lstm", "tcn", "transformer"))
    assert "rows=true" in out  # sequence families read images only by their rows


def test_techniques_document_every_parameter(capsys) -> None:
    from slimkit.techniques import TECHNIQUES

    code, out, _ = _cli(capsys, "techniques")
    assert code == 0 and "space (required)" in out and "PydanticUndefined" not in out
    code, out, _ = _cli(capsys, "techniques", "tune")
    assert code == 0 and "PydanticUndefined" not in out
    space = next(line for line in out.splitlines() if line.startswith("│ space"))
    assert "required" in space and "map of settings" in space and "(Range)" in out
    assert '"grid"' in out and "1 <= x <= 100000" in out  # allowed values, from the schema
    for name in TECHNIQUES.names():  # every parameter has a description to show
        fields = TECHNIQUES.get(name).Config.model_fields
        assert all(f.description for f in fields.values()), name
    code, _, err = _cli(capsys, "techniques", "nope")
    assert code == 2 and "choose from arch, distill" in _one_line_error(err)


def test_run_command_runs_resumes_and_refuses_changes(capsys, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\ntask: digits\nbaseline: {model: mlp, model_args: {width: 8},"
        " train: {epochs: 1}}\nsteps:\n  - {technique: train, params: {epochs: 1}}\n"
        "profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}\n")
    out = tmp_path / "run"
    code, stdout, _ = _cli(capsys, "run", str(recipe), "--out", str(out), "--quiet")
    assert code == 0 and "c1" in stdout and "Selected c" in stdout
    assert f"Next: `slimkit serve {out}`" in " ".join(stdout.split())
    before = (out / "run.json").read_text()
    code, _, _ = _cli(capsys, "run", str(recipe), "--out", str(out), "--quiet")
    assert code == 0 and json.loads((out / "run.json").read_text())["candidates"] == json.loads(
        before)["candidates"]
    code, _, err = _cli(capsys, "run", str(recipe), "--out", str(out), "--set", "seed=2")
    assert code == 2 and "pass --restart" in _one_line_error(err)
    code, _, err = _cli(capsys, "run", str(recipe), "--out", str(out), "--set",
                        "steps.0.params.ratio=1.5")
    assert code == 2 and "steps[0].params.ratio: unknown parameter" in _one_line_error(err)
    code, out_text, _ = _cli(capsys, "techniques")
    assert code == 0 and "train" in out_text and "export" in out_text and "from_scratch" in out_text


def test_explain_command(capsys, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\ntask: digits\nbaseline: {model: cnn2d, model_args: {width: 8},"
        " train: {epochs: 2}}\nsteps:\n  - {technique: quantize, params: {mode: static}}\n"
        "profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}\n")
    out = tmp_path / "run"
    assert _cli(capsys, "run", str(recipe), "--out", str(out), "--quiet")[0] == 0
    code, stdout, _ = _cli(capsys, "explain", str(out), "--candidate", "c1", "--batch", "8")
    assert code == 0 and "Quantize/Dequantize overhead" in stdout and "QLinear" in stdout
    assert "compute operators still in float" in stdout
    code, _, err = _cli(capsys, "explain", str(out), "--candidate", "c0")
    assert code == 2 and "has no float ancestor" in _one_line_error(err)
    code, stdout, _ = _cli(capsys, "export", str(out), "--candidate", "c1",
                           "--to", str(tmp_path / "int8.onnx"))
    assert code == 0 and "predicted classes agree" in stdout
    assert (tmp_path / "int8.onnx").read_bytes() == (out / "candidates/c1/model.onnx").read_bytes()
    code, _, err = _cli(capsys, "export", str(out), "--candidate", "c1", "--format",
                        "torchscript", "--to", str(tmp_path / "x.ts"))
    assert code == 2 and "exists only as ONNX" in _one_line_error(err)


def test_worker_and_dashboard_errors(capsys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code, _, err = _cli(capsys, "worker", str(tmp_path / "w"), "--storage", url, "--wait", "0")
    assert code == 2 and ("no unfinished slimkit study in the storage after waiting 0 s"
                          in _one_line_error(err))
    code, _, err = _cli(capsys, "worker", str(tmp_path / "w"), "--storage", "nodb://x")
    assert code == 2 and "cannot open the study storage" in _one_line_error(err)
    code, _, err = _cli(capsys, "dashboard", str(tmp_path))
    assert code == 2
    message = _one_line_error(err)
    assert "optuna-dashboard is not installed" in message or "no study.db" in message


def test_an_unexpected_error_is_one_line_with_a_logged_traceback(capsys, tiny_run: Run,
                                                                 tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    data = json.loads((run / "run.json").read_text())
    data["candidates"][0]["profile"]["onnxruntime"] = "not a record"  # valid shape, odd value
    (run / "run.json").write_text(json.dumps(data))
    code, _, err = _cli(capsys, "show", str(run))
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: unexpected AttributeError") and "traceback is in" in err
    log = Path(err.split("traceback is in ")[1].split(";")[0])
    assert "Traceback" in log.read_text()
    code, _, err = _cli(capsys, "--debug", "show", str(run))
    assert code == 1 and "Traceback" in err


def test_a_user_function_raising_system_exit_is_a_clear_error(capsys, tmp_path: Path) -> None:
    (tmp_path / "data.py").write_text("def load():\n    raise SystemExit(3)\n")
    code, _, err = _cli(capsys, "baseline", "--data", f"{tmp_path / 'data.py'}:load",
                        "--model", "mlp", "--out", str(tmp_path / "run"), "--quiet")
    assert code == 2 and "raised SystemExit" in _one_line_error(err)


def test_shell_completion_completes_commands_and_options() -> None:
    import os
    import subprocess
    import sys

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_SLIMKIT_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        return subprocess.run([sys.executable, "-m", "slimkit"], capture_output=True,
                              text=True, env=env, check=True).stdout.split()

    assert complete("slimkit sh") == ["show"]
    assert complete("slimkit show --w") == ["--wide"]
