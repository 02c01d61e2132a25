"""``arch``: search the architecture for the task, across model families.

A multi-objective Optuna study over the family (convolutional, efficient, recurrent,
temporal-convolutional, attention) and its arguments, on (val metric, measured onnxruntime
latency at batch 1). Families that cannot read the task's input (a GRU on images, unless
``rows`` reads their rows as a sequence) are skipped, with the reason printed and recorded.
Each trial trains a student, by default distilled from the parent as teacher. Architectures
measured slower than the parent are dropped; of the rest on the Pareto front, the most
accurate is retrained as the candidate, and the whole front and each family's own front are
recorded. With ``architecture`` given there is no study: that student is trained (how a search
over technique chains uses ``arch``: one architecture per trial).

MobileNet/EfficientNet-style students use this config's ``width_mult``, ``depth``,
``kernel_size``, ``expansion``, ``head`` and ``phi``; every other family the choices it
registered (``slimkit models``), overridden by ``spaces``.
"""

from __future__ import annotations

import functools
import itertools
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Literal, get_args

import optuna
import torch
from pydantic import Field, field_validator

from slimkit.core.console import err_console
from slimkit.core.errors import ModelError, TechniqueError
from slimkit.core.runs import Candidate
from slimkit.core.studies import (
    default_url,
    make_sampler,
    open_storage,
    recover_interrupted,
    resume_sampler,
)
from slimkit.measure.profile import onnx_latency
from slimkit.models import MODELS, build_model, model_config
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

EFFICIENT = ("mobilenet", "efficientnet")  # searched with this config's own fields
Family = Literal["cnn1d", "cnn2d", "mobilenet", "efficientnet", "gru", "lstm", "tcn",
                 "transformer"]
FAMILIES: tuple[str, ...] = get_args(Family)
INPUT_RANKS = (2, 3)  # every family here takes channels-first signals or images


class Architecture(TechniqueConfig):
    """One student architecture: a family and its arguments."""

    family: Family
    args: dict[str, Any] = Field(default_factory=dict)


class ArchConfig(StudyLimits):
    """The architecture space, the study's budget and how students are trained."""

    architecture: Architecture | None = Field(
        None, description="train this architecture instead of searching one")

    families: list[Family] = Field(
        default_factory=lambda: list(FAMILIES), min_length=1,
        description="architecture families to search (those that cannot read the task's "
                    "input are skipped, with the reason)")
    rows: bool = Field(False, description="images: let the sequence families (gru, lstm, tcn, "
                                          "transformer) read their rows as a sequence")
    spaces: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="per family, argument choices replacing its "
                                          "registered ones (e.g. {gru: {width: [32, 64]}})")
    width_mult: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0],
                                    min_length=1,
                                    description="mobilenet/efficientnet: width multipliers")
    depth: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1,
                             description="mobilenet/efficientnet: stages to try")
    kernel_size: list[int] = Field(default_factory=lambda: [3, 5, 7], min_length=1,
                                   description="mobilenet/efficientnet: depthwise kernel sizes")
    expansion: list[int] = Field(default_factory=lambda: [2, 4, 6], min_length=1,
                                 description="mobilenet/efficientnet: expansion ratios")
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

    @field_validator("spaces")
    @classmethod
    def _known_arguments(cls, value: dict[str, dict[str, list[Any]]]
                         ) -> dict[str, dict[str, list[Any]]]:
        for family, space in value.items():
            if family not in FAMILIES or family in EFFICIENT:
                allowed = ", ".join(f for f in FAMILIES if f not in EFFICIENT)
                raise ValueError(f"{family!r}: not a family with a registered space; allowed: "
                                 f"{allowed} (mobilenet/efficientnet use width_mult, depth, ...)")
            fields = MODELS.get(family).config.model_fields
            for name, choices in space.items():
                if name not in fields:
                    raise ValueError(f"{family}.{name}: not a parameter of {family}; allowed: "
                                     f"{', '.join(fields)}")
                if not choices:
                    raise ValueError(f"{family}.{name}: give at least one choice")
            _check_combinations(family, {**(MODELS.get(family).search or {}), **space})
        return value

    @property
    def trial_budget(self) -> int:
        """Complete trials to run (the name ``run_trials`` reads)."""
        return self.trials


def _check_combinations(family: str, space: dict[str, list[Any]], limit: int = 4096) -> None:
    """Every combination of ``space`` must be a valid ``family`` config (for a large space,
    each choice alone): a bad choice is refused here, not trial after trial."""
    names = list(space)
    grid = [dict(zip(names, values, strict=True)) for values in
            itertools.product(*space.values())] if math.prod(map(len, space.values())) <= limit \
        else [{name: choice} for name in names for choice in space[name]]
    for args in grid:
        for name, choice in args.items():
            if not isinstance(choice, bool | int | float | str):
                raise ValueError(f"{family}.{name}: choices are numbers, booleans or text, "
                                 f"got {choice!r}")
        try:
            model_config(family, args)
        except ModelError as err:
            raise ValueError(f"{family}: the choices {args} are not a valid {family}: "
                             f"{err}") from None


def family_space(family: str, config: ArchConfig) -> dict[str, list[Any]]:
    """The argument choices searched for a non-efficient ``family``."""
    registered = MODELS.get(family).search or {}
    return {**registered, **config.spaces.get(family, {})}


def fixed_args(family: str, config: ArchConfig, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Arguments not searched: ``rows`` for a sequence family on images, when asked."""
    fields = MODELS.get(family).config.model_fields
    return {"rows": True} if "rows" in fields and config.rows and len(input_shape) == 3 else {}


def usable_families(config: ArchConfig, input_shape: tuple[int, ...], outputs: int
                    ) -> tuple[list[str], dict[str, str]]:
    """(families that build for this input, {family: why not} for the rest), by building each
    family's default model: the same check as every model build."""
    usable, skipped = [], {}
    for family in config.families:
        if "rows" in MODELS.get(family).config.model_fields and len(input_shape) == 3 \
                and not config.rows:
            skipped[family] = (f"{family} reads sequences and the input {tuple(input_shape)} "
                               f"is an image; set arch's rows: true to read its rows as steps")
            continue
        try:
            build_model(family, fixed_args(family, config, input_shape), input_shape, outputs)
        except ModelError as err:
            skipped[family] = str(err)
        else:
            usable.append(family)
    if not usable:
        reasons = "; ".join(f"{f}: {why}" for f, why in skipped.items())
        raise TechniqueError(f"arch: no family in arch.families reads this input ({reasons})")
    return usable, skipped


def sample_architecture(trial: optuna.Trial | PrefixedTrial, config: ArchConfig,
                        families: list[str], input_shape: tuple[int, ...]
                        ) -> tuple[str, dict[str, Any]]:
    """(family, model args) for one trial of ``config``'s space over ``families``. The
    efficient families keep their unprefixed parameter names; the others are named
    ``family.argument`` (each family's choices are its own distribution)."""
    family = trial.suggest_categorical("family", families)
    if family in EFFICIENT:
        args = {"width_mult": trial.suggest_categorical("width_mult", config.width_mult),
                "depth": trial.suggest_categorical("depth", config.depth),
                "kernel_size": trial.suggest_categorical("kernel_size", config.kernel_size),
                "expansion": trial.suggest_categorical("expansion", config.expansion),
                "head": trial.suggest_categorical("head", config.head)}
        if family == "efficientnet":
            args["phi"] = trial.suggest_categorical("phi", config.phi)
    else:
        args = {name: trial.suggest_categorical(f"{family}.{name}", choices)
                for name, choices in family_space(family, config).items()}
        args.update(fixed_args(family, config, input_shape))
    return family, model_config(family, args).model_dump()


@functools.lru_cache(maxsize=32)
def _default_families(input_shape: tuple[int, ...], outputs: int) -> list[str]:
    """The default families that read ``input_shape`` (built once per shape, when the skipped
    ones are printed with the reason)."""
    usable, skipped = usable_families(ArchConfig(), input_shape, outputs)
    print_skipped(skipped)
    return usable


def print_skipped(skipped: dict[str, str]) -> None:
    """One stderr line per family ``arch`` cannot use here, with the reason."""
    for family, why in skipped.items():
        err_console.print(f"arch: {family} skipped: {why}", highlight=False, soft_wrap=True)


def family_fronts(study: optuna.Study) -> dict[str, list[int]]:
    """Each family's own Pareto front (trial numbers), by Optuna's non-dominated sort on a
    study of that family's trials alone."""
    fronts = {}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for family in sorted({t.params["family"] for t in complete}):
        mine = [t for t in complete if t.params["family"] == family]
        alone = optuna.create_study(directions=study.directions)
        alone.add_trials(mine)  # numbered 0.. in the order added
        fronts[family] = sorted(mine[t.number].number for t in alone.best_trials)
    return fronts


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
                 teacher: torch.nn.Module | None, families: list[str]) -> None:
        self.config, self.context, self.teacher = config, context, teacher
        self.families = families

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        return recorded(trial, lambda: self._run(trial))

    def _run(self, trial: optuna.Trial) -> tuple[float, float]:
        start = time.perf_counter()
        start_trial(trial, self.config.trial_budget)
        family, args = sample_architecture(trial, self.config, self.families,
                                           self.context.task.input_shape)
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
    """Search the architecture across families; the most accurate Pareto architecture not
    slower than the parent is retrained as the candidate."""

    name = "arch"
    description = "multi-objective search of the architecture across families (acc, latency)"
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
        families, skipped = usable_families(config, context.task.input_shape,
                                            context.task.num_classes)
        print_skipped(skipped)
        study = self._study(teacher, context, families)
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
                 "families_searched": families, "families_skipped": skipped,
                 "family_fronts": family_fronts(study),
                 "pareto": [{"number": t.number, "values": t.values,
                             "model": t.user_attrs.get("model"),
                             "dropped_as_slower": t not in kept} for t in front],
                 "trials": [{"number": t.number, "state": t.state.name.lower(),
                             "values": t.values, "model": t.user_attrs.get("model")}
                            for t in study.trials if not t.user_attrs.get("budget_reached")]}
        model = best.user_attrs["model"]
        return self._train(model["family"], model["args"], teacher, context, found)

    def _study(self, teacher: torch.nn.Module | None, context: Context,
               families: list[str]) -> optuna.Study:
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
        run_trials(study, ArchObjective(config, context, teacher, families), config,
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
        """Every family here takes float signals (C, L) or images (C, H, W)."""
        return spec.input_dtype == "float32" and len(spec.input_shape) in INPUT_RANKS

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> ArchConfig:
        """One architecture of the default space (the families that read the input),
        distilled from the parent."""
        config = ArchConfig()
        families = _default_families(tuple(spec.input_shape),
                                      int(spec.model.get("num_classes") or 2))
        family, args = sample_architecture(trial, config, families, tuple(spec.input_shape))
        return ArchConfig(architecture=Architecture(family=family, args=args),
                          train=TrainConfig(**spec.train))

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        arch: ArchConfig = config  # type: ignore[assignment]
        if arch.architecture is None:
            return f"{arch.trials} trials"
        family = arch.architecture.family
        args = model_config(family, arch.architecture.args).model_dump()
        if family not in EFFICIENT:
            shown = [f"{name}={args[name]}" for name in family_space(family, arch)]
            return " ".join([family, *shown])
        phi = f" phi{args['phi']:g}" if "phi" in args else ""
        return (f"{family} w{args['width_mult']:g} d{args['depth']} "
                f"k{args['kernel_size']} e{args['expansion']} {args['head']}{phi}")

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        return [Seed({"family": "mobilenet", "width_mult": 0.5, "depth": 3, "kernel_size": 5,
                      "expansion": 4, "head": "flatten"})]
