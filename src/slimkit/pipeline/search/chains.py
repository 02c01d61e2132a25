"""Chains of techniques: sampled for a trial, seeded, labelled, and applied to a candidate.

A chain has at most one technique per role, in the order of ``ROLES``. The role's trial
parameter (``compress``, ``quantize``) names the technique or ``none``; each technique draws its
own parameters under its name (``prune.ratio``). Nothing here names a technique: the registry's
roles, ``applies``, ``search_space``, ``label`` and ``seeds`` say everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.measure.timing import ProfileSettings
from slimkit.pipeline.candidates import materialize
from slimkit.pipeline.select import accuracy_drop
from slimkit.tasks import Task
from slimkit.techniques import (
    ROLES,
    TECHNIQUES,
    Context,
    PrefixedTrial,
    Role,
    SearchSpec,
    TechniqueConfig,
)

NONE = "none"
PRECISION: Role = "precision"  # the role a seed's ``lower_precision`` chains to


@dataclass(frozen=True)
class Link:
    """One step of a chain: a registered technique and its validated config."""

    technique: str
    config: TechniqueConfig

    def record(self) -> dict[str, Any]:
        """What a trial stores of this link (JSON)."""
        return {"technique": self.technique, "params": self.config.model_dump(mode="json")}

    @property
    def label(self) -> str:
        """``prune(0.75)``: the technique and its own few words for the config."""
        return f"{self.technique}({TECHNIQUES.get(self.technique).label(self.config)})"


def chain_label(chain: Sequence[Link]) -> str:
    """``prune(0.75) + quantize(static)``: a short human-readable chain."""
    return " + ".join(link.label for link in chain) or "baseline"


def role_choices(techniques: Sequence[str], spec: SearchSpec) -> dict[Role, list[str]]:
    """For every role, the allowed techniques that apply to the parent ``spec``."""
    return {role: [name for name in TECHNIQUES.names() if name in techniques
                   and TECHNIQUES.get(name).role == role and TECHNIQUES.get(name).applies(spec)]
            for role in ROLES}


def _options(choices: dict[Role, list[str]], index: int, chained: bool
             ) -> tuple[str | None, list[str]]:
    """The trial parameter of role ``ROLES[index]`` and its options. A role may be skipped
    (``none``) unless the chain would stay empty; one that may not gets a parameter of its own
    name (``precision_only``), as Optuna keeps one distribution per parameter. No parameter
    when there is nothing to choose."""
    role = ROLES[index]
    optional = chained or any(choices[later] for later in ROLES[index + 1:])
    options = [NONE, *choices[role]] if optional else list(choices[role])
    if len(options) < 2:
        return None, options
    return (role if optional else f"{role}_only"), options


def sample_chain(trial: optuna.Trial, techniques: Sequence[str], spec: SearchSpec
                 ) -> list[Link]:
    """One chain for ``trial``: a technique (or none) per role, never an empty chain."""
    choices = role_choices(techniques, spec)
    chain: list[Link] = []
    for index, role in enumerate(ROLES):
        if not choices[role]:
            continue
        param, options = _options(choices, index, bool(chain))
        picked = options[0] if param is None else trial.suggest_categorical(param, options)
        if picked != NONE:
            config = TECHNIQUES.get(picked).search_space(PrefixedTrial(trial, f"{picked}."),
                                                         spec)
            chain.append(Link(picked, config))
    if not chain:
        raise TechniqueError(f"optimize: none of the techniques {', '.join(techniques)} "
                             f"applies to this model ({spec.model.get('family')}, inputs "
                             f"{spec.input_shape} {spec.input_dtype})")
    return chain


def _trial_params(choices: dict[Role, list[str]], links: list[tuple[str, dict[str, Any]]]
                  ) -> dict[str, Any]:
    """The parameters of a trial that samples exactly ``links`` (technique, its own params)
    — named as ``sample_chain`` names them, so ``enqueue_trial`` replays the chain."""
    picks = {TECHNIQUES.get(name).role: name for name, _ in links}
    params: dict[str, Any] = {}
    chained = False
    for index, role in enumerate(ROLES):
        if not choices[role]:
            continue
        param, _ = _options(choices, index, chained)
        if param is not None:
            params[param] = picks.get(role, NONE)
        chained = chained or role in picks
    for name, own in links:
        params.update({f"{name}.{key}": value for key, value in own.items()})
    return params


def seed_chains(techniques: Sequence[str], spec: SearchSpec) -> list[dict[str, Any]]:
    """Trial parameters of known-good chains the search starts from (``enqueue_trial``), so
    that a short budget already covers each technique: the techniques' first seeds, then their
    second ones, ..., then the precision techniques' seeds alone."""
    choices = role_choices(techniques, spec)
    lowering = next(((name, seed.params) for name in choices[PRECISION]
                     for seed in TECHNIQUES.get(name).seeds(spec)[:1]), None)
    first_links = {name: TECHNIQUES.get(name).seeds(spec)
                   for role in ROLES if role != PRECISION for name in choices[role]}
    chains: list[dict[str, Any]] = []
    for index in range(max((len(seeds) for seeds in first_links.values()), default=0)):
        for name, seeds in first_links.items():
            if index < len(seeds):
                links = [(name, seeds[index].params)]
                if seeds[index].lower_precision and lowering is not None:
                    links.append(lowering)
                chains.append(_trial_params(choices, links))
    for name in choices[PRECISION]:
        chains += [_trial_params(choices, [(name, seed.params)])
                   for seed in TECHNIQUES.get(name).seeds(spec)]
    unique: list[dict[str, Any]] = []
    for params in chains:
        if params not in unique:
            unique.append(params)
    return unique


def fresh_chain(study: optuna.Study, techniques: Sequence[str], spec: SearchSpec, seed: int,
                tries: int = 20) -> dict[str, Any] | None:
    """Parameters of a randomly drawn chain no trial has measured yet, or None if ``tries``
    draws found none: an exploration step when TPE keeps proposing measured chains."""
    seen = [t.params for t in study.get_trials(deepcopy=False)]
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                  directions=["maximize", "minimize"])
    for _ in range(tries):
        trial = scratch.ask()
        sample_chain(trial, techniques, spec)
        if trial.params not in seen:
            return trial.params
    return None


def run_chain(chain: Sequence[Link], base: Candidate, folder: Path, task: Task, seed: int,
              settings: ProfileSettings, max_drop: float, progress: bool = False
              ) -> list[Candidate]:
    """Apply ``chain`` to ``base`` (whose torch file is in ``folder``); every link becomes a
    measured candidate ``s1``, ``s2``, ... in ``folder``. A link that budgets accuracy itself
    (quantization's fallback) gets what the earlier links left of ``max_drop``."""
    done: dict[str, Candidate] = {base.id: base}
    parent, made = base, []
    for index, link in enumerate(chain):
        cid = f"s{index + 1}"

        def make(model: Any, spec: dict[str, Any], params: dict[str, Any],
                 training: dict[str, Any] | None = None, onnx_source: Path | None = None,
                 cid: str = cid, parent_id: str = parent.id, name: str = link.technique
                 ) -> Candidate:
            return materialize(cid, parent_id, name, params, model, spec, task, folder,
                               settings, training=training, onnx_source=onnx_source)

        spent = accuracy_drop(parent.metric("val", task.metric) or 0.0,
                              base.metric("val", task.metric) or 0.0, task.direction)
        context = Context(task=task, run_dir=folder, seed=seed, settings=settings,
                          progress=progress, candidates=done, new_id=cid, materialize=make,
                          constraints={"max_accuracy_drop": max(max_drop - spent, 0.0)})
        parent = TECHNIQUES.get(link.technique)(link.config).apply(parent, context)
        done[cid] = parent
        made.append(parent)
    return made
