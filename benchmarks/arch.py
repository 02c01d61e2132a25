"""The `arch` search on mnist1d against the hand-written cnn1d baseline, measured side by side.

One recipe: c0 = the default cnn1d (the teacher), c1 = `arch` (a multi-objective Optuna study on
val accuracy and measured onnxruntime latency over MobileNet/EfficientNet-style students, each
distilled from c0; slower-than-c0 architectures dropped; the most accurate remaining one
retrained). Prints both candidates and the study's Pareto front.

Usage: python benchmarks/arch.py [--trials 16] [--seed 0] [--out runs/bench-arch]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import slimkit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-arch")
    args = parser.parse_args()
    out = Path(args.out) / f"seed{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    recipe = {"version": 1, "task": "mnist1d", "seed": args.seed,
              "steps": [{"technique": "arch", "from": "baseline",
                         "params": {"trials": args.trials}}]}
    run = slimkit.run_recipe(recipe, out, progress=False)
    base, found = run.candidate("c0"), run.candidate("c1")
    if found.status != "ok":
        raise SystemExit(f"arch failed: {found.error}")
    ort = lambda c: c.profile["onnxruntime"]  # noqa: E731
    print("| model | val acc | test acc | ort p50 b=1 | ort throughput b=256 | size | params |"
          " MACs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    args_text = ", ".join(f"{k}={found.model['args'][k]}" for k in (
        "width_mult", "depth", "kernel_size", "expansion", "head"))
    for label, c in (("cnn1d (hand-written baseline)", base),
                     (f"arch: {found.model['family']} {args_text}", found)):
        print(f"| {label} | {c.metric('val', 'accuracy'):.4f} | "
              f"{c.metric('test', 'accuracy'):.4f} | {ort(c)['latency_ms']['p50']:.4f} ms | "
              f"{ort(c)['throughput_sps']:,.0f}/s | {c.profile['size_bytes'] / 1000:.1f} KB | "
              f"{c.profile['params']:,} | {c.profile['macs']:,} |")
    delta = found.metric("test", "accuracy") - base.metric("test", "accuracy")
    print(f"\nlatency ratio cnn1d / arch at batch 1: "
          f"{ort(base)['latency_ms']['p50'] / ort(found)['latency_ms']['p50']:.2f}x; "
          f"throughput ratio at batch 256: "
          f"{ort(found)['throughput_sps'] / ort(base)['throughput_sps']:.2f}x; "
          f"test accuracy {100 * delta:+.1f} pt")
    print("\nPareto front of the study (val accuracy, trial latency ms):")
    for p in found.params["pareto"]:
        print(f"  trial {p['number']}: {p['values'][0]:.4f}, {p['values'][1]:.4f} ms, "
              f"{p['model']['family']} {p['model']['args']} "
              f"{'(dropped: slower than cnn1d)' if p['dropped_as_slower'] else ''}")
    print(f"\nenv: {run.env}")


if __name__ == "__main__":
    main()
