"""Candidate and Run: the in-memory form of run.json (see DESIGN.md for the contract)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def metric(self, split: str, name: str) -> float | None:
        return self.metrics.get(split, {}).get(name)


@dataclass
class Run:
    """A run folder's manifest. ``path`` is where it lives (not serialized)."""

    run: str
    task: str
    seed: int
    env: dict[str, Any]
    baseline: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    pareto: list[str] = field(default_factory=list)
    selected: str | None = None
    constraints: dict[str, Any] = field(default_factory=dict)
    task_spec: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    schema: int = SCHEMA
    path: Path | None = None

    def candidate(self, cid: str) -> Candidate:
        from slimkit.errors import StoreError

        for cand in self.candidates:
            if cand.id == cid:
                return cand
        ids = ", ".join(c.id for c in self.candidates) or "none"
        raise StoreError(f"run {self.run!r} has no candidate {cid!r}; candidates: {ids}")

    @property
    def baseline_candidate(self) -> Candidate | None:
        return self.candidate(self.baseline) if self.baseline else None

    @property
    def selected_candidate(self) -> Candidate | None:
        return self.candidate(self.selected) if self.selected else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "run": self.run,
            "task": self.task,
            "seed": self.seed,
            "status": self.status,
            "env": self.env,
            "baseline": self.baseline,
            "candidates": [c.to_dict() for c in self.candidates],
            "pareto": self.pareto,
            "selected": self.selected,
            "constraints": self.constraints,
            "task_spec": self.task_spec,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Run:
        return cls(
            schema=data["schema"], run=data["run"], task=data["task"], seed=data["seed"],
            env=data.get("env", {}), baseline=data.get("baseline"),
            candidates=[Candidate.from_dict(c) for c in data.get("candidates", [])],
            pareto=list(data.get("pareto", [])), selected=data.get("selected"),
            constraints=dict(data.get("constraints", {})),
            task_spec=dict(data.get("task_spec", {})), config=dict(data.get("config", {})),
            status=data.get("status", "complete"), path=path,
        )
