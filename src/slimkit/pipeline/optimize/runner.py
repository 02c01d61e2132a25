"""The phases of one ``optimize`` run: baseline and tuning pass, the search, the finalists and
the selection. Every phase resumes from run.json and the study."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from slimkit.core.console import err_console
from slimkit.core.errors import SlimkitError
from slimkit.core.lock import writing
from slimkit.core.manifest import existing_run, write_manifest
from slimkit.core.objectives import OBJECTIVES
from slimkit.core.runs import Candidate, Run
from slimkit.core.studies import (
    artifact_store,
    default_url,
    make_sampler,
    open_storage,
    recover_interrupted,
    resume_sampler,
    upload,
)
from slimkit.measure.format import fmt_metric, fmt_objective
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.engine import (
    baseline_model,
    mark_running,
    open_run,
    run_step,
    store_candidate,
    train_baseline,
)
from slimkit.pipeline.optimize.budget import (
    Clock,
    Costs,
    Plan,
    check_baseline_fits,
    epoch_seconds,
    plan,
    reserve,
)
from slimkit.pipeline.optimize.config import OptimizeConfig
from slimkit.pipeline.optimize.finalists import measure_finalists
from slimkit.pipeline.recipe import Recipe
from slimkit.pipeline.search.chains import seed_chains
from slimkit.pipeline.search.config import SearchConfig
from slimkit.pipeline.search.objective import SearchObjective, search_spec
from slimkit.pipeline.search.records import is_new, trial_rows
from slimkit.pipeline.search.stopping import Explore, MostlyFailing, OnlyRepeats, TrialCap
from slimkit.tasks import Task, load_task
from slimkit.techniques import TECHNIQUES, SearchSpec, searchable
from slimkit.training import TrainConfig
from slimkit.training.progress import CountProgress

REPEATS_TO_STOP = 25
EXPLORE_AFTER = 3  # repeated proposals in a row before a random unmeasured chain is queued

SearchCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def run_optimize(config: OptimizeConfig, out: str | Path, *, storage: str | None = None,
                 restart: bool = False, progress: bool = True,
                 cache_dir: str | Path | None = None,
                 callbacks: Sequence[SearchCallback] = ()) -> Run:
    """Run (or resume) ``config`` into the folder ``out``, holding its writer lock; see
    ``slimkit.optimize``."""
    with writing(out):
        return _run_optimize(config, out, storage=storage, restart=restart, progress=progress,
                             cache_dir=cache_dir, callbacks=callbacks)


def _run_optimize(config: OptimizeConfig, out: str | Path, *, storage: str | None,
                  restart: bool, progress: bool, cache_dir: str | Path | None,
                  callbacks: Sequence[SearchCallback]) -> Run:
    recipe = config.recipe()
    task = load_task(recipe.task_source(), seed=config.seed, cache_dir=cache_dir)
    model, spec = baseline_model(recipe, task)  # a model that does not fit fails before writing
    if config.techniques is None:
        parent = SearchSpec(model=spec, kind=task.kind)
        applicable = [n for n in searchable() if TECHNIQUES.get(n).applies(parent)]
        if not applicable:
            raise SlimkitError(f"optimize: no technique applies to model {spec['family']!r} "
                               f"on inputs {tuple(task.input_shape)} {task.input_dtype}")
        config = config.model_copy(update={"techniques": applicable})
    folder = Path(out)
    train = TrainConfig(**{**task.default_train, **recipe.baseline.train})
    costs = Costs.up_front(config, epoch_seconds(model, task, train), train.epochs)
    if existing_run(folder) is None or restart:
        check_baseline_fits(config, costs)
    digest = hashlib.sha256(json.dumps(config.digest_fields(), sort_keys=True).encode()
                            ).hexdigest()[:16]
    run = open_run(folder, digest, {"recipe": recipe.canonical(),
                                    "optimize": config.model_dump(mode="json")},
                   task=config.task, seed=config.seed, threads=config.threads,
                   constraints={"max_accuracy_drop": config.max_accuracy_drop},
                   restart=restart)
    return Optimizer(config, recipe, task, run, storage, progress, callbacks, costs).run()


class Optimizer:
    """The phases of one optimize run; every phase resumes from run.json and the study."""

    def __init__(self, config: OptimizeConfig, recipe: Recipe, task: Task, run: Run,
                 storage: str | None, progress: bool,
                 callbacks: Sequence[SearchCallback] = (), costs: Costs | None = None) -> None:
        if run.path is None:
            raise ValueError("the run has no folder")
        self.config, self.recipe, self.task, self.run_ = config, recipe, task, run
        self.storage, self.progress, self.callbacks = storage, progress, list(callbacks)
        self.settings = ProfileSettings(**{"threads": config.threads, **config.profile})
        self.clock = Clock(run, config.budget_s)
        self.folder: Path = run.path
        self.costs = costs or Costs.up_front(config, 1.0, 0)

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
        self.write()
        reference = self.baseline()
        search = self.config.search()
        planned = self.replan(tuning=False)
        search = search.model_copy(update={"epochs": planned.trial_epochs,
                                           "finalists": planned.finalists})
        study = self.study(search, reference)
        self.search(study, search)
        self.record(study)
        measure_finalists(run, study, search, reference, self.task, self.settings, self.store)
        run.status = "complete"
        study.set_user_attr("finished", True)
        self.record(study)  # trials workers finished meanwhile
        self.store(reference)
        return run

    def baseline(self) -> Candidate:
        """c0 with the given (or default) trainer settings, then the tuning pass (c1); the
        better of the two on val becomes the reference, decided once."""
        run, done = self.run_, {c.id for c in self.run_.candidates}
        if "c0" not in done:
            mark_running(run, "c0", "baseline")
            baseline = train_baseline(self.recipe, self.task, run, self.settings, self.progress)
            run.baseline_id = "c0"  # named once it is stored: run.json's ids name candidates
            self.store(baseline)
        run.baseline_id = run.baseline_id or "c0"
        self.costs = self.costs.measured(run.candidate("c0"))
        tuning = bool(self.recipe.steps) and "c1" not in done and "reference" not in run.config
        planned = self.replan(tuning=True) if tuning else None
        if planned is not None and planned.tune_trials:
            mark_running(run, "c1", "tuned")
            self.store(run_step(0, self.tuning_recipe(planned), run, self.task, self.settings,
                                self.progress, {"baseline": "c0", "tuned": "c1"},
                                self.storage))
            tuned = run.candidate("c1")
            if tuned.status == "ok":  # the retrain of the best trial: a later timing
                self.costs = self.costs.measured(tuned)
        if "reference" not in run.config:  # decided once: finalists may later take id c1
            sign = 1.0 if self.task.direction == "maximize" else -1.0
            tuned = ("c0", "c1") if self.recipe.steps else ("c0",)
            ok = [c for c in run.candidates if c.id in tuned and c.status == "ok"]
            best = max(ok, key=lambda c: sign * (c.metric("val", self.task.metric) or 0.0))
            run.config["reference"] = best.id
        run.baseline_id = run.config["reference"]
        reference = run.candidate(run.baseline_id)
        self.store(reference)
        return reference

    def replan(self, tuning: bool) -> Plan:
        """Fit what is still to run into the time left, from the latest real timings;
        recorded in run.json and, when it cuts what was asked for, said once."""
        planned = plan(self.config, self.costs, self.clock.left(), tuning)
        previous = self.run_.config.get("plan", {})
        if not tuning:  # the tuning pass is behind us: keep what it was planned to run
            planned.tune_trials = int(previous.get("tune_trials", 0))
            planned.cuts = [c for c in previous.get("cuts", []) if c.startswith(("tuning", "no "))
                            ] + planned.cuts
        if planned.cuts and planned.cuts != previous.get("cuts"):
            err_console.print(planned.summary(self.config.budget), soft_wrap=True)
        self.run_.config["plan"] = planned.to_dict()
        self.write()
        return planned

    def tuning_recipe(self, planned: Plan) -> Recipe:
        """The recipe with the tuning pass cut to the planned trials and its share of time."""
        recipe = self.recipe.model_copy(deep=True)
        params = recipe.steps[0].params
        share = min(float(params.get("timeout") or self.config.budget_s),
                    max(self.clock.left() / 2, 1.0))
        params.update(trials=planned.tune_trials, timeout=round(share, 1))
        return recipe

    def study(self, search: SearchConfig, reference: Candidate) -> optuna.Study:
        """The search study, created once; its attributes let any worker run trials."""
        name = f"{self.run_.run}-{self.run_.config['recipe_digest']}-search"
        storage = open_storage(self.storage or default_url(self.folder))
        study = optuna.create_study(
            storage=storage, study_name=name, load_if_exists=True,
            sampler=make_sampler("tpe", self.config.seed, startup_trials=search.startup_trials,
                                 multivariate=True),
            directions=[self.task.direction, OBJECTIVES[search.objective].direction])
        # a resumed search goes on from its last draw instead of drawing its first chains again
        study.sampler = resume_sampler("tpe", self.config.seed, study,
                                       startup_trials=search.startup_trials, multivariate=True)
        setup = study.user_attrs.get("slimkit")
        if setup is None or setup.get("baseline", {}).get("id") != reference.id:
            store = artifact_store(self.folder / "artifacts")
            artifact = upload(store, self.run_.artifact(reference, "torch"), study)
            train = {**self._reference_train(reference), "epochs": search.epochs}
            setup = {"kind": "optimize", "task": self.task.source or self.task.name,
                     "seed": self.config.seed, "train": train,
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
            for params in seed_chains(search.techniques, search_spec(setup, self.task)):
                study.enqueue_trial(params, skip_if_exists=True)
        return study

    def _reference_train(self, reference: Candidate) -> dict[str, Any]:
        """The trainer settings the reference was trained with (c0's own, or the tuning
        pass's retrain of the best trial)."""
        return dict(reference.params.get("trained_with", reference.params))

    def search(self, study: optuna.Study, search: SearchConfig) -> None:
        """Trials until the deadline or a stopping rule; then workers are told to stop."""
        setup = study.user_attrs["slimkit"]
        left = float(setup["deadline"]) - time.time()
        recover_interrupted(study)
        rules = [*([TrialCap(search.trials)] if search.trials is not None else []),
                 OnlyRepeats(REPEATS_TO_STOP), MostlyFailing(first=len(study.trials))]
        explore = Explore(EXPLORE_AFTER, search.techniques, search_spec(setup, self.task),
                          self.config.seed)
        for rule in rules:  # a resumed search may have met one already
            rule.reason = rule.check(study)
        if left <= 0 and not study.trials:
            err_console.print(f"optimize: the budget ({self.config.budget}) was spent before "
                              f"the search could start; only the baseline is measured")
        total, start = max(int(left), 1), time.monotonic()
        with CountProgress(total, "search", enabled=self.progress) as bar:

            def after_trial(study: optuna.Study, _: optuna.trial.FrozenTrial) -> None:
                self.record(study)
                bar.set(min(int(time.monotonic() - start), total), self.status(study))

            if left > 0 and not any(rule.reason for rule in rules):
                study.optimize(SearchObjective(setup, self.task, Path(setup["artifacts"])),
                               timeout=left, catch=(Exception,), gc_after_trial=False,
                               callbacks=[*rules, explore, after_trial, *self.callbacks])
        stopped = next((rule.reason for rule in rules if rule.reason), None)
        if any(isinstance(rule, MostlyFailing) and rule.reason for rule in rules):
            err_console.print(f"optimize: search stopped early: {stopped}")
        if stopped is None and time.time() < float(setup["deadline"]) - 1:
            stopped = "a callback stopped it"
        setup = study.user_attrs["slimkit"]
        setup["deadline"] = min(float(setup["deadline"]), time.time())  # workers stop too
        study.set_user_attr("slimkit", setup)
        self.run_.config.setdefault("search", {})["stopped"] = stopped or "deadline"
        self.write()

    def status(self, study: optuna.Study) -> str:
        """The progress bar's text: trials, feasible ones, the best so far."""
        rows = trial_rows(study)
        ok = [r for r in rows if r["state"] == "complete"]
        feasible = [r for r in ok if (r["constraint"] or 0.0) <= 0]
        text = f"{len(ok)} trials, {len(feasible)} feasible"
        if feasible:
            objective = self.config.objective
            minimize = OBJECTIVES[objective].direction == "minimize"
            best = (min if minimize else max)(feasible, key=lambda r: r["values"][1])
            metric = self.task.metric
            text += (f", best {fmt_objective(objective, best['values'][1])} at val {metric} "
                     f"{fmt_metric(best['values'][0], metric)}: {best['chain']}")
        return text

    def record(self, study: optuna.Study) -> None:
        """The search so far into run.json (so `slimkit show` follows a running search)."""
        previous = self.run_.config.get("search", {})
        self.run_.config["search"] = {
            **previous, "study": study.study_name, "trials": trial_rows(study),
            "pareto_trials": [t.number for t in study.best_trials if is_new(t)]}
        self.write()
