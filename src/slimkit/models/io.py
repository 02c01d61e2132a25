"""Saving and loading a model.

A model whose layers still have their family's shapes is saved as weights plus the spec that
rebuilds it (family, args, shapes) and loaded with ``weights_only=True``. A model whose tensors
were reshaped (structured pruning) no longer matches its family's constructor, so the whole
module is pickled; such files are only loaded from a run folder slimkit wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.atomic import atomic_path
from slimkit.errors import StoreError
from slimkit.models.base import build_model

MODEL_FORMAT = "slimkit-model/1"


def _fits_family(model: nn.Module, spec: dict[str, Any]) -> bool:
    try:
        fresh = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                            spec["num_classes"])
    except Exception:
        return False
    ours, theirs = model.state_dict(), fresh.state_dict()
    return ours.keys() == theirs.keys() and all(
        ours[k].shape == theirs[k].shape for k in ours)


def save_model(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save ``model`` with its spec, atomically (weights only when the family rebuilds it)."""
    payload: dict[str, Any] = {"format": MODEL_FORMAT, **spec}
    if _fits_family(model, spec):
        payload["state_dict"] = model.state_dict()
    else:
        payload["module"] = model
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``; returns (model in eval mode, spec)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: model file is missing")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        payload = None
    if payload is None:  # a pickled module (reshaped by pruning)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:
            raise StoreError(f"{path}: corrupt model file ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise StoreError(f"{path}: not a slimkit model file")
    spec = {k: v for k, v in payload.items() if k not in ("format", "state_dict", "module")}
    if "module" in payload:
        if not isinstance(payload["module"], nn.Module):
            raise StoreError(f"{path}: not a slimkit model file")
        return payload["module"].eval(), spec
    model = build_model(spec["family"], spec["args"], tuple(spec["input_shape"]),
                        spec["num_classes"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise StoreError(f"{path}: weights do not fit the model ({str(err)[:200]})") from None
    return model.eval(), spec
