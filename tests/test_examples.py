"""Every example recipe runs end to end (shrunk to tiny sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import slimkit

from .conftest import FAST_PROFILE

EXAMPLES = sorted((Path(__file__).parents[1] / "examples" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_recipe_runs(path: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    data["profile"] = FAST_PROFILE
    data["baseline"].setdefault("train", {})["epochs"] = 2
    data["baseline"].setdefault("model_args", {})["width"] = 8
    for step in data["steps"]:
        if step["technique"] == "train":
            step.setdefault("params", {})["epochs"] = 1
    run = slimkit.run_recipe(data, tmp_path / "run", progress=False)
    assert run.status == "complete"
    assert len(run.candidates) == 1 + len(data["steps"])
    assert all(c.status == "ok" for c in run.candidates)
