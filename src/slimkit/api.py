"""The public Python API: every step of the workflow as a function. Runs end with their report
(``RUN/report.html``), written here, after the pipeline is done.

``serve`` (``slimkit.deploy.serve``) and ``work`` (``slimkit.pipeline.worker``, join a
distributed search) are part of it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from slimkit.core.errors import RecipeError, SlimkitError, StoreError
from slimkit.core.manifest import prepare_folder, read_manifest
from slimkit.core.runs import Run
from slimkit.core.studies import open_storage
from slimkit.core.usercode import absolute, is_reference, trusting
from slimkit.core.validation import validate
from slimkit.deploy.export import export_candidate
from slimkit.deploy.serve import serve
from slimkit.measure.ort_ops import explain as summarize
from slimkit.measure.ort_ops import op_times
from slimkit.measure.profile import (
    cpu_features,
    model_stats,
    profile_onnx,
    profile_torch,
    resolve_shape,
)
from slimkit.measure.timing import ProfileSettings
from slimkit.models import is_hf, load_model, model_config
from slimkit.pipeline.engine import execute
from slimkit.pipeline.optimize.config import OptimizeConfig
from slimkit.pipeline.optimize.runner import SearchCallback, run_optimize
from slimkit.pipeline.python_inputs import convert
from slimkit.pipeline.recipe import Recipe, load_recipe
from slimkit.pipeline.worker import work
from slimkit.report.html import write_report
from slimkit.tasks import CUSTOM, TASKS, load_task
from slimkit.training import TrainConfig

__all__ = ["baseline", "explain", "export", "load_run", "optimize", "profile", "run_recipe",
           "serve", "work"]


def baseline(
    task: str | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    train: dict[str, Any] | TrainConfig | None = None,
    *,
    out: str | Path,
    seed: int = 0,
    threads: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    profile: ProfileSettings | None = None,
    data: str | None = None,
    metric: str | None = None,
    metric_direction: str | None = None,
) -> Run:
    """Train ``model`` (default: the task's) on ``task``, measure and export it into ``out``.

    ``data`` (``file.py:load_data``) makes the task ``custom``; ``model`` may be
    ``file.py:build_model``; ``metric``/``metric_direction`` pick the metric that decides.
    The same as a recipe without steps. Returns the finished Run; its baseline and selected
    candidate is ``c0``. A folder holding a finished run or other files is refused.
    """
    if isinstance(train, TrainConfig):
        train = train.model_dump()
    task = task or (CUSTOM if data else "mnist1d")
    refs = {"data": data, "metric": metric, "model": model}
    refs = {k: absolute(v) if v and is_reference(v) else v for k, v in refs.items()}
    # validate with the names the caller used (model.width, train.lr) before the recipe does
    if task in TASKS:
        model_config(refs["model"] or TASKS.get(task).default_model, model_args)
    validate(TrainConfig, dict(train or {}), prefix="train", error=RecipeError)
    settings = profile.model_dump(exclude={"threads"}) if profile else {}
    extra = {k: v for k, v in (("data", refs["data"]), ("metric", refs["metric"]),
                               ("metric_direction", metric_direction)) if v}
    recipe = load_recipe({
        "version": 1, "task": task, **extra, "seed": seed, "threads": threads,
        "profile": settings,
        "baseline": {"model": refs["model"], "model_args": model_args or {},
                     "train": train or {}},
    })
    prepare_folder(out)
    run = execute(recipe, out, restart=False, progress=progress, cache_dir=cache_dir,
                  storage=None)
    write_report(run)
    return run


def run_recipe(
    recipe: str | Path | dict[str, Any] | Recipe,
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    restart: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    storage: str | None = None,
) -> Run:
    """Run (or resume) ``recipe`` into the folder ``out`` and return the finished Run.

    ``storage`` is an Optuna storage URL for tune steps (default: ``out``/study.db); workers
    started with ``slimkit worker --storage URL`` join those studies. Steps already finished
    in ``out`` by the same recipe and seed are kept; a different recipe is refused unless
    ``restart`` is true.
    """
    validated = load_recipe(recipe, overrides)
    if storage is not None:
        open_storage(storage)  # a bad URL is found before anything trains
    run = execute(validated, out, restart=restart, progress=progress, cache_dir=cache_dir,
                  storage=storage)
    write_report(run)
    return run


def optimize(
    task: str | torch.nn.Module | None = None,
    *,
    out: str | Path,
    train: Any = None,
    val: Any = None,
    test: Any = None,
    data: str | None = None,
    metric: str | Callable[..., float] | None = None,
    metric_direction: str | None = None,
    example_input: Any = None,
    max_accuracy_drop: float = 0.01,
    objective: str = "latency",
    budget: str | float = "20m",
    techniques: list[str] | None = None,
    model: str | None = None,
    model_args: dict[str, Any] | None = None,
    trainer: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int = 1,
    tune_trials: int | None = None,
    trials: int | None = None,
    epochs: int = 30,
    finalists: int = 3,
    profile: dict[str, Any] | None = None,
    storage: str | None = None,
    restart: bool = False,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    callbacks: Sequence[SearchCallback] = (),
) -> Run:
    """Find the best model on ``objective`` within ``max_accuracy_drop`` (val) of the tuned
    baseline, in about ``budget`` of wall-clock time; resumes an interrupted run in ``out``.

    ``model``/``model_args`` pick the baseline (default: the task's model), ``trainer`` sets its
    trainer options (``TrainConfig`` fields), ``techniques`` what chains may use (default:
    every technique with a role that applies to the model; see ``slimkit techniques``),
    ``tune_trials`` the tuning pass, ``trials`` caps the search, ``epochs`` is the training
    length inside a trial, ``finalists`` how many of the best trials are measured in full.
    ``callbacks`` are Optuna callbacks called after every search trial this process runs
    (``study.stop()`` ends the search).

    ``storage`` (an Optuna RDB URL) lets ``slimkit worker`` processes on other machines run
    trials of the same search.

    Your own model and data: ``task`` may be a built-in task name, or a ``torch.nn.Module``
    (the baseline as given: not trained unless ``trainer={"epochs": N}``; no tuning pass unless
    ``tune_trials``) with ``train``/``val``/``test`` as ``(x, y)`` arrays, torch Datasets or
    DataLoaders (``val`` may be None), or ``data="file.py:load_data"``; ``model`` may be
    ``"file.py:build_model"``. ``metric`` is ``accuracy``, ``f1``, ``mse``, ``mae`` or your
    function ``fn(outputs, targets) -> float`` (with ``metric_direction``);
    ``max_accuracy_drop`` is in the metric's units. ``example_input`` is checked against the
    data's input shape.
    """
    given = convert(task, model, train, val, test, data, metric, example_input)
    if given.is_object and storage is not None:
        raise SlimkitError("storage: a model object lives in this process, so workers cannot "
                           "load it; give model='file.py:build_model' to distribute a search")
    if tune_trials is None:  # a model given as it is, or pretrained, is not retrained
        source: dict[str, Any] = {"name": given.task}
        if given.data:
            source.update(data=given.data, **({"model": given.model} if is_hf(given.model)
                                              else {}))  # texts: that folder's tokenizer
        pretrained = given.is_object or load_task(
            source, seed=seed, cache_dir=cache_dir).default_train.get("epochs") == 0
        tune_trials = 0 if pretrained else 4
    if given.is_object and trainer is None:
        trainer = {"epochs": 0}
    raw = {"task": given.task, "data": given.data, "metric": given.metric,
           "metric_direction": metric_direction, "model": given.model,
           "model_args": model_args or {}, "train": trainer or {},
           "seed": seed, "threads": threads, "max_accuracy_drop": max_accuracy_drop,
           "objective": objective, "budget": budget, "tune_trials": tune_trials,
           "techniques": techniques, "trials": trials, "epochs": epochs,
           "finalists": finalists, "profile": profile or {}}
    config = validate(OptimizeConfig, raw, prefix="", error=SlimkitError)
    if storage is not None:
        open_storage(storage)  # a bad URL is found before anything trains
    run = run_optimize(config, out, storage=storage, restart=restart, progress=progress,
                       cache_dir=cache_dir, callbacks=callbacks)
    write_report(run)
    return run


def load_run(path: str | Path) -> Run:
    """Read a run folder's run.json into a Run."""
    return read_manifest(path)


def export(
    run: str | Path | Run,
    to: str | Path,
    *,
    candidate: str | None = None,
    format: Literal["onnx", "torchscript"] = "onnx",
    force: bool = False,
    cache_dir: str | Path | None = None,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Export a run's candidate (default: the selected one) to ``to``, checked against torch on
    the task's real test inputs. Returns the parity record. ``trust_code`` lets the run's own
    code run (its ``file.py:fn`` model, data or metric, a pickled model)."""
    run = run if isinstance(run, Run) else load_run(run)
    with trusting(trust_code):
        return export_candidate(run, to, candidate=candidate, format=format, force=force,
                                cache_dir=cache_dir)


def profile(
    path: str | Path, settings: ProfileSettings | None = None,
    shape: tuple[int, ...] | None = None, trust_code: bool = False,
) -> dict[str, Any]:
    """Profile an ONNX file (onnxruntime) or a slimkit model file (``model.safetensors``, or
    ``model.pt`` of earlier versions; torch eager). ``trust_code``: see ``export``."""
    path = Path(path)
    settings = settings or ProfileSettings()
    if path.suffix in (".safetensors", ".pt"):
        with trusting(trust_code):
            model, spec = load_model(path)
        input_shape = tuple(spec["input_shape"])
        dtype = spec.get("input_dtype", "float32")
        return {"backend": "torch", "input_shape": list(input_shape),
                **profile_torch(model, input_shape, settings, dtype),
                **model_stats(model, input_shape, dtype)}
    input_shape = resolve_shape(path, shape)
    result = profile_onnx(path, settings, shape=input_shape)
    return {"backend": "onnxruntime", "input_shape": list(input_shape),
            "size_bytes": path.stat().st_size, **result}


def explain(run: str | Path | Run, candidate: str, *, batch: int = 256, runs: int = 50,
            threads: int = 1) -> dict[str, Any]:
    """Per-operator onnxruntime time of ``candidate`` next to its nearest float ancestor, the
    compute operators that stayed in float, and the Quantize/Dequantize overhead."""
    run = run if isinstance(run, Run) else load_run(run)
    if run.path is None:
        raise StoreError(f"run {run.run!r} is not in a folder")
    cand = run.candidate(candidate)
    reference = cand
    while reference.parent is not None and (reference is cand or "torch" not in
                                            reference.artifacts):
        reference = run.candidate(reference.parent)
    if reference is cand:
        raise StoreError(f"candidate {candidate} has no float ancestor to compare with")
    if "onnx" not in cand.artifacts:
        raise StoreError(f"candidate {candidate} has no ONNX model to explain (status "
                         f"{cand.status})")
    shape = tuple(run.task_spec["input_shape"])
    ours = op_times(run.artifact(cand, "onnx"), shape, batch, runs, threads)
    theirs = op_times(run.artifact(reference, "onnx"), shape, batch, runs, threads)
    return {"candidate": cand.id, "reference": reference.id, "technique": cand.technique,
            "params": {k: cand.params.get(k) for k in ("mode", "excluded", "per_channel")
                       if k in cand.params},
            "candidate_ops": ours, "reference_ops": theirs,
            **summarize(ours, theirs, cpu_features()), "flags": list(cand.flags)}
