from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import slimkit
from slimkit.core.errors import ModelError, RecipeError, TechniqueError
from slimkit.tasks import TASKS, Split, Task, TaskSpec
from slimkit.training.distill import attention_map, feature_loss, kd_loss

from ..conftest import FAST_PROFILE


class NoisyLabels(TaskSpec):
    """A linear problem whose *training* labels are 35% wrong (val/test are clean).

    A regularized teacher recovers the clean boundary; a student fitted to the noisy labels
    without a teacher memorizes the noise, a student fitted to the teacher's soft labels cannot.
    """

    name = "noisy-labels"
    description = "test task"
    default_model = "mlp"

    def load(self, seed: int, cache_dir: Path) -> Task:
        rng = np.random.default_rng(0)
        w = rng.standard_normal((12, 4))

        def split(n: int, noise: float) -> Split:
            x = rng.standard_normal((n, 12)).astype(np.float32)
            y = (x @ w).argmax(1)
            flip = rng.random(n) < noise
            y[flip] = rng.integers(0, 4, flip.sum())
            return Split(x, y.astype(np.int64))

        return Task(name=self.name, splits={"train": split(300, 0.35), "val": split(300, 0.0),
                                            "test": split(600, 0.0)},
                    input_shape=(12,), num_classes=4, default_model="mlp", seed=seed)


@pytest.fixture
def noisy_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(TASKS._items, "noisy-labels", NoisyLabels)


STUDENT_TRAIN = {"epochs": 150, "lr": 0.01, "weight_decay": 0.0, "patience": None,
                 "restore_best": False}


def _recipe(*steps: dict) -> dict:
    return {"version": 1, "task": "noisy-labels", "seed": 0, "profile": FAST_PROFILE,
            "baseline": {"model": "mlp", "model_args": {"width": 256, "depth": 2},
                         "train": {"epochs": 30, "weight_decay": 0.05, "patience": 5}},
            "steps": list(steps)}


def test_distillation_beats_the_same_student_without_teacher(noisy_task, tmp_path) -> None:
    student = {"model": "mlp", "model_args": {"width": 64, "depth": 2}}
    run = slimkit.run_recipe(_recipe(
        {"name": "kd", "technique": "distill", "from": "baseline",
         "params": {"student": student, "alpha": 0.0, "temperature": 2.0,
                    "train": STUDENT_TRAIN}},
        {"name": "alone", "technique": "distill", "from": "baseline",
         "params": {"student": student, "alpha": 1.0, "train": STUDENT_TRAIN}},
    ), tmp_path / "run", progress=False)
    teacher, kd, alone = run.candidates
    assert kd.profile["params"] <= teacher.profile["params"] / 4
    assert kd.params["student_args"] == alone.params["student_args"]
    kd_acc, alone_acc = kd.metrics["test"]["accuracy"], alone.metrics["test"]["accuracy"]
    assert kd_acc > alone_acc + 0.03, (kd_acc, alone_acc)


def test_width_multiplier_and_feature_matching(noisy_task, tmp_path) -> None:
    run = slimkit.run_recipe(_recipe(
        {"technique": "distill", "params": {"width_mult": 0.25, "train": {"epochs": 3},
                                            "feature_layer": "2", "feature_weight": 1.0}},
    ), tmp_path / "run", progress=False)
    c1 = run.candidate("c1")
    assert c1.status == "ok" and c1.model["args"]["width"] == 64
    assert c1.params["teacher"] == "c0"


def test_losses() -> None:
    import torch

    logits = torch.randn(8, 5)
    assert kd_loss(logits, logits, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(logits, torch.randn(8, 5), 4.0).item() > 0
    feats = torch.randn(4, 16, 10)
    assert attention_map(feats).shape == (4, 10)
    assert feature_loss(feats, feats * 3).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert feature_loss(feats, torch.randn(4, 32, 20)).item() > 0  # widths and lengths differ


def test_bad_teacher_and_student(noisy_task, tmp_path) -> None:
    with pytest.raises(TechniqueError, match=r"distill\.teacher: no finished candidate 'c9'"):
        slimkit.run_recipe(_recipe({"technique": "distill",
                                    "params": {"teacher": "c9", "width_mult": 0.5}}),
                           tmp_path / "a", progress=False)
    with pytest.raises(ModelError, match="model 'cnn2d' takes 3-d inputs"):
        slimkit.run_recipe(_recipe({"technique": "distill",
                                    "params": {"student": {"model": "cnn2d"}}}),
                           tmp_path / "b", progress=False)
    with pytest.raises(RecipeError, match=r"steps\[0\]\.params: value error, give student"):
        slimkit.load_recipe(_recipe({"technique": "distill", "params": {}}))
    with pytest.raises(RecipeError, match=r"steps\[0\]\.params\.temperature: input should be"):
        slimkit.load_recipe(_recipe({"technique": "distill",
                                     "params": {"width_mult": 0.5, "temperature": 0}}))


def test_a_model_without_a_width_is_distilled_into_a_compact_family() -> None:
    import optuna

    from slimkit.techniques import SearchSpec
    from slimkit.techniques.base import PrefixedTrial
    from slimkit.techniques.distill import Distill

    spec = SearchSpec(model={"family": "/x/zoo.py:resnet", "args": {}, "input_shape": [1, 8, 8],
                             "num_classes": 10, "input_dtype": "float32"})
    assert Distill.applies(spec)
    trial = optuna.trial.FixedTrial({"distill.student_width": 16, "distill.student_depth": 1})
    config = Distill.search_space(PrefixedTrial(trial, "distill."), spec)
    assert config.student.model == "cnn2d"
    assert config.student.model_args == {"width": 16, "depth": 1}
    assert Distill.label(config) == "cnn2d w16 d1"
    tokens = SearchSpec(model={**spec.model, "input_shape": [32], "input_dtype": "int64"})
    assert not Distill.applies(tokens)  # token ids: no compact family


def test_the_teacher_runs_once_per_sample_and_its_outputs_are_reused() -> None:
    from slimkit.training.distill import DistillationLoss

    teacher = torch.nn.Linear(4, 3)
    loss = DistillationLoss(teacher, temperature=2.0, alpha=0.5)
    x = torch.randn(10, 4)
    student = torch.randn(10, 3)
    first = loss(teacher, x, torch.zeros(10, dtype=torch.long), student)
    again = loss(teacher, x[[3, 1, 2]], torch.zeros(3, dtype=torch.long), student[[3, 1, 2]])
    assert loss.teacher_rows == 10  # the second batch came from the kept outputs
    with torch.no_grad():
        expected = kd_loss(student[[3, 1, 2]], teacher(x[[3, 1, 2]]), 2.0)
    assert torch.allclose(again, 0.5 * expected) and first > 0
    ids = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    class FirstToken(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t[:, :1].float().repeat(1, 3)

    tokens = DistillationLoss(FirstToken(), 2.0, 0.5)
    tokens(None, ids, None, torch.zeros(2, 3))
    tokens(None, ids[:, :2], None, torch.zeros(2, 3))  # the same sentences, less padding
    assert tokens.teacher_rows == 2


def test_a_transformer_is_distilled_into_fewer_of_its_layers() -> None:
    import optuna

    from slimkit.techniques import SearchSpec
    from slimkit.techniques.base import PrefixedTrial
    from slimkit.techniques.distill import Distill, DistillConfig, student_spec

    teacher = {"family": "minilm", "args": {"layers": 6, "heads": 12, "ffn": 1536},
               "input_shape": [128], "num_classes": 384, "input_dtype": "int64"}
    spec = SearchSpec(model=teacher)
    assert Distill.applies(spec)
    assert [s.params for s in Distill.seeds(spec)] == [{"depth_mult": 0.5}]
    trial = optuna.trial.FixedTrial({"distill.depth_mult": 0.33})
    config = Distill.search_space(PrefixedTrial(trial, "distill."), spec)
    assert student_spec(config, teacher) == ("minilm", {"layers": 2, "heads": 12, "ffn": 1536})
    assert Distill.label(config) == "depth x0.33"
    assert student_spec(DistillConfig(depth_mult=0.67), teacher)[1]["layers"] == 4
    unknown = SearchSpec(model={**teacher, "family": "hf:/m", "args": {"layers": None}})
    assert not Distill.applies(unknown)  # an hf: model with every layer: its count is unknown
