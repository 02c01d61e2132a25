"""The contract every technique keeps, like Optuna's sampler suite: ``check_*`` functions that
``test_contract.py`` runs for every registered technique on a task of each kind, and that a new
technique's own tests can call (``test_new_technique.py`` does).

- its config rejects unknown keys, naming the path;
- its search hooks give complete, valid configs, a label and seeds in its own parameter names;
- ``apply`` never changes its parent, in memory or on disk;
- the child is exported, checked against torch (or, reduced precision, against the float
  model's outputs) and measured, with every metric of the task;
- the same seed gives the same metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from slimkit.core.errors import RecipeError, TechniqueError
from slimkit.core.runs import Candidate
from slimkit.core.validation import validate
from slimkit.measure.timing import ProfileSettings
from slimkit.models import build_model, model_config
from slimkit.pipeline.candidates import materialize
from slimkit.tasks import Task
from slimkit.techniques import Context, PrefixedTrial, SearchSpec, Technique
from slimkit.training import TrainConfig, fit

from ..conftest import FAST_PROFILE

PARENT_FAMILY, PARENT_ARGS = "cnn1d", {"width": 8, "depth": 2, "kernel_size": 3}
REDUCED_CHECKS = {"classification": "class_agreement", "embedding": "cosine",
                  "regression": "relative_mae"}
SETTINGS = ProfileSettings(**FAST_PROFILE)


def make_parent(task: Task, folder: Path, family: str = PARENT_FAMILY,
                family_args: dict[str, Any] | None = None, epochs: int = 2) -> Candidate:
    """A trained, exported and measured ``c0`` in ``folder``, as the engine makes one."""
    torch.manual_seed(0)
    args = model_config(family, PARENT_ARGS if family_args is None else family_args
                        ).model_dump()
    model = build_model(family, args, task.input_shape, task.num_classes)
    train = TrainConfig(epochs=epochs)
    result = fit(model, task, train, seed=0, progress=False)
    spec = {"family": family, "args": args, "input_shape": list(task.input_shape),
            "num_classes": task.num_classes, "input_dtype": task.input_dtype}
    return materialize("c0", None, "train", train.model_dump(), model, spec, task, folder,
                       SETTINGS, training=result.to_dict())


def _context(name: str, task: Task, folder: Path, parent: Candidate) -> Context:
    def make(model: Any, spec: dict[str, Any], params: dict[str, Any],
             training: dict[str, Any] | None = None, onnx_source: Path | None = None
             ) -> Candidate:
        return materialize("c1", parent.id, name, params, model, spec, task, folder, SETTINGS,
                           training=training, onnx_source=onnx_source)

    return Context(task=task, run_dir=folder, seed=0, settings=SETTINGS, progress=False,
                   candidates={parent.id: parent}, new_id="c1", materialize=make)


def _digests(folder: Path, candidate: Candidate) -> dict[str, str]:
    return {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest()
            for rel in candidate.artifacts.values()}


def check_config(technique: type[Technique], example: dict[str, Any]) -> None:
    """The config names an unknown key with its path; the example builds the technique."""
    with pytest.raises(RecipeError, match=r"^steps\[0\]\.params\.no_such_parameter: unknown "
                                          r"parameter; allowed: "):
        validate(technique.Config, {**example, "no_such_parameter": 1},
                 prefix="steps[0].params", error=RecipeError)
    built = technique(technique.Config.model_validate(example))
    assert built.config == technique.Config.model_validate(example)
    assert technique.name and technique.description


def check_search_hooks(technique: type[Technique], spec: SearchSpec, trials: int = 6) -> None:
    """A technique with a role gives a complete, valid config for any trial (its seeds first,
    their values kept), under its own prefixed parameter names, with a label. One without a
    role cannot be searched and has no seeds."""
    assert isinstance(technique.applies(spec), bool)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    if technique.role is None:
        with pytest.raises(TechniqueError, match="cannot be searched"):
            technique.search_space(PrefixedTrial(study.ask(), f"{technique.name}."), spec)
        assert technique.seeds(spec) == []
        return
    seeds = technique.seeds(spec)
    for seed in seeds:
        study.enqueue_trial({f"{technique.name}.{k}": v for k, v in seed.params.items()})
    for index in range(max(trials, len(seeds))):
        trial = study.ask()
        config = technique.search_space(PrefixedTrial(trial, f"{technique.name}."), spec)
        assert isinstance(config, technique.Config)
        again = technique.Config.model_validate(config.model_dump(mode="json"))
        assert again == config  # complete and valid: what a trial stores rebuilds it
        assert trial.params and all(k.startswith(f"{technique.name}.") for k in trial.params)
        assert isinstance(technique.label(config), str) and technique.label(config)
        if index < len(seeds):
            assert trial.params == {f"{technique.name}.{k}": v
                                    for k, v in seeds[index].params.items()}
        study.tell(trial, 0.0)


def apply_once(technique: type[Technique], example: dict[str, Any], task: Task,
               parent_folder: Path, parent: Candidate, folder: Path) -> Candidate:
    """Apply the technique to a copy of the parent's run folder and check the child; the
    parent, in memory and on disk, must come out as it went in."""
    shutil.copytree(parent_folder, folder)
    mine = Candidate.from_dict(parent.to_dict())
    before, files = json.dumps(mine.to_dict(), sort_keys=True), _digests(folder, mine)
    context = _context(technique.name, task, folder, mine)
    child = technique(technique.Config.model_validate(example)).apply(mine, context)
    assert json.dumps(mine.to_dict(), sort_keys=True) == before
    assert _digests(folder, mine) == files
    check_child(child, mine, task, folder)
    return child


def check_child(child: Candidate, parent: Candidate, task: Task, folder: Path) -> None:
    """Exported, checked and measured like every candidate."""
    assert child.status == "ok" and child.id == "c1" and child.parent == parent.id
    onnx_file = folder / child.artifacts["onnx"]
    assert onnx_file.is_file() and child.size_bytes == onnx_file.stat().st_size
    parity = child.parity.get("onnx", child.parity)  # export keeps one record per format
    if "torch" in child.artifacts:
        assert (folder / child.artifacts["torch"]).is_file()
        assert parity["max_abs_diff"] <= 1e-4 and parity["samples"] > 0
    else:  # reduced precision: judged by how close it stays to the float model
        assert parity["check"] == REDUCED_CHECKS[task.kind] and parity["samples"] > 0
    assert child.latency_ms() > 0 and child.throughput() > 0
    assert child.stat("params") > 0 and child.stat("macs") > 0
    for split in ("val", "test"):
        assert math.isfinite(child.metric(split, task.metric))
        assert math.isfinite(child.metric(split, "loss"))
