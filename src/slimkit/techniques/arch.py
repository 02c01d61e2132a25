"""``arch``: search an efficient architecture (MobileNet- or EfficientNet-style) for the task.

A multi-objective Optuna study over family, width, depth, kernel size and expansion, on
(val metric, measured onnxruntime latency at batch 1). Each trial trains a student, by default
distilled from the parent as teacher. Architectures measured slower than the parent are
dropped; of the rest on the Pareto front, the most accurate is retrained as the candidate and
the whole front is recorded. With ``architecture`` given there is no study: that student is
trained (how a search over technique chains uses ``arch``: one architecture per trial).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import optuna
import torch
from pydantic import Field, field_validator

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.core.studies import (
    default_url,
    make_sampler,
    open_storage,
    recover_interrupted,
    resume_sampler,
)
from slimkit.measure.profile import onnx_latency
from slimkit.models import build_model, model_config
from slimkit.techniques.base import (
    Context,
    PrefixedTrial,
    SearchSpec,
    Seed,
    Technique,
    TechniqueConfig,
    register_technique,
)
from slimkit.techniques.budgeted import StudyLimits, recorded, run_trials, start_trial
from slimkit.training import TrainConfig, fit
from slimkit.training.distill import DistillationLoss

FAMILIES = ("mobilenet", "efficientnet")
INPUT_RANKS = (2, 3)  # the efficient families take channels-first signals or images


class Architecture(TechniqueConfig):
    """One student architecture: a family and its arguments."""

    family: Literal["mobilenet", "efficientnet"]
    args: dict[str, Any] = Field(default_factory=dict)


class ArchConfig(StudyLimits):
    """The architecture space, the study's budget and how students are trained."""

    architecture: Architecture | None = Field(
        None, description="train this architecture instead of searching one")

    families: list[Literal["mobilenet", "efficientnet"]] = Field(
        default_factory=lambda: list(FAMILIES), min_length=1,
        description="architecture families to search")
    width_mult: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
                                    min_length=1, description="width multipliers to try")
    depth: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                             description="numbers of stages to try")
    kernel_size: list[int] = Field(default_factory=lambda: [3, 5, 7], min_length=1,
                                   description="depthwise kernel sizes to try")
    expansion: list[int] = Field(default_factory=lambda: [2, 4, 6], min_length=1,
                                 description="inverted-residual expansion ratios to try")
    head: list[Literal["pool", "flatten"]] = Field(
        default_factory=lambda: ["flatten", "pool"], min_length=1,
        description="classifier heads to try: global pooling or flatten")
    phi: list[float] = Field(default_factory=lambda: [-1.0, 0.0, 1.0], min_length=1,
                             description="efficientnet compound coefficients to try")
    trials: int = Field(12, ge=1, le=10000, description="complete trials")
    sampler: Literal["tpe", "nsga2", "random"] = Field(
        "tpe", description="Optuna sampler of the (accuracy, latency) search")
    distill: bool = Field(True, description="train students on the parent's soft labels")
    temperature: float = Field(4.0, gt=0, description="softmax temperature of distillation")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard-label loss")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=40),
                               description="student training")
    max_latency_ratio: float | None = Field(
        1.0, gt=0, description="drop architectures slower than this times the parent's "
                               "latency (null: keep all)")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: list[int]) -> list[int]:
        even = [k for k in value if k % 2 == 0 or k < 1]
        if even:
            raise ValueError(f"kernel sizes must be odd and positive, got {even}")
        return value

    @property
    def trial_budget(self) -> int:
        """Complete trials to run (the name ``run_trials`` reads)."""
        return self.trials


def sample_architecture(trial: optuna.Trial | PrefixedTrial, config: ArchConfig
                        ) -> tuple[str, dict[str, Any]]:
    """(family, model args) for one trial of ``config``'s space."""
    family = trial.suggest_categorical("family", config.families)
    args = {"width_mult": trial.suggest_categorical("width_mult", config.width_mult),
            "depth": trial.suggest_categorical("depth", config.depth),
            "kernel_size": trial.suggest_categorical("kernel_size", config.kernel_size),
            "expansion": trial.suggest_categorical("expansion", config.expansion),
            "head": trial.suggest_categorical("head", config.head)}
    if family == "efficientnet":
        args["phi"] = trial.suggest_categorical("phi", config.phi)
    return family, model_config(family, args).model_dump()


def train_student(family: str, args: dict[str, Any], teacher: torch.nn.Module | None,
                  config: ArchConfig, context: Context, description: str,
                  progress: bool) -> tuple[torch.nn.Module, Any]:
    """Build and train a student (distilled from ``teacher`` when given); (model, result)."""
    torch.manual_seed(context.seed)
    student = build_model(family, args, context.task.input_shape, context.task.num_classes,
                          context.task.input_dtype)
    loss = None
    if teacher is not None:
        loss = DistillationLoss(teacher, config.temperature, config.alpha,
                                kind=context.task.kind)
    result = fit(student, context.task, config.train, seed=context.seed, progress=progress,
                 description=description, extra_loss=loss,
                 hard_weight=config.alpha if teacher is not None else 1.0)
    return student, result


def fast_enough(trials: list[optuna.trial.FrozenTrial], parent_latency: float,
                ratio: float | None) -> list[optuna.trial.FrozenTrial]:
    """The trials whose measured latency (``values[1]``) is within ``ratio`` x the parent's."""
    if ratio is None:
        return list(trials)
    return [t for t in trials if t.values[1] <= ratio * parent_latency]


class ArchObjective:
    """One trial: sample an architecture, train it, measure it; (val metric, latency ms)."""

    def __init__(self, config: ArchConfig, context: Context,
                 teacher: torch.nn.Module | None) -> None:
        self.config, self.context, self.teacher = config, context, teacher

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        return recorded(trial, lambda: self._run(trial))

    def _run(self, trial: optuna.Trial) -> tuple[float, float]:
        start = time.perf_counter()
        start_trial(trial, self.config.trial_budget)
        family, args = sample_architecture(trial, self.config)
        student, result = train_student(family, args, self.teacher, self.config, self.context,
                                        "arch", progress=False)
        with tempfile.TemporaryDirectory(prefix="slimkit-arch-") as tmp:
            latency = onnx_latency(student, self.context.task, self.context.settings.quick(),
                                   Path(tmp))
        trial.set_user_attr("model", {"family": family, "args": args})
        trial.set_user_attr("params_count", sum(p.numel() for p in student.parameters()))
        trial.set_user_attr("trial_seconds", time.perf_counter() - start)
        return result.best_val, latency


@register_technique
class Arch(Technique):
    """Search an efficient student; the most accurate Pareto architecture not slower than the
    parent is retrained as the candidate."""

    name = "arch"
    description = "multi-objective search of a MobileNet/EfficientNet-style student (acc, latency)"
    Config = ArchConfig
    role = "compress"

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: ArchConfig = self.config  # type: ignore[assignment]
        teacher = context.load_model(parent)[0].eval() if config.distill else None
        if config.architecture is not None:
            return self._train(config.architecture.family,
                               model_config(config.architecture.family,
                                            config.architecture.args).model_dump(),
                               teacher, context, {})
        study = self._study(teacher, context)
        parent_latency = parent.latency_ms()
        if parent_latency is None:
            raise TechniqueError(f"arch: the parent {parent.id} has no onnxruntime latency")
        front = study.best_trials
        kept = fast_enough(front, parent_latency, config.max_latency_ratio)
        if not kept:
            raise TechniqueError(
                f"arch: none of the {len(front)} Pareto architectures was faster than "
                f"{config.max_latency_ratio}x the parent's latency ({parent_latency:.4f} ms at "
                f"batch 1); try smaller width_mult/depth or raise max_latency_ratio")
        sign = 1.0 if context.task.direction == "maximize" else -1.0
        best = max(kept, key=lambda t: (sign * t.values[0], -t.values[1]))
        found = {"best_trial": best.number, "parent_latency_ms": parent_latency,
                 "pareto": [{"number": t.number, "values": t.values,
                             "model": t.user_attrs.get("model"),
                             "dropped_as_slower": t not in kept} for t in front],
                 "trials": [{"number": t.number, "state": t.state.name.lower(),
                             "values": t.values, "model": t.user_attrs.get("model")}
                            for t in study.trials if not t.user_attrs.get("budget_reached")]}
        model = best.user_attrs["model"]
        return self._train(model["family"], model["args"], teacher, context, found)

    def _study(self, teacher: torch.nn.Module | None, context: Context) -> optuna.Study:
        """The multi-objective study of this step, run to its budget (resumable)."""
        config: ArchConfig = self.config  # type: ignore[assignment]
        study = optuna.create_study(
            storage=open_storage(context.storage or default_url(context.run_dir)),
            study_name=f"{context.run_key or context.run_dir.name}-{context.new_id}-arch",
            load_if_exists=True, sampler=make_sampler(config.sampler, context.seed),
            directions=[context.task.direction, "minimize"])
        study.set_user_attr("slimkit_arch", {"task": context.task.name, "seed": context.seed})
        recover_interrupted(study)
        study.sampler = resume_sampler(config.sampler, context.seed, study)  # no repeated draws
        run_trials(study, ArchObjective(config, context, teacher), config,
                   progress=context.progress)
        study.set_user_attr("finished", True)
        return study

    def _train(self, family: str, args: dict[str, Any], teacher: torch.nn.Module | None,
               context: Context, found: dict[str, Any]) -> Candidate:
        """Train the chosen student and measure it as the candidate."""
        config: ArchConfig = self.config  # type: ignore[assignment]
        student, result = train_student(family, args, teacher, config, context,
                                        f"{context.new_id} arch", context.progress)
        spec = {"family": family, "args": args, "input_shape": list(context.task.input_shape),
                "num_classes": context.task.num_classes,
                "input_dtype": context.task.input_dtype}
        params = {**config.model_dump(mode="json"), **found}
        return context.materialize(student, spec, params=params, training=result.to_dict())

    @classmethod
    def applies(cls, spec: SearchSpec) -> bool:
        """The efficient families take float signals (C, L) or images (C, H, W)."""
        return spec.input_dtype == "float32" and len(spec.input_shape) in INPUT_RANKS

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> ArchConfig:
        """One architecture of the default space, distilled from the parent."""
        family, args = sample_architecture(trial, ArchConfig())
        return ArchConfig(architecture=Architecture(family=family, args=args),
                          train=TrainConfig(**spec.train))

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        arch: ArchConfig = config  # type: ignore[assignment]
        if arch.architecture is None:
            return f"{arch.trials} trials"
        args = model_config(arch.architecture.family, arch.architecture.args).model_dump()
        phi = f" phi{args['phi']:g}" if "phi" in args else ""
        return (f"{arch.architecture.family} w{args['width_mult']:g} d{args['depth']} "
                f"k{args['kernel_size']} e{args['expansion']} {args['head']}{phi}")

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        return [Seed({"family": "mobilenet", "width_mult": 0.5, "depth": 3, "kernel_size": 5,
                      "expansion": 4, "head": "flatten"})]
