"""Candidate and Run: the in-memory form of run.json (see DESIGN.md for the contract).

A candidate's ``profile`` is stored exactly as run.json holds it; read it through the accessors
(``latency_ms``, ``throughput``, ``size_bytes``, ``stat``) rather than digging into the dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slimkit.core.errors import StoreError

SCHEMA = 1


@dataclass
class Candidate:
    """One model variant: lineage, the technique that produced it, metrics, profile, artifacts."""

    id: str
    parent: str | None
    technique: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of each artifact file
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)  # "export" in run.json
    flags: list[str] = field(default_factory=list)
    step: str | None = None
    feasible: bool = True
    violations: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["export"] = data.pop("parity")  # the run.json name (schema 1)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        data = {("parity" if k == "export" else k): v for k, v in data.items()}
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def metric(self, split: str, name: str) -> float | None:
        """The value of metric ``name`` on ``split`` (None if not measured)."""
        return self.metrics.get(split, {}).get(name)

    def backend(self, backend: str = "onnxruntime") -> dict[str, Any]:
        """The timing record of one backend (empty if it was not profiled)."""
        return self.profile.get(backend) or {}

    def latency_ms(self, backend: str = "onnxruntime", quantile: str = "p50") -> float | None:
        """Latency at the profile's latency batch (batch 1 by default), in ms."""
        value = (self.backend(backend).get("latency_ms") or {}).get(quantile)
        return None if value is None else float(value)

    def throughput(self, backend: str = "onnxruntime") -> float | None:
        """Samples per second at the throughput batch."""
        value = self.backend(backend).get("throughput_sps")
        return None if value is None else float(value)

    def throughput_batch(self, backend: str = "onnxruntime") -> int | None:
        """The batch size the throughput was measured at."""
        return self.backend(backend).get("throughput_batch")

    @property
    def size_bytes(self) -> int | None:
        """Bytes of the deployable artifact (the ONNX file)."""
        return self.profile.get("size_bytes")

    def stat(self, name: str) -> float | None:
        """A model statistic of the profile: ``params``, ``nonzero_params``, ``macs``,
        ``gzip_size_bytes``, ``peak_rss_mb``, ``model_rss_mb``."""
        return self.profile.get(name)


@dataclass
class Run:
    """A run folder's manifest. ``path`` is where it lives (not serialized)."""

    run: str
    task: str
    seed: int
    env: dict[str, Any]
    baseline_id: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    pareto_ids: list[str] = field(default_factory=list)
    selected_id: str | None = None
    constraints: dict[str, Any] = field(default_factory=dict)
    task_spec: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    running: dict[str, Any] | None = None  # the step being computed now: candidate, step, since
    schema: int = SCHEMA
    path: Path | None = None

    def candidate(self, cid: str) -> Candidate:
        """The candidate ``cid``; an unknown id is one clear error listing the ids."""
        found = self._find(cid)
        if found is None:
            ids = ", ".join(c.id for c in self.candidates) or "none"
            raise StoreError(f"run {self.run!r} has no candidate {cid!r}; candidates: {ids}")
        return found

    @property
    def baseline(self) -> Candidate | None:
        """The reference every candidate is compared with: ``c0``, or in ``optimize`` the
        better of ``c0`` and its tuned retrain (on val)."""
        return self._find(self.baseline_id)

    @property
    def selected(self) -> Candidate | None:
        """The best candidate meeting every constraint, or None if none does."""
        return self._find(self.selected_id)

    def artifact(self, candidate: Candidate, kind: str) -> Path:
        """The file of ``candidate``'s artifact ``kind`` (``onnx``, ``torch``), refused if it
        leaves the run folder (:func:`artifact_path`)."""
        if self.path is None:
            raise StoreError(f"run {self.run!r} is not in a folder")
        return artifact_path(self.path, candidate, kind)

    def _find(self, cid: str | None) -> Candidate | None:
        return next((c for c in self.candidates if c.id == cid), None)

    @property
    def pareto(self) -> list[Candidate]:
        """Candidates not dominated on (val metric, latency, size)."""
        return [self.candidate(cid) for cid in self.pareto_ids]

    @property
    def metric_name(self) -> str:
        """The task's metric that decides (from the task spec)."""
        return str(self.task_spec.get("metric", "accuracy"))

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema": self.schema,
            "run": self.run,
            "task": self.task,
            "seed": self.seed,
            "status": self.status,
            "env": self.env,
            "baseline": self.baseline_id,
            "candidates": [c.to_dict() for c in self.candidates],
            "pareto": self.pareto_ids,
            "selected": self.selected_id,
            "constraints": self.constraints,
            "task_spec": self.task_spec,
            "config": self.config,
        }
        if self.running is not None:
            data["running"] = self.running
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Run:
        return cls(
            schema=data["schema"], run=data["run"], task=data["task"], seed=data["seed"],
            env=data.get("env", {}), baseline_id=data.get("baseline"),
            candidates=[Candidate.from_dict(c) for c in data.get("candidates", [])],
            pareto_ids=list(data.get("pareto", [])), selected_id=data.get("selected"),
            constraints=dict(data.get("constraints", {})),
            task_spec=dict(data.get("task_spec", {})), config=dict(data.get("config", {})),
            status=data.get("status", "complete"), running=data.get("running"), path=path,
        )


def artifact_path(folder: Path, candidate: Candidate, kind: str) -> Path:
    """The file of ``candidate``'s artifact ``kind`` in the run ``folder``; a path that leaves
    the folder (absolute, ``..``, a symlink out) is refused: a run folder is data someone may
    have sent, and it must not point the reader at other files."""
    rel = candidate.artifacts.get(kind)
    if rel is None:
        raise StoreError(f"candidate {candidate.id} has no {kind} artifact")
    root = folder.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise StoreError(f"candidate {candidate.id}: artifact {kind} {rel!r} is outside "
                         f"the run folder; refusing to read it")
    return path
