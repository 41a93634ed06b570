"""Prompts and scores: how a set of phrases turns into one number per image.

score(image) = mean cosine similarity to the positive phrases
             − mean cosine similarity to the negative phrases (0 when there are none).

A phrase may be wrapped in templates ("a painting of {}", "an oil painting of {}"): its
text embedding is then the re-normalised mean of the unit embeddings of every filled-in
template, which is CLIP's zero-shot recipe (Radford et al., 2021, §3.1.4). With no
templates the phrase is encoded as written, which is what GANscapes did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ganscapes.errors import UserError

CURATE_PHRASE = "impressionist landscape painting"  # the article's curation phrase
DEFAULT_PROMPT = "impressionist painting of autumn woods"  # what the demo and the studio look for unless told
MAX_PHRASE_CHARS = 300  # CLIP reads 77 tokens; anything longer is surely a mistake


@dataclass(frozen=True)
class Prompt:
    positives: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    templates: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "positives", tuple(p.strip() for p in self.positives))
        object.__setattr__(self, "negatives", tuple(p.strip() for p in self.negatives))
        if not self.positives:
            raise UserError(
                'The prompt is empty; give at least one phrase, e.g. "impressionist painting of autumn woods".'
            )
        for phrase in self.positives + self.negatives:
            if not phrase:
                raise UserError("A prompt phrase is empty; remove it or write some words.")
            if len(phrase) > MAX_PHRASE_CHARS:
                raise UserError(
                    f"The phrase {phrase[:40]!r}… is longer than {MAX_PHRASE_CHARS} characters; "
                    "CLIP reads about 60 words."
                )
        for t in self.templates:
            if t.count("{}") != 1:
                raise UserError(f"The template {t!r} must contain {{}} exactly once, where the phrase goes.")

    def describe(self) -> str:
        text = " + ".join(repr(p) for p in self.positives)
        if self.negatives:
            text += " − " + " − ".join(repr(n) for n in self.negatives)
        return text


def phrase_embedding(encoder, phrase: str, templates: tuple[str, ...] = ()) -> np.ndarray:
    """Unit embedding [D] of a phrase, averaged over its templates when there are any."""
    texts = [t.format(phrase) for t in templates] if templates else [phrase]
    mean = encoder.encode_texts(texts).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def prompt_embeddings(encoder, prompt: Prompt) -> tuple[np.ndarray, np.ndarray]:
    """(positives [P, D], negatives [N, D]) for `prompt`; N may be 0."""
    pos = np.stack([phrase_embedding(encoder, p, prompt.templates) for p in prompt.positives])
    neg = (
        np.stack([phrase_embedding(encoder, n, prompt.templates) for n in prompt.negatives])
        if prompt.negatives
        else np.zeros([0, pos.shape[1]], np.float32)
    )
    return pos, neg


def scores(image_embeddings: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Score [N] of unit image embeddings [N, D] against unit phrase embeddings."""
    x = np.asarray(image_embeddings, dtype=np.float64)
    s = (x @ np.asarray(positives, np.float64).T).mean(axis=1)
    if len(negatives):
        s = s - (x @ np.asarray(negatives, np.float64).T).mean(axis=1)
    return s
