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
    parity: dict[str, Any] = field(default_factory=dict)  # "export" in run.json
    flags: list[str] = field(default_factory=list)
    step: str | None = None
    feasible: bool = True
    violations: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_path: Path | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("run_path")
        data["export"] = data.pop("parity")  # the run.json name (schema 1)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        data = {("parity" if k == "export" else k): v for k, v in data.items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__
                 and k != "run_path"}
        return cls(**known)

    def export(self, to: str | Path, format: str = "onnx", force: bool = False
               ) -> dict[str, Any]:
        """Write this candidate's deployable model to ``to`` (``onnx`` or ``torchscript``),
        checked against the torch model on real test inputs; returns the parity record."""
        from slimkit.api import export
        from slimkit.errors import StoreError

        if self.run_path is None:
            raise StoreError(f"candidate {self.id} is not attached to a run folder; use "
                             f"slimkit.export(run, to, candidate={self.id!r})")
        return export(self.run_path, to, candidate=self.id, format=format,  # type: ignore[arg-type]
                      force=force)

    def metric(self, split: str, name: str) -> float | None:
        return self.metrics.get(split, {}).get(name)


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
    schema: int = SCHEMA
    path: Path | None = None

    def candidate(self, cid: str) -> Candidate:
        from slimkit.errors import StoreError

        for cand in self.candidates:
            if cand.id == cid:
                cand.run_path = self.path
                return cand
        ids = ", ".join(c.id for c in self.candidates) or "none"
        raise StoreError(f"run {self.run!r} has no candidate {cid!r}; candidates: {ids}")

    @property
    def baseline(self) -> Candidate | None:
        """The reference every candidate is compared with: ``c0``, or in ``optimize`` the
        better of ``c0`` and its tuned retrain (on val)."""
        return self._find(self.baseline_id)

    @property
    def selected(self) -> Candidate | None:
        """The best candidate meeting every constraint, or None if none does."""
        return self._find(self.selected_id)

    def _find(self, cid: str | None) -> Candidate | None:
        found = next((c for c in self.candidates if c.id == cid), None)
        if found is not None:
            found.run_path = self.path
        return found

    @property
    def pareto(self) -> list[Candidate]:
        """Candidates not dominated on (val metric, latency, size)."""
        return [self.candidate(cid) for cid in self.pareto_ids]

    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Run:
        return cls(
            schema=data["schema"], run=data["run"], task=data["task"], seed=data["seed"],
            env=data.get("env", {}), baseline_id=data.get("baseline"),
            candidates=[Candidate.from_dict(c) for c in data.get("candidates", [])],
            pareto_ids=list(data.get("pareto", [])), selected_id=data.get("selected"),
            constraints=dict(data.get("constraints", {})),
            task_spec=dict(data.get("task_spec", {})), config=dict(data.get("config", {})),
            status=data.get("status", "complete"), path=path,
        )._attach()

    def _attach(self) -> Run:
        for cand in self.candidates:
            cand.run_path = self.path
        return self
