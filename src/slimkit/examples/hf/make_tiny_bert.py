"""Write a small BERT-style classifier folder, as ``save_pretrained`` does: config.json, the
weights (random init: nothing is downloaded) and a WordPiece tokenizer whose vocabulary is the
words of ``texts.py``.

    python examples/hf/make_tiny_bert.py runs/tiny-bert
    slimkit optimize --model hf:runs/tiny-bert --data examples/hf/texts.py:load_data \\
        --set train.epochs=5 --budget 10m --out runs/hf-bert
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def words() -> list[str]:
    sys.path.insert(0, str(Path(__file__).parent))
    import texts

    found = set()
    for group in [texts.SUBJECTS, *texts.OPINIONS.values(), texts.ENDINGS]:
        for phrase in group:
            found.update(re.findall(r"\w+|[^\w\s]", phrase.lower()))
    return sorted(found)


def make(folder: Path, hidden: int = 64, layers: int = 2, heads: int = 4, seed: int = 0) -> Path:
    """The folder with a BertForSequenceClassification (3 labels) and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(SPECIAL + words())}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden,
                        max_position_embeddings=64, num_labels=3, pad_token_id=0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    print(make(parser.parse_args().folder))
