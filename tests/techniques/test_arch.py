"""The efficient families and the ``arch`` search."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import slimkit
from slimkit.models import build_model
from slimkit.techniques.arch import fast_enough

from ..conftest import FAST_PROFILE


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("shape", [(1, 40), (1, 8, 8)])
def test_mobilenet_is_depthwise_separable_with_inverted_residuals(shape: tuple[int, ...]
                                                                  ) -> None:
    model = build_model("mobilenet", {"depth": 2, "blocks": 2, "expansion": 4}, shape, 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d)]
    depthwise = [c for c in convs if c.groups == c.in_channels == c.out_channels > 1]
    assert len(depthwise) == 4  # one per block
    blocks = [m for m in model.modules() if type(m).__name__ == "InvertedResidual"]
    assert any(b.residual for b in blocks)  # the second block of a stage adds its input
    wide = build_model("mobilenet", {"depth": 2, "width_mult": 2.0}, shape, 10)
    assert _params(wide) > 2 * _params(build_model("mobilenet", {"depth": 2}, shape, 10))


def test_efficientnet_scales_width_depth_and_length_with_one_coefficient() -> None:
    small = build_model("efficientnet", {"phi": 0}, (1, 40), 10)
    big = build_model("efficientnet", {"phi": 2}, (1, 40), 10)
    assert any(type(m).__name__ == "SqueezeExcite" for m in small.modules())
    assert not any(isinstance(m, torch.nn.Upsample) for m in small.modules())
    resample = next(m for m in big.modules() if isinstance(m, torch.nn.Upsample))
    assert resample.size == (round(40 * 1.15**2),)
    count = lambda m: sum(type(b).__name__ == "InvertedResidual" for b in m.modules())  # noqa: E731
    assert count(big) > count(small) and _params(big) > _params(small)


def test_slower_architectures_are_dropped() -> None:
    trials = [SimpleNamespace(values=[0.9, 0.5]), SimpleNamespace(values=[0.95, 1.5]),
              SimpleNamespace(values=[0.97, 1.0])]
    assert fast_enough(trials, 1.0, 1.0) == [trials[0], trials[2]]  # type: ignore[arg-type]
    assert fast_enough(trials, 1.0, None) == trials  # type: ignore[arg-type]


def test_arch_search_records_its_front_and_retrains_the_best(tmp_path: Path) -> None:
    recipe = {"version": 1, "task": "mnist1d", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "cnn1d", "model_args": {"width": 256, "depth": 2},
                           "train": {"epochs": 1}},
              "steps": [{"technique": "arch", "params": {
                  "trials": 2, "families": ["mobilenet", "efficientnet"],
                  "width_mult": [0.25], "depth": [1, 2], "kernel_size": [3],
                  "expansion": [1, 2], "distill": False, "train": {"epochs": 2},
                  "max_latency_ratio": None}}]}  # the latency filter is tested on its own
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    parent, found = run.candidate("c0"), run.candidate("c1")
    assert found.status == "ok", found.error
    assert found.model["family"] in ("mobilenet", "efficientnet")
    assert len(found.params["trials"]) == 2
    assert all(len(t["values"]) == 2 and t["values"][1] > 0 for t in found.params["trials"])
    # a 0.25-width depthwise student of a 256-wide dense conv net: far fewer MACs (counted)
    assert found.stat("macs") < parent.stat("macs") / 4
    best = found.params["best_trial"]
    assert any(p["number"] == best and not p["dropped_as_slower"]
               for p in found.params["pareto"])


def test_a_fixed_architecture_is_trained_without_a_study(tmp_path: Path) -> None:
    recipe = {"version": 1, "task": "mnist1d", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "cnn1d", "model_args": {"width": 8, "depth": 1},
                           "train": {"epochs": 1}},
              "steps": [{"technique": "arch", "params": {
                  "architecture": {"family": "mobilenet", "args": {"width_mult": 0.25,
                                                                   "depth": 1}},
                  "train": {"epochs": 1}}}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    found = run.candidate("c1")
    assert found.status == "ok", found.error
    assert found.model["family"] == "mobilenet" and found.model["args"]["depth"] == 1
    assert "pareto" not in found.params and not (run.path / "study.db").exists()


def test_arch_searches_across_families_and_skips_those_that_cannot_read_the_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {"version": 1, "task": "mnist1d", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "cnn1d", "model_args": {"width": 16, "depth": 1},
                           "train": {"epochs": 1}},
              "steps": [{"technique": "arch", "params": {
                  "trials": 3, "families": ["cnn2d", "gru", "tcn", "transformer"],
                  "spaces": {"gru": {"width": [8]}, "tcn": {"width": [8], "depth": [1]},
                             "transformer": {"width": [16], "depth": [1], "heads": [2],
                                             "patch": [8]}},
                  "sampler": "random", "train": {"epochs": 1}, "max_latency_ratio": None}}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    found = run.candidate("c1")
    assert found.status == "ok", found.error
    assert found.params["families_searched"] == ["gru", "tcn", "transformer"]
    assert "cnn2d" in found.params["families_skipped"]  # images only: mnist1d is a signal
    assert "arch: cnn2d skipped: model 'cnn2d' takes 3-d inputs" in capsys.readouterr().err
    tried = {t["model"]["family"] for t in found.params["trials"]}
    assert set(found.params["family_fronts"]) == tried
    numbers = {t["number"]: t["model"]["family"] for t in found.params["trials"]}
    for family, front in found.params["family_fronts"].items():
        assert front and all(numbers[n] == family for n in front)
    assert found.model["family"] in tried


def test_on_images_the_sequence_families_need_rows() -> None:
    from slimkit.techniques.arch import ArchConfig, usable_families

    families = ["cnn1d", "cnn2d", "gru", "transformer"]
    usable, skipped = usable_families(ArchConfig(families=families), (1, 8, 8), 10)
    assert usable == ["cnn2d"] and "set arch's rows: true" in skipped["gru"]
    assert "takes 2-d inputs" in skipped["cnn1d"]
    usable, _ = usable_families(ArchConfig(families=families, rows=True), (1, 8, 8), 10)
    assert usable == ["cnn2d", "gru", "transformer"]


def test_a_searched_chain_can_choose_any_family_that_reads_the_input() -> None:
    import optuna

    from slimkit.techniques import PrefixedTrial, SearchSpec
    from slimkit.techniques.arch import Arch

    spec = SearchSpec(model={"family": "cnn1d", "args": {}, "input_shape": [1, 40],
                             "num_classes": 10, "input_dtype": "float32"}, train={"epochs": 1})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    chosen = set()
    for _ in range(60):
        trial = study.ask()
        config = Arch.search_space(PrefixedTrial(trial, "arch."), spec)
        chosen.add(config.architecture.family)
        study.tell(trial, 0.0)
    assert chosen == {"cnn1d", "mobilenet", "efficientnet", "gru", "lstm", "tcn", "transformer"}


def test_a_family_space_names_known_arguments() -> None:
    from slimkit.core.errors import RecipeError
    from slimkit.core.validation import validate
    from slimkit.techniques.arch import ArchConfig

    for spaces, message in (({"gru": {"hidden": [8]}}, r"gru\.hidden: not a parameter of gru"),
                            ({"resnet": {"width": [8]}}, r"'resnet': not a family"),
                            ({"tcn": {"width": []}}, r"tcn\.width: give at least one"),
                            ({"gru": {"width": [0]}}, r"gru: the choices .* greater than"),
                            ({"gru": {"readout": ["avg"]}}, r"gru: the choices .*readout"),
                            ({"transformer": {"heads": [3]}}, r"heads \(3\) must divide"),
                            ({"tcn": {"width": [[8]]}}, r"tcn\.width: choices are numbers")):
        with pytest.raises(RecipeError, match=message):
            validate(ArchConfig, {"spaces": spaces}, prefix="steps[0].params", error=RecipeError)
