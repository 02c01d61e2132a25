"""Comparisons between two measured profiles (same measuring code, same machine)."""

from __future__ import annotations

from typing import Any


def speedups(profile: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    """onnxruntime speedups of ``profile`` over ``reference``: batch-1 latency (p50) and
    large-batch throughput, as ratios (> 1 is faster)."""
    ours, theirs = profile["onnxruntime"], reference["onnxruntime"]
    return {
        "latency": theirs["latency_ms"]["p50"] / ours["latency_ms"]["p50"],
        "throughput": ours["throughput_sps"] / theirs["throughput_sps"],
    }


def measurably_faster(profile: dict[str, Any], reference: dict[str, Any],
                      margin: float = 0.05) -> bool:
    """True when ``profile`` beats ``reference`` by more than ``margin`` at batch 1 and at the
    throughput batch: timing noise on one machine stays well inside 5%."""
    ratio = speedups(profile, reference)
    return ratio["latency"] > 1 + margin and ratio["throughput"] > 1 + margin
