"""Every registered technique goes through the same checks (like Optuna's sampler suite)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

import slimkit
from slimkit.techniques import TECHNIQUES

from ..conftest import FAST_PROFILE

# the smallest meaningful parameters of each technique; a new technique must add its own
EXAMPLES = {
    "train": {"epochs": 1},
    "export": {},
    "prune": {"ratio": 0.5, "finetune": {"epochs": 1}},
    "distill": {"width_mult": 0.5, "train": {"epochs": 1}},
    "quantize": {"mode": "dynamic"},
    "arch": {"trials": 2, "families": ["mobilenet"], "width_mult": [0.25], "depth": [1],
             "kernel_size": [3], "expansion": [1, 2], "max_latency_ratio": None,
             "train": {"epochs": 1}},
    "tune": {"trials": 2, "pruner": "none", "train": {"epochs": 1},
             "space": {"train.lr": {"choices": [0.01, 0.001]}}},
}


def test_every_technique_has_an_example_here() -> None:
    assert set(TECHNIQUES.names()) == set(EXAMPLES)


@pytest.mark.parametrize("name", TECHNIQUES.names())
def test_technique_config_is_strict_and_documented(name: str) -> None:
    cls = TECHNIQUES.get(name)
    assert cls.name == name and cls.description
    with pytest.raises(ValidationError):
        cls.Config.model_validate({**EXAMPLES[name], "no_such_parameter": 1})
    cls(cls.Config.model_validate(EXAMPLES[name]))  # constructing does no work


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_technique_makes_a_new_measured_candidate_from_an_untouched_parent(
    tmp_path: Path,
) -> None:
    from slimkit.pipeline.engine import run_step
    from slimkit.recipe import load_recipe
    from slimkit.tasks import load_task

    recipe = {"version": 1, "task": "digits", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "cnn2d", "model_args": {"width": 8}, "train": {"epochs": 2}}}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    c0 = run.candidate("c0")
    before = json.dumps(c0.to_dict(), sort_keys=True)
    files = {rel: _digest(run.path / rel) for rel in c0.artifacts.values()}
    task = load_task("digits")
    for name in sorted(EXAMPLES):
        steps = [{"technique": name, "from": "baseline", "params": EXAMPLES[name]}]
        cand = run_step(0, load_recipe({**recipe, "steps": steps}), run, task,
                         slimkit.ProfileSettings(**FAST_PROFILE), False, {"baseline": "c0"})
        assert cand.status == "ok", (name, cand.error)
        assert cand.technique == name and cand.parent == "c0" and cand.id == "c1"
        parity = cand.parity.get("onnx", cand.parity)
        if parity.get("check") == "class_agreement":  # reduced precision: classes must agree
            assert parity["agreement"] >= 0.9
        else:
            assert parity["max_abs_diff"] <= 1e-4
        assert cand.profile["onnxruntime"]["latency_ms"]["p50"] > 0
        assert 0 <= cand.metrics["test"]["accuracy"] <= 1
        assert (run.path / cand.artifacts["onnx"]).is_file()
        # the parent, in memory and on disk, is exactly as it was
        assert json.dumps(c0.to_dict(), sort_keys=True) == before
        assert files == {rel: _digest(run.path / rel) for rel in c0.artifacts.values()}
