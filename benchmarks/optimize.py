"""`slimkit optimize` on mnist1d: the selected model against the tuned baseline, per seed, and
the same search restricted to one technique (pruning only, quantization only).

Each run is the real command (`slimkit.optimize`, what `slimkit optimize` calls) with the given
budget; baseline and selected model are measured by the same profiler in the same run.

Usage: python benchmarks/optimize.py [--seeds 0,1,2] [--budget 20m] [--singles 0]
                                     [--out runs/bench-optimize]
       python benchmarks/optimize.py --remeasure RUN [RUN ...] [--rounds 7]

``--remeasure`` times finished runs' baseline and selected ONNX files again, interleaved (one
profile of each per round, in a fresh process each, as every candidate is measured), and prints
the median ratios: the figures of models measured side by side in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import slimkit
from slimkit.api import optimize
from slimkit.measure.profile import profile_onnx
from slimkit.measure.timing import ProfileSettings


def row(label: str, run: Any, seconds: float) -> dict[str, Any]:
    base, chosen = run.baseline, run.selected
    return {
        "run": label, "minutes": seconds / 60, "trials": len(run.config["search"]["trials"]),
        "base_test": base.metric("test", "accuracy"),
        "sel_test": chosen.metric("test", "accuracy"),
        "chain": chosen.params.get("chain", chosen.technique),
        "lat1": base.latency_ms() / chosen.latency_ms(),
        "thr256": chosen.throughput() / base.throughput(),
        "size": base.size_bytes / chosen.size_bytes,
        "sel_lat": chosen.latency_ms(), "base_lat": base.latency_ms(),
        "sel_size": chosen.size_bytes,
    }


def print_rows(rows: list[dict[str, Any]]) -> None:
    print("| run | wall min | trials | tuned baseline test | selected test | delta | selected "
          "chain | latency b=1 | throughput b=256 | size |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['minutes']:.1f} | {r['trials']} | {r['base_test']:.4f} | "
              f"{r['sel_test']:.4f} | {100 * (r['sel_test'] - r['base_test']):+.1f} pt | "
              f"{r['chain']} | {r['lat1']:.2f}x ({r['base_lat']:.4f} -> {r['sel_lat']:.4f} ms)"
              f" | {r['thr256']:.2f}x | {r['size']:.1f}x ({r['sel_size'] / 1000:.1f} KB) |",
              flush=True)


def remeasure(folder: Path, rounds: int) -> None:
    """Baseline and selected ONNX files of ``folder`` profiled alternately, ``rounds`` times."""
    run = slimkit.load_run(folder)
    base, chosen = run.baseline, run.selected
    shape = tuple(run.task_spec["input_shape"])
    latency: dict[str, list[float]] = {"base": [], "sel": []}
    throughput: dict[str, list[float]] = {"base": [], "sel": []}
    for _ in range(rounds):
        for key, cand in (("base", base), ("sel", chosen)):
            prof = profile_onnx(folder / cand.artifacts["onnx"], ProfileSettings(), shape=shape)
            latency[key].append(prof["latency_ms"]["p50"])
            throughput[key].append(prof["throughput_sps"])
    med = statistics.median
    print(f"| {folder} | {chosen.params.get('chain', chosen.technique)} | "
          f"{med(latency['base']):.4f} -> {med(latency['sel']):.4f} ms "
          f"({med(latency['base']) / med(latency['sel']):.2f}x) | "
          f"{med(throughput['sel']) / med(throughput['base']):.2f}x | {rounds} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", default="20m")
    parser.add_argument("--singles", default="0", help="seeds for the one-technique runs")
    parser.add_argument("--single-budget", default="10m")
    parser.add_argument("--out", default="runs/bench-optimize")
    parser.add_argument("--remeasure", nargs="+", type=Path, help="finished runs to time again")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.remeasure:
        print("| run | selected chain | latency b=1 (median) | throughput b=256 (median) | "
              "rounds |\n| --- | --- | ---: | ---: | ---: |")
        for folder in args.remeasure:
            remeasure(folder, args.rounds)
        return
    out = Path(args.out)
    rows = []
    seeds = [int(s) for s in args.seeds.split(",") if s]
    singles = [int(s) for s in args.singles.split(",") if s]
    plan = []
    for seed in seeds:
        plan.append((f"all techniques, seed {seed}", seed, None, args.budget))
        if seed in singles:
            plan.append((f"pruning only, seed {seed}", seed, ["prune"], args.single_budget))
            plan.append((f"quantization only, seed {seed}", seed, ["quantize"],
                         args.single_budget))
    for label, seed, techniques, budget in plan:
        folder = out / (label.replace(",", "").replace(" ", "-"))
        start = time.perf_counter()
        run = optimize("mnist1d", out=folder, max_accuracy_drop=0.01, budget=budget,
                       seed=seed, techniques=techniques, progress=False,
                       trials=3 if techniques == ["quantize"] else None)
        rows.append(row(label, run, time.perf_counter() - start))
        print_rows(rows[-1:])
    print(f"\nslimkit {slimkit.__version__}; env: {run.env}")
    print_rows(rows)


if __name__ == "__main__":
    main()
