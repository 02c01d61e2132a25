"""The multi-objective search over technique chains behind ``slimkit optimize``.

Each Optuna trial samples a chain — a compression (structured pruning with distillation, a
distilled smaller student, or a distilled efficient architecture) followed by a quantization
mode (none, dynamic, static, QAT) — applies it to the baseline with the registered techniques,
and measures the result with the same code as every candidate (quicker timing settings). The
values are (val metric, objective); the accuracy budget is an Optuna constraint, so the sampler
steers towards feasible chains and ``study.best_trials`` holds only feasible ones.

Everything a trial needs is in the study's user attributes and the artifact store, so
``slimkit worker`` on another machine runs trials of the same search.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field

from slimkit.errors import TechniqueError
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.run import Candidate
from slimkit.pipeline.select import accuracy_drop, drop_excess
from slimkit.studies import artifact_store, download, upload, worker_id
from slimkit.tasks.base import Task
from slimkit.techniques import TECHNIQUES, Context
from slimkit.techniques.arch import ArchConfig, sample_architecture
from slimkit.techniques.tune import BudgetReached

TECHNIQUE_NAMES = ("prune", "distill", "arch", "quantize")
OBJECTIVES = {"latency": "minimize", "size": "minimize", "throughput": "maximize"}
Objective = Literal["latency", "size", "throughput"]
CONSTRAINT = "accuracy_drop"


class SearchConfig(BaseModel):
    """What the search may combine, what it optimizes and within which accuracy budget."""

    model_config = ConfigDict(extra="forbid")

    techniques: list[Literal["prune", "distill", "arch", "quantize"]] = Field(
        default_factory=lambda: list(TECHNIQUE_NAMES), min_length=1)
    objective: Objective = "latency"
    max_accuracy_drop: float = Field(0.01, ge=0, lt=1)
    epochs: int = Field(30, ge=1, le=10000, description="training epochs inside a trial")
    trials: int | None = Field(None, ge=1, description="stop after this many complete trials")
    startup_trials: int = Field(6, ge=1, description="random trials before TPE models the space")
    finalists: int = Field(3, ge=1, le=20, description="best trials measured again in full")


def objective_value(profile: dict[str, Any], objective: str) -> float:
    """The objective's value in a candidate profile (ort p50 ms, file bytes or samples/s)."""
    ort = profile["onnxruntime"]
    if objective == "latency":
        return float(ort["latency_ms"]["p50"])
    if objective == "size":
        return float(profile["size_bytes"])
    return float(ort["throughput_sps"])


def make_sampler(seed: int, startup_trials: int = 6) -> optuna.samplers.BaseSampler:
    """Multivariate TPE over the conditional chain space; it reads the accuracy constraint
    each trial sets (``Trial.set_constraint``)."""
    import warnings

    with warnings.catch_warnings():  # multivariate/group TPE are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials,
                                          multivariate=True, group=True)


def compressors(config: SearchConfig, spec: dict[str, Any]) -> list[str]:
    """The first link of a chain: what may shrink the model (``none`` only if quantization can
    still change something)."""
    names = ["none"] if "quantize" in config.techniques else []
    for name in ("prune", "distill", "arch"):
        scalable = "width" in spec["args"] or "width_mult" in spec["args"]
        if name in config.techniques and (name != "distill" or scalable):
            names.append(name)
    return names


def sample_chain(trial: optuna.Trial, config: SearchConfig, spec: dict[str, Any],
                 train: dict[str, Any]) -> list[dict[str, Any]]:
    """One chain: ``[{"technique", "link", "params"}, ...]`` with every technique's own
    ``search_space``; the trainer settings of every link come from ``train``."""
    choices = compressors(config, spec)
    if not choices:
        raise TechniqueError("optimize: no technique applies (distill needs a model with a "
                             "width parameter)")
    compress = trial.suggest_categorical("compress", choices) if len(choices) > 1 else choices[0]
    chain: list[dict[str, Any]] = []
    if compress == "prune":
        params = TECHNIQUES.get("prune").search_space(trial, spec) or {}
        chain.append({"technique": "prune", "link": "prune",
                      "params": {**params, "finetune": train, "distill": {}}})
    elif compress == "distill":
        params = TECHNIQUES.get("distill").search_space(trial, spec) or {}
        chain.append({"technique": "distill", "link": "distill",
                      "params": {**params, "train": train}})
    elif compress == "arch":
        family, args = sample_architecture(trial, ArchConfig(), prefix="arch.")
        chain.append({"technique": "distill", "link": "arch",
                      "params": {"student": {"model": family, "model_args": args},
                                 "train": train}})
    quantize = "quantize" in config.techniques and (
        compress == "none" or trial.suggest_categorical("quantize", [False, True]))
    if quantize:
        params = TECHNIQUES.get("quantize").search_space(trial, spec) or {}
        chain.append({"technique": "quantize", "link": "quantize", "params": params})
    return chain


def fresh_chain(study: optuna.Study, config: SearchConfig, spec: dict[str, Any],
                train: dict[str, Any], seed: int, tries: int = 20) -> dict[str, Any] | None:
    """Parameters of a randomly drawn chain no trial has measured yet, or None if ``tries``
    draws found none: an exploration step when TPE keeps proposing measured chains."""
    seen = [t.params for t in study.get_trials(deepcopy=False)]
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                  directions=["maximize", "minimize"])
    for _ in range(tries):
        trial = scratch.ask()
        sample_chain(trial, config, spec, train)
        if trial.params not in seen:
            return trial.params
    return None


def seed_chains(config: SearchConfig, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Known-good chains the search starts from (Optuna's ``enqueue_trial``) so that a short
    budget already covers each technique; the sampler takes over after them."""
    choices = compressors(config, spec)
    quantize = "quantize" in config.techniques
    seeds: list[dict[str, Any]] = []

    def add(compress: str, **params: Any) -> None:
        if compress not in choices:
            return
        fixed = dict(params)
        if len(choices) > 1:
            fixed["compress"] = compress
        if quantize and compress != "none":
            fixed["quantize"] = "quantize.mode" in fixed
        elif not quantize:
            fixed.pop("quantize.mode", None)
        seeds.append(fixed)

    add("prune", **{"prune.ratio": 0.75, "quantize.mode": "static"})
    add("arch", **{"arch.family": "mobilenet", "arch.width_mult": 0.5, "arch.depth": 3,
                   "arch.kernel_size": 5, "arch.expansion": 4, "arch.head": "flatten"})
    add("prune", **{"prune.ratio": 0.5})
    add("distill", **{"distill.width_mult": 0.25, "quantize.mode": "static"})
    add("none", **{"quantize.mode": "static"})
    unique = []
    for fixed in seeds:
        if fixed not in unique:
            unique.append(fixed)
    return unique


def _link_detail(link: dict[str, Any]) -> str:
    params = link["params"]
    if link["link"] == "prune":
        return f"{params['ratio']:g}"
    if link["link"] == "distill":
        return f"width x{params['width_mult']:g}"
    if link["link"] == "arch":
        args = params["student"]["model_args"]
        return (f"{params['student']['model']} w{args['width_mult']:g} d{args['depth']} "
                f"k{args['kernel_size']} e{args['expansion']} {args['head']}")
    return str(params["mode"])


def chain_label(chain: list[dict[str, Any]]) -> str:
    """``prune(0.75) + quantize(static)``: a short human-readable chain."""
    return " + ".join(f"{link['link']}({_link_detail(link)})" for link in chain) or "baseline"


def run_chain(chain: list[dict[str, Any]], base: Candidate, folder: Path, task: Task,
              seed: int, settings: ProfileSettings, max_drop: float,
              progress: bool = False) -> list[Candidate]:
    """Apply ``chain`` to ``base`` (whose torch file is in ``folder``); every link becomes a
    measured candidate ``s1``, ``s2``, ... in ``folder``. A link that budgets accuracy itself
    (quantization's fallback) gets what the earlier links left of ``max_drop``."""
    done: dict[str, Candidate] = {base.id: base}
    parent, made = base, []
    for index, link in enumerate(chain):
        cid, technique = f"s{index + 1}", TECHNIQUES.get(link["technique"])
        config = technique.Config.model_validate(link["params"])

        def make(model: Any, spec: dict[str, Any], params: dict[str, Any],
                 training: dict[str, Any] | None = None, onnx_source: Path | None = None,
                 cid: str = cid, parent_id: str = parent.id, name: str = link["technique"]
                 ) -> Candidate:
            return materialize(cid, parent_id, name, params, model, spec, task, folder,
                               settings, training=training, onnx_source=onnx_source)

        spent = accuracy_drop(parent.metric("val", task.metric) or 0.0,
                              base.metric("val", task.metric) or 0.0, task.direction)
        context = Context(task=task, run_dir=folder, seed=seed, settings=settings,
                          progress=progress, candidates=done, new_id=cid, materialize=make,
                          constraints={"max_accuracy_drop": max(max_drop - spent, 0.0)})
        parent = technique(config).apply(parent, context)
        done[cid] = parent
        made.append(parent)
    return made


class SearchObjective:
    """One trial: sample a chain, apply it to the baseline, measure, report (val, objective)
    and the accuracy constraint. Built from the study's attributes, so it runs in any worker."""

    def __init__(self, setup: dict[str, Any], task: Task, store_dir: Path) -> None:
        self.setup, self.task = setup, task
        self.config = SearchConfig.model_validate(setup["search"])
        self.store = artifact_store(store_dir)
        self.settings = ProfileSettings(**setup["profile"]).quick()

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("worker", worker_id())
        deadline = float(trial.study.user_attrs.get("slimkit", {}).get("deadline", float("inf")))
        if time.time() >= deadline:
            trial.set_user_attr("budget_reached", True)
            raise BudgetReached("the search's time budget is spent")
        try:
            return self._trial(trial)
        except Exception as err:  # recorded on the trial; Optuna marks it failed
            trial.set_user_attr("error", f"{type(err).__name__}: {err}"[:500])
            raise

    def _trial(self, trial: optuna.Trial) -> tuple[float, float]:
        start = time.perf_counter()
        base = self.setup["baseline"]
        chain = sample_chain(trial, self.config, base["model"], self.setup["train"])
        trial.set_user_attr("chain", chain)
        trial.set_user_attr("label", chain_label(chain))
        earlier = same_chain(trial)
        if earlier is not None:  # chains are deterministic: reuse the result, spend no time
            for key in ("steps", "artifacts", "trial_seconds"):
                trial.set_user_attr(key, earlier.user_attrs[key])
            trial.set_user_attr("duplicate_of", earlier.number)
            trial.set_constraint(CONSTRAINT, earlier.constraints[CONSTRAINT])
            return earlier.values[0], earlier.values[1]
        records, artifacts = self._apply(trial, chain)
        final = records[-1]
        metric, direction = self.task.metric, self.task.direction
        value = float(final["metrics"]["val"][metric])
        trial.set_constraint(CONSTRAINT, drop_excess(
            value, float(base["metrics"]["val"][metric]), direction,
            self.config.max_accuracy_drop))
        trial.set_user_attr("steps", records)
        trial.set_user_attr("artifacts", artifacts)
        trial.set_user_attr("trial_seconds", round(time.perf_counter() - start, 3))
        return value, objective_value(final["profile"], self.config.objective)

    def _apply(self, trial: optuna.Trial, chain: list[dict[str, Any]]
               ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        base = self.setup["baseline"]
        with tempfile.TemporaryDirectory(prefix="slimkit-trial-") as tmp:
            folder = Path(tmp)
            rel = Path("candidates/base/model.pt")
            download(self.store, base["artifact"], folder / rel)
            parent = Candidate(id="base", parent=None, technique="baseline",
                               metrics=base["metrics"], profile=base["profile"],
                               model=base["model"], artifacts={"torch": str(rel)})
            made = run_chain(chain, parent, folder, self.task, int(self.setup["seed"]),
                             self.settings, self.config.max_accuracy_drop)
            floats = [c for c in made if "torch" in c.artifacts]
            torch_id = (upload(self.store, folder / floats[-1].artifacts["torch"], trial)
                        if floats else base["artifact"])
            onnx_id = upload(self.store, folder / made[-1].artifacts["onnx"], trial)
        records = [{k: v for k, v in c.to_dict().items()
                    if k not in ("artifacts", "violations", "feasible", "step", "timing")}
                   for c in made]
        return records, {"torch": torch_id, "onnx": onnx_id}


def same_chain(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """An earlier complete trial that sampled exactly these parameters (TPE repeats points of
    a small conditional space)."""
    for other in trial.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,)):
        if other.params == trial.params and other.user_attrs.get("steps"):
            return other
    return None


def is_new(trial: optuna.trial.FrozenTrial) -> bool:
    """A complete trial that ran its chain (not a repeat of an earlier one)."""
    return (trial.state == optuna.trial.TrialState.COMPLETE
            and "duplicate_of" not in trial.user_attrs)


def feasible_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pareto-optimal trials meeting the accuracy constraint (Optuna's own front)."""
    return [t for t in study.best_trials if t.user_attrs.get("steps")]


def finalists(study: optuna.Study, config: SearchConfig) -> list[optuna.trial.FrozenTrial]:
    """The best feasible trials on the objective (ties: better val metric)."""
    front = feasible_front(study)
    sign = 1.0 if OBJECTIVES[config.objective] == "minimize" else -1.0
    acc_sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    front.sort(key=lambda t: (sign * t.values[1], acc_sign * t.values[0]))
    chosen: list[optuna.trial.FrozenTrial] = []
    for trial in front:
        if all(trial.params != other.params for other in chosen):
            chosen.append(trial)
    return chosen[: config.finalists]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every finished trial of the search, compactly, for run.json and reports."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("budget_reached") or not t.state.is_finished():
            continue
        if "duplicate_of" in t.user_attrs:
            continue
        rows.append({"number": t.number, "state": t.state.name.lower(),
                     "chain": t.user_attrs.get("label"), "values": t.values,
                     "constraint": t.constraints.get(CONSTRAINT) if t.constraints else None,
                     "seconds": t.user_attrs.get("trial_seconds"),
                     "worker": t.user_attrs.get("worker"), "error": t.user_attrs.get("error")})
    return rows
