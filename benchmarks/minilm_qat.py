"""QAT where static PTQ loses, on all-MiniLM-L6-v2 (minilm-embed): how much of the loss QAT wins
back.

The losing setting is onnxruntime's static quantizer on the weight MatMuls only (``op_types:
[MatMul, Gemm]``, per-channel weights, calibrated on train); slimkit's default static path (NNCF,
SmoothQuant) is the row to beat. QAT fine-tunes the fp32 model with the weights, the layer
inputs and the MatMul outputs fake-quantized as that quantizer will (ranges starting at its
min/max calibration and learned, LSQ+), against the fp32 embeddings (the task's targets:
distillation from the fp32 model), then quantizes with the same onnxruntime settings and the
learned ranges.
Recovered = (QAT cosine - PTQ cosine) / (1 - PTQ cosine), on the 400 fixed test sentences.

Usage: python benchmarks/minilm_qat.py [--epochs 3] [--lr 2e-5] [--range-lr 2e-3]
       [--out runs/bench-minilm-qat]
"""

from __future__ import annotations

import argparse
import time

import slimkit
from slimkit.measure.profile import environment

ORT_WEIGHTS = {"op_types": ["MatMul", "Gemm"], "per_channel": True, "calibration_samples": 300,
               "activations": "uint8", "fallback": False}


def recipe(epochs: int, lr: float, range_lr: float) -> dict:
    qat = {"epochs": epochs, "lr": lr, "batch_size": 32, "weight_decay": 0.01, "patience": None,
           "schedule": "cosine"}
    return {
        "version": 1, "task": "minilm-embed", "seed": 0,
        "profile": {"min_runs": 20, "min_seconds": 0.5, "warmup": 2},
        "baseline": {"model": "minilm", "train": {"epochs": 0}},
        "steps": [
            {"name": "ptq-ort", "technique": "quantize", "from": "baseline",
             "params": {"mode": "static", **ORT_WEIGHTS}},
            {"name": "qat-ort", "technique": "quantize", "from": "baseline",
             "params": {"mode": "qat", **ORT_WEIGHTS, "qat": qat, "range_lr": range_lr}},
            {"name": "ptq-nncf", "technique": "quantize", "from": "baseline",
             "params": {"mode": "static", "calibration_samples": 300}},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--range-lr", type=float, default=2e-3)
    parser.add_argument("--out", default="runs/bench-minilm-qat")
    args = parser.parse_args()
    start = time.monotonic()
    run = slimkit.run_recipe(recipe(args.epochs, args.lr, args.range_lr), args.out, restart=True)
    env = environment(1)
    print(f"CPU: {env['cpu']} · features: {', '.join(env['cpu_features']) or 'none'} · "
          f"wall {(time.monotonic() - start) / 60:.1f} min")
    by_step = {c.step: c for c in run.candidates if c.step}
    ptq = by_step["ptq-ort"].metrics["test"]["cosine"]
    print("| candidate | test cosine | val cosine | recovered of the PTQ loss | training s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, cand in by_step.items():
        cosine = cand.metrics["test"]["cosine"]
        recovered = (cosine - ptq) / max(1 - ptq, 1e-9)
        print(f"| {name} | {cosine:.4f} | {cand.metrics['val']['cosine']:.4f} | "
              f"{recovered:.0%} | {cand.training.get('seconds', 0):.0f} |")


if __name__ == "__main__":
    main()
