"""Baseline accuracy and wall time of `slimkit baseline` with default settings, 3 seeds per task.

Usage: python benchmarks/baseline_accuracy.py [--tasks mnist1d,digits] [--seeds 0,1,2]
Prints a markdown table (the figures in benchmarks/RESULTS.md come from this script).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import slimkit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="mnist1d,digits")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                start = time.perf_counter()
                run = slimkit.baseline(task, out=Path(tmp) / f"{task}-{seed}", seed=seed,
                                       progress=False)
                wall = time.perf_counter() - start
                c0 = run.candidates[0]
                rows.append((task, seed, c0.model["family"], c0.metrics["val"]["accuracy"],
                             c0.metrics["test"]["accuracy"], c0.training["epochs_run"],
                             c0.training["seconds"], wall))
                print(f"{task} seed {seed}: test {rows[-1][4]:.4f} in {wall:.1f} s", flush=True)
    env = run.env
    print(f"\n{env['cpu']}, torch {env['torch']}, {env['cpu_count']} cores\n")
    print("| task | seed | model | val acc | test acc | epochs | train s | total s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for task, seed, model, val, test, epochs, train_s, wall in rows:
        print(f"| {task} | {seed} | {model} | {val:.4f} | {test:.4f} | {epochs} | "
              f"{train_s:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
