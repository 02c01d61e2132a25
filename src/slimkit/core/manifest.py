"""The run folder's manifest, run.json: read, written atomically, and checked before a run
writes into a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.core.atomic import write_json
from slimkit.core.errors import StoreError
from slimkit.core.lock import LOCK_FILES
from slimkit.core.runs import SCHEMA, Run
from slimkit.core.validation import describe

MANIFEST = "run.json"


class CandidateRecord(BaseModel):
    """A candidate as run.json holds it (checked on read; see DESIGN.md for the contract)."""

    model_config = ConfigDict(extra="allow")

    id: str
    parent: str | None = None
    technique: str
    params: dict[str, Any] = {}
    status: str = "ok"
    metrics: dict[str, dict[str, float | None]] = {}
    profile: dict[str, Any] = {}
    artifacts: dict[str, str] = {}
    digests: dict[str, str] = {}
    model: dict[str, Any] = {}
    training: dict[str, Any] = {}
    export: dict[str, Any] = {}
    flags: list[str] = []
    step: str | None = None
    feasible: bool = True
    violations: list[str] = []
    timing: dict[str, float] = {}
    error: str | None = None


class RunRecord(BaseModel):
    """run.json's top level (checked on read)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_: int = Field(alias="schema")
    run: str
    task: str
    seed: int
    status: str = "complete"
    env: dict[str, Any] = {}
    baseline: str | None = None
    candidates: list[CandidateRecord] = []
    pareto: list[str] = []
    selected: str | None = None
    constraints: dict[str, Any] = {}
    task_spec: dict[str, Any] = {}
    config: dict[str, Any] = {}
    running: dict[str, Any] | None = None


def existing_run(out: str | Path) -> Run | None:
    """The run already in ``out``, None if ``out`` is missing or empty; a file or a folder
    holding anything but a run is refused. Nothing is created or touched here."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"--out {out} is a file; give a new or empty folder")
    if not out.is_dir() or not any(p.name not in LOCK_FILES for p in out.iterdir()):
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
        record = RunRecord.model_validate(data)
    except ValidationError as err:
        raise StoreError(f"{manifest}: corrupt run manifest: {describe(err, RunRecord)}"
                         ) from None
    ids = {c.id for c in record.candidates}
    named = {"baseline": [record.baseline], "selected": [record.selected],
             "pareto": record.pareto}
    for field, values in named.items():
        unknown = [v for v in values if v is not None and v not in ids]
        if unknown:
            raise StoreError(f"{manifest}: corrupt run manifest: {field} names candidate "
                             f"{unknown[0]!r}, which it does not hold (candidates: "
                             f"{', '.join(sorted(ids)) or 'none'})")
    return Run.from_dict(record.model_dump(by_alias=True), path=manifest.parent)


def write_manifest(run: Run) -> None:
    """Atomically write ``run`` to its folder's run.json."""
    if run.path is None:
        raise ValueError("run has no folder")
    write_json(run.path / MANIFEST, run.to_dict())
