"""A forward returning what libraries return (ModelOutput, dict, tuple) gives one tensor:
``logits`` or the first tensor, or the one ``model.output`` names."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from slimkit.core.errors import ModelError
from slimkit.models.outputs import output_name, with_output

X = torch.ones(2, 4)


class Returns(nn.Module):
    def __init__(self, make) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.make = make

    def forward(self, x: torch.Tensor):
        return self.make(self.linear(x))


@pytest.mark.parametrize(("make", "wanted", "taken"), [
    (lambda y: SequenceClassifierOutput(loss=None, logits=y, hidden_states=(y,)), None,
     "logits"),
    (lambda y: {"features": y * 2, "scores": y}, None, "features"),
    (lambda y: {"features": y * 2, "scores": y}, "scores", "scores"),
    (lambda y: (y, y * 2), None, "0"),
    (lambda y: (y, y * 2), "1", "1"),
])
def test_one_tensor_is_taken_and_named(make, wanted: str | None, taken: str) -> None:
    inner = Returns(make)
    model = with_output(inner, X, wanted, "model 'm'")
    assert output_name(model) == taken
    out = model(X)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)


def test_a_tensor_is_left_as_it_is() -> None:
    inner = nn.Linear(4, 3)
    assert with_output(inner, X, None, "model 'm'") is inner


@pytest.mark.parametrize(("make", "wanted", "message"), [
    (lambda y: {"note": "text"}, None, "returns no tensor (note: str)"),
    (lambda y: (y,), "logits", "model.output='logits' is not a tensor the model returns; "
                               "choose one of: 0"),
    (lambda y: y, "logits", "the model returns one tensor; drop the setting"),
])
def test_bad_outputs_are_one_clear_error(make, wanted: str | None, message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        with_output(Returns(make), X, wanted, "model 'm'")
