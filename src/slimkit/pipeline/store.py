"""The run folder: run.json (written atomically) and candidate artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.atomic import atomic_path, write_json
from slimkit.errors import StoreError
from slimkit.pipeline.run import SCHEMA, Run

MANIFEST = "run.json"
MODEL_FORMAT = "slimkit-model/1"


def prepare_folder(out: str | Path) -> Path:
    """Check that ``out`` can take a new run: it is missing, empty, or an unfinished run.
    Nothing in it is touched when the check fails."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        manifest = out / MANIFEST
        if not manifest.exists():
            raise StoreError(f"--out {out} holds other files and no run.json; "
                             f"give a new or empty folder")
        existing = read_manifest(out)
        if existing.status == "complete":
            raise StoreError(f"--out {out} already holds a finished run ({existing.task}, "
                             f"{len(existing.candidates)} candidates); give another folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_manifest(path: str | Path) -> Run:
    """Load ``path``/run.json (``path`` may also be the run.json file itself)."""
    path = Path(path)
    manifest = path if path.name == MANIFEST and path.is_file() else path / MANIFEST
    if not manifest.is_file():
        raise StoreError(f"{path}: not a slimkit run (no {MANIFEST})")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StoreError(f"{manifest}: corrupt run manifest ({err})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StoreError(f"{manifest}: unsupported run.json schema {data.get('schema')!r} "
                         f"(this slimkit reads schema {SCHEMA})" if isinstance(data, dict)
                         else f"{manifest}: corrupt run manifest (not a JSON object)")
    try:
        return Run.from_dict(data, path=manifest.parent)
    except (KeyError, TypeError) as err:
        raise StoreError(f"{manifest}: corrupt run manifest (missing {err})") from None


def write_manifest(run: Run) -> None:
    """Atomically write ``run`` to its folder's run.json."""
    if run.path is None:
        raise ValueError("run has no folder")
    write_json(run.path / MANIFEST, run.to_dict())


def save_model(path: Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """Save weights plus the spec that rebuilds the module (family, args, shapes), atomically."""
    payload = {"format": MODEL_FORMAT, **spec, "state_dict": model.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``; returns (model in eval mode, spec)."""
    from slimkit.models import build_model

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
