"""Constraints, selection and the Pareto front over measured candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slimkit.core.objectives import OBJECTIVES, TIE_BREAK
from slimkit.core.runs import Candidate

NOT_FASTER = "slower_than_parent"  # the quantize flag: never selected on latency or throughput
TOLERANCE = 1e-9  # 0.98 - 0.97 is 0.010000000000000009: still within a 0.01 budget


def accuracy_drop(value: float, reference: float, direction: str) -> float:
    """How much worse ``value`` is than ``reference`` (negative: better)."""
    return reference - value if direction == "maximize" else value - reference


def drop_excess(value: float, reference: float, direction: str, limit: float) -> float:
    """The drop beyond ``limit`` (<= 0: within the budget), with float noise removed."""
    excess = accuracy_drop(value, reference, direction) - limit
    return 0.0 if abs(excess) < TOLERANCE else excess


def violations(c: Candidate, baseline: Candidate, constraints: dict[str, Any],
               metric: str, direction: str) -> list[str]:
    """Human-readable constraint violations of ``c`` (empty: feasible). Accuracy is on val."""
    found = []
    drop_limit = constraints.get("max_accuracy_drop")
    if drop_limit is not None:
        base, value = baseline.metric("val", metric) or 0.0, c.metric("val", metric) or 0.0
        if drop_excess(value, base, direction, drop_limit) > 0:
            found.append(f"val {metric} drop {accuracy_drop(value, base, direction):.4f} > "
                         f"{drop_limit}")
    latency, latency_limit = OBJECTIVES["latency"].key(c), constraints.get("max_latency_ms")
    if latency_limit is not None and latency > latency_limit:
        found.append(f"latency {latency:.4f} ms > {latency_limit} ms")
    size, size_limit = OBJECTIVES["size"].key(c), constraints.get("max_size_bytes")
    if size_limit is not None and size > size_limit:
        found.append(f"size {size:.0f} B > {size_limit} B")
    return found


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def pareto_front(candidates: Sequence[Candidate], metric: str, direction: str) -> list[str]:
    """Ids of candidates not dominated on (val metric, latency, size)."""
    sign = -1.0 if direction == "maximize" else 1.0
    points = {c.id: (sign * (c.metric("val", metric) or 0.0), OBJECTIVES["latency"].key(c),
                     OBJECTIVES["size"].key(c)) for c in candidates}
    return [cid for cid, p in points.items()
            if not any(_dominates(q, p) for other, q in points.items() if other != cid)]


def objective_key(c: Candidate, objective: str) -> tuple[float, float]:
    """Sort key of a candidate on ``objective`` (smaller is better), ties broken by another."""
    return OBJECTIVES[objective].key(c), OBJECTIVES[TIE_BREAK[objective]].key(c)


def select(candidates: Sequence[Candidate], baseline: Candidate | None,
           constraints: dict[str, Any], metric: str, direction: str,
           objective: str = "latency") -> tuple[str | None, list[str]]:
    """Mark feasibility on every ok candidate; return (selected id, pareto ids).

    The selected candidate is the best feasible one on ``objective``: the lowest onnxruntime
    p50 latency at batch 1 (ties: size), the smallest file (``size``) or the highest batch
    throughput (``throughput``). None when no candidate meets every constraint. A candidate
    flagged ``slower_than_parent`` is only selected on ``size``.
    """
    done = [c for c in candidates if c.status == "ok"]
    if baseline is None or not done:
        return None, []
    for c in done:
        c.violations = violations(c, baseline, constraints, metric, direction)
        c.feasible = not c.violations
    feasible = [c for c in done if c.feasible]
    if objective != "size":  # a quantized model slower than its parent is no speed result
        feasible = [c for c in feasible if NOT_FASTER not in c.flags]
    chosen = min(feasible, key=lambda c: objective_key(c, objective), default=None)
    return (chosen.id if chosen else None), pareto_front(done, metric, direction)
