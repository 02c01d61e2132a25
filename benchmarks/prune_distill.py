"""Pruning and distillation on mnist1d, every row measured in the same run, per seed.

Runs benchmarks/prune_distill.yaml (baseline, structured pruning + fine-tuning, 80% unstructured,
a distilled student, the same student without a teacher, pruning + distillation) for each seed
and prints one table per seed and a summary over seeds.

Usage: python benchmarks/prune_distill.py [--seeds 0,1,2] [--out runs/prune_distill]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import slimkit
from slimkit.measure.compare import speedups

RECIPE = Path(__file__).with_name("prune_distill.yaml")


def rows(run: slimkit.Run) -> list[dict]:
    base = run.baseline
    out = []
    for c in run.candidates:
        ratio = speedups(c, base)
        out.append({
            "name": c.step, "id": c.id, "test": c.metrics["test"]["accuracy"],
            "val": c.metrics["val"]["accuracy"],
            "p50": c.profile["onnxruntime"]["latency_ms"]["p50"],
            "thr": c.profile["onnxruntime"]["throughput_sps"],
            "lat_x": ratio["latency"], "thr_x": ratio["throughput"],
            "params": c.profile["params"], "nonzero": c.profile["nonzero_params"],
            "size": c.profile["size_bytes"], "gzip": c.profile["gzip_size_bytes"],
            "flags": ",".join(c.flags) or "-",
        })
    return out


def print_table(seed: int, table: list[dict]) -> None:
    print(f"\nseed {seed}\n")
    print("| row | test acc | val acc | ort p50 b=1 | latency x | ort thr b=256 | thr x | params "
          "| non-zero | ONNX bytes | gzip bytes | flags |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in table:
        print(f"| {r['name']} | {r['test']:.4f} | {r['val']:.4f} | {r['p50']:.4f} ms | "
              f"{r['lat_x']:.2f}x | {r['thr']:,.0f}/s | {r['thr_x']:.2f}x | {r['params']:,} | "
              f"{r['nonzero']:,} | {r['size']:,} | {r['gzip']:,} | {r['flags']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/prune_distill")
    args = parser.parse_args()
    by_seed = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        run = slimkit.run_recipe(RECIPE, Path(args.out) / f"seed{seed}",
                                 overrides=[f"seed={seed}"], progress=False)
        by_seed[seed] = rows(run)
        print_table(seed, by_seed[seed])
    print("\nmean over seeds\n")
    print("| row | test acc | Δ test vs baseline | latency x | thr x | params |")
    print("| --- | --- | --- | --- | --- | --- |")
    names = [r["name"] for r in next(iter(by_seed.values()))]
    for i, name in enumerate(names):
        pick = [table[i] for table in by_seed.values()]
        base = [table[0]["test"] for table in by_seed.values()]
        mean = statistics.mean(r["test"] for r in pick)
        delta = statistics.mean(r["test"] - b for r, b in zip(pick, base, strict=True))
        print(f"| {name} | {mean:.4f} | {100 * delta:+.2f} pt | "
              f"{statistics.mean(r['lat_x'] for r in pick):.2f}x | "
              f"{statistics.mean(r['thr_x'] for r in pick):.2f}x | {pick[0]['params']:,} |")
    kd = [t[[r["name"] for r in t].index("distilled")]["test"] for t in by_seed.values()]
    alone = [t[[r["name"] for r in t].index("student_alone")]["test"] for t in by_seed.values()]
    print(f"\ndistilled student vs the same student alone, per seed: "
          f"{', '.join(f'{a:.4f} vs {b:.4f}' for a, b in zip(kd, alone, strict=True))}")


if __name__ == "__main__":
    main()
