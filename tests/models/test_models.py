from __future__ import annotations

import pytest
import torch

from slimkit.errors import ModelError
from slimkit.models import MODELS, build_model, model_config

SHAPES = {1: (12,), 2: (1, 40), 3: (1, 8, 8)}


GENERIC = [n for n in MODELS.names() if n != "minilm"]  # minilm: pretrained, tests of its own


@pytest.mark.parametrize("name", GENERIC)
def test_every_model_builds_for_its_input_ranks(name: str) -> None:
    family = MODELS.get(name)
    assert "dropout" in family.config.model_fields
    for rank in family.input_ranks:
        model = build_model(name, {"dropout": 0.2}, SHAPES[rank], 7)
        out = model.eval()(torch.randn(3, *SHAPES[rank]))
        assert out.shape == (3, 7)
        assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in model.modules())


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_rejects_unknown_and_out_of_range_args(name: str) -> None:
    with pytest.raises(ModelError, match=r"model\.nope: unknown parameter; allowed: .*dropout"):
        model_config(name, {"nope": 1})
    with pytest.raises(ModelError, match=r"model\.dropout: .*less than 1"):
        model_config(name, {"dropout": 1.5})


def test_width_and_depth_change_the_cnn1d() -> None:
    small = build_model("cnn1d", {"width": 8, "depth": 2}, (1, 40), 10)
    big = build_model("cnn1d", {"width": 32, "depth": 4}, (1, 40), 10)
    convs = lambda m: [c for c in m.modules() if isinstance(c, torch.nn.Conv1d)]  # noqa: E731
    assert len(convs(small)) == 2 and len(convs(big)) == 4
    assert convs(big)[0].out_channels == 32


def test_wrong_input_rank_is_a_clear_error() -> None:
    with pytest.raises(ModelError,
                       match=r"model 'cnn2d' takes 3-d inputs .* input shape is \(1, 40\)"):
        build_model("cnn2d", {}, (1, 40), 10)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ModelError,
                       match="unknown model 'resnet'; choose one of: cnn1d, cnn2d, "
                             "efficientnet, minilm, mlp, mobilenet"):
        build_model("resnet", {}, (1, 40), 10)
