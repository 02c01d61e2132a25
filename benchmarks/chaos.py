"""kill -9 at random moments, then resume: nothing finished is lost or redone (issue 17).

Three scenarios run as a user runs them, through the `slimkit` command: a tree recipe
(`slimkit run`), a recipe with a tune step, and `slimkit optimize` with a small trial cap. Each
runs once uninterrupted (the reference), then again in a fresh folder that is killed with
SIGKILL at random moments (a seeded draw in the reference's wall time) and resumed each time
with the same command, until the quota of kills is met; a last resume runs to the end.

After every kill: run.json is absent or valid (read by the pydantic schema); every candidate
finished before the kill is still there with the same record (metrics, profile, digests,
training: a candidate that was retrained or re-measured would differ in its timings); every
trial complete in the study stays complete. At the end: candidates' val/test metrics equal the
reference's (the optimize search steers by measured latency, so there only the tuned baseline
is comparable; see the note it prints), and the distinct trial points equal the trial budget.

Usage: python benchmarks/chaos.py [--kills 20] [--seed 0] [--out benchmarks/.chaos]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from slimkit.core.errors import SlimkitError
from slimkit.core.manifest import read_manifest
from slimkit.measure.profile import cpu_features, cpu_model

TREE = """version: 1
task: digits
seed: 0
baseline: {model: cnn2d, model_args: {width: 8}, train: {epochs: 6}}
profile: {min_runs: 20, min_seconds: 0, throughput_batch: 16}
steps:
  - {name: finetune, technique: train, from: baseline, params: {epochs: 3, lr: 0.0005}}
  - {name: pruned, technique: prune, from: baseline, params: {ratio: 0.5, finetune: {epochs: 3}}}
  - {name: int8, technique: quantize, from: pruned, params: {mode: dynamic}}
  - {name: student, technique: distill, from: finetune,
     params: {student: {model: mlp, model_args: {width: 32}}, train: {epochs: 4}}}
"""

TUNE_TRIALS = 8
TUNE = f"""version: 1
task: digits
seed: 0
baseline: {{model: mlp, model_args: {{width: 16, depth: 1}}, train: {{epochs: 2}}}}
profile: {{min_runs: 20, min_seconds: 0, throughput_batch: 16}}
steps:
  - technique: tune
    params:
      sampler: tpe
      trials: {TUNE_TRIALS}
      pruner: none
      train: {{epochs: 4, patience: null}}
      space:
        train.lr: {{low: 0.0001, high: 0.1, log: true}}
        model.width: {{choices: [8, 16, 32, 64]}}
"""

OPTIMIZE_TRIALS = 6
OPTIMIZE = ["optimize", "--task", "digits", "--model", "mlp", "--trials", str(OPTIMIZE_TRIALS),
            "--epochs", "3", "--tune-trials", "2", "--finalists", "2", "--budget", "20m",
            "--set", "train.epochs=4"]

KEPT = ("metrics", "profile", "digests", "training")  # what a retrained candidate changes


@dataclass
class Scenario:
    """One command, killed and resumed; ``trials`` is its study's trial budget (0: none)."""

    name: str
    args: list[str]
    trials: int = 0
    metrics_comparable: bool = True
    kills: int = 0
    lost: list[str] = field(default_factory=list)
    redone: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    finished_early: int = 0

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "slimkit", *self.args, "--out", str(out), "--quiet"]


def run_to_end(scenario: Scenario, out: Path) -> float:
    """Run (or resume) ``scenario`` in ``out`` to its end; its wall time."""
    start = time.perf_counter()
    proc = subprocess.run(scenario.command(out), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{scenario.name}: {' '.join(scenario.command(out))} failed:\n"
                         f"{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def kill_at(scenario: Scenario, out: Path, delay: float) -> bool:
    """Start or resume ``scenario`` and SIGKILL it after ``delay`` s; False if it ended first."""
    proc = subprocess.Popen(scenario.command(out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process and any worker it started
        proc.wait()
        return True


def records(out: Path, scenario: Scenario, moment: str) -> dict[str, dict]:
    """The finished candidates in ``out``'s run.json (none if it is not written yet)."""
    if not (out / "run.json").exists():
        return {}
    try:
        run = read_manifest(out)
    except SlimkitError as err:
        scenario.invalid.append(f"{moment}: {err}")
        return {}
    return {c.id: {k: c.to_dict()[k] for k in KEPT} for c in run.candidates}


def complete_trials(out: Path) -> dict[tuple[str, int], dict]:
    """(study, trial number) -> params of every complete trial in ``out``'s study.db."""
    db = out / "study.db"
    if not db.exists():
        return {}
    url = f"sqlite:///{db}"
    found = {}
    for name in optuna.get_all_study_names(url):
        study = optuna.load_study(study_name=name, storage=url)
        for trial in study.get_trials(deepcopy=False,
                                      states=(optuna.trial.TrialState.COMPLETE,)):
            found[(name, trial.number)] = trial.params
    return found


def check_kept(scenario: Scenario, before: dict, after: dict, moment: str) -> None:
    """Every candidate or trial of ``before`` is in ``after``, unchanged."""
    for key, record in before.items():
        if key not in after:
            scenario.lost.append(f"{moment}: {key}")
        elif after[key] != record:
            scenario.redone.append(f"{moment}: {key}")


def startup_seconds() -> float:
    """How long ``slimkit`` takes to start (imports) before it does any work."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "slimkit", "tasks"], capture_output=True, check=True)
    return time.perf_counter() - start


def chaos(scenario: Scenario, root: Path, quota: int, wall: float, size: int, startup: float,
          rng: random.Random) -> list[Path]:
    """Kill and resume ``scenario`` until ``quota`` kills; the folders of its chains.

    Each process (the first and every resume) is killed at a moment drawn uniformly in the
    work it has left: start-up, then 5-95% of the uninterrupted run's work scaled by the share
    of its ``size`` (candidates plus trials) not finished yet (at least half: a resume also
    loads its inputs again and redoes the work in flight), so kills land in training,
    measuring, exporting and writing, before and after finished work alike. A resume that ends
    before its moment completes its chain (checked, and counted as finished early); a fresh
    folder starts the next."""
    folders: list[Path] = []
    while True:
        out = root / f"{scenario.name}-chaos{len(folders)}"
        folders.append(out)
        shutil.rmtree(out, ignore_errors=True)
        while scenario.kills < quota:
            before = records(out, scenario, "before")
            trials = complete_trials(out)
            left = max(1.0 - (len(before) + len(trials)) / size, 0.5)  # + the work redone
            moment = startup + rng.uniform(0.05, 0.95) * max(wall - startup, 1.0) * left
            if not kill_at(scenario, out, moment):
                scenario.finished_early += 1
                break
            scenario.kills += 1
            label = f"kill {scenario.kills} at {moment:.1f}s"
            after = records(out, scenario, label)
            done = complete_trials(out)
            check_kept(scenario, before, after, label)
            check_kept(scenario, trials, done, label)
            print(f"  {scenario.name}: {label} of its process: candidates {len(before)} -> "
                  f"{len(after)}, complete trials {len(trials)} -> {len(done)}; run.json "
                  f"{'absent' if not (out / 'run.json').exists() else 'valid'}", flush=True)
        before, trials = records(out, scenario, "end"), complete_trials(out)
        run_to_end(scenario, out)
        check_kept(scenario, before, records(out, scenario, "end"), "final resume")
        check_kept(scenario, trials, complete_trials(out), "final resume")
        if scenario.kills >= quota:
            return folders


def compare(scenario: Scenario, reference: Path, chains: list[Path]) -> dict[str, object]:
    """The figures of one scenario's row, over every chain."""
    ref = read_manifest(reference)
    ids = ([c.id for c in ref.candidates] if scenario.metrics_comparable
           else sorted({"c0", str(ref.baseline_id)}))  # the baseline and the tuned reference
    equal, distinct, complete = True, [], []
    for folder in chains:
        got = read_manifest(folder)
        equal &= all(got.candidate(i) is not None
                     and ref.candidate(i).metrics == got.candidate(i).metrics for i in ids)
        points = complete_trials(folder)
        complete.append(len(points))
        distinct.append(len({json.dumps(p, sort_keys=True) for p in points.values()}))
    return {"chains": len(chains), "compared": ",".join(map(str, ids)), "metrics_equal": equal,
            "complete_trials": min(complete), "distinct_points": min(distinct),
            "budget": scenario.trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20, help="kills in all (split 7/7/6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/.chaos")
    args = parser.parse_args()
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "tree.yaml").write_text(TREE)
    (root / "tune.yaml").write_text(TUNE)
    scenarios = [Scenario("run", ["run", str(root / "tree.yaml")]),
                 Scenario("tune", ["run", str(root / "tune.yaml")], trials=TUNE_TRIALS),
                 Scenario("optimize", OPTIMIZE, trials=OPTIMIZE_TRIALS + 2,  # + the tuning pass
                          metrics_comparable=False)]
    quotas = [args.kills - 2 * (args.kills // 3), args.kills // 3, args.kills // 3]
    rng = random.Random(args.seed)
    print(f"CPU: {cpu_model()} ({', '.join(cpu_features())})", flush=True)
    rows = []
    startup = startup_seconds()
    for scenario, quota in zip(scenarios, quotas, strict=True):
        reference = root / f"{scenario.name}-reference"
        shutil.rmtree(reference, ignore_errors=True)
        wall = run_to_end(scenario, reference)
        size = len(read_manifest(reference).candidates) + len(complete_trials(reference))
        print(f"{scenario.name}: uninterrupted in {wall:.1f}s ({size} candidates and trials); "
              f"{quota} kills", flush=True)
        chains = chaos(scenario, root, quota, wall, size, startup, rng)
        rows.append((scenario, compare(scenario, reference, chains)))
    print("\n| scenario | kills (chains) | run.json invalid | finished lost | finished redone "
          "| metrics equal (candidates) | distinct points / budget |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s, f in rows:
        points = f"{f['distinct_points']} / {f['budget']}" if s.trials else "-"
        print(f"| {s.name} | {s.kills} ({f['chains']}) | {len(s.invalid)} | {len(s.lost)} "
              f"| {len(s.redone)} | {f['metrics_equal']} ({f['compared']}) | {points} |")
    for s, _ in rows:
        for problem in (*s.invalid, *s.lost, *s.redone):
            print(f"{s.name}: {problem}")
    print(f"\nstart-up {startup:.1f}s; resumes that ended before their kill moment: "
          + ", ".join(f"{s.name} {s.finished_early}" for s, _ in rows))
    print("optimize: only the baseline's and the tuned reference's metrics are compared: the "
          "search is a multi-objective study on (val metric, measured latency), so two "
          "uninterrupted runs draw different points once the latencies differ.")


if __name__ == "__main__":
    main()
