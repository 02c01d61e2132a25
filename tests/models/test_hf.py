"""A local Hugging Face folder (``hf:PATH``): a small BERT classifier written by
``save_pretrained`` (random init), fine-tuned on texts, pruned, quantized, exported with
dynamic batch and sequence axes, served with texts; and the bad inputs around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import slimkit
from slimkit.measure.onnx import run_onnx
from slimkit.measure.timing import ProfileSettings
from slimkit.models import load_model
from tests.conftest import FAST_PROFILE
from tests.deploy.test_serve import _free_port, request

EXAMPLES = Path(__file__).parents[2] / "examples" / "hf"
DATA = f"{EXAMPLES}/texts.py:load_data"
sys.path.insert(0, str(EXAMPLES))
from make_tiny_bert import make  # noqa: E402


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(tmp_path_factory.mktemp("hf") / "tiny-bert", hidden=32, layers=2, heads=4)


@pytest.fixture(scope="module")
def bert_run(bert_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> slimkit.Run:
    out = tmp_path_factory.mktemp("hf-run") / "run"
    return slimkit.run_recipe({
        "version": 1, "task": "custom", "data": DATA, "seed": 0,
        "baseline": {"model": f"hf:{bert_folder}", "train": {"epochs": 4, "lr": 3e-3}},
        "steps": [{"technique": "prune", "params": {"ratio": 0.5, "finetune": {"epochs": 1}}},
                  {"technique": "quantize", "params": {"mode": "dynamic"}}]},
        out, progress=False, overrides=[f"profile.{k}={v}" for k, v in FAST_PROFILE.items()])


def test_a_folder_is_fine_tuned_pruned_and_quantized(bert_run: slimkit.Run) -> None:
    c0, c1, c2 = bert_run.candidates
    assert [c.status for c in bert_run.candidates] == ["ok"] * 3, [c.error for c in
                                                                   bert_run.candidates]
    assert bert_run.task_spec["input_dtype"] == "int64"
    assert bert_run.task_spec["source"]["model"].startswith("hf:")
    assert c0.model["args"]["head"] == "classify" and c0.parity["max_abs_diff"] <= 1e-4
    assert c0.parity["fused_route"]["fusions"]["Attention"] == 2  # every layer fused
    assert c1.parity["fused_route"]["fusions"]["Attention"] == 2  # pruned heads too
    assert c0.metrics["val"]["accuracy"] > 0.5  # 3 classes: learned from the texts
    assert c1.model["args"]["heads"] == 2 and c1.model["args"]["ffn"] == 64
    assert c1.profile["params"] < c0.profile["params"]
    assert c2.parity["check"] == "class_agreement"


def test_a_pruned_folder_model_is_stored_as_tensors(bert_run: slimkit.Run) -> None:
    path = bert_run.path / bert_run.candidate("c1").artifacts["torch"]
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["structure"]) is not None
    assert not path.with_suffix(".pkl").exists()
    model, spec = load_model(path)
    assert spec["args"]["heads"] == 2 and model.args["heads"] == 2


def test_the_onnx_file_takes_any_batch_and_sequence_length(bert_run: slimkit.Run) -> None:
    c0 = bert_run.candidate("c0")
    model, _ = load_model(bert_run.path / c0.artifacts["torch"])
    ids = np.array([[2, 7, 9, 3, 0], [2, 8, 3, 0, 0], [2, 5, 6, 11, 3]], dtype=np.int64)
    for x in (ids, ids[:1, :3]):
        got = run_onnx(bert_run.path / c0.artifacts["onnx"], x)
        expected = model(torch.from_numpy(x)).detach().numpy()
        assert np.abs(got - expected).max() <= 1e-4


def test_texts_only_make_an_embedding_task(bert_folder: Path, tmp_path: Path) -> None:
    run = slimkit.baseline(model=f"hf:{bert_folder}", data=f"{EXAMPLES}/texts.py:load_texts",
                           out=tmp_path / "run", progress=False,
                           profile=ProfileSettings(**FAST_PROFILE))
    c0 = run.candidate("c0")
    assert run.task_spec["kind"] == "embedding" and run.task_spec["num_classes"] == 32
    assert c0.model["args"]["head"] == "embed" and c0.params["epochs"] == 0
    assert c0.params["lr"] == 5e-5  # a pretrained model is fine-tuned gently
    assert c0.metrics["val"]["cosine"] == pytest.approx(1.0, abs=1e-5)  # its own embeddings


def test_serve_answers_texts(bert_run: slimkit.Run) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "slimkit", "serve", str(bert_run.path),
                             "--candidate", "c0", "--port", str(port)],
                            stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            proc.kill()
            pytest.fail(f"server did not start: {proc.communicate()[1][-2000:]!r}")
        texts = ["the phone is awful", "this lamp works great for the price."]
        status, body = request(port, "POST", "/v1/predict", json.dumps({"texts": texts}).encode())
        assert status == 200 and len(body["predictions"]) == 2
        model, _ = load_model(bert_run.path / bert_run.candidate("c0").artifacts["torch"])
        from slimkit.tasks.text import tokenizer_of

        ids = tokenizer_of(bert_run.task_spec["source"]["model"])(
            texts, padding="longest", return_tensors="np")["input_ids"]
        expected = model(torch.from_numpy(ids.astype(np.int64))).detach().numpy()
        assert np.abs(np.array(body["outputs"]) - expected).max() <= 1e-4
        status, body = request(port, "POST", "/v1/predict", json.dumps({"texts": [3]}).encode())
        assert status == 422 and "list of strings" in body["detail"]
        status, body = request(port, "POST", "/v1/predict",
                               json.dumps({"inputs": [[1, 2, 3]]}).encode())
        assert status == 422 and "send texts" in body["detail"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slimkit", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == 2, proc.stderr[-1500:]
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_a_folder_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = _cli(["baseline", "--model", "hf:empty", "--data", DATA, "--out", "r"], tmp_path)
    _one_line_exit_2(proc, "has no config.json", str(tmp_path / "empty"))


def test_a_model_type_transformers_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "no-such-architecture"}')
    proc = _cli(["baseline", "--model", "hf:odd", "--data", DATA, "--out", "r"], tmp_path)
    _one_line_exit_2(proc, "transformers cannot load", "config.json")


def test_texts_the_tokenizer_cannot_read(bert_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "def load_data():\n    texts = ['a fine phone', None, 'ok']\n"
        "    return (texts, [0, 1, 2]), None, (['ok'], [1])\n")
    proc = _cli(["baseline", "--model", f"hf:{bert_folder}", "--data", "bad.py:load_data",
                 "--out", "r"], tmp_path)
    _one_line_exit_2(proc, "split 'train': text 1 is NoneType, expected str")


def test_texts_without_a_tokenizer(tmp_path: Path) -> None:
    proc = _cli(["baseline", "--data", DATA, "--model", "mlp", "--out", "r"], tmp_path)
    _one_line_exit_2(proc, "returns texts", "--model hf:PATH")


def test_a_forward_returning_no_tensor(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "import torch\n\nclass M(torch.nn.Module):\n"
        "    def forward(self, x):\n        return {'note': 'no tensor here', 'n': 3}\n\n"
        "def build():\n    return M()\n\n"
        "def data():\n    import numpy as np\n    x = np.zeros((20, 4), 'float32')\n"
        "    y = np.arange(20) % 2\n    return (x, y), (x, y), (x, y)\n")
    proc = _cli(["baseline", "--model", "m.py:build", "--data", "m.py:data", "--out", "r"],
                tmp_path)
    _one_line_exit_2(proc, "returns no tensor (note: str, n: int)", "m.py:build")
