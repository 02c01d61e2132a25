"""``distill``: train a smaller student on a teacher's softened logits (Hinton et al. 2015)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.models import build_model, model_args
from slimkit.techniques.base import (
    Context,
    PrefixedTrial,
    SearchSpec,
    Seed,
    Technique,
    TechniqueConfig,
    register_technique,
)
from slimkit.training import TrainConfig, fit
from slimkit.training.distill import DistillationLoss, capture

WIDTHS = ("width", "width_mult")  # the model arguments a width multiplier scales
LAYERS = "layers"  # a transformer's depth: its student keeps fewer (pretrained) layers
LAYER_MULTS = [0.33, 0.5, 0.67]  # of MiniLM's 6 layers: 2, 3 or 4
# a model without a width (yours, a model zoo's) is distilled into a compact built-in family,
# by the rank of one float sample: features, signals (channels, length), images (c, h, w)
COMPACT = {1: "mlp", 2: "cnn1d", 3: "cnn2d"}
STUDENT_WIDTHS = [8, 16, 32]
STUDENT_DEPTHS = [1, 2]  # stages (cnn) or hidden layers (mlp): one stage is the cheapest


def compact_student(spec: SearchSpec) -> str | None:
    """The built-in family a model without a width argument is distilled into (None: none)."""
    if spec.model.get("input_dtype", "float32") != "float32":
        return None
    return COMPACT.get(len(spec.input_shape))


class StudentSpec(TechniqueConfig):
    model: str = Field(description="model family (see `slimkit models`)")
    model_args: dict[str, Any] = Field(default_factory=dict)


class DistillConfig(TechniqueConfig):
    teacher: str | None = Field(None, description="candidate id of the teacher [default: parent]")
    student: StudentSpec | None = Field(None, description="the student's family and args")
    width_mult: float | None = Field(
        None, gt=0, le=4, description="student = teacher's architecture with width x this")
    depth_mult: float | None = Field(
        None, gt=0, le=4, description="... and depth x this")
    temperature: float = Field(4.0, gt=0, description="softmax temperature")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard-label loss")
    feature_layer: str | None = Field(
        None, description="module name whose activations are matched (student and teacher)")
    teacher_layer: str | None = Field(None, description="teacher module [default: same name]")
    feature_weight: float = Field(0.0, ge=0, description="weight of the feature term")
    train: TrainConfig = Field(default_factory=TrainConfig, description="student training")

    @model_validator(mode="after")
    def _one_student(self) -> DistillConfig:
        multipliers = self.width_mult is not None or self.depth_mult is not None
        if self.student is None and not multipliers:
            raise ValueError("give student (model + model_args) or width_mult/depth_mult")
        if self.student is not None and multipliers:
            raise ValueError("give student or width_mult/depth_mult, not both")
        return self


def _layered(args: dict[str, Any]) -> bool:
    """A model whose layer count is known (MiniLM; an ``hf:`` model whose ``layers`` is set)."""
    return isinstance(args.get(LAYERS), int)


def _by_layers(args: dict[str, Any]) -> bool:
    """A transformer without a width: its students differ from it in depth only."""
    return _layered(args) and not any(key in args for key in WIDTHS)


def student_spec(config: DistillConfig, teacher_spec: dict[str, Any]) -> tuple[str, dict]:
    """The student's (family, args): explicit, or the teacher's scaled by the multipliers."""
    if config.student is not None:
        return config.student.model, dict(config.student.model_args)
    args = dict(teacher_spec["args"])
    for key, mult in (("width", config.width_mult), ("depth", config.depth_mult)):
        if mult is None:
            continue
        if key == "width" and key not in args and "width_mult" in args:
            args["width_mult"] = args["width_mult"] * mult  # the efficient families
            continue
        if key == "depth" and key not in args and _layered(args):
            key = LAYERS  # transformers: layers kept
        if key not in args:
            raise TechniqueError(f"distill.{key}_mult: the teacher's model "
                                 f"{teacher_spec['family']!r} has no {key} parameter")
        args[key] = max(1, round(args[key] * mult))
    if isinstance(args.get("heads"), int) and args.get("width"):  # attention: whole heads
        args["width"] = max(1, round(args["width"] / args["heads"])) * args["heads"]
    return teacher_spec["family"], args


@register_technique
class Distill(Technique):
    name = "distill"
    description = "train a smaller student on the teacher's softened logits (+ features)"
    Config = DistillConfig
    role = "compress"

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: DistillConfig = self.config  # type: ignore[assignment]
        teacher_id = config.teacher or parent.id
        if teacher_id not in context.candidates:
            known = ", ".join(context.candidates) or "none"
            raise TechniqueError(f"distill.teacher: no finished candidate {teacher_id!r}; "
                                 f"finished: {known}")
        teacher, teacher_spec = context.load_model(context.candidates[teacher_id])
        family, args = student_spec(config, teacher_spec)
        torch.manual_seed(context.seed)
        student = build_model(family, args, context.task.input_shape, context.task.num_classes,
                              context.task.input_dtype)
        spec = {"family": family, "args": student_spec_args(family, args),
                "input_shape": list(context.task.input_shape),
                "num_classes": context.task.num_classes,
                "input_dtype": context.task.input_dtype}
        features: dict[str, torch.Tensor] = {}
        loss = DistillationLoss(teacher, config.temperature, config.alpha, features,
                                config.feature_weight, kind=context.task.kind)
        layer = config.feature_layer if config.feature_weight > 0 else None
        with capture(student, layer, features, "student"), capture(
                teacher, config.teacher_layer or layer, features, "teacher"):
            result = fit(student, context.task, config.train, seed=context.seed,
                         progress=context.progress, description=f"{context.new_id} distill",
                         extra_loss=loss, hard_weight=config.alpha)
        params = {**config.model_dump(), "teacher": teacher_id,
                  "student_family": family, "student_args": spec["args"]}
        return context.materialize(student, spec, params=params, training=result.to_dict())

    @classmethod
    def applies(cls, spec: SearchSpec) -> bool:
        """A student the teacher's shape but narrower (the model has a width argument) or
        shallower (a transformer's ``layers``), or a compact built-in family for float inputs
        (``COMPACT``)."""
        args = spec.model_args
        return (any(key in args for key in WIDTHS) or _layered(args)
                or compact_student(spec) is not None)

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> DistillConfig:
        """The teacher's architecture at 1/8 to 1/2 of its width, distilled; a model without a
        width: the compact family of its inputs at width 8, 16 or 32, depth 1 or 2; a
        transformer: a third, half or two thirds of its layers."""
        if _by_layers(spec.model_args):
            depth = trial.suggest_categorical("depth_mult", LAYER_MULTS)
            return DistillConfig(depth_mult=depth, train=TrainConfig(**spec.train))
        if not any(key in spec.model_args for key in WIDTHS):
            width = trial.suggest_categorical("student_width", STUDENT_WIDTHS)
            depth = trial.suggest_categorical("student_depth", STUDENT_DEPTHS)
            student = StudentSpec(model=compact_student(spec) or "mlp",
                                  model_args={"width": width, "depth": depth})
            return DistillConfig(student=student, train=TrainConfig(**spec.train))
        width = trial.suggest_categorical("width_mult", [0.125, 0.25, 0.375, 0.5])
        return DistillConfig(width_mult=width, train=TrainConfig(**spec.train))

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        distill: DistillConfig = config  # type: ignore[assignment]
        if distill.student is not None:
            args = distill.student.model_args
            shape = "".join(f" {k[0]}{args[k]}" for k in ("width", "depth") if k in args)
            return distill.student.model + shape
        parts = [f"{key} x{value:g}" for key, value in (("width", distill.width_mult),
                                                         ("depth", distill.depth_mult))
                 if value is not None]
        return ", ".join(parts)

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        if _by_layers(spec.model_args):
            return [Seed({"depth_mult": 0.5}, lower_precision=True)]
        if not any(key in spec.model_args for key in WIDTHS):
            return [Seed({"student_width": 16, "student_depth": 1}, lower_precision=True)]
        return [Seed({"width_mult": 0.25}, lower_precision=True)]


def student_spec_args(family: str, args: dict[str, Any]) -> dict[str, Any]:
    """The student's full args (defaults filled in), as stored with the model."""
    return model_args(family, args)
