"""Text data for a Hugging Face classifier, built offline: short product reviews from templates,
labelled negative (0), neutral (1) or positive (2). ``load_data`` returns ``(texts, labels)``
splits; ``load_texts`` returns texts only (an embedding task: the model's own embeddings are
the targets)."""

from __future__ import annotations

import numpy as np

SUBJECTS = ["the phone", "this laptop", "the camera", "my new chair", "the service",
            "this book", "the battery", "the screen", "the delivery", "this lamp"]
OPINIONS = {
    0: ["is awful", "broke after a week", "is a waste of money", "was terrible", "feels cheap",
        "stopped working", "disappointed me"],
    1: ["is okay", "works as described", "is average", "arrived on time", "is fine for now",
        "does the job", "is what I expected"],
    2: ["is excellent", "works great", "is worth every penny", "made me happy",
        "exceeded my hopes", "is wonderful", "feels solid"],
}
ENDINGS = ["", ".", "!", " overall.", " honestly.", " so far.", " for the price."]


def reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` template reviews and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    texts = [f"{rng.choice(SUBJECTS)} {rng.choice(OPINIONS[int(y)])}{rng.choice(ENDINGS)}"
             for y in labels]
    return texts, labels.astype(np.int64)


def load_data() -> tuple:
    """(train, val, test) splits of (texts, labels)."""
    return reviews(600, 0), reviews(200, 1), reviews(200, 2)


def load_texts() -> tuple:
    """(train, val, test) splits of texts only."""
    return reviews(200, 0)[0], reviews(100, 1)[0], reviews(100, 2)[0]
