from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.core.errors import RecipeError
from slimkit.core.runs import Candidate
from slimkit.measure.compare import measurably_faster
from slimkit.measure.timing import ProfileSettings
from slimkit.models import load_model
from slimkit.tasks import load_task
from slimkit.techniques import Context
from slimkit.techniques.prune import Prune, PruneConfig, schedule_ratios

from ..conftest import FAST_PROFILE

BASE = {"model": "cnn1d", "model_args": {"width": 32, "depth": 3}, "train": {"epochs": 3}}


def _run(tmp_path: Path, *steps: dict, profile: dict | None = None):
    recipe = {"version": 1, "task": "mnist1d", "seed": 0, "baseline": BASE,
              "profile": profile or FAST_PROFILE,
              "steps": [{"technique": "prune", "from": "baseline", "params": p} for p in steps]}
    return slimkit.run_recipe(recipe, tmp_path / "run", progress=False)


def _layers(run, cid: str) -> list[torch.nn.Module]:
    model, _ = load_model(run.path / run.candidate(cid).artifacts["torch"])
    return [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear))]


FT = {"epochs": 1}


@pytest.mark.parametrize("params", [
    {"importance": "magnitude", "norm": 1},
    {"importance": "magnitude", "norm": 2, "scope": "global"},
    {"importance": "taylor"},
    {"importance": "group_norm"},
    {"speedup": 2.5},
], ids=["l1", "l2-global", "taylor", "group_norm", "speedup"])
def test_structured_pruning_shrinks_tensors_and_keeps_the_head(tmp_path, params) -> None:
    run = _run(tmp_path, {"ratio": 0.5, "finetune": FT, **params})
    base, pruned = _layers(run, "c0"), _layers(run, "c1")
    assert pruned[-1].out_features == base[-1].out_features == 10  # head outputs untouched
    convs = [(b.out_channels, p.out_channels) for b, p in zip(base[:-1], pruned[:-1],
                                                               strict=True)]
    assert all(p <= b for b, p in convs) and any(p < b for b, p in convs)
    assert all(p % 8 == 0 for _, p in convs)  # round_to=8
    c1 = run.candidate("c1")
    assert c1.status == "ok" and c1.profile["params"] < run.candidate("c0").profile["params"]
    assert c1.parity["max_abs_diff"] <= 1e-4  # the shrunk model exports and matches torch
    if "speedup" in params:
        assert c1.params["mac_speedup"] >= 2.5


def test_unstructured_pruning_is_permanent_and_reports_gzip_size(tmp_path) -> None:
    run = _run(tmp_path, {"mode": "unstructured", "ratio": 0.8, "scope": "global",
                          "finetune": FT})
    c0, c1 = run.candidate("c0"), run.candidate("c1")
    layers = _layers(run, "c1")
    weights = torch.cat([m.weight.flatten() for m in layers[:-1]])
    assert (weights == 0).float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert not any(name.endswith("_orig") for m in layers for name, _ in m.named_parameters())
    assert c1.profile["params"] == c0.profile["params"]  # dense tensors, same shapes
    # 80% of conv weights are zero; the head (a quarter of this tiny model) is kept whole
    assert c1.profile["nonzero_params"] < 0.45 * c0.profile["nonzero_params"]
    assert c1.profile["gzip_size_bytes"] < 0.6 * c0.profile["gzip_size_bytes"]
    assert c1.profile["size_bytes"] == pytest.approx(c0.profile["size_bytes"], rel=0.02)


def test_schedules_follow_their_formulas() -> None:
    assert schedule_ratios("oneshot", 0.8, 4) == [0.8]
    assert schedule_ratios("iterative", 0.8, 4) == pytest.approx([0.2, 0.4, 0.6, 0.8])
    cubic = [0.8 * (1 - (1 - t / 4) ** 3) for t in range(1, 5)]
    assert schedule_ratios("gradual", 0.8, 4) == pytest.approx(cubic)


@pytest.mark.parametrize("schedule", ["iterative", "gradual"])
def test_sparsity_follows_the_schedule_during_fine_tuning(tmp_path, schedule) -> None:
    run = _run(tmp_path, {"mode": "unstructured", "ratio": 0.75, "schedule": schedule,
                          "steps": 3, "finetune": {"epochs": 3}})
    trace = run.candidate("c1").params["schedule_trace"]
    assert [t["target"] for t in trace] == pytest.approx(schedule_ratios(schedule, 0.75, 3))
    for t in trace:
        assert t["sparsity"] == pytest.approx(t["target"], abs=0.01)
    assert len(run.candidate("c1").training["steps"]) == 3  # fine-tuned between steps


def test_structured_iterative_with_distillation(tmp_path) -> None:
    run = _run(tmp_path, {"ratio": 0.5, "schedule": "iterative", "steps": 2,
                          "finetune": {"epochs": 2}, "distill": {"alpha": 0.3}})
    trace = run.candidate("c1").params["schedule_trace"]
    assert trace[0]["channels"][0] > trace[1]["channels"][0]  # channels shrink step by step
    assert run.candidate("c1").status == "ok"


def _measured(cid: str, p50: float, throughput: float) -> Candidate:
    return Candidate(id=cid, parent=None, technique="t", profile={
        "onnxruntime": {"latency_ms": {"p50": p50}, "throughput_sps": throughput}})


def test_measurably_faster_needs_both_batch_sizes() -> None:
    parent = _measured("c0", 1.0, 100)
    assert measurably_faster(_measured("c1", 0.5, 300), parent)
    assert not measurably_faster(_measured("c1", 0.5, 101), parent)
    assert not measurably_faster(_measured("c1", 0.97, 300), parent)


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory: pytest.TempPathFactory):
    return _run(tmp_path_factory.mktemp("gate"))


@pytest.mark.parametrize(("p50", "throughput", "flagged"), [
    (1.0, 100, True), (0.5, 104, True), (0.5, 300, False)])
def test_the_latency_gate_reads_the_measured_profiles(baseline_run, p50: float,
                                                      throughput: float, flagged: bool) -> None:
    """The measurements are given (a stand-in for materialize), so the gate's logic is tested
    on any CPU."""
    run = baseline_run
    parent = Candidate.from_dict(run.candidate("c0").to_dict())  # a copy: the fixture is shared
    parent.profile = _measured("c0", 1.0, 100).profile
    context = Context(task=load_task("mnist1d"), run_dir=run.path, seed=0,
                      settings=ProfileSettings(**FAST_PROFILE), progress=False,
                      candidates={"c0": parent}, new_id="c1",
                      materialize=lambda *a, **k: _measured("c1", p50, throughput))
    config = PruneConfig(ratio=0.25, finetune={"epochs": 0})
    child = Prune(config).apply(parent, context)
    assert ("no_speedup" in child.flags) is flagged


@pytest.mark.parametrize(("params", "message"), [
    ({"ratio": 1.5}, r"steps\[0\]\.params\.ratio: input should be less than 1"),
    ({"ratio": -0.1}, r"steps\[0\]\.params\.ratio: input should be greater than or equal to 0"),
    ({"speedup": 0.5}, r"steps\[0\]\.params\.speedup: input should be greater than or equal"),
    ({"importance": "random"}, r"steps\[0\]\.params\.importance: input should be 'magnitude'"),
    ({"mode": "unstructured", "speedup": 2},
     r"steps\[0\]\.params: value error, speedup applies to structured pruning only"),
    ({"finetune": {"lr": 0}}, r"steps\[0\]\.params\.finetune\.lr: input should be greater"),
])
def test_bad_prune_params_name_the_field(params, message) -> None:
    recipe = {"version": 1, "task": "mnist1d", "baseline": BASE,
              "steps": [{"technique": "prune", "params": params}]}
    with pytest.raises(RecipeError, match=message):
        slimkit.load_recipe(recipe)


def test_a_model_torch_pruning_gets_wrong_is_a_clear_error() -> None:
    import torch_pruning as tp

    from slimkit.core.errors import TechniqueError
    from slimkit.techniques.prune import check_still_runs

    class RawParameter(torch.nn.Module):  # a weight used outside any layer
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 16, 3, padding=1)
            self.w = torch.nn.Parameter(torch.randn(16 * 40, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).flatten(1) @ self.w

    model, example = RawParameter(), torch.randn(2, 1, 40)
    with pytest.warns(UserWarning):
        pruner = tp.pruner.BasePruner(model, example, tp.importance.MagnitudeImportance(),
                                      pruning_ratio=0.5)
    pruner.step()
    with pytest.raises(TechniqueError, match=r"fails after layer 'conv' once pruned"):
        check_still_runs(model, example)
