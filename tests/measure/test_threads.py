"""``profile.threads: [1, all]``: the first count decides, the others are profiled beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import slimkit
from slimkit.measure.timing import ProfileSettings, usable_cores
from tests.conftest import FAST_PROFILE


def test_a_thread_list_becomes_the_deciding_count_and_the_others() -> None:
    settings = ProfileSettings(threads=[1, "all"])
    assert settings.threads == 1
    assert settings.more_threads == ([usable_cores()] if usable_cores() > 1 else [])
    assert ProfileSettings(threads="all").threads == usable_cores()
    assert ProfileSettings(threads=[2, 2, 1]).more_threads == [1]
    assert ProfileSettings(**ProfileSettings(threads=[1, 3]).model_dump()).more_threads == [3]
    assert ProfileSettings(threads=[1, 3]).quick().more_threads == []  # search trials: one


@pytest.mark.parametrize("bad", [[], "some", [1, "most"], [0]])
def test_a_bad_thread_list_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="threads"):
        ProfileSettings(threads=bad)


def test_every_candidate_is_profiled_at_each_count(tmp_path: Path) -> None:
    recipe = {"version": 1, "task": "digits", "seed": 0,
              "profile": {**FAST_PROFILE, "threads": [1, 2]},
              "baseline": {"model": "mlp", "model_args": {"width": 16, "depth": 1},
                           "train": {"epochs": 1}},
              "steps": [{"technique": "quantize", "params": {"mode": "dynamic"}}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    for cand in run.candidates:
        assert cand.profile["onnxruntime"]["threads"] == 1
        other = cand.profile["onnxruntime_threads"]["2"]
        assert other["threads"] == 2 and other["throughput_batch"] == 16
        assert "latency_ms" in other and "throughput_sps" in other  # a whole profile, no RSS
        assert not any(key.endswith("rss_mb") for key in other)
    shown = subprocess.run([sys.executable, "-m", "slimkit", "show", str(tmp_path / "run")],
                           capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "onnxruntime by thread count" in shown.stdout and "throughput 2t" in shown.stdout
