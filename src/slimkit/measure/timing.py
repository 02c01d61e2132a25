"""The one timing loop every backend and every candidate is measured with."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class ProfileSettings(BaseModel):
    """How latency and throughput are measured (recorded with every profile)."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(1, ge=1, le=256, description="intra-op threads for both backends; a "
                         "list such as [1, all] also profiles onnxruntime at the others (all: "
                         "every core this process may use); the first decides")
    more_threads: list[int] = Field(
        default_factory=list, description="onnxruntime is also profiled at these thread counts")
    batch: int = Field(1, ge=1, description="batch size of the latency measurement")
    throughput_batch: int = Field(256, ge=1, description="batch size of the throughput run")
    warmup: int = Field(10, ge=0, description="untimed calls before timing")
    min_runs: int = Field(200, ge=1, description="timed calls at least")
    min_seconds: float = Field(1.0, ge=0, description="timed seconds at least")
    max_seconds: float = Field(30.0, gt=0, description="stop after this long (min 10 runs)")

    @model_validator(mode="before")
    @classmethod
    def _thread_list(cls, data: Any) -> Any:
        """``threads: [1, all]`` -> threads 1, more_threads [cores]; ``all`` -> the cores."""
        if not isinstance(data, dict) or "threads" not in data:
            return data
        value = data["threads"]
        counts = [value] if not isinstance(value, list) else value
        if not counts:
            raise ValueError("threads: give a count, all, or a list such as [1, all]")
        counts = [usable_cores() if c == "all" else c for c in counts]
        more = [c for c in [*counts[1:], *data.get("more_threads", [])] if c != counts[0]]
        return {**data, "threads": counts[0], "more_threads": list(dict.fromkeys(more))}

    def for_task(self, throughput_batch: int | None) -> ProfileSettings:
        """These settings with the task's throughput batch, unless one was given."""
        if throughput_batch is None or "throughput_batch" in self.model_fields_set:
            return self
        return self.model_copy(update={"throughput_batch": throughput_batch})

    def quick(self) -> ProfileSettings:
        """Cheaper settings for search trials (same code, fewer timed calls); finalists are
        measured again with the full settings, at every thread count."""
        return self.model_copy(update={"min_runs": min(self.min_runs, 100),
                                       "min_seconds": min(self.min_seconds, 0.3),
                                       "more_threads": []})


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), what ``threads: all`` means."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def random_inputs(rng: np.random.Generator, batch: int, input_shape: tuple[int, ...] | list[int],
                  dtype: str = "float32", high: int | None = None) -> np.ndarray:
    """Inputs to time a model with: standard normal floats, or token ids drawn in [1, high)."""
    shape = (batch, *input_shape)
    if dtype.startswith("int"):
        return rng.integers(1, max(int(high or 2), 2), size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def time_calls(fn: Callable[[], object], settings: ProfileSettings) -> np.ndarray:
    """Call ``fn`` ``warmup`` times, then time calls until both ``min_runs`` and ``min_seconds``
    are reached (or ``max_seconds`` passed with at least 10 runs). Returns seconds per call."""
    for _ in range(settings.warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        elapsed = t1 - start
        if len(times) >= settings.min_runs and elapsed >= settings.min_seconds:
            break
        if elapsed >= settings.max_seconds and len(times) >= 10:
            break
    return np.asarray(times)


def summarize(times: np.ndarray, batch: int) -> dict[str, float]:
    """Latency percentiles in milliseconds for one batch size."""
    p50, p95, p99 = np.percentile(times * 1e3, [50, 95, 99])
    return {"p50": round(float(p50), 5), "p95": round(float(p95), 5),
            "p99": round(float(p99), 5), "batch": batch, "runs": len(times)}


def throughput(times: np.ndarray, batch: int) -> float:
    """Samples per second over all timed calls."""
    return round(batch * len(times) / float(times.sum()), 1)


def measure_speed(make_call: Callable[[int], Callable[[], object]],
                  settings: ProfileSettings) -> dict[str, object]:
    """Latency at ``settings.batch`` and throughput at ``settings.throughput_batch``, the same
    way for every backend. ``make_call(batch)`` returns a call on inputs of that batch size."""
    latency = time_calls(make_call(settings.batch), settings)
    bulk = time_calls(make_call(settings.throughput_batch), settings)
    return {"latency_ms": summarize(latency, settings.batch),
            "throughput_sps": throughput(bulk, settings.throughput_batch),
            "throughput_batch": settings.throughput_batch, "threads": settings.threads}
