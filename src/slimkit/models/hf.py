"""A local Hugging Face model folder as a model family: ``hf:PATH``.

The folder holds ``config.json`` and its weights (``save_pretrained``); it is loaded offline with
transformers' Auto classes, never with remote code. The model takes int64 token ids
``(batch, seq)`` (the tokenizer's padding id marks padding) and returns either the logits of a
sequence classifier (``head: classify``) or the sentence embedding (``head: embed``: the mean
of the last hidden states over non-padding tokens, L2-normalized, like sentence-transformers).
``auto`` embeds when the task's outputs are the hidden size (unless the folder holds a
``...ForSequenceClassification`` with that many labels) and classifies otherwise. BERT-style
encoders (BERT, MiniLM, RoBERTa, ...) prune their own attention heads and feed-forward neurons;
the shrunk sizes are model arguments, so a pruned model is stored as tensors plus the folder it
came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from slimkit.core.errors import ModelError
from slimkit.models.base import ModelConfig, ModelFamily
from slimkit.models.minilm import additive_mask, pruned_sizes, shrink_layers, spaced

PREFIX = "hf:"
MISSING_EXTRA = "hf: models need the transformers extra: pip install 'slimkit[transformers]'"


class HFConfig(ModelConfig):
    head: Literal["auto", "classify", "embed"] = Field(
        "auto", description="classify (logits) or embed (mean-pooled, normalized)")
    layers: int | None = Field(None, ge=1, description="encoder layers kept (evenly spaced)")
    heads: int | None = Field(None, ge=1, description="attention heads kept per layer")
    ffn: int | None = Field(None, ge=1, description="feed-forward neurons kept per layer")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="hidden and attention dropout")


def is_hf(name: str | None) -> bool:
    """``name`` is a Hugging Face folder reference ``hf:PATH``."""
    return bool(name) and str(name).startswith(PREFIX)


def folder_of(name: str) -> Path:
    """The folder of ``hf:PATH``, checked: it exists and holds ``config.json``."""
    folder = Path(name[len(PREFIX):]).expanduser()
    if not folder.is_dir():
        raise ModelError(f"--model {name}: no such folder {folder}")
    if not (folder / "config.json").is_file():
        raise ModelError(f"--model {name}: {folder} has no config.json (a Hugging Face model "
                         f"folder, as written by save_pretrained)")
    return folder


def transformers_module() -> Any:
    """transformers, quiet and offline (one clear error without the extra)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers  # optional extra (slimkit[transformers]), slow to import
    except ImportError:
        raise ModelError(MISSING_EXTRA) from None
    transformers.utils.logging.set_verbosity_error()  # no "newly initialized" notes per build
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_config(name: str) -> Any:
    """The folder's transformers config (one clear error for a type transformers lacks)."""
    folder = folder_of(name)
    transformers = transformers_module()
    try:
        return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        text = str(err).splitlines()[0][:200]
        raise ModelError(f"--model {name}: transformers cannot load {folder / 'config.json'} "
                         f"({type(err).__name__}: {text})") from None


def choose_head(config: Any, head: str, outputs: int) -> str:
    """``classify`` or ``embed`` for ``head: auto`` (see the module docstring)."""
    if head != "auto":
        return head
    classifier = any(a.endswith("ForSequenceClassification")
                     for a in getattr(config, "architectures", None) or [])
    if outputs != config.hidden_size or (classifier and config.num_labels == outputs):
        return "classify"
    return "embed"


def _encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    """The BERT-style layer list (``encoder.layer`` with ``attention.self``), if any."""
    encoder = getattr(getattr(model, "base_model", model), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, nn.ModuleList) and layers and hasattr(layers[0], "attention") and \
            hasattr(layers[0].attention, "self"):
        return layers
    return None


class HFText(nn.Module):
    """A transformers model on token ids: ``forward(ids) -> logits or embeddings``."""

    def __init__(self, model: nn.Module, head: str, pad_id: int, dropout: float) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.pad_id = int(pad_id)
        self.dropout_prob = float(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        mask = (ids != self.pad_id).long()
        if _encoder_layers(self.model) is not None:  # BERT-style: a mask onnxruntime can fuse
            dtype = self.model.get_input_embeddings().weight.dtype
            out = self.model(input_ids=ids, attention_mask=additive_mask(mask, dtype))
        else:
            out = self.model(input_ids=ids, attention_mask=mask)
        if self.head == "classify":
            return out.logits
        keep = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)

    @property
    def args(self) -> dict[str, Any]:
        """The arguments that rebuild a model of this shape (``layers``/``heads``/``ffn`` for a
        BERT-style encoder)."""
        found: dict[str, Any] = {"head": self.head, "dropout": self.dropout_prob}
        layers = _encoder_layers(self.model)
        if layers is not None:
            found.update(layers=len(layers),
                         heads=layers[0].attention.self.num_attention_heads,
                         ffn=layers[0].intermediate.dense.out_features)
        return found

    @torch.no_grad()
    def shrink(self, layers: int | None = None, heads: int | None = None,
               ffn: int | None = None) -> None:
        """Keep ``layers`` evenly spaced layers and, per layer, the ``heads`` heads and ``ffn``
        neurons of largest weight norm (data-free; sizes only shrink)."""
        found = _encoder_layers(self.model)
        if found is None:
            if any(v is not None for v in (layers, heads, ffn)):
                raise ModelError(f"model.layers/heads/ffn: only BERT-style encoders shrink; "
                                 f"this is {type(self.model).__name__}")
            return
        current = self.args
        for key, value in (("layers", layers), ("heads", heads), ("ffn", ffn)):
            if value is not None and value > current[key]:
                raise ModelError(f"model.{key} must be at most {current[key]} (the model's "
                                 f"{key}), got {value}")
        if layers is not None and layers < len(found):
            kept = nn.ModuleList(found[i] for i in spaced(len(found), layers))
            self.model.base_model.encoder.layer = kept
            self.model.config.num_hidden_layers = layers
            found = kept
        shrink_layers(found, current, heads, ffn)

    def prune_structured(self, ratio: float, base: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
        """Remove ``ratio`` of the heads and feed-forward neurons of every layer (counted on
        ``base`` sizes); the ``prune`` technique calls this."""
        if _encoder_layers(self.model) is None:
            raise ModelError(f"prune: {type(self.model).__name__} is not a BERT-style encoder "
                             f"slimkit can prune")
        self.shrink(**pruned_sizes(ratio, base or self.args, self.args))
        return self.args


def build_hf(name: str, config: HFConfig, outputs: int) -> HFText:
    """The model of folder ``name`` with the head the task needs, shrunk to ``config``."""
    hf_config = load_config(name)
    folder = str(folder_of(name))
    transformers = transformers_module()
    head = choose_head(hf_config, config.head, outputs)
    # eager attention: the exported graph is the one onnxruntime's attention fusion recognises
    options: dict[str, Any] = {"local_files_only": True, "attn_implementation": "eager"}
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if hasattr(hf_config, key):
            options[key] = config.dropout
    try:
        if head == "classify":
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                folder, num_labels=outputs, ignore_mismatched_sizes=True, **options)
        else:
            model = transformers.AutoModel.from_pretrained(folder, **options)
    except Exception as err:
        text = str(err).splitlines()[0][:200]
        raise ModelError(f"--model {name}: transformers cannot load the model in {folder} "
                         f"({type(err).__name__}: {text})") from None
    if head == "embed" and outputs != hf_config.hidden_size:
        raise ModelError(f"--model {name}: embeds into {hf_config.hidden_size} dimensions, but "
                         f"the task has {outputs} outputs; use head: classify")
    pad = hf_config.pad_token_id if hf_config.pad_token_id is not None else 0
    wrapped = HFText(model, head, pad, config.dropout)
    wrapped.shrink(config.layers, config.heads, config.ffn)
    return wrapped


def hf_family(name: str) -> ModelFamily:
    """The family of folder ``name``: token ids in, logits or embeddings out."""

    def build(config: Any, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        limit = getattr(load_config(name), "max_position_embeddings", None)
        if limit is not None and input_shape[0] > limit:
            raise ModelError(f"--model {name} takes at most {limit} tokens, but the inputs are "
                             f"{input_shape[0]} long")
        return build_hf(name, config, num_outputs)

    return ModelFamily(name, HFConfig, build, (1,), f"the Hugging Face model in {name[3:]}",
                       input_dtype="int64")
