"""Knowledge-distillation losses, used by ``distill`` and by fine-tuning after ``prune``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.errors import TechniqueError
from slimkit.tasks.metrics import training_loss


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float) -> torch.Tensor:
    """Hinton et al.: KL(teacher || student) on temperature-softened logits, scaled by T^2."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t


def soft_target_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float,
                     kind: str) -> torch.Tensor:
    """The distillation term: ``kd_loss`` on logits, or for regression and embedding tasks the
    task's own loss against the teacher's outputs (the temperature does not apply)."""
    if kind == "classification":
        return kd_loss(student, teacher, temperature)
    return training_loss(kind)(student, teacher)


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Zagoruyko & Komodakis attention map: mean of squares over channels, L2-normalized.
    Independent of the channel count, so student and teacher layers of any width compare."""
    amap = features.pow(2).mean(dim=1) if features.dim() > 2 else features.pow(2)
    return F.normalize(amap.flatten(1), dim=1)


def feature_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of attention maps (resampled when lengths differ)."""
    s, t = attention_map(student), attention_map(teacher)
    if s.shape[1] != t.shape[1]:
        t = F.interpolate(t[:, None, :], size=s.shape[1], mode="linear")[:, 0]
        t = F.normalize(t, dim=1)
    return (s - t).pow(2).sum(dim=1).mean()


@contextmanager
def capture(model: nn.Module, layer: str | None, store: dict[str, torch.Tensor],
            key: str) -> Iterator[None]:
    """Record ``layer``'s output in ``store[key]`` on every forward while the context is open."""
    if layer is None:
        yield
        return
    modules = dict(model.named_modules())
    if layer not in modules:
        names = ", ".join(n for n in modules if n) or "none"
        raise TechniqueError(f"feature_layer: no layer named {layer!r}; layers: {names}")
    handle = modules[layer].register_forward_hook(
        lambda _m, _i, out: store.__setitem__(key, out))
    try:
        yield
    finally:
        handle.remove()


def _key(row: torch.Tensor) -> bytes:
    """A sample's identity: its values without trailing zeros (token ids are trimmed of padding
    to each batch's length, so the same sentence comes with different padding)."""
    values = row.numpy().reshape(-1)
    nonzero = values.nonzero()[0]
    end = int(nonzero[-1]) + 1 if row.dim() == 1 and nonzero.size else values.size
    return values[:end].tobytes() + str(values.dtype).encode()


class DistillationLoss:
    """An ``extra_loss`` for ``fit``: the soft-target term (and optionally feature matching).

    The teacher runs under ``no_grad``, once per training sample: its outputs are kept and
    reused in later epochs (the teacher is in eval mode and the samples are not augmented, so
    they are the same), unless features are matched, which needs its activations every batch.
    ``fit``'s hard-label loss is weighted by ``alpha`` (pass ``hard_weight=alpha``); this term
    carries ``1 - alpha``.
    """

    def __init__(self, teacher: nn.Module, temperature: float, alpha: float,
                 features: dict[str, torch.Tensor] | None = None, feature_weight: float = 0.0,
                 kind: str = "classification") -> None:
        self.teacher = teacher.eval()
        self.kind = kind
        self.temperature = temperature
        self.alpha = alpha
        self.features = features if features is not None else {}
        self.feature_weight = feature_weight
        self.cache: dict[bytes, torch.Tensor] = {}
        self.teacher_rows = 0  # samples the teacher has run on

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 logits: torch.Tensor) -> torch.Tensor:
        if self.alpha >= 1.0 and self.feature_weight == 0:  # no soft term: skip the teacher
            return logits.new_zeros(())
        teacher_logits = self._teacher(x)
        loss = (1 - self.alpha) * soft_target_loss(logits, teacher_logits, self.temperature,
                                                   self.kind)
        if self.feature_weight > 0 and "student" in self.features:
            loss = loss + self.feature_weight * feature_loss(self.features["student"],
                                                             self.features["teacher"])
        return loss

    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs on ``x``: kept from earlier epochs, computed for new samples."""
        with torch.no_grad():
            if self.feature_weight > 0:  # the feature hooks need the teacher's forward pass
                return self.teacher(x)
            keys = [_key(row) for row in x]
            new = [i for i, key in enumerate(keys) if key not in self.cache]
            if new:
                outputs = self.teacher(x[new])
                self.teacher_rows += len(new)
                for i, out in zip(new, outputs, strict=True):
                    self.cache[keys[i]] = out.clone()
            return torch.stack([self.cache[key] for key in keys])
