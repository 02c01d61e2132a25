"""Engine overhead per step: everything but training and measuring.

Runs a recipe of N steps (alternating fine-tune and export) on digits and splits the wall time
of `run_recipe` into training (the fit loop), measuring (save + ONNX export + parity check +
evaluation + both profiles) and the rest, which is the engine's overhead: loading the parent,
building the technique, selection, Pareto front and the atomic run.json write after each step.

Usage: python benchmarks/engine_overhead.py [--steps 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import slimkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    steps = [{"technique": "train", "params": {"epochs": 1}} if i % 2 == 0
             else {"technique": "export", "params": {"formats": ["onnx"]}}
             for i in range(args.steps)]
    recipe = {"version": 1, "task": "digits", "seed": 0,
              "baseline": {"model": "cnn2d", "train": {"epochs": 3}}, "steps": steps}
    slimkit.load_run  # noqa: B018  (import the package before timing)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = slimkit.run_recipe(recipe, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - start
    print("| candidate | technique | total s | train s | measure s | overhead s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c in run.candidates:
        t = c.timing
        print(f"| {c.id} | {c.technique} | {t['total_s']:.3f} | {t['train_s']:.3f} | "
              f"{t['measure_s']:.3f} | {t['overhead_s']:.3f} |")
    work = sum(c.timing["train_s"] + c.timing["measure_s"] for c in run.candidates)
    per_step = (wall - work) / len(run.candidates)
    worst = max(c.timing["overhead_s"] for c in run.candidates)
    print(f"\nrun_recipe wall {wall:.2f} s, training + measuring {work:.2f} s; "
          f"everything else {wall - work:.2f} s = {per_step:.3f} s per candidate "
          f"(includes task loading and run.json writes); worst in-step overhead {worst:.3f} s")


if __name__ == "__main__":
    main()
