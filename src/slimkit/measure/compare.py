"""Comparisons between two measured candidates (same measuring code, same machine)."""

from __future__ import annotations

from slimkit.core.runs import Candidate


def speedups(candidate: Candidate, reference: Candidate) -> dict[str, float]:
    """onnxruntime speedups of ``candidate`` over ``reference``: batch-1 latency (p50) and
    large-batch throughput, as ratios (> 1 is faster)."""
    ours, theirs = candidate.latency_ms(), reference.latency_ms()
    ours_thr, theirs_thr = candidate.throughput(), reference.throughput()
    if not (ours and theirs and ours_thr and theirs_thr):
        raise ValueError(f"{candidate.id} or {reference.id} has no onnxruntime profile")
    return {"latency": theirs / ours, "throughput": ours_thr / theirs_thr}


def measurably_faster(candidate: Candidate, reference: Candidate, margin: float = 0.05) -> bool:
    """True when ``candidate`` beats ``reference`` by more than ``margin`` at batch 1 and at
    the throughput batch: timing noise on one machine stays well inside 5%."""
    ratio = speedups(candidate, reference)
    return ratio["latency"] > 1 + margin and ratio["throughput"] > 1 + margin
