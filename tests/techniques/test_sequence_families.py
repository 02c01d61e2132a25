"""Every technique on every sequence family (``contract.py``'s checks), or the clear error
where a technique cannot apply: structured pruning of recurrent layers, and static or QAT int8
of recurrent operators (onnxruntime has no QDQ kernel for them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimkit
from slimkit.core.errors import TechniqueError
from slimkit.core.runs import Candidate
from slimkit.models import load_model
from slimkit.tasks import Task
from slimkit.techniques import TECHNIQUES

from ..conftest import FAST_PROFILE, tiny_task
from .contract import apply_once, make_parent
from .test_contract import EXAMPLES

FAMILIES = {"gru": {"width": 8}, "lstm": {"width": 8, "depth": 2},
            "tcn": {"width": 8, "depth": 2}, "transformer": {"width": 16, "heads": 2,
                                                             "depth": 1, "patch": 4}}
RECURRENT = ("gru", "lstm")
FINETUNE = {"epochs": 1}


@pytest.fixture(scope="module")
def parents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Task, Path, Candidate]]:
    task = tiny_task("classification")
    made = {}
    for family in FAMILIES:
        folder = tmp_path_factory.mktemp(f"parent-{family}")
        made[family] = (task, folder, make_parent(task, folder, family, FAMILIES[family], 1))
    return made


def _apply(name: str, params: dict, family: str, parents, folder: Path) -> Candidate:
    task, parent_folder, parent = parents[family]
    return apply_once(TECHNIQUES.get(name), params, task, parent_folder, parent, folder)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_dynamic_int8(family: str, parents, tmp_path: Path) -> None:
    child = _apply("quantize", {"mode": "dynamic"}, family, parents, tmp_path / "run")
    if family == "lstm":  # onnxruntime's own int8 LSTM kernel
        assert child.params["recurrent_int8"] == ["LSTM"]
    if family == "gru":  # no int8 GRU kernel: the layers around it are int8, and it is said
        assert set(child.params["kept_float"]) == {"GRU"}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("mode", ["static", "qat"])
def test_static_and_qat_int8_or_the_reason(family: str, mode: str, parents,
                                           tmp_path: Path) -> None:
    params = {"mode": mode, "qat": {"epochs": 1}}
    if family in RECURRENT:
        with pytest.raises(TechniqueError, match=rf"mode {mode} cannot run "
                                                 rf"{family.upper()} in int8 .* mode: dynamic"):
            _apply("quantize", params, family, parents, tmp_path / "run")
        return
    child = _apply("quantize", params, family, parents, tmp_path / "run")
    assert child.params["mode"] == mode


@pytest.mark.parametrize("family", list(FAMILIES))
def test_structured_pruning_or_the_reason(family: str, parents, tmp_path: Path) -> None:
    params = {"ratio": 0.5, "round_to": 2, "finetune": FINETUNE}
    if family in RECURRENT:
        with pytest.raises(TechniqueError, match=rf"not supported for {family} layers .* "
                                                 r"distill with width_mult"):
            _apply("prune", params, family, parents, tmp_path / "run")
        with pytest.raises(TechniqueError, match=rf"unstructured pruning is not supported for "
                                                 rf"{family} layers \(zeroed .* as fast"):
            _apply("prune", {**params, "mode": "unstructured"}, family, parents,
                   tmp_path / "unstructured")
        return
    child = _apply("prune", params, family, parents, tmp_path / "run")
    parent = parents[family][2]
    assert child.stat("params") < parent.stat("params")
    model, _ = load_model(tmp_path / "run" / child.artifacts["torch"])  # the pruned shapes load
    x = torch.from_numpy(parents[family][0].test.x[:3])
    assert model(x).shape == (3, parents[family][0].num_classes)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_distill_into_a_narrower_student_repeats(family: str, parents, tmp_path: Path) -> None:
    params = {"width_mult": 0.5, "train": FINETUNE}
    child = _apply("distill", params, family, parents, tmp_path / "run")
    assert child.model["family"] == family
    assert child.model["args"]["width"] < FAMILIES[family]["width"]
    again = _apply("distill", params, family, parents, tmp_path / "again")
    assert again.metrics == child.metrics  # same seed, same metrics


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("name", ["train", "export", "tune", "arch"])
def test_the_other_techniques_keep_the_contract(name: str, family: str, parents,
                                                tmp_path: Path) -> None:
    child = _apply(name, EXAMPLES[name], family, parents, tmp_path / "run")
    assert child.technique == name


def test_a_cnn_teacher_distills_into_a_gru_student(tmp_path: Path) -> None:
    recipe = {"version": 1, "task": "mnist1d", "seed": 0, "profile": FAST_PROFILE,
              "baseline": {"model": "cnn1d", "model_args": {"width": 16, "depth": 2},
                           "train": {"epochs": 1}},
              "steps": [{"technique": "distill", "params": {
                  "student": {"model": "gru", "model_args": {"width": 16}},
                  "train": {"epochs": 1}}},
                        {"technique": "quantize", "params": {"mode": "dynamic"}}]}
    run = slimkit.run_recipe(recipe, tmp_path / "run", progress=False)
    student, quantized = run.candidate("c1"), run.candidate("c2")
    assert student.status == "ok" and student.model["family"] == "gru", student.error
    assert student.params["teacher"] == "c0"
    assert quantized.status == "ok" and quantized.params["kept_float"], quantized.error


def test_a_search_from_a_recurrent_model_offers_only_what_applies() -> None:
    import optuna

    from slimkit.techniques import PrefixedTrial, SearchSpec

    for family in RECURRENT:
        spec = SearchSpec(model={"family": family, "args": {}, "input_shape": [1, 40],
                                 "num_classes": 10, "input_dtype": "float32"})
        assert not TECHNIQUES.get("prune").applies(spec)
        quantize = TECHNIQUES.get("quantize")
        assert [s.params for s in quantize.seeds(spec)] == [{"mode": "dynamic"}]
        trial = optuna.create_study().ask()
        assert quantize.search_space(PrefixedTrial(trial, "quantize."), spec).mode == "dynamic"


def test_the_accuracy_fallback_can_keep_the_lstm_in_float(parents, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    import onnx

    from slimkit.techniques import quantize

    # every int8 file scores below the float one: the fallback weighs every candidate layer
    monkeypatch.setattr(quantize, "val_score",
                        lambda path, _context: 1.0 if Path(path).name == "fp32.onnx" else 0.0)
    child = _apply("quantize", {"mode": "dynamic", "max_accuracy_drop": 0.01}, "lstm", parents,
                   tmp_path / "run")
    graph = onnx.load(str(parents["lstm"][1] / parents["lstm"][2].artifacts["onnx"])).graph
    lstm = {n.name for n in graph.node if n.op_type == "LSTM"}
    assert lstm and lstm <= set(child.params["sensitivity"])
    assert "fallback_exhausted" in child.flags  # nothing helped: every layer had to stay float
