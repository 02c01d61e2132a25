"""Model-zoo CNNs (transformers' ResNet and MobileNetV2 from small configs) through every
technique on digits: structured pruning with the shortcuts kept consistent, static, dynamic
and QAT int8, distillation into a smaller family, export parity, and optimize end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

import slimkit
from tests.conftest import FAST_PROFILE

ZOO = Path(__file__).with_name("zoo_models.py")
PROFILE = [f"profile.{k}={v}" for k, v in FAST_PROFILE.items()]


def recipe(model: str) -> dict:
    qat = {"technique": "quantize", "from": "baseline",
           "params": {"mode": "qat", "qat": {"epochs": 1}}}
    return {"version": 1, "task": "digits", "seed": 0,
            "baseline": {"model": f"{ZOO}:{model}", "train": {"epochs": 4}},
            "steps": [
                {"technique": "prune", "name": "pruned",
                 "params": {"ratio": 0.5, "finetune": {"epochs": 1}}},
                {"technique": "quantize", "from": "pruned", "params": {"mode": "static"}},
                {"technique": "quantize", "from": "baseline", "params": {"mode": "dynamic"}},
                qat,
                {"technique": "distill", "from": "baseline",
                 "params": {"student": {"model": "cnn2d", "model_args": {"width": 8}},
                            "train": {"epochs": 2}}}]}


@pytest.mark.parametrize("model", ["resnet", "mobilenet"])
def test_a_zoo_model_through_every_technique(model: str, tmp_path: Path) -> None:
    run = slimkit.run_recipe(recipe(model), tmp_path / "run", progress=False, overrides=PROFILE)
    c0, pruned, static, dynamic, qat, student = run.candidates
    assert all(c.status == "ok" for c in run.candidates), [c.error for c in run.candidates]
    assert c0.model["output"] == "logits"  # taken from the ModelOutput, and said so
    assert c0.parity["max_abs_diff"] <= 1e-4 or (  # the fp32 export matches torch, or is
        c0.parity["float64_reference"]["export_error"] <= 1e-4 +  # as exact as torch itself
        c0.parity["float64_reference"]["torch_float32_error"])
    assert pruned.profile["params"] < 0.6 * c0.profile["params"]  # every block shrank
    assert pruned.parity["max_abs_diff"] <= 1e-3  # the residual Adds still line up
    for reduced in (static, dynamic, qat):
        assert reduced.parity["check"] == "class_agreement"
        assert reduced.parity["agreement"] >= 0.5  # 4 epochs: a model still far from done
    assert static.params["activations"] in ("int8", "uint8")  # chosen by timing here
    assert student.model["family"] == "cnn2d"


def test_optimize_on_a_zoo_resnet(tmp_path: Path) -> None:
    run = slimkit.optimize("digits", model=f"{ZOO}:resnet", out=tmp_path / "run",
                           techniques=["prune", "quantize"], trials=3, epochs=1, finalists=1,
                           tune_trials=0, trainer={"epochs": 3}, max_accuracy_drop=0.5,
                           profile=FAST_PROFILE, progress=False, budget="10m")
    assert run.status == "complete" and run.selected is not None
    selected = run.selected
    assert "slower_than_parent" not in selected.flags
    assert selected.parity.get("max_abs_diff", 0.0) <= 1e-4 or \
        selected.parity.get("check") == "class_agreement"
