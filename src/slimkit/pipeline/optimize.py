"""``slimkit optimize``: baseline, a short tuning pass, a constrained multi-objective search over
technique chains, then the best finalists measured in full and the selection.

The budget is the wall-clock time of the whole command, kept across resumes (run.json records
what was spent). A trial is never interrupted, so the search ends within one trial's length of
its deadline; time for measuring the finalists is reserved up front.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import optuna
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from slimkit.console import err_console
from slimkit.errors import SlimkitError
from slimkit.measure.metrics import training_loss
from slimkit.measure.timing import ProfileSettings
from slimkit.models.io import load_model
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.engine import (
    baseline_model,
    open_run,
    run_step,
    store_candidate,
    train_baseline,
)
from slimkit.pipeline.python_inputs import convert
from slimkit.pipeline.run import Candidate, Run
from slimkit.pipeline.search import (
    OBJECTIVES,
    SearchConfig,
    SearchObjective,
    chain_label,
    finalists,
    fresh_chain,
    is_new,
    make_sampler,
    seed_chains,
    trial_rows,
)
from slimkit.pipeline.store import existing_run, write_manifest
from slimkit.recipe import Recipe, load_recipe
from slimkit.studies import (
    artifact_store,
    default_url,
    download,
    open_storage,
    recover_interrupted,
    upload,
)
from slimkit.tasks import Task, load_task
from slimkit.techniques.tune import parse_duration
from slimkit.training import TrainConfig
from slimkit.training.progress import CountProgress
from slimkit.validation import validate

REPEATS_TO_STOP = 25
KICK_AFTER = 3  # repeated proposals in a row before a random unmeasured chain is queued
TUNE_SHARE = 0.35  # the tuning pass stops starting trials after this share of the budget


class OptimizeConfig(BaseModel):
    """Everything ``optimize`` does, validated where it enters (CLI flags or Python)."""

    model_config = ConfigDict(extra="forbid")

    task: str
    data: str | None = None
    metric: str | None = None
    metric_direction: Literal["maximize", "minimize"] | None = None
    model: str | None = None
    model_args: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    threads: int = Field(1, ge=1, le=256)
    max_accuracy_drop: float = Field(0.01, ge=0, lt=1)
    objective: Literal["latency", "size", "throughput"] = "latency"
    budget: str | float = "20m"
    techniques: list[Literal["prune", "distill", "arch", "quantize"]] = Field(
        default_factory=lambda: ["prune", "distill", "arch", "quantize"], min_length=1)
    tune_trials: int = Field(4, ge=0, le=1000, description="tuning trials for the baseline")
    trials: int | None = Field(None, ge=1, description="stop the search after this many trials")
    epochs: int = Field(30, ge=1, le=10000, description="training epochs inside a trial")
    finalists: int = Field(3, ge=1, le=20)
    profile: dict[str, Any] = Field(default_factory=dict)

    @field_validator("train")
    @classmethod
    def _train(cls, value: dict[str, Any]) -> dict[str, Any]:
        validate(TrainConfig, value, prefix="train", error=SlimkitError)
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "threads" in value:
            raise ValueError("set threads with --threads, not profile.threads")
        validate(ProfileSettings, value, prefix="profile", error=SlimkitError)
        return value

    @field_validator("techniques")
    @classmethod
    def _techniques(cls, value: list[str]) -> list[str]:
        return sorted(set(value))  # the order does not matter, so it does not change a run

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: str | float) -> str | float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = None
        if seconds is None or seconds <= 0:
            raise ValueError("expected a positive duration like 90s, 20m or 1h")
        return value

    @property
    def budget_s(self) -> float:
        """The budget in seconds."""
        return float(parse_duration(self.budget))  # type: ignore[arg-type]

    def search(self) -> SearchConfig:
        """The settings of the search phase."""
        return SearchConfig(techniques=self.techniques, objective=self.objective,
                            max_accuracy_drop=self.max_accuracy_drop, epochs=self.epochs,
                            trials=self.trials, finalists=self.finalists)

    def recipe(self) -> Recipe:
        """The baseline (and its tuning pass) as a recipe: one code path with ``slimkit run``."""
        train = TrainConfig(**self.train)
        steps = []
        if self.tune_trials:
            steps.append({"technique": "tune", "name": "tuned", "params": {
                "trials": self.tune_trials, "train": train.model_dump(),
                "timeout": TUNE_SHARE * self.budget_s,
                "space": {"train.lr": {"low": train.lr / 3, "high": train.lr * 3, "log": True},
                          "train.weight_decay": {"low": 1e-5, "high": 1e-2, "log": True}}}})
        given = {k: v for k, v in (("data", self.data), ("metric", self.metric),
                                   ("metric_direction", self.metric_direction)) if v}
        return load_recipe({
            "version": 1, "task": self.task, **given, "seed": self.seed,
            "threads": self.threads,
            "baseline": {"model": self.model, "model_args": self.model_args,
                         "train": self.train},
            "steps": steps, "constraints": {"max_accuracy_drop": self.max_accuracy_drop},
            "profile": self.profile})

    def digest_fields(self) -> dict[str, Any]:
        """What a resumed run must share; budget, trial cap and finalists may change."""
        return self.model_dump(mode="json", exclude={"budget", "trials", "finalists"})


def arch_applies(task: Task) -> bool:
    """The efficient families take channels-first signals or images of floats."""
    return task.input_dtype == "float32" and len(task.input_shape) in (2, 3)


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def epoch_seconds(model: torch.nn.Module, task: Task, train: TrainConfig) -> float:
    """Seconds per training epoch of ``model``, timed on a few real batches."""
    model = model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.from_numpy(task.train.x[: train.batch_size])
    y = torch.from_numpy(task.train.y[: train.batch_size])
    loss = training_loss(task.kind)
    times = []
    begin = time.perf_counter()
    while len(times) < 10 and (len(times) < 3 or time.perf_counter() - begin < 2.0):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    batches = -(-len(task.train.x) // train.batch_size) + -(-len(task.val.x) // 512)
    return min(times[2:] or times) * batches


def estimate(config: OptimizeConfig, task: Task, recipe: Recipe) -> dict[str, float]:
    """Upper-bound seconds of each phase up to one search trial (early stopping only
    shortens them)."""
    model, _ = baseline_model(recipe, task)
    train = TrainConfig(**{**task.default_train, **config.train})
    epoch = epoch_seconds(model, task, train)
    settings = ProfileSettings(threads=config.threads, **config.profile)
    measure = 4 * max(settings.min_seconds, 0.2) + 4.0  # 2 backends x 2 batches + export
    quick = 2 * max(settings.quick().min_seconds, 0.1) + 3.0
    phases = {"baseline": train.epochs * epoch + measure}
    if config.tune_trials:
        phases["tuning"] = (config.tune_trials + 1) * train.epochs * epoch + measure
    phases["one trial"] = config.epochs * epoch + 2 * quick
    phases["final measurement"] = reserve(config.finalists, measure)
    return phases


def reserve(finalists: int, measure_s: float) -> float:
    """Seconds kept for measuring the finalists in full (each chain has up to two links)."""
    return 2 * finalists * measure_s


def check_budget(config: OptimizeConfig, task: Task, recipe: Recipe) -> None:
    """Refuse a budget that cannot fit the baseline, the tuning pass and one search trial."""
    phases = estimate(config, task, recipe)
    needed = sum(phases.values())
    if config.budget_s < needed:
        parts = ", ".join(f"{k} ~{_fmt(v)}" for k, v in phases.items())
        hint = " or fewer --tune-trials" if config.tune_trials else ""
        raise SlimkitError(f"--budget {config.budget}: cannot fit one search trial; the "
                           f"estimate is {_fmt(needed)} ({parts}); give --budget "
                           f"{int(needed // 60) + 1}m or more{hint}")


class Clock:
    """Wall-clock spent by this run, across resumes."""

    def __init__(self, run: Run, budget_s: float) -> None:
        self.before = float(run.config.get("optimize_spent_s", 0.0))
        self.start = time.monotonic()
        self.budget_s = budget_s

    def spent(self) -> float:
        """Seconds spent by this run so far, earlier sessions included."""
        return self.before + time.monotonic() - self.start

    def left(self) -> float:
        """Seconds of the budget left."""
        return self.budget_s - self.spent()


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
) -> Run:
    """Find the best model on ``objective`` within ``max_accuracy_drop`` (val) of the tuned
    baseline, in about ``budget`` of wall-clock time; resumes an interrupted run in ``out``.

    ``model``/``model_args`` pick the baseline (default: the task's model), ``trainer`` sets its
    trainer options (``TrainConfig`` fields), ``techniques`` what chains may use,
    ``tune_trials`` the tuning pass, ``trials`` caps the search, ``epochs`` is the training
    length inside a trial, ``finalists`` how many of the best trials are measured in full.

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
        pretrained = given.is_object or load_task(
            {"name": given.task, "data": given.data} if given.data else given.task,
            seed=seed, cache_dir=cache_dir).default_train.get("epochs") == 0
        tune_trials = 0 if pretrained else 4
    if given.is_object and trainer is None:
        trainer = {"epochs": 0}
    raw = {"task": given.task, "data": given.data, "metric": given.metric,
           "metric_direction": metric_direction, "model": given.model,
           "model_args": model_args or {}, "train": trainer or {},
           "seed": seed, "threads": threads, "max_accuracy_drop": max_accuracy_drop,
           "objective": objective, "budget": budget, "tune_trials": tune_trials,
           "trials": trials, "epochs": epochs, "finalists": finalists,
           "profile": profile or {}}
    if techniques is not None:
        raw["techniques"] = techniques
    config = validate(OptimizeConfig, raw, prefix="", error=SlimkitError)
    recipe = config.recipe()
    loaded = load_task(recipe.task_source(), seed=config.seed, cache_dir=cache_dir)
    if techniques is None and not arch_applies(loaded):
        config = config.model_copy(update={"techniques": [
            t for t in config.techniques if t != "arch"]})
    folder = Path(out)
    if existing_run(folder) is None or restart:
        check_budget(config, loaded, recipe)
    digest = hashlib.sha256(json.dumps(config.digest_fields(), sort_keys=True).encode()
                            ).hexdigest()[:16]
    run = open_run(folder, digest, {"recipe": recipe.canonical(),
                                    "optimize": config.model_dump(mode="json")},
                   task=config.task, seed=config.seed, threads=config.threads,
                   constraints={"max_accuracy_drop": config.max_accuracy_drop},
                   restart=restart)
    return Optimizer(config, recipe, loaded, run, storage, progress).run()


class Optimizer:
    """The phases of one optimize run; every phase resumes from run.json and the study."""

    def __init__(self, config: OptimizeConfig, recipe: Recipe, task: Task, run: Run,
                 storage: str | None, progress: bool) -> None:
        self.config, self.recipe, self.task, self.run_ = config, recipe, task, run
        self.storage, self.progress = storage, progress
        self.settings = ProfileSettings(threads=config.threads, **config.profile)
        self.clock = Clock(run, config.budget_s)
        assert run.path is not None
        self.folder: Path = run.path

    def write(self) -> None:
        """run.json with the time spent so far."""
        self.run_.config["optimize_spent_s"] = round(self.clock.spent(), 3)
        self.run_.config["optimize"] = self.config.model_dump(mode="json")
        write_manifest(self.run_)

    def store(self, candidate: Candidate) -> None:
        """Add ``candidate``, reselect, write run.json."""
        self.run_.config["optimize_spent_s"] = round(self.clock.spent(), 3)
        store_candidate(self.run_, candidate)

    def run(self) -> Run:
        """Baseline, search, finalists, selection; each phase resumes where it stopped."""
        run = self.run_
        run.task_spec = self.task.spec()
        run.config["objective"] = self.config.objective
        run.status = "running"
        run.baseline_id = run.baseline_id or "c0"
        self.write()
        self.baseline()
        reference = run.baseline
        assert reference is not None
        search = self.config.search()
        study = self.study(search, reference)
        self.search(study, search)
        self.finalize(study, search, reference)
        run.status = "complete"
        study.set_user_attr("finished", True)
        self.record(study)  # trials workers finished meanwhile
        self.store(reference)
        from slimkit.report.html import write_report  # report sits beside pipeline

        write_report(run)
        return run

    def baseline(self) -> None:
        """c0 with the given (or default) trainer settings, then the tuning pass (c1); the
        better of the two on val becomes the reference."""
        run, done = self.run_, {c.id for c in self.run_.candidates}
        if "c0" not in done:
            self.store(train_baseline(self.recipe, self.task, run, self.settings,
                                       self.progress))
        if self.recipe.steps and "c1" not in done:
            self.store(run_step(0, self.recipe, run, self.task, self.settings, self.progress,
                                 {"baseline": "c0", "tuned": "c1"}, self.storage))
        if "reference" not in run.config:  # decided once: finalists may later take id c1
            sign = 1.0 if self.task.direction == "maximize" else -1.0
            tuned = ("c0", "c1") if self.recipe.steps else ("c0",)
            ok = [c for c in run.candidates if c.id in tuned and c.status == "ok"]
            best = max(ok, key=lambda c: sign * (c.metric("val", self.task.metric) or 0.0))
            run.config["reference"] = best.id
        run.baseline_id = run.config["reference"]
        self.store(run.candidate(run.baseline_id))

    def study(self, search: SearchConfig, reference: Candidate) -> optuna.Study:
        """The search study, created once; its attributes let any worker run trials."""
        name = f"{self.run_.run}-{self.run_.config['recipe_digest']}-search"
        storage = open_storage(self.storage or default_url(self.folder))
        study = optuna.create_study(
            storage=storage, study_name=name, load_if_exists=True,
            sampler=make_sampler(self.config.seed, search.startup_trials),
            directions=[self.task.direction, OBJECTIVES[search.objective]])
        setup = study.user_attrs.get("slimkit")
        if setup is None or setup.get("baseline", {}).get("id") != reference.id:
            store = artifact_store(self.folder / "artifacts")
            artifact = upload(store, self.folder / reference.artifacts["torch"], study)
            train = {**self._reference_train(reference), "epochs": search.epochs}
            setup = {"kind": "optimize", "task": self.task.source or self.task.name,
                     "seed": self.config.seed,
                     "search": search.model_dump(mode="json"), "train": train,
                     "profile": self.settings.model_dump(),
                     "artifacts": str((self.folder / "artifacts").resolve()),
                     "baseline": {"id": reference.id, "artifact": artifact,
                                  "model": reference.model, "metrics": reference.metrics,
                                  "profile": reference.profile}}
        setup["search"] = search.model_dump(mode="json")  # a resumed run may change the cap
        measure_s = float(reference.timing.get("measure_s", 8.0))
        setup["deadline"] = time.time() + max(
            self.clock.left() - reserve(search.finalists, measure_s), 0.0)
        study.set_user_attr("slimkit", setup)  # workers may start trials from here on
        study.set_user_attr("finished", False)
        if not study.trials:
            for params in seed_chains(search, reference.model):
                study.enqueue_trial(params, skip_if_exists=True)
        return study

    def _reference_train(self, reference: Candidate) -> dict[str, Any]:
        """The reference's trainer settings (c0's, or the tuned ones)."""
        if reference.technique == "tune":
            best = reference.params.get("study", {}).get("best_params", {})
            base = dict(reference.params.get("train", {}))
            base.update({k.split(".", 1)[1]: v for k, v in best.items()
                         if k.startswith("train.")})
            return base
        return dict(reference.params)

    def search(self, study: optuna.Study, search: SearchConfig) -> None:
        """Trials until the deadline, the trial cap, repeated proposals only, or a search in
        which nearly every trial fails; then workers are told to stop."""
        setup = study.user_attrs["slimkit"]
        left = float(setup["deadline"]) - time.time()
        recover_interrupted(study)
        objective = SearchObjective(setup, self.task, Path(setup["artifacts"]))
        if left <= 0 and not study.trials:
            err_console.print(f"optimize: the budget ({self.config.budget}) was spent before "
                              f"the search could start; only the baseline is measured")
        total = max(int(left), 1)
        start = time.monotonic()
        first = len(study.trials)  # failures are judged on this session's trials
        stopped = "deadline" if search.trials is None else "deadline or trial cap"
        with CountProgress(total, "search", enabled=self.progress) as bar:
            while time.monotonic() - start < left:
                trials = study.get_trials(deepcopy=False)
                complete = sum(is_new(t) for t in trials)
                if search.trials is not None and complete >= search.trials:
                    break
                recent = [t for t in trials if t.state.is_finished()][-REPEATS_TO_STOP:]
                if len(recent) == REPEATS_TO_STOP and all(
                        "duplicate_of" in t.user_attrs for t in recent):
                    stopped = "the sampler proposed only chains already measured"
                    break
                if len(recent) >= KICK_AFTER and all(
                        "duplicate_of" in t.user_attrs for t in recent[-KICK_AFTER:]):
                    params = fresh_chain(study, search, setup["baseline"]["model"],
                                         setup["train"], seed=self.config.seed + len(trials))
                    if params is not None:  # explore instead of repeating
                        study.enqueue_trial(params, skip_if_exists=True)
                mine = [t for t in trials if t.number >= first and t.state.is_finished()]
                failed = [t for t in mine if t.state == optuna.trial.TrialState.FAIL
                          and not t.user_attrs.get("budget_reached")]
                if len(failed) >= 10 and len(failed) > 2 * (len(mine) - len(failed)):
                    stopped = (f"{len(failed)} trials failed; last error: "
                               f"{failed[-1].user_attrs.get('error', '?')[:200]}")
                    err_console.print(f"optimize: search stopped early: {stopped}")
                    break
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
                self.record(study)
                bar.set(min(int(time.monotonic() - start), total), self.status(study))
        setup = study.user_attrs["slimkit"]
        setup["deadline"] = min(float(setup["deadline"]), time.time())  # workers stop too
        study.set_user_attr("slimkit", setup)
        self.run_.config.setdefault("search", {})["stopped"] = stopped
        self.write()

    def status(self, study: optuna.Study) -> str:
        """The progress bar's text: trials, feasible ones, the best so far."""
        rows = trial_rows(study)
        ok = [r for r in rows if r["state"] == "complete"]
        feasible = [r for r in ok if (r["constraint"] or 0.0) <= 0]
        text = f"{len(ok)} trials, {len(feasible)} feasible"
        if feasible:
            best = (min if OBJECTIVES[self.config.objective] == "minimize" else max)(
                feasible, key=lambda r: r["values"][1])
            text += f", best {best['values'][1]:.4g} ({best['chain']})"
        return text

    def record(self, study: optuna.Study) -> None:
        """The search so far into run.json (so `slimkit show` follows a running search)."""
        previous = self.run_.config.get("search", {})
        self.run_.config["search"] = {
            **previous, "study": study.study_name, "trials": trial_rows(study),
            "pareto_trials": [t.number for t in study.best_trials if is_new(t)]}
        self.write()

    def finalize(self, study: optuna.Study, search: SearchConfig, reference: Candidate
                 ) -> None:
        """Measure the best feasible trials in full as candidates (each link of a chain is
        one, with lineage from the reference); ``select`` then picks on the objective."""
        self.record(study)
        store = artifact_store(Path(study.user_attrs["slimkit"]["artifacts"]))
        for trial in finalists(study, search):
            with tempfile.TemporaryDirectory(prefix="slimkit-final-") as tmp:
                folder = Path(tmp)
                try:
                    torch_path = download(store, trial.user_attrs["artifacts"]["torch"],
                                          folder / "model.pt")
                    onnx_path = download(store, trial.user_attrs["artifacts"]["onnx"],
                                         folder / "model.onnx")
                    model, spec = load_model(torch_path)
                except Exception as err:  # e.g. a worker wrote to another artifact folder
                    err_console.print(f"optimize: finalist trial {trial.number} skipped: "
                                      f"cannot load its models ({type(err).__name__}: {err})")
                    continue
                parent = reference
                label = trial.user_attrs.get("label", chain_label(trial.user_attrs["chain"]))
                links = zip(trial.user_attrs["chain"], trial.user_attrs["steps"], strict=True)
                for index, (link, record) in enumerate(links):
                    done = next((c for c in self.run_.candidates
                                 if c.params.get("search_trial") == trial.number
                                 and c.params.get("search_link") == index), None)
                    if done is None:  # not measured before an interruption
                        done = self._finalist(trial, index, link, record, parent, label,
                                              model, spec, onnx_path)
                        self.store(done)
                    if done.status != "ok":
                        break
                    parent = done

    def _finalist(self, trial: optuna.trial.FrozenTrial, index: int, link: dict[str, Any],
                  record: dict[str, Any], parent: Candidate, label: str, model: torch.nn.Module,
                  spec: dict[str, Any], onnx_path: Path) -> Candidate:
        """One link of a finalist chain measured in full (a failure is recorded, not fatal)."""
        cid = f"c{max(int(c.id[1:]) for c in self.run_.candidates) + 1}"
        params = {**record["params"], "search_trial": trial.number, "search_link": index,
                  "chain": label}
        start = time.perf_counter()
        try:
            candidate = materialize(
                cid, parent.id, link["technique"], params, model, spec, self.task,
                self.folder, self.settings, training=record.get("training"),
                onnx_source=onnx_path if link["technique"] == "quantize" else None)
        except Exception as err:
            return Candidate(id=cid, parent=parent.id, technique=link["technique"],
                             params=params, status="failed", step=f"search t{trial.number}",
                             error=f"{type(err).__name__}: {err}"[:500])
        candidate.step = f"search t{trial.number}"
        candidate.flags = list(record.get("flags", []))
        candidate.timing = {"measure_s": round(time.perf_counter() - start, 3),
                            "trial_s": float(trial.user_attrs.get("trial_seconds", 0.0))}
        return candidate
