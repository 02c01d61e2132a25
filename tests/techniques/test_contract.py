"""Every registered technique keeps the contract (``contract.py``) on a task of every kind:
one pytest id per technique and kind, so one failure does not hide the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from slimkit.core.runs import Candidate
from slimkit.tasks import Task
from slimkit.techniques import TECHNIQUES, SearchSpec

from ..conftest import KINDS, tiny_task
from .contract import (
    apply_once,
    check_config,
    check_search_hooks,
    make_parent,
)

# the smallest meaningful parameters of each technique; a new technique adds its own. Each is
# deterministic: one architecture for arch (ties on a tiny val set would be broken by time).
EXAMPLES = {
    "train": {"epochs": 1},
    "export": {},
    "prune": {"ratio": 0.5, "finetune": {"epochs": 1}},
    "distill": {"width_mult": 0.5, "train": {"epochs": 1}},
    "quantize": {"mode": "dynamic"},
    "arch": {"trials": 1, "families": ["mobilenet"], "width_mult": [0.25], "depth": [1],
             "kernel_size": [3], "expansion": [2], "max_latency_ratio": None,
             "train": {"epochs": 1}},
    "tune": {"trials": 2, "pruner": "none", "train": {"epochs": 1},
             "space": {"train.lr": {"choices": [0.01, 0.001]}}},
}


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Task, Path, Candidate]]:
    """One trained parent per task kind, in a folder the tests copy (never write into)."""
    made = {}
    for kind in KINDS:
        task, folder = tiny_task(kind), tmp_path_factory.mktemp(f"parent-{kind}")
        made[kind] = (task, folder, make_parent(task, folder))
    return made


def test_every_technique_has_an_example_here() -> None:
    assert set(TECHNIQUES.names()) == set(EXAMPLES)


@pytest.mark.parametrize("name", TECHNIQUES.names())
def test_config_is_strict_and_names_the_path(name: str) -> None:
    check_config(TECHNIQUES.get(name), EXAMPLES[name])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", TECHNIQUES.names())
def test_search_hooks_give_valid_configs(name: str, kind: str, parents) -> None:
    parent = parents[kind][2]
    spec = SearchSpec(model=parent.model, train={"epochs": 1}, kind=kind)
    check_search_hooks(TECHNIQUES.get(name), spec)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", TECHNIQUES.names())
def test_apply_makes_a_measured_child_of_an_untouched_parent_and_repeats(
        name: str, kind: str, parents, tmp_path: Path) -> None:
    task, folder, parent = parents[kind]
    technique = TECHNIQUES.get(name)
    first = apply_once(technique, EXAMPLES[name], task, folder, parent, tmp_path / "first")
    again = apply_once(technique, EXAMPLES[name], task, folder, parent, tmp_path / "again")
    assert first.technique == name
    assert again.metrics == first.metrics  # same seed, same metrics
