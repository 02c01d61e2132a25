"""Hyperparameter tuning on mnist1d: TPE vs random search vs the untuned default, per seed.

Each search trains `cnn1d` from scratch per trial (median pruner on the per-epoch val accuracy)
and retrains the best parameters; the untuned row is the default baseline. Also reports the
per-trial overhead of slimkit over the training itself (trial wall time vs the fit loop).

Usage: python benchmarks/tune.py [--seeds 0,1,2] [--trials 30] [--out runs/tune]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import slimkit

SPACE = {
    "train.lr": {"low": 3e-4, "high": 3e-2, "log": True},
    "train.batch_size": {"choices": [32, 64, 128, 256]},
    "train.weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "train.label_smoothing": {"low": 0.0, "high": 0.2},
    "model.dropout": {"low": 0.0, "high": 0.5},
    "model.width": {"choices": [64, 128, 192]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="runs/tune")
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for sampler in ("tpe", "random"):
            recipe = {"version": 1, "task": "mnist1d", "seed": seed,
                      "steps": [{"technique": "tune", "from": "baseline", "params": {
                          "sampler": sampler, "trials": args.trials, "pruner": "median",
                          "train": {"epochs": args.epochs, "patience": None},
                          "space": SPACE}}]}
            start = time.perf_counter()
            run = slimkit.run_recipe(recipe, Path(args.out) / f"{sampler}-seed{seed}",
                                     progress=False)
            wall = time.perf_counter() - start
            base, tuned = run.candidates
            history = tuned.params["study"]["history"]
            overhead = [1 - h["fit_seconds"] / h["trial_seconds"] for h in history
                        if h["state"] in ("complete", "pruned") and h["trial_seconds"]]
            if sampler == "tpe":
                rows.append(("untuned default", seed, base.metrics["val"]["accuracy"],
                             base.metrics["test"]["accuracy"], base.training["seconds"], "-"))
            rows.append((f"{sampler} x{args.trials}", seed, tuned.metrics["val"]["accuracy"],
                         tuned.metrics["test"]["accuracy"], wall,
                         f"{100 * statistics.mean(overhead):.2f}%"))
            print(rows[-1], flush=True)
    print("\n| search | seed | val acc | test acc | wall s | slimkit overhead per trial |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seed, val, test, wall, overhead in rows:
        print(f"| {name} | {seed} | {val:.4f} | {test:.4f} | {wall:.0f} | {overhead} |")


if __name__ == "__main__":
    main()
