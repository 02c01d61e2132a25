"""One trial of the search: sample a chain, apply it to the baseline, measure, report
(val metric, objective) and the accuracy constraint. Built from the study's attributes, so it
runs in any worker."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from slimkit.core.objectives import OBJECTIVES
from slimkit.core.runs import Candidate
from slimkit.core.studies import artifact_store, download, upload, worker_id
from slimkit.measure.timing import ProfileSettings
from slimkit.models import MODEL_FILE
from slimkit.pipeline.search.chains import Link, chain_label, run_chain, sample_chain
from slimkit.pipeline.search.config import SearchConfig
from slimkit.pipeline.select import drop_excess
from slimkit.tasks import Task
from slimkit.techniques import SearchSpec
from slimkit.techniques.budgeted import BudgetReached, recorded

CONSTRAINT = "accuracy_drop"
KEPT = ("id", "parent", "technique", "params", "status", "metrics", "profile", "model",
        "training", "export", "flags")  # of each link's candidate, in the trial's record


def search_spec(setup: dict[str, Any], task: Task) -> SearchSpec:
    """What the techniques are told about the baseline (from the study's attributes)."""
    return SearchSpec(model=setup["baseline"]["model"], train=setup["train"], kind=task.kind)


def same_chain(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """An earlier complete trial that sampled exactly these parameters (TPE repeats points of
    a small conditional space)."""
    for other in trial.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,)):
        if other.params == trial.params and other.user_attrs.get("steps"):
            return other
    return None


class SearchObjective:
    """The Optuna objective of the search: (val metric, objective value) of one chain."""

    def __init__(self, setup: dict[str, Any], task: Task, store_dir: Path) -> None:
        self.setup, self.task = setup, task
        self.config = SearchConfig.model_validate(setup["search"])
        self.spec = search_spec(setup, task)
        self.store = artifact_store(store_dir)
        self.settings = ProfileSettings(**setup["profile"]).quick()

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("worker", worker_id())
        return recorded(trial, lambda: self._trial(trial))

    def _trial(self, trial: optuna.Trial) -> tuple[float, float]:
        deadline = float(trial.study.user_attrs.get("slimkit", {}).get("deadline", float("inf")))
        if time.time() >= deadline:
            trial.set_user_attr("budget_reached", True)
            raise BudgetReached("the search's time budget is spent")
        start = time.perf_counter()
        chain = sample_chain(trial, self.config.techniques, self.spec)
        trial.set_user_attr("chain", [link.record() for link in chain])
        trial.set_user_attr("label", chain_label(chain))
        earlier = same_chain(trial)
        if earlier is not None:  # chains are deterministic: reuse the result, spend no time
            for key in ("steps", "trial_seconds"):
                trial.set_user_attr(key, earlier.user_attrs[key])
            trial.set_user_attr("duplicate_of", earlier.number)
            trial.set_constraint(CONSTRAINT, earlier.constraints[CONSTRAINT])
            return earlier.values[0], earlier.values[1]
        final, records = self._apply(trial, chain)
        metric = self.task.metric
        value = float(final.metric("val", metric))  # type: ignore[arg-type]
        base = float(self.setup["baseline"]["metrics"]["val"][metric])
        trial.set_constraint(CONSTRAINT, drop_excess(value, base, self.task.direction,
                                                     self.config.max_accuracy_drop))
        trial.set_user_attr("steps", records)
        trial.set_user_attr("trial_seconds", round(time.perf_counter() - start, 3))
        measured = OBJECTIVES[self.config.objective].value(final)
        return value, float("nan") if measured is None else measured

    def _apply(self, trial: optuna.Trial, chain: list[Link]
               ) -> tuple[Candidate, list[dict[str, Any]]]:
        """Run the chain in a scratch folder; every link's model (its torch file, or its ONNX
        file when it made no torch model) goes to the artifact store, so the finalists are
        measured from them."""
        base = self.setup["baseline"]
        with tempfile.TemporaryDirectory(prefix="slimkit-trial-") as tmp:
            folder = Path(tmp)
            rel = Path("candidates/base") / MODEL_FILE
            download(self.store, base["artifact"], folder / rel)
            parent = Candidate(id="base", parent=None, technique="baseline",
                               metrics=base["metrics"], profile=base["profile"],
                               model=base["model"], artifacts={"torch": str(rel)})
            made = run_chain(chain, parent, folder, self.task, int(self.setup["seed"]),
                             self.settings, self.config.max_accuracy_drop)
            records = []
            for c in made:
                kind = "torch" if "torch" in c.artifacts else "onnx"
                stored = upload(self.store, folder / c.artifacts[kind], trial)
                records.append({**{k: v for k, v in c.to_dict().items() if k in KEPT},
                                "artifact": {"format": kind, "id": stored}})
        return made[-1], records
