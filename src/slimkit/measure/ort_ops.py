"""Per-operator time from onnxruntime's profiler: why an int8 model is (or isn't) faster."""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from slimkit.measure.onnx_probe import session_options

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
COMPUTE_OPS = ("Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul")


def op_times(path: str | Path, input_shape: tuple[int, ...], batch: int = 256, runs: int = 50,
             threads: int = 1) -> dict[str, Any]:
    """Mean microseconds per run for each operator type of the *optimized* graph onnxruntime
    executes (after its fusions, e.g. DQ->Conv->Q into QLinearConv), plus the node count."""
    with tempfile.TemporaryDirectory(prefix="slimkit-ortprof-") as tmp:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name:
                np.random.default_rng(0).standard_normal((batch, *input_shape)).astype("float32")}
        warmup = 5
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run"),
                        key=lambda e: e["ts"])
    timed_from = model_runs[warmup]["ts"] if len(model_runs) > warmup else 0
    total: dict[str, float] = defaultdict(float)
    nodes: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        if event.get("ts", 0) < timed_from:
            continue
        op = event.get("args", {}).get("op_name", "?")
        total[op] += float(event.get("dur", 0))
        nodes[op].add(event["name"].removesuffix("_kernel_time"))
    per_run = {op: us / runs for op, us in total.items()}
    return {"batch": batch, "runs": runs, "threads": threads,
            "op_us": dict(sorted(per_run.items(), key=lambda kv: -kv[1])),
            "op_nodes": {op: len(names) for op, names in nodes.items()},
            "total_us": sum(per_run.values())}


def explain(quantized: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Side-by-side summary: float compute ops left, Q/DQ overhead, total time ratio."""
    q_ops = quantized["op_us"]
    qdq = sum(us for op, us in q_ops.items() if op in QDQ_OPS)
    float_left = {op: quantized["op_nodes"][op] for op in q_ops if op in COMPUTE_OPS}
    return {
        "float_compute_ops": float_left,
        "qdq_us": qdq,
        "qdq_share": qdq / quantized["total_us"] if quantized["total_us"] else 0.0,
        "speedup": reference["total_us"] / quantized["total_us"] if quantized["total_us"]
        else 0.0,
        "ops": sorted(set(q_ops) | set(reference["op_us"]),
                      key=lambda op: -(q_ops.get(op, 0) + reference["op_us"].get(op, 0))),
    }
