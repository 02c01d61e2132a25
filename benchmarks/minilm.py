"""all-MiniLM-L6-v2 on minilm-embed: every row measured in one run, side by side.

Rows: PyTorch eager fp32 and onnxruntime fp32 (the pretrained model, candidate c0), slimkit's
dynamic int8 (per-channel weights chosen on val), the same fp32 ONNX file quantized by calling
onnxruntime's ``quantize_dynamic`` directly with its defaults, slimkit's static int8 (QDQ,
calibrated on train), and the compressed student: layers dropped (and optionally heads/FFN
pruned), distilled from the fp32 model, then dynamic int8. Fidelity is on the 400 fixed test
sentences (mean cosine to the fp32 embeddings, top-10 retrieval agreement); speed is
onnxruntime / torch eager at 1 thread, sequence length 128, latency at batch 1 and the time
per batch of 8 (from throughput at batch 8).

Usage: python benchmarks/minilm.py [--out runs/bench-minilm] [--layers 5] [--epochs 8]
"""

from __future__ import annotations

import argparse
from typing import Any

import slimkit
from slimkit.measure.profile import profile_onnx
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.candidates import onnx_metrics
from slimkit.tasks import load_task


def recipe(layers: int, heads: int, ffn: int, epochs: int, lr: float) -> dict[str, Any]:
    student = {"model": "minilm", "model_args": {"layers": layers, "heads": heads, "ffn": ffn}}
    train = {"epochs": epochs, "lr": lr, "batch_size": 32, "weight_decay": 0.01,
             "patience": None, "schedule": "cosine"}
    return {
        "version": 1, "task": "minilm-embed", "seed": 0,
        "baseline": {"model": "minilm", "train": {"epochs": 0}},
        "steps": [
            {"name": "int8", "technique": "quantize", "from": "baseline",
             "params": {"mode": "dynamic"}},
            {"name": "static-int8", "technique": "quantize", "from": "baseline",
             "params": {"mode": "static", "calibration_samples": 256}},
            {"name": "student", "technique": "distill", "from": "baseline",
             "params": {"student": student, "alpha": 1.0, "train": train}},
            {"name": "student-int8", "technique": "quantize", "from": "student",
             "params": {"mode": "dynamic"}},
        ],
    }


def per_batch_ms(profile: dict[str, Any]) -> float:
    """Milliseconds per batch at the throughput batch size."""
    return 1000.0 * profile["throughput_batch"] / profile["throughput_sps"]


def row(name: str, metrics: dict[str, Any], ort: dict[str, Any], size: int,
        ref: dict[str, float]) -> str:
    batch = per_batch_ms(ort)
    return (f"| {name} | {metrics['test']['cosine']:.4f} | {metrics['test']['top10']:.3f} | "
            f"{ort['latency_ms']['p50']:.2f} ms | {batch:.1f} ms | "
            f"{ref['ort_batch'] / batch:.2f}x | {ref['eager_batch'] / batch:.2f}x | "
            f"{ref['ort_p50'] / ort['latency_ms']['p50']:.2f}x | "
            f"{ref['eager_p50'] / ort['latency_ms']['p50']:.2f}x | {size / 1e6:.1f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-minilm")
    parser.add_argument("--layers", type=int, default=5, help="student layers (of 6)")
    parser.add_argument("--heads", type=int, default=12, help="student heads per layer")
    parser.add_argument("--ffn", type=int, default=1536, help="student FFN neurons per layer")
    parser.add_argument("--epochs", type=int, default=8, help="student distillation epochs")
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()

    run = slimkit.run_recipe(recipe(args.layers, args.heads, args.ffn, args.epochs, args.lr),
                             args.out)
    task = load_task("minilm-embed", seed=0)
    c0 = run.baseline
    assert c0 is not None and run.path is not None
    ort0, eager0 = c0.profile["onnxruntime"], c0.profile["torch"]
    ref = {"ort_batch": per_batch_ms(ort0), "eager_batch": per_batch_ms(eager0),
           "ort_p50": ort0["latency_ms"]["p50"], "eager_p50": eager0["latency_ms"]["p50"]}

    from onnxruntime.quantization import quantize_dynamic

    defaults = run.path / "ort_quantize_dynamic_defaults.onnx"
    quantize_dynamic(str(run.path / c0.artifacts["onnx"]), str(defaults))
    settings = ProfileSettings(throughput_batch=task.throughput_batch)
    ort_defaults = profile_onnx(defaults, settings, shape=task.input_shape,
                                high=task.input_high)
    by_step = {c.step: c for c in run.candidates}

    print(f"\nall-MiniLM-L6-v2 on minilm-embed ({len(task.test)} test sentences), 1 thread, "
          f"sequence 128; speedups against onnxruntime fp32 and PyTorch eager fp32\n")
    print("| model | test cosine | test top-10 | p50 b=1 | per batch of 8 | vs ort fp32 (b=8) "
          "| vs eager (b=8) | vs ort fp32 (b=1) | vs eager (b=1) | ONNX size |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    eager = {"latency_ms": eager0["latency_ms"], "throughput_sps": eager0["throughput_sps"],
             "throughput_batch": eager0["throughput_batch"]}
    print(row("PyTorch eager fp32", c0.metrics, eager, c0.profile["size_bytes"], ref))
    print(row("onnxruntime fp32", c0.metrics, ort0, c0.profile["size_bytes"], ref))
    int8 = by_step["int8"]
    print(row(f"slimkit int8 (dynamic, per_channel={int8.params['per_channel']})",
              int8.metrics, int8.profile["onnxruntime"], int8.profile["size_bytes"], ref))
    print(row("onnxruntime quantize_dynamic defaults", onnx_metrics(defaults, task),
              ort_defaults, defaults.stat().st_size, ref))
    static = by_step["static-int8"]
    print(row("slimkit static QDQ int8", static.metrics, static.profile["onnxruntime"],
              static.profile["size_bytes"], ref))
    shape = f"{args.layers} layers, {args.heads} heads, FFN {args.ffn}"
    for step, label in (("student", f"student ({shape}) fp32"),
                        ("student-int8", f"student ({shape}) int8")):
        cand = by_step[step]
        if cand.status == "ok":
            print(row(label, cand.metrics, cand.profile["onnxruntime"],
                      cand.profile["size_bytes"], ref))
    student = by_step["student"]
    if student.status == "ok":
        print(f"\nstudent distillation: {student.training.get('epochs_run')} epochs, "
              f"{student.training.get('seconds', 0) / 60:.1f} min; val cosine "
              f"{student.metrics['val']['cosine']:.4f}")
    print(f"run folder: {run.path} (slimkit show {run.path})")


if __name__ == "__main__":
    main()
