"""Saving and loading a model: weights plus the spec that rebuilds the module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.atomic import atomic_path
from slimkit.errors import StoreError
from slimkit.models.base import build_model

MODEL_FORMAT = "slimkit-model/1"


def save_model(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save weights plus the spec that rebuilds the module (family, args, shapes), atomically."""
    payload = {"format": MODEL_FORMAT, **spec, "state_dict": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``; returns (model in eval mode, spec)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: model file is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise StoreError(f"{path}: corrupt model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise StoreError(f"{path}: not a slimkit model file")
    spec = {k: v for k, v in payload.items() if k not in ("format", "state_dict")}
    model = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                        spec["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise StoreError(f"{path}: weights do not fit the model ({str(err)[:200]})") from None
    return model.eval(), spec
