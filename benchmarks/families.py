"""Which kind of model fits the data at a latency budget: every family at two sizes, trained
with the same epoch budget and seed, on a 1-D sequence (mnist1d), images (digits) and a
sequence regression (forecast). One run per task; its baseline is the task's default model.

Every candidate's onnxruntime file is then timed side by side (``race``: the timing loops of
all files interleaved, rounds of batch 1 and batch 256), so the ratios against the default
model are measured under the same load. On digits, the sequence families read the 8 image rows
as 8 steps (``rows: true``); cnn1d cannot read images and is listed as skipped. A family size
equal to the task's default model is the baseline itself, not trained twice.

On mnist1d the run also has dynamic int8 of each recurrent model and, with ``--arch-trials
N``, ``arch`` across every family (distilled from the default model); the script prints
arch's pick against the fastest hand-chosen family at its accuracy.

Usage: python benchmarks/families.py [--tasks mnist1d digits forecast] [--epochs 20]
                                     [--arch-trials 16] [--out runs/bench-families]
                                     [--families gru lstm]  (only these, and the baseline)
                                     [--report-only]  (time the runs already in --out again)
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np

import slimkit
from slimkit.core.runs import Candidate, Run
from slimkit.measure.race import race
from slimkit.measure.timing import ProfileSettings
from slimkit.models import build_model, model_args
from slimkit.tasks import load_task

SIGNAL_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "cnn1d": {"small": {"width": 32, "depth": 2}, "large": {"width": 128, "depth": 3}},
    "mobilenet": {"small": {"width_mult": 0.5, "depth": 2}, "large": {"width_mult": 1.0}},
    "efficientnet": {"small": {"width_mult": 0.5, "depth": 2}, "large": {"width_mult": 1.0}},
    "gru": {"small": {"width": 32}, "large": {"width": 64, "depth": 2}},
    "lstm": {"small": {"width": 32}, "large": {"width": 64, "depth": 2}},
    "tcn": {"small": {"width": 16, "depth": 3}, "large": {"width": 64, "depth": 4}},
    "transformer": {"small": {"width": 32, "depth": 1, "heads": 2},
                    "large": {"width": 64, "depth": 2, "heads": 4}},
}
IMAGE_SIZES = {"cnn2d": {"small": {"width": 8, "depth": 1}, "large": {"width": 32, "depth": 2}},
               **{f: SIGNAL_SIZES[f] for f in ("mobilenet", "efficientnet")},
               **{f: {size: {**args, "rows": True, **({"patch": 1} if f == "transformer"
                                                      else {})}
                      for size, args in SIGNAL_SIZES[f].items()}
                  for f in ("gru", "lstm", "tcn", "transformer")}}
RECURRENT = ("gru", "lstm")
SHOWN = ("width", "width_mult", "depth", "heads", "patch", "bidirectional", "rows", "phi")
RACE = ProfileSettings(throughput_batch=256, min_seconds=3.0)


def sizes_for(task: str) -> dict[str, dict[str, dict[str, Any]]]:
    return IMAGE_SIZES if task == "digits" else SIGNAL_SIZES


def recipe(task: str, epochs: int, seed: int, arch_trials: int,
           families: list[str] | None = None) -> dict[str, Any]:
    """Baseline = the task's default model; a from-scratch ``arch`` step per family and size
    (same epochs and seed); on mnist1d, arch across families and dynamic int8 of the RNNs."""
    steps: list[dict[str, Any]] = []
    default = load_task(task, seed=seed).default_model
    for family, sizes in sizes_for(task).items():
        if families and family not in families:
            continue
        for size, args in sizes.items():
            if family == default and model_args(family, args) == model_args(default, {}):
                continue  # the baseline itself
            steps.append({"technique": "arch", "name": f"{family}-{size}", "from": "baseline",
                          "params": {"architecture": {"family": family, "args": args},
                                     "distill": False, "train": {"epochs": epochs}}})
    if arch_trials and task == "mnist1d":
        steps.append({"technique": "arch", "name": "arch-all", "from": "baseline",
                      "params": {"trials": arch_trials, "train": {"epochs": epochs}}})
    if task == "mnist1d":
        steps += [{"technique": "quantize", "name": f"{family}-{size}-int8",
                   "from": f"{family}-{size}", "params": {"mode": "dynamic"}}
                  for family in RECURRENT if not families or family in families
                  for size in ("small", "large")]
    return {"version": 1, "task": task, "seed": seed,
            "profile": {"min_seconds": 0.3, "min_runs": 50},
            "baseline": {"train": {"epochs": epochs}}, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", nargs="+", default=["mnist1d", "digits", "forecast"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arch-trials", type=int, default=16)
    parser.add_argument("--out", default="runs/bench-families")
    parser.add_argument("--families", nargs="+", help="only these families (and the baseline)")
    parser.add_argument("--report-only", action="store_true",
                        help="time and report the runs already in --out (no training)")
    args = parser.parse_args()
    for task_name in args.tasks:
        out = Path(args.out) / task_name
        if args.report_only:
            report(slimkit.load_run(out), task_name)
            continue
        shutil.rmtree(out, ignore_errors=True)
        made = recipe(task_name, args.epochs, args.seed, args.arch_trials, args.families)
        run = slimkit.run_recipe(made, out, progress=False)
        report(run, task_name)


def report(run: Run, task_name: str) -> None:
    task = load_task(task_name, seed=0)
    done = [c for c in run.candidates if c.status == "ok"]
    files = {c.id: run.path / c.artifacts["onnx"] for c in done}
    timed = race(files, task.input_shape, task.input_dtype, RACE, rounds=7)
    base = run.candidate("c0")
    metric = task.metric
    print(f"\n## {task_name} ({metric}; baseline c0 = {base.model['family']} "
          f"{base.model['args']})\n")
    print(f"| candidate | model | val {metric} | test {metric} | ort p50 b=1 | x c0 | "
          f"throughput b=256 | x c0 | size | x c0 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in done:
        t, t0 = timed[c.id], timed["c0"]
        model = f"{c.model['family']} " + ", ".join(
            f"{k}={v}" for k, v in c.model["args"].items() if k in SHOWN)
        print(f"| {c.id} {c.step or 'baseline'} | {model} | {c.metric('val', metric):.4f} | "
              f"{c.metric('test', metric):.4f} | {t['latency_ms']:.4f} ms | "
              f"{t0['latency_ms'] / t['latency_ms']:.2f}x | {t['throughput_sps']:,.0f}/s | "
              f"{t['throughput_sps'] / t0['throughput_sps']:.2f}x | "
              f"{c.size_bytes / 1000:.1f} KB | {base.size_bytes / c.size_bytes:.2f}x |")
    for c in run.candidates:
        if c.status != "ok":
            print(f"\n{c.id} {c.step}: {c.status}: {c.error}")
    if task_name == "digits":
        try:
            build_model("cnn1d", {}, task.input_shape, task.num_classes)
        except slimkit.SlimkitError as err:
            print(f"\ncnn1d skipped: {err}")
    if task.kind == "regression":
        print(f"\nReference: a least-squares linear predictor on the flattened history has "
              f"test {metric} {linear_reference(task):.4f}.")
    hand = [c for c in done if c.technique == "arch" and "architecture" in c.params
            and c.params["architecture"]] + [base]
    budget = timed["c0"]["latency_ms"]
    within = [c for c in hand if timed[c.id]["latency_ms"] <= budget]
    sign = 1 if task.direction == "maximize" else -1
    pick = max(within, key=lambda c: sign * c.metric("val", metric))
    print(f"\nAt or under the default model's latency ({budget:.4f} ms), the best val {metric}: "
          f"{pick.id} {pick.step or 'baseline'} ({pick.metric('val', metric):.4f}, "
          f"test {pick.metric('test', metric):.4f}, {timed[pick.id]['latency_ms']:.4f} ms).")
    by_family: dict[str, Candidate] = {}
    for c in hand:
        family = c.model["family"]
        if family not in by_family or (sign * c.metric("val", metric)
                                       > sign * by_family[family].metric("val", metric)):
            by_family[family] = c
    ranking = sorted(by_family.values(), key=lambda c: c.metric("val", metric),
                     reverse=task.direction == "maximize")
    print("Best size of each family by val: " + "; ".join(
        f"{c.model['family']} {c.metric('val', metric):.4f} at "
        f"{timed[c.id]['latency_ms']:.4f} ms" for c in ranking))
    arch_step = next((c for c in done if c.step == "arch-all"), None)
    if arch_step is not None:
        arch_versus_hand(arch_step, hand, timed, metric, task.direction)
    for c in done:
        if c.technique == "quantize":
            int8_row(c, run.candidate(c.parent), timed, metric)
    features = " ".join(run.env["cpu_features"])
    print(f"\nCPU: {run.env['cpu']}, {run.env['cpu_count']} cores, {features}")


def linear_reference(task: Any) -> float:
    """Test mse of ordinary least squares (with a bias) from the flattened inputs."""
    def design(x: np.ndarray) -> np.ndarray:
        return np.c_[x.reshape(len(x), -1), np.ones(len(x))]

    weights = np.linalg.lstsq(design(task.train.x), task.train.y, rcond=None)[0]
    return float(((design(task.test.x) @ weights - task.test.y) ** 2).mean())


def arch_versus_hand(found: Candidate, hand: list[Candidate], timed: dict[str, Any],
                     metric: str, direction: str) -> None:
    """arch's pick against the fastest hand-chosen model at least as accurate on val."""
    sign = 1 if direction == "maximize" else -1
    value = found.metric("val", metric)
    print(f"\narch across families: {found.model['family']} {found.model['args']}, val "
          f"{value:.4f}, test {found.metric('test', metric):.4f}, "
          f"{timed[found.id]['latency_ms']:.4f} ms; searched {found.params['families_searched']},"
          f" skipped {list(found.params['families_skipped'])}; family fronts "
          f"{found.params['family_fronts']}")
    as_good = [c for c in hand if sign * c.metric("val", metric) >= sign * value]
    if not as_good:
        best = max(hand, key=lambda c: sign * c.metric("val", metric))
        print(f"no hand-chosen model reaches arch's val {metric}; the most accurate, "
              f"{best.step or 'baseline'} ({best.metric('val', metric):.4f}), runs at "
              f"{timed[best.id]['latency_ms']:.4f} ms: "
              f"{timed[best.id]['latency_ms'] / timed[found.id]['latency_ms']:.2f}x arch's")
        return
    fastest = min(as_good, key=lambda c: timed[c.id]["latency_ms"])
    print(f"fastest hand-chosen model at least as accurate on val: {fastest.step or 'baseline'}"
          f" ({fastest.metric('val', metric):.4f}) at {timed[fastest.id]['latency_ms']:.4f} ms:"
          f" latency ratio hand / arch = "
          f"{timed[fastest.id]['latency_ms'] / timed[found.id]['latency_ms']:.2f}x")


def int8_row(c: Candidate, parent: Candidate, timed: dict[str, Any], metric: str) -> None:
    """Dynamic int8 of a recurrent model against its float parent."""
    fast, slow = timed[c.id]["latency_ms"], timed[parent.id]["latency_ms"]
    print(f"dynamic int8 of {parent.step}: val {c.metric('val', metric):.4f} (float "
          f"{parent.metric('val', metric):.4f}), {fast:.4f} ms vs {slow:.4f} ms float "
          f"({slow / fast:.2f}x), throughput {timed[c.id]['throughput_sps']:,.0f}/s vs "
          f"{timed[parent.id]['throughput_sps']:,.0f}/s, {c.size_bytes / 1000:.1f} KB vs "
          f"{parent.size_bytes / 1000:.1f} KB; int8 recurrent: {c.params.get('recurrent_int8')}"
          f", kept float: {list(c.params.get('kept_float', {}))}")


if __name__ == "__main__":
    main()
