"""Several ONNX files timed side by side in one process, their timing loops interleaved, so
load on the machine falls on all of them alike. For choices made while building a candidate
(which variant is faster here); candidates themselves are measured by ``profile_onnx``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from slimkit.measure.onnx_probe import session_options
from slimkit.measure.timing import ProfileSettings, random_inputs

ROUNDS = 5


def _per_call(call: Any, seconds: float, min_calls: int) -> float:
    """Seconds per call of ``call``: at least ``min_calls`` calls and ``seconds`` of them."""
    count, start = 0, time.perf_counter()
    while count < min_calls or time.perf_counter() - start < seconds:
        call()
        count += 1
    return (time.perf_counter() - start) / count


def race(paths: dict[str, Path], input_shape: tuple[int, ...], dtype: str,
         settings: ProfileSettings, high: int | None = None,
         rounds: int = ROUNDS) -> dict[str, dict[str, float]]:
    """Median batch-1 latency (ms) and throughput (samples/s at the throughput batch) of each
    named file, over ``rounds`` interleaved rounds."""
    rng = np.random.default_rng(0)
    small = random_inputs(rng, settings.batch, input_shape, dtype, high)
    bulk = random_inputs(rng, settings.throughput_batch, input_shape, dtype, high)
    calls = {}
    for name, path in paths.items():
        session = ort.InferenceSession(str(path), session_options(settings.threads),
                                       providers=["CPUExecutionProvider"])
        feed = session.get_inputs()[0].name
        calls[name] = (lambda s=session, f=feed: s.run(None, {f: small}),
                       lambda s=session, f=feed: s.run(None, {f: bulk}))
        for call in calls[name]:
            call()  # warm-up
    seconds = max(settings.min_seconds / (2 * rounds), 0.02)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (one, many) in calls.items():
            times[name].append((_per_call(one, seconds, 3), _per_call(many, seconds, 1)))
    return {name: {"latency_ms": round(float(np.median([t[0] for t in ts])) * 1e3, 5),
                   "throughput_sps": round(settings.throughput_batch /
                                           float(np.median([t[1] for t in ts])), 1)}
            for name, ts in times.items()}


def speed_ratio(fast: dict[str, float], slow: dict[str, float]) -> float:
    """How much faster ``fast`` is than ``slow``: the geometric mean of the latency and the
    throughput ratios (above 1: faster)."""
    latency = slow["latency_ms"] / max(fast["latency_ms"], 1e-12)
    throughput = fast["throughput_sps"] / max(slow["throughput_sps"], 1e-12)
    return float(np.sqrt(latency * throughput))
