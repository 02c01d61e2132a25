"""A technique is one file: this one is defined and registered here alone, and `slimkit
optimize --techniques toy,quantize` searches it, labels it, seeds it and records it, with no edit
anywhere else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import Field

from slimkit.cli import main
from slimkit.core.runs import Candidate
from slimkit.models import build_model
from slimkit.techniques import (
    TECHNIQUES,
    Context,
    PrefixedTrial,
    SearchSpec,
    Seed,
    Technique,
    TechniqueConfig,
    register_technique,
)
from slimkit.training import TrainConfig, fit

from ..conftest import FAST_PROFILE
from ..techniques.contract import check_config, check_search_hooks


class NarrowConfig(TechniqueConfig):
    keep: float = Field(0.5, gt=0, le=1, description="share of the width kept")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=1))


class Narrow(Technique):
    """The parent's architecture at a share of its width, trained from scratch."""

    name = "toy"
    description = "a narrower copy of the parent's architecture, trained from scratch"
    Config = NarrowConfig
    role = "compress"

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: NarrowConfig = self.config  # type: ignore[assignment]
        _, spec = context.load_model(parent)
        args = {**spec["args"], "width": max(1, round(spec["args"]["width"] * config.keep))}
        torch.manual_seed(context.seed)
        model = build_model(spec["family"], args, context.task.input_shape,
                            context.task.num_classes)
        result = fit(model, context.task, config.train, seed=context.seed, progress=False)
        return context.materialize(model, {**spec, "args": args}, params=config.model_dump(),
                                   training=result.to_dict())

    @classmethod
    def applies(cls, spec: SearchSpec) -> bool:
        return "width" in spec.model_args

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> NarrowConfig:
        return NarrowConfig(keep=trial.suggest_categorical("keep", [0.25, 0.5]),
                            train=TrainConfig(**spec.train))

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        return f"keep {config.keep:g}"  # type: ignore[attr-defined]

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        return [Seed({"keep": 0.25}, lower_precision=True)]


@pytest.fixture
def toy() -> Iterator[type[Technique]]:
    register_technique(Narrow)
    yield Narrow
    TECHNIQUES.unregister("toy")


def test_the_toy_keeps_the_technique_contract(toy: type[Technique]) -> None:
    check_config(toy, {"keep": 0.5})
    check_search_hooks(toy, SearchSpec(model={"family": "cnn1d", "args": {"width": 16}},
                                       train={"epochs": 1}))


def test_optimize_searches_labels_and_records_a_technique_registered_here(
        toy: type[Technique], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    profile = [f"--set=profile.{k}={v}" for k, v in FAST_PROFILE.items()]
    code = main(["optimize", "--task", "mnist1d", "--model", "cnn1d", "--set", "model.width=16",
                 "--set", "model.depth=2", "--set", "train.epochs=2", "--tune-trials", "0",
                 "--epochs", "1", "--techniques", "toy,quantize", "--trials", "3",
                 "--finalists", "1", "--objective", "size", "--max-accuracy-drop", "0.9",
                 "--quiet", "--out", str(out), *profile])
    assert code == 0, capsys.readouterr().err
    run: dict[str, Any] = json.loads((out / "run.json").read_text())
    assert run["config"]["optimize"]["techniques"] == ["quantize", "toy"]
    chains = [t["chain"] for t in run["config"]["search"]["trials"]]
    # its seed first, chained with quantization as the seed asks, then quantization's own
    assert chains[:2] == ["toy(keep 0.25) + quantize(static)", "quantize(static)"]
    assert all(c.startswith(("toy(keep 0.", "quantize(")) for c in chains)
    toys = [c for c in run["candidates"] if c["technique"] == "toy"]
    assert toys and toys[0]["params"]["chain"].startswith("toy(keep 0.")
    assert toys[0]["model"]["args"]["width"] == 16 * toys[0]["params"]["keep"]
    capsys.readouterr()
    assert main(["techniques"]) == 0
    listed = capsys.readouterr().out
    assert "toy" in listed and "a narrower copy" in listed


def test_a_role_without_a_search_space_is_refused_at_registration() -> None:
    class Incomplete(Technique):
        name = "incomplete"
        description = "has a role, cannot be sampled"
        Config = NarrowConfig
        role = "compress"

        def apply(self, parent: Candidate, context: Context) -> Candidate:
            raise NotImplementedError

    with pytest.raises(TypeError, match="has role 'compress' but no search_space"):
        register_technique(Incomplete)
    assert "incomplete" not in TECHNIQUES
