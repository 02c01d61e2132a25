"""The run folder's manifest, run.json: read, written atomically, and checked before a run
writes into a folder."""

from __future__ import annotations

import json
from pathlib import Path

from slimkit.core.atomic import write_json
from slimkit.core.errors import StoreError
from slimkit.core.runs import SCHEMA, Run

MANIFEST = "run.json"


def existing_run(out: str | Path) -> Run | None:
    """The run already in ``out``, None if ``out`` is missing or empty; a file or a folder
    holding anything but a run is refused. Nothing is created or touched here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; give a new or empty folder")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    if not (out / MANIFEST).exists():
        raise StoreError(f"--out {out} holds other files and no run.json; "
                         f"give a new or empty folder")
    return read_manifest(out)


def prepare_folder(out: str | Path) -> Path:
    """Check that ``out`` can take a new run: it is missing, empty, or an unfinished run."""
    out = Path(out)
    existing = existing_run(out)
    if existing is not None and existing.status == "complete":
        raise StoreError(f"--out {out} already holds a finished run ({existing.task}, "
                         f"{len(existing.candidates)} candidates); give another folder")
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
    if not isinstance(data, dict):
        raise StoreError(f"{manifest}: corrupt run manifest (not a JSON object)")
    if data.get("schema") != SCHEMA:
        raise StoreError(f"{manifest}: unsupported run.json schema {data.get('schema')!r} "
                         f"(this slimkit reads schema {SCHEMA})")
    try:
        return Run.from_dict(data, path=manifest.parent)
    except (KeyError, TypeError) as err:
        raise StoreError(f"{manifest}: corrupt run manifest (missing {err})") from None


def write_manifest(run: Run) -> None:
    """Atomically write ``run`` to its folder's run.json."""
    if run.path is None:
        raise ValueError("run has no folder")
    write_json(run.path / MANIFEST, run.to_dict())
