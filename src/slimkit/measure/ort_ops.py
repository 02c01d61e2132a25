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
INT8_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "ConvInteger", "MatMulInteger",
            "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "NhwcQLinearConv", "QAttention")
LAYOUT_OPS = ("Transpose", "ReorderInput", "ReorderOutput")
VNNI = {"avx512_vnni", "avx_vnni", "amx_int8", "avx_vnni_int8"}


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


def explain(quantized: dict[str, Any], reference: dict[str, Any],
            cpu_features: list[str] | None = None) -> dict[str, Any]:
    """Side-by-side summary: float compute ops left, Q/DQ overhead, total time ratio, and one
    line saying why the quantized model is slower (or that it pays)."""
    q_ops = quantized["op_us"]
    qdq = sum(us for op, us in q_ops.items() if op in QDQ_OPS)
    float_left = {op: quantized["op_nodes"][op] for op in q_ops if op in COMPUTE_OPS}
    summary = {
        "float_compute_ops": float_left,
        "qdq_us": qdq,
        "qdq_share": qdq / quantized["total_us"] if quantized["total_us"] else 0.0,
        "speedup": reference["total_us"] / quantized["total_us"] if quantized["total_us"]
        else 0.0,
        "ops": sorted(set(q_ops) | set(reference["op_us"]),
                      key=lambda op: -(q_ops.get(op, 0) + reference["op_us"].get(op, 0))),
    }
    summary["verdict"] = verdict(quantized, reference, summary, cpu_features)
    return summary


def _time(ops: dict[str, Any], names: tuple[str, ...]) -> float:
    return sum(us for op, us in ops["op_us"].items() if op in names)


def verdict(quantized: dict[str, Any], reference: dict[str, Any], summary: dict[str, Any],
            cpu_features: list[str] | None = None) -> str:
    """One line: whether the quantized model pays and, when it does not, the biggest reasons
    (compute left in float, layout changes, Q/DQ, int8 kernels slower than float ones, no
    VNNI on this CPU), each with its measured time."""
    ratio = summary["speedup"]
    if ratio >= 1:
        return f"int8 pays here: {ratio:.2f}x less operator time than the float model"
    reasons = []
    left = summary["float_compute_ops"]
    if left:
        count = sum(left.values())
        reasons.append(f"{count} compute op(s) stayed float behind Dequantize "
                       f"({_time(quantized, tuple(left)):,.0f} µs; int8 kernels were not fused)")
    layout = _time(quantized, LAYOUT_OPS) - _time(reference, LAYOUT_OPS)
    if layout > 0.05 * quantized["total_us"]:
        reasons.append(f"layout changes (Transpose/Reorder) add {layout:,.0f} µs")
    if summary["qdq_share"] > 0.1:
        reasons.append(f"Quantize/Dequantize take {100 * summary['qdq_share']:.0f}%")
    int8_us, float_us = _time(quantized, INT8_OPS), _time(reference, COMPUTE_OPS)
    if int8_us > float_us > 0:
        reasons.append(f"the int8 kernels alone take {int8_us:,.0f} µs against {float_us:,.0f} "
                       f"µs in float: too little arithmetic per operator for int8 to pay")
    if cpu_features is not None and not VNNI & set(cpu_features):
        reasons.append("this CPU has no VNNI/AMX int8 instructions")
    because = "; ".join(reasons) or "no single operator explains it"
    return f"slower than float ({ratio:.2f}x operator time): {because}"
