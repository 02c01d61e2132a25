"""``prune``: unstructured magnitude pruning or structured channel pruning, then fine-tuning.

Unstructured pruning uses ``torch.nn.utils.prune`` and is made permanent before export; dense
runtimes do not get faster from zeros, which the profile shows (non-zero params, gzip size).
Structured pruning removes whole channels/neurons with torch-pruning's dependency graph, so the
tensors really shrink. Either can follow a one-shot, iterative or gradual (cubic, Zhu & Gupta
2017) schedule with fine-tuning between steps, optionally distilling from the unpruned parent.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
import torch_pruning as tp
from pydantic import Field, model_validator
from torch import nn
from torch.nn.utils import prune as torch_prune

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.measure.compare import measurably_faster
from slimkit.measure.profile import model_stats
from slimkit.models import RECURRENT_FAMILIES
from slimkit.tasks.metrics import training_loss
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
from slimkit.training.distill import DistillationLoss

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


class DistillOptions(TechniqueConfig):
    temperature: float = Field(4.0, gt=0, description="softmax temperature")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the hard-label loss")


class PruneConfig(TechniqueConfig):
    mode: Literal["structured", "unstructured"] = Field(
        "structured", description="structured: remove channels (smaller, faster); "
                                  "unstructured: zero single weights (sparser)")
    ratio: float | None = Field(
        0.5, ge=0, lt=1,
        description="structured: fraction of channels removed; unstructured: target sparsity")
    speedup: float | None = Field(
        None, ge=1, description="structured only: target MAC speedup (instead of ratio)")
    importance: Literal["magnitude", "taylor", "group_norm"] = Field(
        "magnitude", description="channel importance (structured)")
    norm: Literal[1, 2] = Field(2, description="L1 or L2 magnitude")
    scope: Literal["global", "layer"] = Field("layer", description="rank across layers or in each")
    round_to: int | None = Field(8, ge=1, description="keep channel counts multiples of this")
    schedule: Literal["oneshot", "iterative", "gradual"] = Field(
        "oneshot", description="all at once, in steps with fine-tuning between, or a gradual "
                               "sparsity ramp")
    steps: int = Field(3, ge=1, le=100, description="pruning steps (iterative, gradual)")
    finetune: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=10, lr=1e-3, patience=None),
        description="trainer options for fine-tuning (split across steps)")
    distill: DistillOptions | None = Field(
        None, description="distill from the unpruned parent while fine-tuning")
    min_speedup: float = Field(1.05, ge=1, description="latency gate: below this, no_speedup")

    @model_validator(mode="after")
    def _target(self) -> PruneConfig:
        if self.speedup is not None:
            if self.mode == "unstructured":
                raise ValueError("speedup applies to structured pruning only; use ratio")
            self.ratio = None
        elif self.ratio is None:
            raise ValueError("give ratio or speedup")
        return self


def schedule_ratios(kind: str, target: float, steps: int) -> list[float]:
    """Cumulative targets after each pruning step."""
    if kind == "oneshot":
        return [target]
    fractions = [(i + 1) / steps for i in range(steps)]
    if kind == "iterative":
        return [target * f for f in fractions]
    return [target * (1 - (1 - f) ** 3) for f in fractions]  # gradual: Zhu & Gupta's cubic


def refuse_recurrent(model: nn.Module, mode: str) -> None:
    """GRU/LSTM layers cannot be pruned here. Structured: torch-pruning (1.6) prunes
    single-layer LSTMs only, fails on those (an index error in ``weight_hh``), and has no GRU
    support. Unstructured: zeroed recurrent weights leave the runtime's dense kernels as fast."""
    kinds = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)})
    if kinds:
        layer = kinds[0].lower()
        why = (f"torch-pruning has no working {kinds[0]} pruner" if mode == "structured"
               else f"zeroed {kinds[0]} weights run exactly as fast in onnxruntime's kernel")
        raise TechniqueError(
            f"prune: {mode} pruning is not supported for {layer} layers ({why}); for a "
            f"smaller {layer}, use distill with width_mult (fewer hidden units) or arch")


def classifier_head(model: nn.Module, num_classes: int) -> nn.Module:
    """The last layer producing the class scores; it is never pruned."""
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    if not layers:
        raise TechniqueError("prune: the model has no Conv or Linear layer to prune")
    return layers[-1]


def weight_sparsity(model: nn.Module, head: nn.Module) -> float:
    """Fraction of zero weights over the prunable layers except the head."""
    weights = [m.weight for m in model.modules() if isinstance(m, PRUNABLE) and m is not head]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / max(total, 1)


def _unstructured_step(model: nn.Module, head: nn.Module, previous: float, target: float,
                       config: PruneConfig) -> None:
    layers = [m for m in model.modules() if isinstance(m, PRUNABLE) and m is not head]
    amount = (target - previous) / (1 - previous) if previous < 1 else 0.0
    if amount <= 0:
        return
    if config.scope == "global":
        torch_prune.global_unstructured([(m, "weight") for m in layers],
                                        pruning_method=torch_prune.L1Unstructured, amount=amount)
    else:
        for m in layers:
            torch_prune.l1_unstructured(m, "weight", amount=amount)


def _importance(config: PruneConfig) -> Any:
    if config.importance == "taylor":
        return tp.importance.TaylorImportance()
    if config.importance == "group_norm":
        return tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean",
                                                      normalizer="mean")
    return tp.importance.MagnitudeImportance(p=config.norm, group_reduction="first",
                                             normalizer=None)


def _pruner(model: nn.Module, head: nn.Module, context: Context, config: PruneConfig,
            ratios: list[float]) -> Any:
    example = torch.from_numpy(context.task.train.x[:2])
    try:
        return tp.pruner.BasePruner(
            model, example, importance=_importance(config),
            global_pruning=config.scope == "global", pruning_ratio=ratios[-1],
            iterative_steps=len(ratios),
            iterative_pruning_ratio_scheduler=lambda _r, _s: [0.0, *ratios],
            ignored_layers=[head], round_to=config.round_to)
    except Exception as err:
        raise TechniqueError(f"prune: torch-pruning cannot trace this model: {err}") from None


def _taylor_gradients(model: nn.Module, context: Context, batches: int = 4) -> None:
    model.zero_grad()
    model.train()
    x, y = context.task.train.x, context.task.train.y
    loss = training_loss(context.task.kind)
    for i in range(batches):
        xb = torch.from_numpy(x[i * 128:(i + 1) * 128])
        yb = torch.from_numpy(y[i * 128:(i + 1) * 128])
        loss(model(xb), yb).backward()
    model.eval()


def _ratio_for_speedup(model: nn.Module, head: nn.Module, context: Context,
                       config: PruneConfig) -> float:
    """The channel ratio that reaches ``config.speedup`` in MACs (found on a copy)."""
    trial = copy.deepcopy(model)
    trial_head = classifier_head(trial, context.task.num_classes)
    base = model_stats(model, context.task.input_shape, context.task.input_dtype)["macs"]
    grid = [0.02 * i for i in range(1, 48)]  # up to 94% of channels
    pruner = _pruner(trial, trial_head, context, config, grid)
    for ratio in grid:
        if config.importance == "taylor":
            _taylor_gradients(trial, context)
        pruner.step()
        macs = model_stats(trial, context.task.input_shape, context.task.input_dtype)["macs"]
        if base / max(macs, 1) >= config.speedup:  # type: ignore[operator]
            return ratio
    raise TechniqueError(f"prune.speedup: {config.speedup}x in MACs is not reachable "
                         f"(at most {base / max(macs, 1):.1f}x by removing 94% of channels)")


def check_still_runs(model: nn.Module, example: torch.Tensor) -> None:
    """torch-pruning can leave a graph it did not fully understand inconsistent (a parameter
    used outside a layer, an unusual reshape). Run the pruned model once and name the last layer
    entered when it fails."""
    entered: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda _m, _i, name=name: entered.append(name))
             for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model.eval()(example)
    except Exception as err:
        where = f"after layer {entered[-1]!r}" if entered else "before its first layer"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise TechniqueError(
            f"prune: torch-pruning could not trace this model consistently; it fails {where} "
            f"once pruned ({first}); use mode: unstructured, or restructure that layer"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()


def _channels(model: nn.Module) -> list[int]:
    return [m.weight.shape[0] for m in model.modules() if isinstance(m, PRUNABLE)]


@register_technique
class Prune(Technique):
    name = "prune"
    description = "structured (channels, torch-pruning) or unstructured (magnitude) pruning"
    Config = PruneConfig
    role = "compress"

    def apply(self, parent: Candidate, context: Context) -> Candidate:
        config: PruneConfig = self.config  # type: ignore[assignment]
        model, spec = context.load_model(parent)
        refuse_recurrent(model, config.mode)
        teacher = copy.deepcopy(model) if config.distill is not None else None
        self_pruning = callable(getattr(model, "prune_structured", None))
        if config.mode == "structured" and self_pruning:
            if config.speedup is not None:
                raise TechniqueError("prune.speedup: this model prunes its own structure; "
                                     "give prune.ratio")
            return self._own_structure(model, spec, teacher, parent, context, config)
        head = classifier_head(model, context.task.num_classes)
        base_macs = model_stats(model, context.task.input_shape, context.task.input_dtype)["macs"]
        target = (_ratio_for_speedup(model, head, context, config) if config.speedup
                  else config.ratio or 0.0)
        ratios = schedule_ratios(config.schedule, target, config.steps)
        structured = config.mode == "structured"
        pruner = _pruner(model, head, context, config, ratios) if structured else None
        epochs = _split(config.finetune.epochs, len(ratios))
        history: list[dict[str, Any]] = []
        trainings: list[dict[str, Any]] = []
        done = 0.0
        for i, ratio in enumerate(ratios):
            if structured:
                if config.importance == "taylor":
                    _taylor_gradients(model, context)
                pruner.step()
                model.zero_grad(set_to_none=True)
                check_still_runs(model, torch.from_numpy(context.task.train.x[:2]))
            else:
                _unstructured_step(model, head, done, ratio, config)
            done = ratio
            history.append({"step": i + 1, "target": round(ratio, 6),
                            "sparsity": round(weight_sparsity(model, head), 6),
                            "channels": _channels(model),
                            **model_stats(model, context.task.input_shape,
                                          context.task.input_dtype)})
            if epochs[i] > 0:
                trainings.append(self._finetune(model, teacher, context, config, epochs[i], i))
        if not structured:
            for m in model.modules():
                if isinstance(m, PRUNABLE) and torch_prune.is_pruned(m):
                    torch_prune.remove(m, "weight")  # permanent before export
        return self._measure(model, spec, parent, context, target, base_macs, history,
                             trainings)

    def _own_structure(self, model: nn.Module, spec: dict[str, Any], teacher: nn.Module | None,
                       parent: Candidate, context: Context, config: PruneConfig) -> Candidate:
        """A model that knows its structure (a transformer: attention heads and feed-forward
        neurons) prunes itself with ``prune_structured(ratio)``; then the usual fine-tuning."""
        dtype = context.task.input_dtype
        base_macs = model_stats(model, context.task.input_shape, dtype)["macs"]
        ratios = schedule_ratios(config.schedule, config.ratio or 0.0, config.steps)
        epochs = _split(config.finetune.epochs, len(ratios))
        history, trainings = [], []
        start = dict(model.args)  # type: ignore[arg-type]
        for i, ratio in enumerate(ratios):
            shape = model.prune_structured(ratio, start)  # type: ignore[operator]
            history.append({"step": i + 1, "target": round(ratio, 6), "structure": shape,
                            **model_stats(model, context.task.input_shape, dtype)})
            if epochs[i] > 0:
                trainings.append(self._finetune(model, teacher, context, config, epochs[i], i))
        spec = {**spec, "args": {**spec["args"], **model.args}}  # type: ignore[operator]
        return self._measure(model, spec, parent, context, config.ratio or 0.0, base_macs,
                             history, trainings)

    def _measure(self, model: nn.Module, spec: dict[str, Any], parent: Candidate,
                 context: Context, target: float, base_macs: int,
                 history: list[dict[str, Any]], trainings: list[dict[str, Any]]) -> Candidate:
        """The pruned model as a measured candidate; ``no_speedup`` flags one that is not
        measurably faster than its parent (onnxruntime, batch 1 and the throughput batch)."""
        config: PruneConfig = self.config  # type: ignore[assignment]
        params = {**config.model_dump(), "pruning_ratio": target,
                  "mac_speedup": round(base_macs / max(history[-1]["macs"], 1), 4),
                  "schedule_trace": history}
        training = trainings[-1] if trainings else {}
        if len(trainings) > 1:
            training = {**training, "steps": trainings}
        candidate = context.materialize(model, spec, params=params, training=training)
        if not measurably_faster(candidate, parent, config.min_speedup - 1):
            candidate.flags.append("no_speedup")
        return candidate

    @classmethod
    def applies(cls, spec: SearchSpec) -> bool:
        """Not to the recurrent families (see ``refuse_recurrent``)."""
        return spec.model.get("family") not in RECURRENT_FAMILIES

    @classmethod
    def search_space(cls, trial: PrefixedTrial, spec: SearchSpec) -> PruneConfig:
        """Structured pruning of 30-90% of the channels, fine-tuned with distillation from the
        unpruned parent."""
        return PruneConfig(ratio=trial.suggest_float("ratio", 0.3, 0.9, step=0.05),
                           finetune=TrainConfig(**spec.train), distill=DistillOptions())

    @classmethod
    def label(cls, config: TechniqueConfig) -> str:
        prune: PruneConfig = config  # type: ignore[assignment]
        return f"{prune.speedup:g}x MACs" if prune.speedup else f"{prune.ratio:g}"

    @classmethod
    def seeds(cls, spec: SearchSpec) -> list[Seed]:
        return [Seed({"ratio": 0.75}, lower_precision=True), Seed({"ratio": 0.5})]

    def _finetune(self, model: nn.Module, teacher: nn.Module | None, context: Context,
                  config: PruneConfig, epochs: int, step: int) -> dict[str, Any]:
        train = config.finetune.model_copy(update={"epochs": epochs})
        extra, hard = None, 1.0
        if teacher is not None and config.distill is not None:
            extra = DistillationLoss(teacher, config.distill.temperature, config.distill.alpha,
                                     kind=context.task.kind)
            hard = config.distill.alpha
        result = fit(model, context.task, train, seed=context.seed + step,
                     progress=context.progress, description=f"{context.new_id} finetune",
                     extra_loss=extra, hard_weight=hard)
        return result.to_dict()


def _split(total: int, parts: int) -> list[int]:
    """Fine-tuning epochs per pruning step: an even split, the remainder on the last step."""
    base = total // parts
    return [base] * (parts - 1) + [total - base * (parts - 1)]
