"""Optuna study storage: an SQLite file inside the run folder, or any RDB URL (PostgreSQL) for a
search spread over machines. Heartbeats fail the trials of a dead worker, which are retried."""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

import optuna
from optuna.artifacts import download_artifact, upload_artifact
from optuna.search_space import IntersectionSearchSpace
from optuna.search_space.group_decomposed import _GroupDecomposedSearchSpace  # TPE's group cache

from slimkit.core.errors import StoreError

SCHEMA_RETRIES = 3
HEARTBEAT_S = 10
GRACE_S = 30
CONNECT_TIMEOUT_S = 5

optuna.logging.set_verbosity(optuna.logging.WARNING)  # slimkit prints its own progress


def default_url(run_dir: Path) -> str:
    """The run folder's own SQLite study database."""
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDBStorage with heartbeats; an unreachable or malformed URL is one clear error within
    a few seconds."""
    engine: dict[str, Any] = {}
    if url.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    elif url.startswith("sqlite"):
        engine = {"connect_args": {"timeout": 30}}
    for attempt in range(SCHEMA_RETRIES):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=(
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)))
        except Exception as err:  # sqlalchemy OperationalError, ArgumentError, ImportError, ...
            if "IntegrityError" in type(err).__name__ and attempt + 1 < SCHEMA_RETRIES:
                time.sleep(0.5)  # another process created the schema at the same moment
                continue
            _refuse(url, err)
    raise AssertionError("unreachable")


def _refuse(url: str, err: Exception) -> NoReturn:
    """One clear line naming the storage (without credentials) and the cause."""
    text = " ".join(str(err).split())
    if url.startswith("sqlite:///"):  # a file: the run's own study.db, or the user's
        where = url.removeprefix("sqlite:///")
    else:
        where = "--storage " + (url.split("@")[-1] if "@" in url else url)
    raise StoreError(f"{where}: cannot open the study storage "
                     f"({type(err).__name__}: {text[:200]})") from None


def worker_id() -> str:
    """``host:pid`` of this process, recorded on every trial it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``host:pid`` (a ``worker_id``) still runs: None when it runs on
    another machine (this one cannot tell)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return _alive(int(pid))


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail this machine's RUNNING trials whose process is gone (a kill -9) and queue their
    parameters again. Trials of other machines are left to the heartbeat."""
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if owner_alive(str(trial.user_attrs.get("worker", ""))) is not False:
            continue
        # Optuna has no public call to fail another process's trial; its own heartbeat code
        # (fail_stale_trials) uses the same storage method.
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        recovered.append(trial.number)
    return recovered


def counted(study: optuna.Study) -> int:
    """Trials that count against the budget: complete or pruned."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


SAMPLERS = ("tpe", "random", "grid", "gp", "cmaes", "nsga2")


def make_sampler(kind: str, seed: int, *, grid: dict[str, list[Any]] | None = None,
                 startup_trials: int | None = None, multivariate: bool = False
                 ) -> optuna.samplers.BaseSampler:
    """The Optuna sampler ``kind`` (one of ``SAMPLERS``), seeded. ``grid`` is the grid
    sampler's search space; ``startup_trials`` and ``multivariate`` (grouped multivariate TPE
    for conditional spaces) tune TPE."""
    if kind == "grid":
        return optuna.samplers.GridSampler(grid or {}, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    options: dict[str, Any] = {"multivariate": True, "group": True} if multivariate else {}
    if startup_trials is not None:
        options["n_startup_trials"] = startup_trials
    with warnings.catch_warnings():  # multivariate/group TPE are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, **options)


def resume_sampler(kind: str, seed: int, study: optuna.Study, *,
                   grid: dict[str, list[Any]] | None = None, startup_trials: int | None = None,
                   multivariate: bool = False) -> optuna.samplers.BaseSampler:
    """``make_sampler(kind, seed, ...)`` moved past the draws of the trials already in
    ``study``, so that a resumed study continues its search instead of drawing its first points
    again.

    The sampler is stepped through an in-memory copy of the study's history (same name, pruner,
    trial order, values and queued parameters): when every replayed draw equals the stored one,
    it goes on exactly as the uninterrupted study would have. Otherwise (trials interleaved by
    workers with their own samplers, a sampler that cannot be replayed) it is a fresh one
    seeded from ``seed`` and the number of trials, whose draws are new."""
    history = [t for t in study.get_trials(deepcopy=False)
               if t.state != optuna.trial.TrialState.WAITING]

    def make(seed: int) -> optuna.samplers.BaseSampler:
        return make_sampler(kind, seed, grid=grid, startup_trials=startup_trials,
                            multivariate=multivariate)

    if not history:
        return make(seed)
    sampler = make(seed)
    if replay(sampler, study, history):
        return sampler
    return make(continued_seed(seed, len(history)))


def continued_seed(seed: int, trials: int) -> int:
    """A seed for a study's sampler after ``trials`` trials: a stream other than ``seed``'s."""
    return (seed * 1_000_003 + trials * 7_919 + 1) % 2**32


def replay(sampler: optuna.samplers.BaseSampler, study: optuna.Study,
           history: list[optuna.trial.FrozenTrial]) -> bool:
    """Step ``sampler`` through ``history`` (``study``'s started trials, in order) in an
    in-memory study, as ``study.optimize`` ran them, then hand it over to ``study``; whether
    every draw matched the stored parameters (False: the sampler is not the original's)."""
    single = len(study.directions) == 1
    try:
        scratch = optuna.create_study(sampler=sampler, pruner=study.pruner,  # brackets: the name
                                      study_name=study.study_name, directions=study.directions)
        for trial in history:
            fixed = dict(trial.system_attrs.get("fixed_params", {}))
            if "failed_trial" in trial.system_attrs:  # a heartbeat retry starts with its params
                fixed.update(trial.params)
            if fixed:
                scratch.enqueue_trial(fixed)
            asked = scratch.ask(dict(trial.distributions))  # in the order the trial drew them
            if asked.params != trial.params:
                return False
            if single:
                for step, value in sorted(trial.intermediate_values.items()):
                    asked.report(value, step)
                    asked.should_prune()  # as the objective did (Hyperband sets up brackets)
            for key, value in trial.constraints.items():  # TPE and NSGA-II steer by them
                asked.set_constraint(key, value)
            if trial.state == optuna.trial.TrialState.COMPLETE:
                scratch.tell(asked, trial.values)
            elif trial.state == optuna.trial.TrialState.PRUNED and single:
                scratch.tell(asked, state=optuna.trial.TrialState.PRUNED)
            else:  # failed, or still running in a live worker
                scratch.tell(asked, state=optuna.trial.TrialState.FAIL)
        _unbind(sampler)
        sampler.infer_relative_search_space(study, history[-1])  # raises if still tied
    except Exception:  # a sampler that cannot replay this history: a fresh stream instead
        return False
    return True


def _unbind(sampler: optuna.samplers.BaseSampler) -> None:
    """Give ``sampler`` (and the samplers it holds) new search-space caches: Optuna ties them to
    the first study they see, here the replay's, and the real study recomputes them from the
    same trials."""
    for name, value in list(vars(sampler).items()):
        if isinstance(value, IntersectionSearchSpace | _GroupDecomposedSearchSpace):
            setattr(sampler, name, type(value)(include_pruned=value._include_pruned))
        elif isinstance(value, optuna.samplers.BaseSampler):
            _unbind(value)


def artifact_store(folder: Path) -> optuna.artifacts.FileSystemArtifactStore:
    """Optuna's file-system artifact store in ``folder`` (a shared folder for workers)."""
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(base_path=str(folder))


def download(store: Any, artifact_id: str, path: Path) -> Path:
    """Fetch an artifact into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    download_artifact(artifact_store=store, file_path=str(path), artifact_id=artifact_id)
    return path


def upload(store: Any, path: Path, trial: optuna.Trial | optuna.Study) -> str:
    """Store ``path`` as an artifact of ``trial`` (or a study); returns its id."""
    return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
