"""Constraints, selection and the Pareto front over finished candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimkit.pipeline.run import Candidate


def latency_ms(c: Candidate) -> float:
    return float(c.profile.get("onnxruntime", {}).get("latency_ms", {}).get("p50", float("inf")))


def size_bytes(c: Candidate) -> float:
    return float(c.profile.get("size_bytes", float("inf")))


def violations(c: Candidate, baseline: Candidate, constraints: dict[str, Any],
               metric: str, direction: str) -> list[str]:
    """Human-readable constraint violations of ``c`` (empty: feasible). Accuracy is on val."""
    found = []
    drop_limit = constraints.get("max_accuracy_drop")
    if drop_limit is not None:
        base, value = baseline.metric("val", metric), c.metric("val", metric)
        drop = (base - value) if direction == "maximize" else (value - base)
        if drop > drop_limit + 1e-12:
            found.append(f"val {metric} drop {drop:.4f} > {drop_limit}")
    latency_limit = constraints.get("max_latency_ms")
    if latency_limit is not None and latency_ms(c) > latency_limit:
        found.append(f"latency {latency_ms(c):.4f} ms > {latency_limit} ms")
    size_limit = constraints.get("max_size_bytes")
    if size_limit is not None and size_bytes(c) > size_limit:
        found.append(f"size {size_bytes(c):.0f} B > {size_limit} B")
    return found


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def pareto_front(candidates: Sequence[Candidate], metric: str, direction: str) -> list[str]:
    """Ids of candidates not dominated on (val metric, latency, size)."""
    sign = -1.0 if direction == "maximize" else 1.0
    points = {c.id: (sign * (c.metric("val", metric) or 0.0), latency_ms(c), size_bytes(c))
              for c in candidates}
    return [cid for cid, p in points.items()
            if not any(_dominates(q, p) for other, q in points.items() if other != cid)]


def objective_key(c: Candidate, objective: str) -> tuple[float, float]:
    """Sort key of a candidate on ``objective`` (smaller is better)."""
    if objective == "size":
        return size_bytes(c), latency_ms(c)
    if objective == "throughput":
        ort = c.profile.get("onnxruntime", {})
        return -float(ort.get("throughput_sps", 0.0)), size_bytes(c)
    return latency_ms(c), size_bytes(c)


def select(candidates: Sequence[Candidate], baseline: Candidate | None,
           constraints: dict[str, Any], metric: str, direction: str,
           objective: str = "latency") -> tuple[str | None, list[str]]:
    """Mark feasibility on every ok candidate; return (selected id, pareto ids).

    The selected candidate is the best feasible one on ``objective``: the lowest onnxruntime
    p50 latency at batch 1 (ties: size), the smallest file (``size``) or the highest batch
    throughput (``throughput``). None when no candidate meets every constraint.
    """
    done = [c for c in candidates if c.status == "ok"]
    if baseline is None or not done:
        return None, []
    for c in done:
        c.violations = violations(c, baseline, constraints, metric, direction)
        c.feasible = not c.violations
    feasible = [c for c in done if c.feasible]
    chosen = min(feasible, key=lambda c: objective_key(c, objective), default=None)
    return (chosen.id if chosen else None), pareto_front(done, metric, direction)
