"""Model files are data: tensors in safetensors and a JSON spec. Loading one never unpickles and
never imports code it names unless the user trusts it (``--trust-code``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch_pruning as tp
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from slimkit.cli import main
from slimkit.core.errors import SlimkitError, StoreError, TaskError
from slimkit.core.usercode import trusting
from slimkit.models import build_model, load_model, save_model
from slimkit.models.user import register_object
from slimkit.tasks import load_task

SPEC = {"family": "cnn1d", "args": {"width": 8, "depth": 2}, "input_shape": [1, 40],
        "num_classes": 10, "input_dtype": "float32"}


def _structure(path: Path) -> object:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["structure"])


def _pruned_cnn() -> nn.Module:
    torch.manual_seed(0)
    model = build_model(SPEC["family"], SPEC["args"], (1, 40), 10)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.BasePruner(model, torch.randn(2, 1, 40),
                                  importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.5, ignored_layers=[head])
    pruner.step()
    return model.eval()


def _evil_file(folder: Path) -> tuple[Path, Path]:
    marker = folder / "ran"
    evil = folder / "evil.py"
    evil.write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
                    f"def build(**kw):\n    return 1\n")
    return evil, marker


def _model_file_naming(path: Path, family: str) -> None:
    spec = {**SPEC, "family": family}
    save_file({"w": torch.zeros(1)}, str(path),
              metadata={"format": "slimkit-model/2", "spec": json.dumps(spec),
                        "structure": "{}"})


def test_a_pruned_model_is_rebuilt_from_its_spec_and_structure(tmp_path: Path) -> None:
    model = _pruned_cnn()
    save_model(tmp_path / "model.safetensors", model, SPEC)
    structure = _structure(tmp_path / "model.safetensors")
    assert isinstance(structure, dict) and structure  # the pruned channel counts
    assert any("out_channels" in changed for changed in structure.values())
    assert not (tmp_path / "model.pkl").exists()
    loaded, spec = load_model(tmp_path / "model.safetensors")
    x = torch.randn(3, 1, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert spec == SPEC


def test_a_model_file_naming_code_does_not_run_it(tmp_path: Path) -> None:
    evil, marker = _evil_file(tmp_path)
    _model_file_naming(tmp_path / "model.safetensors", f"{evil}:build")
    with pytest.raises(SlimkitError, match="--trust-code"):
        load_model(tmp_path / "model.safetensors")
    assert not marker.exists()
    with trusting(True), pytest.raises(SlimkitError, match="returned int"):  # imported now
        load_model(tmp_path / "model.safetensors")
    assert marker.exists()


def test_a_module_reference_in_a_model_file_is_refused(tmp_path: Path) -> None:
    _model_file_naming(tmp_path / "model.safetensors", "subprocess:getoutput")
    with pytest.raises(SlimkitError, match="--trust-code"):
        load_model(tmp_path / "model.safetensors")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.marker),))  # type: ignore[return-value]


@pytest.mark.parametrize("kind", ["module_bytes", "whole pickle"])
def test_a_pickle_in_an_old_model_file_is_not_unpickled(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "ran"
    if kind == "module_bytes":
        import pickle

        payload = {"format": "slimkit-model/1", **SPEC,
                   "module_bytes": pickle.dumps(_Payload(marker))}
        torch.save(payload, tmp_path / "model.pt")
    else:
        torch.save(_Payload(marker), tmp_path / "model.pt")
    with pytest.raises(StoreError, match="--trust-code"):
        load_model(tmp_path / "model.pt")
    assert not marker.exists()


def test_an_old_model_file_loads_weights_only_or_with_trust(tmp_path: Path, capsys) -> None:
    model = build_model(SPEC["family"], SPEC["args"], (1, 40), 10).eval()
    torch.save({"format": "slimkit-model/1", **SPEC, "state_dict": model.state_dict()},
               tmp_path / "weights.pt")
    loaded, _ = load_model(tmp_path / "weights.pt")  # data only: no opt-in needed
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    pruned = _pruned_cnn()
    import io

    buffer = io.BytesIO()
    torch.save(pruned, buffer)
    torch.save({"format": "slimkit-model/1", **SPEC, "module_bytes": buffer.getvalue()},
               tmp_path / "pickled.pt")
    with pytest.raises(StoreError, match="--trust-code"):
        load_model(tmp_path / "pickled.pt")
    with trusting(True):
        loaded, _ = load_model(tmp_path / "pickled.pt")
    assert "earlier model format" in capsys.readouterr().err
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))


def test_a_replaced_layer_keeps_a_pickle_loaded_only_with_trust(tmp_path: Path) -> None:
    model = build_model(SPEC["family"], SPEC["args"], (1, 40), 10).eval()
    name = next(n for n, m in model.named_modules() if isinstance(m, nn.ReLU))
    model.get_submodule(name.rpartition(".")[0] or "")._modules[name.rpartition(".")[2]] = (
        nn.GELU())
    save_model(tmp_path / "model.safetensors", model, SPEC)
    assert _structure(tmp_path / "model.safetensors") is None
    assert (tmp_path / "model.pkl").is_file()
    with pytest.raises(StoreError, match="pickled module"):
        load_model(tmp_path / "model.safetensors")
    with trusting(True):
        loaded, _ = load_model(tmp_path / "model.safetensors")
    assert any(isinstance(m, nn.GELU) for m in loaded.modules())


def test_a_python_object_model_loads_in_its_process_only(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(40, 10)).eval()
    spec = {**SPEC, "family": register_object(net), "args": {}}
    save_model(tmp_path / "model.safetensors", net, spec)
    loaded, _ = load_model(tmp_path / "model.safetensors")  # rebuilt from data here
    x = torch.randn(2, 1, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    code = ("from slimkit.models import load_model\n"
            f"load_model({str(tmp_path / 'model.safetensors')!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0 and "--trust-code" in proc.stderr


def test_untrusted_data_of_a_run_is_not_imported(tmp_path: Path) -> None:
    evil, marker = _evil_file(tmp_path)
    with pytest.raises(TaskError, match="--trust-code"):
        load_task({"name": "custom", "data": f"{evil}:build"})
    assert not marker.exists()


def test_export_of_a_crafted_run_runs_nothing(tiny_run, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    evil, marker = _evil_file(tmp_path)
    _model_file_naming(run / "candidates/c0/model.safetensors", f"{evil}:build")
    for args in (["export", str(run), "--to", str(tmp_path / "x.onnx")],
                 ["profile", str(run / "candidates/c0/model.safetensors")]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--trust-code" in err[0]
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_a_hostile_run_folder_runs_nothing_through_any_command(capsys, tmp_path: Path) -> None:
    """A received run whose c0 is an old-format model.pt with a pickle payload: export, profile
    and resume refuse it in one line, serve serves only the ONNX file (data), and the marker
    file shows nothing ran."""
    import hashlib
    import pickle

    from slimkit.deploy.serve import resolve

    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\ntask: digits\nbaseline: {model: mlp, model_args: {width: 8},"
                      " train: {epochs: 1}}\nsteps: [{technique: prune, params: {ratio: 0.5}}]\n"
                      "profile: {min_runs: 5, min_seconds: 0, throughput_batch: 16}\n")
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(run), "--quiet"]) == 0
    marker = tmp_path / "ran"
    hostile = run / "candidates/c0/model.pt"
    torch.save({"format": "slimkit-model/1", **SPEC,
                "module_bytes": pickle.dumps(_Payload(marker))}, hostile)
    data = json.loads((run / "run.json").read_text())
    c0 = data["candidates"][0]
    c0["artifacts"]["torch"] = "candidates/c0/model.pt"
    c0["digests"]["torch"] = hashlib.sha256(hostile.read_bytes()).hexdigest()  # as sent
    data["candidates"] = [c0]  # as if the sender's run was killed before c1
    data.update(status="running", selected=None, pareto=[])
    (run / "run.json").write_text(json.dumps(data))
    capsys.readouterr()
    for args in (["export", str(run), "--candidate", "c0", "--to", str(tmp_path / "x.onnx")],
                 ["profile", str(hostile)],
                 ["run", str(recipe), "--out", str(run), "--quiet"]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert "--trust-code" in err[-1], (args, err)
    assert resolve(run, "c0").path == run / "candidates/c0/model.onnx"  # the ONNX file only
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()
