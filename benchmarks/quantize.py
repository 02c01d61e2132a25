"""Quantization on mnist1d and digits: every row measured in the same run, side by side.

For each task: the default baseline (fp32), slimkit's static int8 (QDQ, per-channel,
onnxruntime pre-processing, minmax calibration on train), dynamic int8, fp16, static int8 with
per-tensor weights (a setting where post-training quantization loses accuracy) and QAT with the
same per-tensor setting; then the baseline's ONNX file quantized by calling onnxruntime's
quantize_static / quantize_dynamic directly with their defaults (same calibration samples),
measured by the same profiler.

Usage: python benchmarks/quantize.py [--tasks mnist1d,digits] [--out runs/quantize]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnx

import slimkit
from slimkit.measure.profile import profile_onnx
from slimkit.pipeline.candidates import onnx_metrics
from slimkit.tasks import load_task
from slimkit.techniques.quantize import TrainReader

STEPS = [
    {"name": "static_int8", "technique": "quantize", "from": "baseline",
     "params": {"mode": "static"}},
    {"name": "dynamic_int8", "technique": "quantize", "from": "baseline",
     "params": {"mode": "dynamic"}},
    {"name": "fp16", "technique": "quantize", "from": "baseline", "params": {"mode": "fp16"}},
    {"name": "static_per_tensor", "technique": "quantize", "from": "baseline",
     "params": {"mode": "static", "per_channel": False}},
    {"name": "qat_per_tensor", "technique": "quantize", "from": "baseline",
     "params": {"mode": "qat", "per_channel": False,
                "qat": {"epochs": 10, "lr": 2e-4, "patience": None, "weight_decay": 0.0}}},
]


def ort_defaults(onnx_path: Path, task_name: str, seed: int, folder: Path) -> dict[str, Path]:
    """The baseline's ONNX quantized by onnxruntime's functions with their default arguments."""
    from onnxruntime.quantization import quantize_dynamic, quantize_static

    task = load_task(task_name, seed=seed)
    name = onnx.load(str(onnx_path)).graph.input[0].name
    static = folder / "ort_static_defaults.onnx"
    quantize_static(str(onnx_path), str(static), TrainReader(task.train.x, name, 512, seed))
    dynamic = folder / "ort_dynamic_defaults.onnx"
    quantize_dynamic(str(onnx_path), str(dynamic))
    return {"ort_static_defaults": static, "ort_dynamic_defaults": dynamic}


def row(name: str, metrics: dict, profile: dict, base: dict, size: int, base_size: int) -> str:
    ort, base_ort = profile.get("onnxruntime", profile), base
    return (f"| {name} | {metrics['test']['accuracy']:.4f} | "
            f"{100 * (metrics['test']['accuracy'] - base['test_acc']):+.1f} pt | "
            f"{size:,} | {size / base_size:.2f}x | {ort['latency_ms']['p50']:.4f} ms | "
            f"{base_ort['latency_ms']['p50'] / ort['latency_ms']['p50']:.2f}x | "
            f"{ort['throughput_sps']:,.0f}/s | "
            f"{ort['throughput_sps'] / base_ort['throughput_sps']:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="mnist1d,digits")
    parser.add_argument("--out", default="runs/quantize")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for task in args.tasks.split(","):
        recipe = {"version": 1, "task": task, "seed": args.seed, "steps": STEPS}
        run = slimkit.run_recipe(recipe, Path(args.out) / task, progress=False)
        c0 = run.baseline
        base = {**c0.profile["onnxruntime"], "test_acc": c0.metrics["test"]["accuracy"]}
        base_size = c0.profile["size_bytes"]
        print(f"\n### {task} (seed {args.seed}; ratios against the fp32 baseline, onnxruntime, "
              f"1 thread; latency at batch 1, throughput at batch 256)\n")
        print("| row | test acc | Δ test | ONNX bytes | size | p50 b=1 | faster | thr b=256 | "
              "thr |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for c in run.candidates:
            print(row(c.step or c.id, c.metrics, c.profile, base, c.profile["size_bytes"],
                      base_size))
        task_data = load_task(task, seed=args.seed)
        assert run.path is not None
        for name, path in ort_defaults(run.path / c0.artifacts["onnx"], task, args.seed,
                                       run.path).items():
            metrics = onnx_metrics(path, task_data)
            profile = profile_onnx(path, shape=task_data.input_shape)
            print(row(name, metrics, profile, base, path.stat().st_size, base_size))
        ptq = run.candidate(next(c.id for c in run.candidates if c.step == "static_per_tensor"))
        qat = run.candidate(next(c.id for c in run.candidates if c.step == "qat_per_tensor"))
        lost = c0.metrics["test"]["accuracy"] - ptq.metrics["test"]["accuracy"]
        recovered = qat.metrics["test"]["accuracy"] - ptq.metrics["test"]["accuracy"]
        share = recovered / lost if lost > 0 else float("nan")
        print(f"\nper-tensor PTQ loses {100 * lost:.1f} pt; QAT recovers {100 * recovered:.1f} pt "
              f"({100 * share:.0f}% of the loss)" if lost > 0 else
              f"\nper-tensor PTQ loses nothing here ({100 * lost:.1f} pt)")


if __name__ == "__main__":
    main()
