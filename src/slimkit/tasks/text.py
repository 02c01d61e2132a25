"""Your texts as a task: ``--data file.py:fn`` returning texts with labels (classification) or
texts only (embedding fidelity), tokenized with the tokenizer of the Hugging Face folder the
model comes from (``--model hf:PATH``).

Each split is ``(texts, labels)`` or a list of texts. Token ids are padded with the tokenizer's
padding id to the longest text of all splits (at most the model's limit), so the sequence length
comes from the data. Texts without labels are scored against the folder's own fp32 sentence
embeddings (mean pooling), as the built-in ``minilm-embed`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from slimkit.core.errors import TaskError
from slimkit.models.hf import HFConfig, build_hf, folder_of, load_config, transformers_module

SPLITS = ("train", "val", "test")
MAX_TOKENS = 512
TEXT_THROUGHPUT_BATCH = 8


def _is_text_list(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "UO" and len(value) > 0 and isinstance(
            value[0], str)
    return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], str)


def is_text_split(value: Any) -> bool:
    """A split of texts: a list of str, or ``(texts, labels)``."""
    if _is_text_list(value):
        return True
    return isinstance(value, (tuple, list)) and len(value) == 2 and _is_text_list(value[0])


def _texts_and_labels(value: Any, what: str) -> tuple[list[str], np.ndarray | None]:
    texts, labels = (value, None) if _is_text_list(value) else (value[0], value[1])
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TaskError(f"{what}: text {i} is {type(text).__name__}, expected str")
    if labels is None:
        return texts, None
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts) or not np.issubdtype(labels.dtype,
                                                                             np.integer):
        raise TaskError(f"{what}: labels must be {len(texts)} integer class ids, got "
                        f"{labels.dtype} of shape {labels.shape}")
    return texts, labels.astype(np.int64)


def tokenizer_of(model: str) -> Any:
    """The tokenizer saved in the folder of ``hf:PATH`` (offline, no remote code)."""
    folder = folder_of(model)
    load_config(model)  # a folder transformers cannot read is named as such first
    try:
        return transformers_module().AutoTokenizer.from_pretrained(str(folder),
                                                                    local_files_only=True)
    except Exception as err:
        text = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise TaskError(f"--model {model}: no tokenizer loads from {folder} ({text})") from None


def tokenize(splits: dict[str, list[str]], tokenizer: Any, data: str) -> dict[str, np.ndarray]:
    """Token ids ``(n, seq)`` per split, padded to the longest text of all splits."""
    limit = min(int(getattr(tokenizer, "model_max_length", MAX_TOKENS) or MAX_TOKENS),
                MAX_TOKENS)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = {}
    for name, texts in splits.items():
        try:
            encoded[name] = tokenizer(texts, truncation=True, max_length=limit)["input_ids"]
        except Exception as err:
            raise TaskError(f"--data {data}: split {name!r}: the tokenizer fails on these texts "
                            f"({type(err).__name__}: {str(err).splitlines()[0][:150]})") from None
    width = max(len(ids) for rows in encoded.values() for ids in rows)
    out = {}
    for name, rows in encoded.items():
        ids = np.full((len(rows), width), pad, dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = row
        out[name] = ids
    return out


def embed(model: str, ids: np.ndarray, batch: int = 64) -> np.ndarray:
    """The folder's fp32 sentence embeddings of ``ids`` (the targets of a texts-only task)."""
    hidden = int(load_config(model).hidden_size)
    encoder = build_hf(model, HFConfig(head="embed"), hidden).eval()
    with torch.inference_mode():
        parts = [encoder(torch.from_numpy(ids[i:i + batch])).numpy()
                 for i in range(0, len(ids), batch)]
    return np.concatenate(parts).astype(np.float32)


def text_arrays(raw: dict[str, Any], data: str, model: str | None
                ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str, int, int]:
    """(arrays per split, kind, outputs, vocabulary size) of text splits."""
    if not model or not model.startswith("hf:"):
        raise TaskError(f"--data {data} returns texts: give the Hugging Face model whose "
                        f"tokenizer reads them, --model hf:PATH")
    pairs = {name: _texts_and_labels(value, f"--data {data}: split {name!r}")
             for name, value in raw.items() if value is not None}
    labelled = {name for name, (_, labels) in pairs.items() if labels is not None}
    if labelled and labelled != set(pairs):
        raise TaskError(f"--data {data}: splits {', '.join(sorted(labelled))} have labels and "
                        f"{', '.join(sorted(set(pairs) - labelled))} do not; give labels for "
                        f"all (classification) or none (embedding)")
    tokenizer = tokenizer_of(model)
    ids = tokenize({name: texts for name, (texts, _) in pairs.items()}, tokenizer, data)
    vocab = len(tokenizer)
    if labelled:
        arrays = {name: (ids[name], labels) for name, (_, labels) in pairs.items()}
        outputs = max(int(y.max()) for _, y in arrays.values()) + 1
        return arrays, "classification", outputs, vocab
    arrays = {name: (x, embed(model, x)) for name, x in ids.items()}
    return arrays, "embedding", next(iter(arrays.values()))[1].shape[1], vocab

