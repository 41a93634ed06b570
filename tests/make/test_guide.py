"""guide: CLIP-guided search in latent space, with a tiny generator and a tiny random CLIP.

The CLIP here (`helpers_tinyclip`) has random weights, so its scores mean nothing about
paintings; but they are a smooth function of the pixels, which is all an optimiser
needs, and the numbers are exact and repeatable on CPU.
"""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import rank_images
from ganscapes.clip.tensor_scorer import TensorScorer
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make import guide as g
from ganscapes.make.generate import generate_images
from ganscapes.make.latents import load_latent_rows
from ganscapes.make.paint import paint, synthesize, to_pixels
from ganscapes.make.reproduce import reproduce_file
from ganscapes.provenance import decode_array, read_recipe, write_png

from helpers_models import tiny_model
from helpers_tinyclip import TINY_CLIP, tiny_clip

CPU = torch.device("cpu")
PROMPT = Prompt(("impressionist painting of autumn woods",), ("a photograph",))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def encoder():
    return tiny_clip()


@pytest.fixture(scope="module")
def scorer(encoder):
    return TensorScorer(encoder, PROMPT)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A 16² tiny model as the CLI gets it: read back from its file."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model(res=16, seed=0))
    return load_model(path)


@pytest.fixture(scope="module")
def G(loaded):
    return loaded.G_ema.eval().requires_grad_(False)


def rescore(G, scorer, ws: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return scorer.score(synthesize(G.synthesis, torch.from_numpy(ws))).numpy()


def moving_average(x, k: int = 5) -> np.ndarray:
    return np.convolve(np.asarray(x, dtype=np.float64), np.ones(k) / k, mode="valid")


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a


# ---------------------------------------------------------------------------------------
# adam


def test_adam_climbs_the_plain_view_score(G, scorer):
    cfg = g.GuideConfig(method="adam", steps=40, population=4, cutouts=0, w_penalty=0.0, seed=0)
    result = g.adam_search(G, scorer, cfg, CPU)
    assert [h["step"] for h in result.history] == list(range(40))
    assert [h["evaluations"] for h in result.history] == [4 * (s + 1) for s in range(40)]
    assert result.evaluations == 160

    smooth = moving_average([h["mean"] for h in result.history], 5)
    rising = np.diff(smooth) >= 0
    assert rising.mean() >= 0.9, smooth
    assert smooth[-1] - smooth[0] > 0.05, smooth
    best = [h["best"] for h in result.history]
    assert all(b1 >= b0 for b0, b1 in itertools.pairwise(best))  # best so far never drops
    assert best[-1] - best[0] > 0.05, best

    # The saved latents are the best ones, best first, and paint the scores recorded for them.
    assert result.ws.shape == (4, G.num_ws, G.w_dim)
    assert float(result.scores[0]) == pytest.approx(best[-1], abs=1e-7)
    assert np.all(np.diff(result.scores) <= 0)
    np.testing.assert_allclose(rescore(G, scorer, result.ws), result.scores, atol=1e-4)
    # In W one w drives every layer.
    assert np.array_equal(result.ws, np.broadcast_to(result.ws[:, :1], result.ws.shape))

    # And it beats generate-and-rank at the same budget.
    ranked = g.rank_search(G, scorer, result.evaluations, cfg, CPU)
    assert ranked.evaluations == 160 and result.scores[0] > ranked.scores[0] + 0.02


def test_adam_with_default_cutouts_ends_above_its_start(G, scorer):
    cfg = g.GuideConfig(method="adam", steps=30, population=3, seed=1)
    assert cfg.cutouts == 8 and cfg.w_penalty > 0
    result = g.adam_search(G, scorer, cfg, CPU)
    assert result.history[-1]["best"] > result.history[0]["best"] + 0.02
    assert result.history[-1]["mean"] > result.history[0]["mean"]
    np.testing.assert_allclose(rescore(G, scorer, result.ws), result.scores, atol=1e-4)


def test_adam_in_wplus_moves_layers_apart(G, scorer):
    cfg = g.GuideConfig(method="adam", space="wplus", steps=12, population=2, cutouts=2, seed=2, keep=2)
    result = g.adam_search(G, scorer, cfg, CPU)
    assert result.ws.shape == (2, G.num_ws, G.w_dim)
    assert not np.allclose(result.ws[:, 0], result.ws[:, -1])  # the layers got their own ws
    assert result.history[-1]["best"] > result.history[0]["best"]


# ---------------------------------------------------------------------------------------
# genetic


@pytest.mark.parametrize("space", ["w", "wplus"])
def test_genetic_never_loses_its_best(G, scorer, space):
    cfg = g.GuideConfig(method="genetic", space=space, steps=12, population=8, seed=0)
    result = g.genetic_search(G, scorer, cfg, CPU)
    best = [h["best"] for h in result.history]
    assert len(best) == 12
    assert all(b1 >= b0 for b0, b1 in itertools.pairwise(best)), best
    assert float(result.scores[0]) == max(best) == best[-1]
    assert best[-1] > best[0]
    assert all(h["mean"] <= h["best"] for h in result.history)
    # 8 pictures at the start, then 8 - elite (2) children per generation
    assert [h["evaluations"] for h in result.history] == [8 + 6 * s for s in range(12)]
    assert result.evaluations == 8 + 6 * 11
    assert result.ws.shape == (4, G.num_ws, G.w_dim) and np.all(np.diff(result.scores) <= 0)
    np.testing.assert_allclose(rescore(G, scorer, result.ws), result.scores, atol=1e-4)
    if space == "w":
        assert np.array_equal(result.ws, np.broadcast_to(result.ws[:, :1], result.ws.shape))


def test_crossover_in_wplus_swaps_whole_layers():
    gen = torch.Generator().manual_seed(0)
    from_a = from_b = 0
    for _ in range(40):
        a, b = torch.randn(8, 16, generator=gen), torch.randn(8, 16, generator=gen)
        child = g.crossover(a, b, gen, "wplus")
        assert child.shape == a.shape
        rows_b = []
        for i in range(8):
            is_a, is_b = torch.equal(child[i], a[i]), torch.equal(child[i], b[i])
            assert is_a or is_b, i
            rows_b.append(is_b)
        assert any(rows_b)  # at least one layer comes from b …
        first = rows_b.index(True)
        last = len(rows_b) - 1 - rows_b[::-1].index(True)
        assert all(rows_b[first : last + 1])  # … as one contiguous range
        from_a += 8 - sum(rows_b)
        from_b += sum(rows_b)
    assert from_a > 0 and from_b > 0


def test_crossover_in_w_lies_between_the_parents():
    gen = torch.Generator().manual_seed(1)
    us = []
    for _ in range(20):
        a = torch.randn(1, 16, generator=gen).expand(6, -1)
        b = torch.randn(1, 16, generator=gen).expand(6, -1)
        child = g.crossover(a, b, gen, "w")
        d = (b - a)[0]
        u = float(((child[0] - a[0]) @ d) / (d @ d))
        assert 0.0 <= u <= 1.0
        torch.testing.assert_close(child, a + u * (b - a), atol=1e-5, rtol=0)
        assert torch.equal(child, child[:1].expand_as(child))  # still one w for all layers
        us.append(u)
    assert min(us) < 0.3 and max(us) > 0.7  # a blend anywhere on the segment


# ---------------------------------------------------------------------------------------
# determinism


@pytest.mark.parametrize(
    "cfg",
    [
        g.GuideConfig(method="adam", steps=5, population=2, cutouts=2, seed=3),
        g.GuideConfig(method="adam", space="wplus", steps=4, population=2, cutouts=1, seed=3),
        g.GuideConfig(method="genetic", steps=4, population=6, seed=3),
        g.GuideConfig(method="genetic", space="wplus", steps=4, population=6, seed=3),
    ],
    ids=["adam-w", "adam-wplus", "genetic-w", "genetic-wplus"],
)
def test_same_seed_same_search_other_seed_other_search(G, scorer, cfg):
    from dataclasses import replace

    search = g.adam_search if cfg.method == "adam" else g.genetic_search
    one, two = search(G, scorer, cfg, CPU), search(G, scorer, cfg, CPU)
    assert one.history == two.history
    assert np.array_equal(one.ws, two.ws) and np.array_equal(one.scores, two.scores)
    other = search(G, scorer, replace(cfg, seed=4), CPU)
    assert other.history != one.history
    assert not np.array_equal(other.ws, one.ws)


# ---------------------------------------------------------------------------------------
# --init: starting from picked latents


@pytest.fixture(scope="module")
def generated(loaded, tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    return generate_images(loaded, [3, 5, 7, 9], psi=0.8, out=out, progress=False)


def test_adam_starts_from_the_given_rows(G, scorer, loaded, generated):
    init = load_latent_rows(f"{generated.latents}:2,0", loaded).w
    expected = rescore(G, scorer, init)
    # One step: the learning rate is 0 at step 0 (warm-up), so the pictures are the init rows.
    cfg = g.GuideConfig(method="adam", steps=1, population=2, cutouts=0, keep=2)
    result = g.adam_search(G, scorer, cfg, CPU, init=init)
    assert result.history[0]["mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert result.history[0]["best"] == pytest.approx(float(expected.max()), abs=1e-6)
    order = np.argsort(-expected)
    assert np.array_equal(result.ws, init[order])

    # More starts than rows: the extra ones begin near (not on) the given rows.
    result = g.adam_search(G, scorer, g.GuideConfig(method="adam", steps=1, population=4, cutouts=0), CPU, init=init)
    ws = result.ws
    exact = [k for k in range(4) if any(np.array_equal(ws[k], row) for row in init)]
    assert len(exact) == 2
    for k in set(range(4)) - set(exact):
        nearest = min(np.abs(ws[k] - row).max() for row in init)
        assert 0 < nearest < 1.0


def test_genetic_starts_from_the_given_rows(G, scorer, loaded, generated):
    init = load_latent_rows(f"{generated.latents}:1,3", loaded).w
    expected = rescore(G, scorer, init)
    cfg = g.GuideConfig(method="genetic", steps=3, population=2)
    result = g.genetic_search(G, scorer, cfg, CPU, init=init)
    assert result.history[0]["best"] == pytest.approx(float(expected.max()), abs=1e-6)
    assert result.history[0]["mean"] == pytest.approx(float(expected.mean()), abs=1e-6)


def test_w_space_refuses_rows_with_a_w_per_layer(G, scorer, loaded, tmp_path):
    out = tmp_path / "cut"
    cut = generate_images(loaded, [3, 5], psi=0.5, truncation_cutoff=2, out=out, progress=False)
    init = load_latent_rows(f"{cut.latents}:0,1", loaded).w
    with pytest.raises(
        SettingError, match=r"^space w cannot start from latents with a different w per layer .*; use wplus"
    ):
        g.adam_search(G, scorer, g.GuideConfig(method="adam", steps=1, space="w"), CPU, init=init)
    result = g.adam_search(
        G, scorer, g.GuideConfig(method="adam", steps=1, space="wplus", population=2, keep=2), CPU, init=init
    )
    assert {r.tobytes() for r in result.ws} == {r.tobytes() for r in init}


# ---------------------------------------------------------------------------------------
# Writing the results


def test_saved_search_reproduces_its_pictures(G, scorer, loaded, encoder, tmp_path):
    cfg = g.GuideConfig(method="adam", space="wplus", steps=16, population=3, cutouts=2, keep=3, seed=5)
    result = g.adam_search(G, scorer, cfg, CPU)
    out = tmp_path / "guided"
    paths = g.save_search(result, loaded, scorer, PROMPT, cfg, out, CPU)
    assert [p.name for p in paths] == ["best-01.png", "best-02.png", "best-03.png"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best-01.png",
        "best-02.png",
        "best-03.png",
        "history.csv",
        "history.png",
        "latents.npz",
        "strip.png",
    ]

    with np.load(out / "latents.npz") as npz:
        w, score, model_hash = npz["w"], npz["score"], str(npz["model_hash"])
    assert w.dtype == np.float32 and w.shape == (3, G.num_ws, G.w_dim)
    assert np.array_equal(w, result.ws) and model_hash == loaded.model_hash
    np.testing.assert_array_equal(score, result.scores.astype(np.float64))
    painted = paint(G, w, "const")
    for k, path in enumerate(paths):
        assert np.array_equal(read_png(path), painted[k]), path
        r = reproduce_file(path, loaded)
        assert r.identical, (path, r.max_difference)

        recipe = read_recipe(path)
        assert recipe["kind"] == "latent" and recipe["method"] == "adam"
        assert recipe["model_hash"] == loaded.model_hash and recipe["noise_mode"] == "const"
        assert recipe["prompt"] == list(PROMPT.positives) and recipe["negative"] == list(PROMPT.negatives)
        assert recipe["clip_model"] == f"{TINY_CLIP}/random-0" == scorer.encoder.model_id
        assert recipe["rank"] == k + 1 and recipe["score"] == round(float(result.scores[k]), 6)
        assert np.array_equal(decode_array(recipe["latent"]["w"]), w[k])
        assert recipe["search"]["space"] == "wplus" and recipe["search"]["steps"] == 16
        assert recipe["search"]["seed"] == 5 and "keep" not in recipe["search"]

    # rank, reading the PNGs through CLIP's own PIL preprocessing, agrees with the scores.
    ranking = rank_images([ImageRef(p) for p in paths], encoder, PROMPT, workers=0, progress=False)
    by_name = dict(zip((ref.path.name for ref in ranking.refs), ranking.scores))
    for k, path in enumerate(paths):
        assert by_name[path.name] == pytest.approx(float(result.scores[k]), abs=1e-2)

    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "evaluations", "best", "mean"]
    assert len(rows) == 16
    assert [int(r["step"]) for r in rows] == list(range(16))
    assert [int(r["evaluations"]) for r in rows] == [3 * (s + 1) for s in range(16)]
    for r, h in zip(rows, result.history):
        assert float(r["best"]) == pytest.approx(h["best"], abs=1e-6)
        assert float(r["mean"]) == pytest.approx(h["mean"], abs=1e-6)

    for name in ("history.png", "strip.png"):
        with Image.open(out / name) as im:
            im.verify()
    with Image.open(out / "strip.png") as im:
        # frames at steps 0, 2, …, 14 and the last step, 128 px each, with a caption row
        assert im.format == "PNG" and im.size == (128 * 9, 128 + 16)
    assert [s for s, _ in result.frames] == [0, 2, 4, 6, 8, 10, 12, 14, 15]


# ---------------------------------------------------------------------------------------
# compare


def test_compare_spends_the_same_budget(G, scorer):
    cfg = g.GuideConfig(method="adam", steps=12, population=4, cutouts=1, keep=2)
    comparison = g.compare_methods(G, scorer, cfg, CPU)
    assert comparison.budget == 48
    results = comparison.results
    assert list(results) == ["rank", "adam", "genetic"]
    assert results["rank"].evaluations == results["adam"].evaluations == 48
    assert 48 - 16 < results["genetic"].evaluations <= 48
    assert results["genetic"].history[-1]["evaluations"] == results["genetic"].evaluations
    for name, res in results.items():
        assert res.method == name and len(res.scores) == 2
        assert float(res.scores[0]) == pytest.approx(max(h["best"] for h in res.history), abs=1e-7)
        np.testing.assert_allclose(rescore(G, scorer, res.ws), res.scores, atol=1e-4)
        assert comparison.seconds[name] >= 0
    configs = comparison.configs  # what each really ran with, for the recipes
    assert (configs["adam"].steps, configs["adam"].size) == (12, 4)
    assert configs["genetic"].method == "genetic" and configs["genetic"].size == 16
    assert configs["genetic"].steps == len(results["genetic"].history)
    assert configs["rank"].size == 48


@pytest.mark.parametrize(("steps", "population"), [(1, 1), (1, 2), (2, 1), (3, 5), (5, 4)])
def test_compare_genetic_never_exceeds_the_budget(G, scorer, steps, population):
    cfg = g.GuideConfig(method="adam", steps=steps, population=population, cutouts=0, keep=1)
    if steps * population < 2:  # too small for the genetic method's population of two
        message = (
            r"^A comparison needs a budget of at least 2 generator evaluations \(steps × population\), "
            rf"not {steps * population}\.$"
        )
        with pytest.raises(UserError, match=message):
            g.compare_budget(cfg)  # checkable before anything is loaded
        with pytest.raises(UserError, match=message):
            g.compare_methods(G, scorer, cfg, CPU)
        return
    assert g.compare_budget(cfg) == steps * population
    comparison = g.compare_methods(G, scorer, cfg, CPU)
    assert comparison.results["genetic"].evaluations <= comparison.budget == steps * population


# ---------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be at least 1, not 0."),
        ({"population": 0}, "population must be at least 1, not 0."),
        ({"method": "genetic", "population": 1}, "population must be at least 2 for the genetic method, not 1."),
        ({"keep": 0}, "keep must be at least 1, not 0."),
        ({"method": "sgd"}, "method must be one of adam, genetic, not 'sgd'."),
        ({"space": "z"}, "space must be one of w, wplus, not 'z'."),
        ({"lr": 0.0}, "lr must be positive, not 0."),
        ({"cutouts": -1}, "cutouts must be 0 or more, not -1."),
        ({"w_penalty": -0.5}, "w_penalty must be 0 or more, not -0.5."),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UserError) as e:
        g.GuideConfig(**kwargs)
    assert str(e.value) == message


def test_default_population():
    assert g.GuideConfig().size == 4
    assert g.GuideConfig(method="genetic").size == 16
    assert g.GuideConfig(method="adam", population=1).size == 1


# ---------------------------------------------------------------------------------------
# TensorScorer


def scorer_for(encoder, channels: int):
    model = tiny_model(res=16, channels=channels, seed=channels)
    return model.G_ema, TensorScorer(encoder, PROMPT)


@pytest.mark.parametrize("channels", [3, 1, 2, 4])
def test_tensor_scores_match_rank_on_the_png(encoder, tmp_path, channels):
    """With no cutouts, the tensor score of a picture is rank's score of its PNG (PIL
    bicubic resize and the model's own preprocessing) up to resampling and 8-bit rounding."""
    G, scorer = scorer_for(encoder, channels)
    ws = g._random_ws(G, 4, 0.8, torch.Generator().manual_seed(channels), CPU)
    with torch.no_grad():
        img = synthesize(G.synthesis, ws)
        tensor_scores = scorer.score(img).numpy()
    assert img.shape[1] == channels
    pixels = to_pixels(img)
    paths = [write_png(tmp_path / f"p{k}.png", pixels[k], {"kind": "test"}) for k in range(4)]
    ranking = rank_images([ImageRef(p) for p in paths], encoder, PROMPT, workers=0, progress=False)
    by_path = dict(zip((ref.path for ref in ranking.refs), ranking.scores))
    rank_scores = np.array([by_path[p] for p in paths])
    np.testing.assert_allclose(tensor_scores, rank_scores, atol=1e-2)
    assert np.ptp(rank_scores) > 1e-3  # the pictures are told apart, so the match means something


@pytest.mark.parametrize("channels", [3, 1, 2, 4])
@pytest.mark.parametrize("cutouts", [0, 3])
def test_gradients_reach_the_image(encoder, channels, cutouts):
    _, scorer = scorer_for(encoder, channels)
    image = (torch.rand(2, channels, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    s = scorer.score(image, cutouts=cutouts, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2,) and s.requires_grad
    s.sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    assert image.grad.abs().sum() > 0
    assert (image.grad[0].abs().sum() > 0) and (image.grad[1].abs().sum() > 0)  # each picture its own


def test_cutouts_are_random_views_drawn_from_the_generator(encoder):
    _, scorer = scorer_for(encoder, 3)
    image = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        plain = scorer.score(image)
        a = scorer.score(image, cutouts=4, generator=torch.Generator().manual_seed(7))
        b = scorer.score(image, cutouts=4, generator=torch.Generator().manual_seed(7))
        c = scorer.score(image, cutouts=4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, plain)
    assert torch.allclose(a, plain, atol=0.2)  # crops of the same picture, not another picture
