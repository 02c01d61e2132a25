from __future__ import annotations

import numpy as np
import pytest
import torch

from slimkit.core.errors import ModelError
from slimkit.measure.onnx import export_onnx, run_onnx
from slimkit.models import MODELS, ModelFamily, build_model, load_model, model_config, save_model

SHAPES = {1: (12,), 2: (1, 40), 3: (1, 8, 8)}


GENERIC = [n for n in MODELS.names() if n != "minilm"]  # minilm: pretrained, tests of its own


@pytest.mark.parametrize("name", GENERIC)
def test_every_model_builds_for_its_input_ranks(name: str) -> None:
    family = MODELS.get(name)
    assert "dropout" in family.config.model_fields
    for rank in family.input_ranks:
        model = build_model(name, {"dropout": 0.2, **_rows(family, rank)}, SHAPES[rank], 7)
        out = model.eval()(torch.randn(3, *SHAPES[rank]))
        assert out.shape == (3, 7)
        assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in model.modules())


def _rows(family: ModelFamily, rank: int) -> dict[str, bool]:
    """A sequence family reads images by their rows only when asked."""
    return {"rows": True} if rank == 3 and "rows" in family.config.model_fields else {}


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
                       match=r"unknown model 'resnet'; choose one of: cnn1d, cnn2d, "
                             r"efficientnet, gru, lstm, minilm, mlp, mobilenet, "
                             r"(python:\S+, )*tcn, transformer"):  # python: objects made here
        build_model("resnet", {}, (1, 40), 10)


# the contract of every family, from the registry: smaller arguments where the default is big
TINY_ARGS = {"minilm": {"layers": 1, "heads": 2, "ffn": 32}}


def _example(family: ModelFamily, rank: int, n: int = 6) -> torch.Tensor:
    shape = {1: (16,), 2: (1, 40), 3: (1, 8, 8)}[rank]
    if family.input_dtype == "int64":  # token ids, 0 = padding at the end of some rows
        ids = torch.randint(1, 1000, (n, *shape), generator=torch.Generator().manual_seed(0))
        ids[: n // 2, shape[0] // 2:] = 0
        return ids
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", [n for n in MODELS.names() if not n.startswith("python:")])
def test_every_family_builds_runs_exports_and_round_trips(name: str, tmp_path) -> None:
    family = MODELS.get(name)
    rank = family.input_ranks[-1]
    x = _example(family, rank)
    outputs = family.outputs or 5
    args = {**TINY_ARGS.get(name, {}), **_rows(family, rank)}
    model = build_model(name, args, tuple(x.shape[1:]), outputs, family.input_dtype).eval()
    with torch.no_grad():
        expected = model(x).numpy()
    assert expected.shape == (len(x), outputs) and np.isfinite(expected).all()
    parity = export_onnx(model, tuple(x.shape[1:]), tmp_path / "model.onnx", x.numpy())
    assert parity["max_abs_diff"] <= 1e-4
    np.testing.assert_allclose(run_onnx(tmp_path / "model.onnx", x.numpy()), expected, atol=1e-4)
    spec = {"family": name, "args": model_config(name, args).model_dump(),
            "input_shape": list(x.shape[1:]), "num_classes": outputs,
            "input_dtype": family.input_dtype}
    save_model(tmp_path / "model.pt", model, spec)
    loaded, loaded_spec = load_model(tmp_path / "model.pt")
    assert loaded_spec == spec
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
