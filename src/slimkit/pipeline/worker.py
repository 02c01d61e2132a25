"""``slimkit worker``: join a tune study in shared storage and run trials until the budget."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna
from pydantic import ValidationError

from slimkit.core.errors import StoreError
from slimkit.core.studies import make_sampler, open_storage
from slimkit.core.validation import describe
from slimkit.pipeline.search.config import SearchConfig
from slimkit.pipeline.search.objective import SearchObjective
from slimkit.tasks import load_task
from slimkit.techniques import TECHNIQUES


def _find_study(storage: optuna.storages.BaseStorage, name: str | None, wait_s: float
                ) -> optuna.study.StudySummary:
    deadline = time.monotonic() + wait_s
    while True:
        studies = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
                   if "slimkit" in s.user_attrs and (name is None or s.study_name == name)
                   and (name is not None or not s.user_attrs.get("finished"))]
        if len(studies) == 1:
            return studies[0]
        if len(studies) > 1:
            names = ", ".join(s.study_name for s in studies)
            raise StoreError(f"the storage holds several slimkit studies; pick one with "
                             f"--study: {names}")
        if time.monotonic() >= deadline:
            what = f"study {name!r}" if name else "slimkit study"
            raise StoreError(f"no unfinished {what} in the storage after waiting {wait_s:.0f} "
                             f"s; start `slimkit run` with a tune step, or `slimkit optimize`, "
                             f"with the same --storage first")
        time.sleep(1.0)


def _find_successor(storage: optuna.storages.BaseStorage, prefix: str, done: set[str],
                    wait_s: float) -> optuna.study.StudySummary | None:
    """The next unfinished study of the same run (a later tune step, or the search that follows
    ``optimize``'s tuning pass), waiting up to ``wait_s``; None if none appears."""
    deadline = time.monotonic() + wait_s
    while True:
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False):
            if ("slimkit" in s.user_attrs and s.study_name.startswith(prefix + "-")
                    and s.study_name not in done and not s.user_attrs.get("finished")):
                return s
        if time.monotonic() >= deadline:
            return None
        time.sleep(1.0)


def work(run: str | Path, storage: str, *, study: str | None = None, wait_s: float = 60.0,
         follow_s: float = 300.0, cache_dir: str | Path | None = None,
         artifacts: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Run trials of the slimkit study in ``storage`` until its budget is spent, then of the
    next study of the same run (up to ``follow_s`` later; 0: stop after one study).

    Everything a trial needs (task, seed, model spec, search space) is read from the study, so a
    worker only needs the storage URL; ``run`` is this worker's local folder.
    """
    folder = Path(run)
    folder.mkdir(parents=True, exist_ok=True)
    rdb = open_storage(storage)
    summary: optuna.study.StudySummary | None = _find_study(rdb, study, wait_s)
    results: list[dict[str, Any]] = []
    done: set[str] = set()
    while summary is not None:
        results.append(_work_one(rdb, summary, folder, wait_s, cache_dir, artifacts, progress))
        done.add(summary.study_name)
        if study is not None or follow_s <= 0:
            break
        summary = _find_successor(rdb, summary.study_name.rsplit("-", 1)[0], done, follow_s)
    return {"study": ", ".join(r["study"] for r in results),
            "ran": sum(r["ran"] for r in results), "counted": results[-1]["counted"],
            "budget": results[-1]["budget"]}


def _work_one(rdb: optuna.storages.BaseStorage, summary: optuna.study.StudySummary,
              folder: Path, wait_s: float, cache_dir: str | Path | None,
              artifacts: str | Path | None, progress: bool) -> dict[str, Any]:
    attrs = summary.user_attrs["slimkit"]
    if attrs.get("kind") == "optimize":
        return _search_work(rdb, summary, wait_s, cache_dir, artifacts)
    if attrs.get("technique") not in TECHNIQUES:
        raise StoreError(f"study {summary.study_name!r} names no technique of this slimkit "
                         f"({attrs.get('technique')!r}); was it made by another version?")
    task = load_task(attrs["task"], seed=int(attrs["seed"]), cache_dir=cache_dir)
    store = Path(artifacts) if artifacts else Path(attrs.get("artifacts") or folder / "artifacts")
    technique = TECHNIQUES.get(attrs["technique"])
    result = technique.join(rdb, summary.study_name, task, store, progress)
    return {"study": summary.study_name, **result}


def _search_work(rdb: optuna.storages.BaseStorage, summary: optuna.study.StudySummary,
                 wait_s: float, cache_dir: str | Path | None, artifacts: str | Path | None
                 ) -> dict[str, Any]:
    """Run trials of an ``optimize`` search while its deadline lies ahead; a resumed search
    publishes a new deadline, which the worker waits for up to ``wait_s``."""
    attrs = summary.user_attrs["slimkit"]
    try:
        search = SearchConfig.model_validate(attrs["search"])
    except ValidationError as err:  # e.g. a technique registered only where the search began
        raise StoreError(f"study {summary.study_name!r}: this worker cannot run its search "
                         f"({describe(err, SearchConfig, 'search')}); install the same "
                         f"slimkit and plugins as the coordinator") from None
    sampler = make_sampler("tpe", int(attrs["seed"]) + os.getpid(),  # workers differ
                           startup_trials=search.startup_trials, multivariate=True)
    study = optuna.load_study(study_name=summary.study_name, storage=rdb, sampler=sampler)
    task = load_task(attrs["task"], seed=int(attrs["seed"]), cache_dir=cache_dir)
    store = Path(artifacts) if artifacts else Path(attrs["artifacts"])
    objective = SearchObjective(attrs, task, store)
    ran, idle_since = 0, time.monotonic()
    while True:
        current = study.user_attrs
        deadline = current.get("slimkit", {}).get("deadline")
        if current.get("finished"):
            break
        if deadline is None or time.time() >= float(deadline):
            if time.monotonic() - idle_since > wait_s:
                break
            time.sleep(1.0)
            continue
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
        ran, idle_since = ran + 1, time.monotonic()
    complete = len(study.get_trials(deepcopy=False,
                                    states=(optuna.trial.TrialState.COMPLETE,)))
    return {"study": summary.study_name, "ran": ran, "counted": complete, "budget": "deadline"}
