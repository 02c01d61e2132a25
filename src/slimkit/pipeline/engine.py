"""The engine: runs a recipe's steps, records lineage, measures and compares every candidate.

run.json is rewritten (atomically) after every step, so a run killed at any moment resumes from
its last finished step; artifacts of an unfinished step are never referenced by run.json.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from slimkit.core.errors import RecipeError, SlimkitError, StoreError
from slimkit.core.lock import writing
from slimkit.core.manifest import MANIFEST, existing_run, write_manifest
from slimkit.core.runs import Candidate, Run
from slimkit.core.studies import worker_id
from slimkit.measure.profile import environment
from slimkit.measure.timing import ProfileSettings
from slimkit.models import build_model, model_args, output_name
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.recipe import Recipe, technique_config
from slimkit.pipeline.select import select
from slimkit.tasks import Task, load_task
from slimkit.techniques import TECHNIQUES, Context
from slimkit.training import TrainConfig, fit


def _open(folder: Path, recipe: Recipe, restart: bool) -> Run:
    """The run to continue in ``folder`` or a new one; refuses foreign or changed content."""
    return open_run(folder, recipe.digest(), {"recipe": recipe.canonical()}, task=recipe.task,
                    seed=recipe.seed, threads=recipe.threads,
                    constraints=recipe.constraints.model_dump(), restart=restart)


def open_run(folder: Path, digest: str, config: dict[str, Any], *, task: str, seed: int,
             threads: int, constraints: dict[str, Any], restart: bool) -> Run:
    """The run to continue in ``folder`` (same ``digest``: finished candidates with their
    artifacts are kept) or a new one; a run of other settings is refused unless ``restart``."""
    existing = existing_run(folder)
    if existing is not None:
        if existing.config.get("recipe_digest") == digest:
            existing.candidates = [c for c in existing.candidates
                                   if c.status == "ok" and _intact(existing, c)]
            return existing
        if not restart:
            raise RecipeError(f"{folder} holds a run of another recipe or seed (recipe "
                              f"{existing.config.get('recipe_digest')}, now {digest}); pass "
                              f"--restart to discard it, or choose another --out")
        (folder / MANIFEST).unlink()
        shutil.rmtree(folder / "candidates", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return Run(run=folder.name, task=task, seed=seed, env=environment(threads), path=folder,
               constraints={k: v for k, v in constraints.items() if v is not None},
               config={**config, "recipe_digest": digest})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _intact(run: Run, candidate: Candidate) -> bool:
    """Whether every artifact of a finished candidate is there, inside the run folder, with
    the digest recorded when it was stored (a candidate that fails is computed again)."""
    for kind in candidate.artifacts:
        try:
            path = run.artifact(candidate, kind)
        except StoreError:
            return False
        expected = candidate.digests.get(kind)
        if not path.is_file() or (expected is not None and _sha256(path) != expected):
            print(f"note: {candidate.id}'s {kind} file is missing or changed; computing "
                  f"{candidate.id} again", file=sys.stderr)
            return False
    return True


def mark_running(run: Run, cid: str, step: str) -> None:
    """Record in run.json that candidate ``cid`` (step ``step``) is being computed now."""
    run.running = {"candidate": cid, "step": step, "worker": worker_id(),
                   "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_manifest(run)


def store_candidate(run: Run, candidate: Candidate) -> None:
    """Put ``candidate`` in the run, refresh selection and Pareto front, write run.json."""
    run.running = None
    if run.path is not None:
        candidate.digests = {kind: candidate.digests.get(kind) or _sha256(
            run.artifact(candidate, kind)) for kind in candidate.artifacts
            if (run.path / candidate.artifacts[kind]).is_file()}
    others = [c for c in run.candidates if c.id != candidate.id]
    run.candidates = sorted([*others, candidate], key=lambda c: int(c.id[1:]))
    metric, direction = run.task_spec["metric"], run.task_spec["direction"]
    run.selected_id, run.pareto_ids = select(run.candidates, run.baseline, run.constraints,
                                             metric, direction,
                                             objective=run.config.get("objective", "latency"))
    write_manifest(run)


def baseline_model(recipe: Recipe, task: Task) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The seeded, untrained baseline model and its spec (raises if it does not fit the task)."""
    family = recipe.baseline.model or task.default_model
    margs = model_args(family, recipe.baseline.model_args)
    torch.manual_seed(recipe.seed)
    model = build_model(family, margs, task.input_shape, task.num_classes, task.input_dtype)
    if callable(getattr(model, "prune_structured", None)):  # it knows its shape: record it
        margs = {**margs, **model.args}  # e.g. an hf: folder's resolved head and sizes
    spec = {"family": family, "args": margs, "input_shape": list(task.input_shape),
            "num_classes": task.num_classes, "input_dtype": task.input_dtype}
    taken = output_name(model)
    if taken is not None:  # the forward returns a ModelOutput / dict / tuple: which tensor
        spec["output"] = taken
    return model, spec


def train_baseline(recipe: Recipe, task: Task, run: Run, settings: ProfileSettings,
                    progress: bool) -> Candidate:
    model, spec = baseline_model(recipe, task)
    train = TrainConfig(**{**task.default_train, **recipe.baseline.train})
    start = time.perf_counter()
    result = fit(model, task, train, seed=recipe.seed, progress=progress, description="c0 train")
    measured = time.perf_counter()
    assert run.path is not None
    candidate = materialize("c0", None, "train", train.model_dump(), model, spec, task,
                            run.path, settings, training=result.to_dict())
    done = time.perf_counter()
    candidate.step = "baseline"
    candidate.timing = _timing(start, measured, done, train_s=result.seconds)
    return candidate


def _timing(start: float, measured: float, done: float, train_s: float) -> dict[str, float]:
    total = done - start
    measure = done - measured
    return {"total_s": round(total, 3), "train_s": round(train_s, 3),
            "measure_s": round(measure, 3),
            "overhead_s": round(max(total - measure - train_s, 0.0), 3)}


def run_step(index: int, recipe: Recipe, run: Run, task: Task, settings: ProfileSettings,
              progress: bool, ids: dict[str, str], storage: str | None = None) -> Candidate:
    step = recipe.steps[index]
    name = recipe.step_names()[index]
    cid = f"c{index + 1}"
    parent_ref = step.from_
    parent_id = (f"c{index}" if parent_ref == "previous" else ids[parent_ref])
    parent = next((c for c in run.candidates if c.id == parent_id), None)
    config = technique_config(step)
    params: dict[str, Any] = config.model_dump()
    if parent is None or parent.status != "ok":
        return Candidate(id=cid, parent=parent_id, technique=step.technique, params=params,
                         status="skipped", step=name,
                         error=f"parent {parent_id} did not finish")
    clock: dict[str, float] = {}

    def make(model: torch.nn.Module, spec: dict[str, Any], params: dict[str, Any],
             training: dict[str, Any] | None = None, onnx_source: Path | None = None
             ) -> Candidate:
        clock["measure_start"] = time.perf_counter()
        assert run.path is not None
        return materialize(cid, parent_id, step.technique, params, model, spec, task,
                           run.path, settings, training=training, onnx_source=onnx_source)

    assert run.path is not None
    context = Context(task=task, run_dir=run.path, seed=recipe.seed, settings=settings,
                      progress=progress, candidates={c.id: c for c in run.candidates},
                      new_id=cid, materialize=make, constraints=run.constraints,
                      storage=storage,
                      run_key=f"{run.run}-{run.config.get('recipe_digest', '')}")
    technique = TECHNIQUES.get(step.technique)(config)
    start = time.perf_counter()
    try:
        candidate = technique.apply(parent, context)
    except SlimkitError:
        raise
    except Exception as err:  # an internal failure is recorded; the run goes on
        return Candidate(id=cid, parent=parent_id, technique=step.technique, params=params,
                         status="failed", step=name, error=f"{type(err).__name__}: {err}")
    done = time.perf_counter()
    candidate.step = name
    candidate.timing = _timing(start, clock.get("measure_start", done), done,
                               train_s=float(candidate.training.get("seconds", 0.0)))
    return candidate


def execute(recipe: Recipe, out: str | Path, *, restart: bool, progress: bool,
            cache_dir: str | Path | None, storage: str | None) -> Run:
    """Run (or resume) the validated ``recipe`` into ``out``: the baseline, then each step not
    finished there yet (see ``slimkit.run_recipe``), holding ``out``'s writer lock."""
    with writing(out):
        return _execute(recipe, out, restart=restart, progress=progress, cache_dir=cache_dir,
                        storage=storage)


def _execute(recipe: Recipe, out: str | Path, *, restart: bool, progress: bool,
             cache_dir: str | Path | None, storage: str | None) -> Run:
    settings = ProfileSettings(**{"threads": recipe.threads, **recipe.profile})
    task = load_task(recipe.task_source(), seed=recipe.seed, cache_dir=cache_dir)
    baseline_model(recipe, task)  # a model that does not fit the task fails before any write
    run = _open(Path(out), recipe, restart)
    run.task_spec = task.spec()
    run.status = "running"
    finished = {c.id for c in run.candidates}
    write_manifest(run)
    if "c0" not in finished:
        mark_running(run, "c0", "baseline")
        baseline = train_baseline(recipe, task, run, settings, progress)
        run.baseline_id = "c0"  # named once it is stored: run.json's ids name its candidates
        store_candidate(run, baseline)
    run.baseline_id = "c0"
    names = recipe.step_names()
    ids = {"baseline": "c0", **{n: f"c{i + 1}" for i, n in enumerate(names)}}
    for index in range(len(recipe.steps)):
        if f"c{index + 1}" in finished:
            continue
        mark_running(run, f"c{index + 1}", names[index])
        store_candidate(run, run_step(index, recipe, run, task, settings, progress, ids, storage))
    run.status = "complete"
    store_candidate(run, run.candidate("c0"))
    return run
