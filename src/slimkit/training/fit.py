"""The fit loop: seeded, deterministic on CPU, with regularization and early stopping."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from slimkit.measure.evaluate import evaluate, trim_padding
from slimkit.measure.profile import cpu_features
from slimkit.tasks import Task
from slimkit.tasks.metrics import training_loss
from slimkit.training.config import TrainConfig
from slimkit.training.progress import EpochProgress

LossHook = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What happened during ``fit``: per-epoch history and the epoch whose weights were kept."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val: float = float("nan")
    stopped_early: bool = False
    seconds: float = 0.0
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "seconds": round(self.seconds, 3),
            "precision": self.precision,
            "history": self.history,
        }


def make_optimizer(model: nn.Module, config: TrainConfig,
                   groups: list[dict[str, Any]] | None = None) -> torch.optim.Optimizer:
    """The configured optimizer over ``model``'s trainable parameters; ``groups`` (torch
    parameter groups with their own ``lr``/``weight_decay``) take their parameters out of the
    default group."""
    groups = groups or []
    special = {id(p) for group in groups for p in group["params"]}
    params: list[Any] = [p for p in model.parameters() if p.requires_grad and id(p) not in special]
    if groups:
        params = [{"params": params}, *groups]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    return None


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute values of weight tensors (biases and norm parameters excluded)."""
    weights = [p for n, p in model.named_parameters() if p.dim() > 1 and n.endswith("weight")]
    return torch.stack([w.abs().sum() for w in weights]).sum()


def _improved(value: float, best: float, direction: str) -> bool:
    if best != best:  # nan: nothing seen yet
        return True
    return value > best if direction == "maximize" else value < best


BF16_FEATURES = ("amx_bf16", "avx512_bf16")  # CPUs where bf16 matmuls are fast


def training_precision(asked: str, tokens: bool, features: list[str] | None = None) -> str:
    """fp32 or bf16: what was asked, or for ``auto`` bf16 when training a token-id model
    (a transformer) on a CPU with native bf16 (``features``: this CPU's, by default)."""
    if asked != "auto":
        return asked
    if features is None:
        features = cpu_features()
    return "bf16" if tokens and any(f in features for f in BF16_FEATURES) else "fp32"


# Length bucketing sorts rows by length within windows of this many batches of the shuffled
# order. Small windows keep batches varied from epoch to epoch. A training set of one window or
# less is not bucketed: it would give the same few batches every epoch.
BUCKET_BATCHES = 8


def _batches(order: torch.Tensor, lengths: torch.Tensor | None, size: int,
             generator: torch.Generator) -> list[torch.Tensor]:
    """The epoch's batches of row indices in ``order``. With token ``lengths``, rows are
    bucketed by length (sorted within windows of ``BUCKET_BATCHES`` batches of the shuffled
    order, the batches then shuffled), so each batch trims to little padding and the epoch
    stays random: the same samples, far fewer padded tokens."""
    window = size * BUCKET_BATCHES
    if lengths is None or len(order) <= window:
        return [order[i:i + size] for i in range(0, len(order), size)]
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def fit(
    model: nn.Module,
    task: Task,
    config: TrainConfig,
    seed: int = 0,
    *,
    progress: bool = True,
    description: str = "train",
    extra_loss: LossHook | None = None,
    hard_weight: float = 1.0,
    on_epoch: EpochCallback | None = None,
    param_groups: list[dict[str, Any]] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``task.train``, selecting on ``task.val``.

    Args:
        extra_loss: ``f(model, x, y, logits) -> loss`` added to the task loss (distillation, ...).
        hard_weight: weight of the task (hard-label) loss, e.g. distillation's alpha.
        on_epoch: called after every epoch with ``(epoch, record)``; it may raise to stop
            (e.g. an Optuna pruner).
        param_groups: parameters trained with their own learning rate (QAT's ranges).
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train = torch.from_numpy(task.train.x)
    y_train = torch.from_numpy(task.train.y)
    lengths = (x_train != 0).sum(dim=1) if task.token_inputs else None
    criterion = training_loss(task.kind, config.label_smoothing)
    optimizer = make_optimizer(model, config, param_groups)
    schedule = make_schedule(optimizer, config)
    result = TrainResult(precision=training_precision(config.precision, task.token_inputs))
    bf16 = result.precision == "bf16"
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    shown = progress and config.epochs > 0
    with EpochProgress(config.epochs, description, enabled=shown) as bar:
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            total, count = 0.0, 0
            for idx in _batches(order, lengths, config.batch_size, generator):
                x, y = x_train[idx], y_train[idx]
                if task.token_inputs:  # drop the padding columns every sentence shares
                    x = torch.from_numpy(trim_padding(x.numpy()))
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x)
                logits = logits.float()
                loss = criterion(logits, y) if hard_weight == 1.0 else (
                    hard_weight * criterion(logits, y))
                if config.l1 > 0:
                    loss = loss + config.l1 * l1_penalty(model)
                if extra_loss is not None:
                    loss = loss + extra_loss(model, x, y, logits)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            if schedule is not None:
                schedule.step()
            val = evaluate(model, task.val, task)
            record = {
                "epoch": epoch,
                "train_loss": total / count,
                "val_loss": val["loss"],
                f"val_{task.metric}": val[task.metric],
                "lr": optimizer.param_groups[0]["lr"],
            }
            result.history.append(record)
            bar.update(record, task.metric)
            if _improved(val[task.metric], result.best_val, task.direction):
                result.best_val, result.best_epoch, stale = val[task.metric], epoch, 0
                if config.restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            if on_epoch is not None:
                on_epoch(epoch, record)
            if config.patience is not None and stale >= config.patience:
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result
