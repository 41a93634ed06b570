"""Prompts and scores: checked against cosines computed here, from the raw model outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.clip.embed import embed_images, folder_refs
from ganscapes.clip.prompts import (
    MAX_PHRASE_CHARS,
    Prompt,
    phrase_embedding,
    prompt_embeddings,
    scores,
)
from ganscapes.errors import UserError

from helpers_images import noise, png_bytes, solid, write


def unit(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def raw_texts(encoder, texts: list[str]) -> np.ndarray:
    """Text features straight from the model, normalised here."""
    with torch.no_grad():
        return unit(encoder.model.encode_text(encoder.tokenizer(texts)).numpy())


def raw_images(encoder, paths) -> np.ndarray:
    """Image features straight from the model (PIL open + the model's preprocess), normalised here."""
    pixels = torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return unit(encoder.model.encode_image(pixels).numpy())


# ---------------------------------------------------------------------------------------
# Prompt


def test_prompt_strips_and_describes():
    p = Prompt(("  autumn woods ", "river"), ("  photo",))
    assert p.positives == ("autumn woods", "river") and p.negatives == ("photo",)
    assert p.describe() == "'autumn woods' + 'river' − 'photo'"
    assert Prompt(("sea",)).describe() == "'sea'"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"positives": ()}, "The prompt is empty; give at least one phrase"),
        ({"positives": ("sea", "  ")}, "A prompt phrase is empty"),
        ({"positives": ("",)}, "A prompt phrase is empty"),
        ({"positives": ("sea",), "negatives": (" ",)}, "A prompt phrase is empty"),
        ({"positives": ("x" * (MAX_PHRASE_CHARS + 1),)}, f"is longer than {MAX_PHRASE_CHARS} characters"),
        (
            {"positives": ("sea",), "templates": ("a painting of the",)},
            "The template 'a painting of the' must contain {} exactly once",
        ),
        ({"positives": ("sea",), "templates": ("{} and {}",)}, "must contain {} exactly once"),
    ],
)
def test_prompt_refuses(kwargs, message):
    with pytest.raises(UserError) as info:
        Prompt(**kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_prompt_accepts_longest_phrase():
    assert Prompt(("x" * MAX_PHRASE_CHARS,)).positives[0] == "x" * MAX_PHRASE_CHARS


# ---------------------------------------------------------------------------------------
# Text embeddings


def test_text_embeddings_are_unit_rows_of_the_model(random_clip):
    texts = ["impressionist landscape painting", "a photo of a cat", "sea"]
    got = random_clip.encode_texts(texts)
    assert got.dtype == np.float32 and got.shape == (3, 512)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert np.allclose(got, raw_texts(random_clip, texts), atol=1e-5)
    assert random_clip.encode_texts(["a"]).shape[1] == 512


def test_phrase_embedding_without_templates_is_the_phrase(random_clip):
    got = phrase_embedding(random_clip, "autumn woods")
    assert got.shape == (512,)
    assert np.allclose(got, raw_texts(random_clip, ["autumn woods"])[0], atol=1e-5)


def test_phrase_embedding_with_templates_is_the_renormalised_mean(random_clip):
    templates = ("a painting of {}", "an oil painting of {}", "{}, impressionism")
    got = phrase_embedding(random_clip, "autumn woods", templates)
    filled = ["a painting of autumn woods", "an oil painting of autumn woods", "autumn woods, impressionism"]
    expected = unit(raw_texts(random_clip, filled).mean(axis=0))
    assert np.allclose(np.linalg.norm(got), 1, atol=1e-6)
    assert np.allclose(got, expected, atol=1e-5)
    bare = raw_texts(random_clip, ["autumn woods"])[0]
    assert np.abs(got - bare).max() > 1e-2  # the templates change the embedding
    # and the mean is not just one of the templates
    for one in raw_texts(random_clip, filled):
        assert np.abs(got - one).max() > 1e-3


def test_prompt_embeddings_shapes(random_clip):
    pos, neg = prompt_embeddings(random_clip, Prompt(("a", "b")))
    assert pos.shape == (2, 512) and neg.shape == (0, 512) and neg.dtype == np.float32
    pos, neg = prompt_embeddings(random_clip, Prompt(("a",), ("b", "c", "d")))
    assert pos.shape == (1, 512) and neg.shape == (3, 512)
    assert np.allclose(neg, raw_texts(random_clip, ["b", "c", "d"]), atol=1e-5)


# ---------------------------------------------------------------------------------------
# Scores


def test_scores_formula_on_known_vectors():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    pos = np.array([[1.0, 0.0], [0.0, 1.0]])
    neg = np.array([[0.0, 1.0]])
    assert np.allclose(scores(x, pos, np.zeros([0, 2])), [0.5, 0.5, 0.7])
    assert np.allclose(scores(x, pos, neg), [0.5, -0.5, -0.1])
    assert scores(x, pos, neg).dtype == np.float64


@pytest.fixture(scope="module")
def embedded_folder(random_clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompt_images")
    paths = [write(folder / f"n{i}.png", png_bytes(noise(40, 40, seed=i))) for i in range(5)]
    paths += [write(folder / "red.png", png_bytes(solid(40, 40, (200, 30, 30))))]
    result = embed_images(folder_refs(folder), random_clip, batch=4, workers=0, progress=False)
    assert [r.path for r in result.refs] == sorted(paths)
    return result


def test_image_embeddings_are_the_models(random_clip, embedded_folder):
    e = embedded_folder.embeddings
    assert e.dtype == np.float32 and e.shape == (6, 512)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    assert np.allclose(e, raw_images(random_clip, [r.path for r in embedded_folder.refs]), atol=1e-5)


def test_scores_and_ranking_equal_direct_cosines(random_clip, embedded_folder):
    phrase = "impressionist landscape painting"
    got = scores(embedded_folder.embeddings, *prompt_embeddings(random_clip, Prompt((phrase,))))
    images = raw_images(random_clip, [r.path for r in embedded_folder.refs])
    expected = images @ raw_texts(random_clip, [phrase])[0]
    assert got.shape == (6,)
    assert np.allclose(got, expected, atol=1e-5)
    assert np.ptp(expected) > 1e-3  # the images really score differently
    gaps = np.diff(np.sort(expected))
    if gaps.min() > 1e-4:  # a ranking is only defined where scores differ
        assert list(np.argsort(-got)) == list(np.argsort(-expected))


def test_negative_phrases_subtract_their_mean(random_clip, embedded_folder):
    prompt = Prompt(("autumn woods", "river at dawn"), ("photograph", "text", "blurry"))
    got = scores(embedded_folder.embeddings, *prompt_embeddings(random_clip, prompt))
    images = raw_images(random_clip, [r.path for r in embedded_folder.refs])
    pos = (images @ raw_texts(random_clip, list(prompt.positives)).T).mean(axis=1)
    neg = (images @ raw_texts(random_clip, list(prompt.negatives)).T).mean(axis=1)
    assert np.allclose(got, pos - neg, atol=1e-5)
    assert np.abs(neg).max() > 1e-3  # the negatives really moved the scores
    without = scores(embedded_folder.embeddings, *prompt_embeddings(random_clip, Prompt(prompt.positives)))
    assert np.allclose(without, pos, atol=1e-5)
