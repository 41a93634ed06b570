"""reproduce: every kind of PNG ganscapes writes is rebuilt from its recipe, pixel for pixel, on CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import Ranking, write_ranking
from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make.generate import generate_images
from ganscapes.make.mix import file_latents, seed_latents, style_mix
from ganscapes.make.post import PostSettings, post_files
from ganscapes.make.reproduce import rebuild, reproduce_file
from ganscapes.provenance import RECIPE_KEY, encode_array, read_recipe, write_png

from helpers_images import noise, png_bytes, write
from helpers_models import tiny_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)


@pytest.fixture(scope="module")
def loaded(model, tmp_path_factory):
    """The model as reproduce gets it: read back from a file."""
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, model)
    return load_model(path)


def assert_identical(path, loaded):
    r = reproduce_file(path, loaded)
    assert r.identical and r.max_difference == 0, (path, r.max_difference)
    with Image.open(path) as im:
        assert np.array_equal(r.pixels.reshape(np.asarray(im).shape), np.asarray(im))
    return r


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise_mode": "const", "batch": 3},
        {"noise_mode": "random", "batch": 3},
        {"noise_mode": "random", "batch": 8},
        {"noise_mode": "none", "batch": 2},
        {"noise_mode": "const", "psi": 0.7, "truncation_cutoff": 2, "batch": 3},
        {"noise_mode": "random", "psi": 0.7, "truncation_cutoff": 2, "batch": 3},
    ],
)
def test_generate_pictures_are_rebuilt_exactly(model, loaded, tmp_path, kwargs):
    seeds = [11, 3, 500, 7, 42]  # with --batch 3: 3 and 500 are not first in their batch, 42 is second of two
    result = generate_images(model, seeds, out=tmp_path, progress=False, **kwargs)
    for path in result.images:
        r = assert_identical(path, loaded)
        assert r.recipe["kind"] == "generate" and r.recipe["noise_mode"] == kwargs["noise_mode"]
    if kwargs["noise_mode"] == "random":
        recipe = read_recipe(result.images[4])  # 42
        batch = kwargs["batch"]
        assert recipe["noise_seed"] == seeds[3 if batch == 3 else 0] and recipe["row"] == (1 if batch == 3 else 4)
        assert recipe["batch_rows"] == (4 if batch == 3 else 8)


def test_random_noise_depends_on_the_recorded_row(model, loaded, tmp_path):
    """The row matters: the same seed painted at row 0 of its batch comes out differently."""
    result = generate_images(model, [1, 2], noise_mode="random", out=tmp_path / "a", progress=False)
    alone = generate_images(model, [2], noise_mode="random", out=tmp_path / "b", progress=False)
    a, b = (np.asarray(Image.open(r.images[-1])) for r in (result, alone))
    assert not np.array_equal(a, b)
    assert_identical(result.images[1], loaded)
    assert_identical(alone.images[0], loaded)


def test_a_conditional_model_picture(tmp_path):
    model = tiny_model(res=16, c_dim=3, seed=4)
    result = generate_images(model, [0, 1, 2], class_idx=2, psi=0.6, out=tmp_path, progress=False)
    for path in result.images:
        assert reproduce_file(path, model).identical


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_mix_cells_forms_and_styles_are_rebuilt_exactly(model, loaded, tmp_path, noise_mode):
    gen = generate_images(model, [5, 6, 7, 8], psi=0.8, out=tmp_path / "gen", progress=False)
    forms = file_latents(f"{gen.latents}:2,0", model)  # from a latents file: the exact w travels in the recipe
    styles = seed_latents(model.G_ema, [20, 21], 0.9, 3, None, CPU)
    result = style_mix(model, forms, styles, [3, 4, 5], tmp_path / "mix", noise_mode=noise_mode, batch=3)
    for path in result.forms + result.styles + [p for row in result.cells for p in row]:
        assert_identical(path, loaded)
    form = read_recipe(result.forms[0])
    assert form["kind"] == "latent" and form["latent"]["seed"] == 7 and form["latent"]["w"]["shape"] == [6, 32]
    if noise_mode == "const":
        # a form from a latents file is the generate picture of that row
        assert np.array_equal(np.asarray(Image.open(result.forms[0])), np.asarray(Image.open(gen.images[2])))


def test_post_outputs_are_rebuilt_exactly(model, loaded, tmp_path):
    gen = generate_images(model, [1, 2, 3], noise_mode="random", batch=2, out=tmp_path / "gen", progress=False)
    mix = style_mix(
        model,
        seed_latents(model.G_ema, [1], 1.0, None, None, CPU),
        seed_latents(model.G_ema, [2], 1.0, None, None, CPU),
        [4, 5],
        tmp_path / "mix",
    )
    for settings, size in [
        (PostSettings(), (16, 13)),
        (PostSettings(low=2, high=97, aspect=1.5, width=40), (40, 27)),
        (PostSettings(aspect=0.75, width=24), (24, 32)),
    ]:
        out = tmp_path / f"post-{size[0]}x{size[1]}"
        result = post_files(gen.images + mix.cells[0], out, settings)
        for path in result.outputs:
            assert Image.open(path).size == size
            r = assert_identical(path, loaded)
            assert r.recipe["kind"] == "post"
        # a post of a post is rebuilt through both
        again = post_files(result.outputs[:1], out / "again", PostSettings(low=5, high=95))
        assert_identical(again.outputs[0], loaded)


def test_a_post_output_of_an_image_without_recipe_cannot_be_rebuilt(loaded, tmp_path):
    plain = write(tmp_path / "plain.png", png_bytes(noise(16, 16)))
    out = post_files([plain], tmp_path / "post", PostSettings()).outputs[0]
    with pytest.raises(UserError, match="post-processed from an image without a recipe; its source cannot be rebuilt"):
        reproduce_file(out, loaded)


def test_a_rank_top_pick_is_rebuilt_exactly(model, loaded, tmp_path):
    gen = generate_images(model, [0, 1, 2, 3], psi=0.7, out=tmp_path / "gen", progress=False)
    ranking = Ranking(
        refs=[ImageRef(gen.images[k]) for k in (2, 0, 3, 1)],
        scores=np.array([0.31, 0.30, 0.2, 0.1]),
        digests=["0" * 64] * 4,
        prompt=Prompt(("autumn woods",)),
        model_id="ViT-B-32/random-0",
    )
    picks = write_ranking(ranking, tmp_path / "ranked", 2, root=gen.out).top
    assert [p.name for p in picks] == ["001-seed0002.png", "002-seed0000.png"]
    r = assert_identical(picks[0], loaded)
    assert r.recipe["seed"] == 2 and r.recipe["prompt"] == ["autumn woods"] and r.recipe["score"] == 0.31
    assert r.recipe["rank"] == 1 and r.recipe["kind"] == "generate"


def test_another_model_is_refused_unless_forced(model, tmp_path):
    gen = generate_images(model, [1], out=tmp_path, progress=False)
    other = tiny_model(res=16, seed=1)
    with pytest.raises(UserError) as info:
        reproduce_file(gen.images[0], other)
    assert str(info.value) == (
        f"force is needed to rebuild seed0001.png anyway: it was made by model {model.model_hash[:12]}, "
        f"but this model is {other.model_hash[:12]}."
    )
    r = reproduce_file(gen.images[0], other, force=True)
    assert not r.identical and r.max_difference > 0
    bigger = tiny_model(res=32, seed=0)
    r = reproduce_file(gen.images[0], bigger, force=True)
    assert r.pixels.shape == (32, 32, 3) and not r.identical and r.max_difference is None


def test_recipes_that_cannot_be_rebuilt(model, tmp_path):
    plain = write(tmp_path / "plain.png", png_bytes(noise(16, 16)))
    with pytest.raises(UserError, match=r"plain\.png carries no ganscapes recipe"):
        reproduce_file(plain, model)
    pixels = np.zeros([16, 16, 3], np.uint8)
    write_png(tmp_path / "nohash.png", pixels, {"kind": "generate", "seed": 1})
    with pytest.raises(UserError, match=r"^The recipe in nohash\.png names no model_hash, so it cannot be rebuilt\.$"):
        reproduce_file(tmp_path / "nohash.png", model)
    write_png(tmp_path / "grid.png", pixels, {"kind": "mix-grid", "model_hash": model.model_hash})
    kinds = "generate, latent, mix, post, video"
    with pytest.raises(UserError, match=f"^Cannot rebuild a recipe of kind 'mix-grid'; ganscapes rebuilds {kinds}.$"):
        reproduce_file(tmp_path / "grid.png", model)
    bad = {"kind": "mix", "model_hash": model.model_hash, "form": {"seed": 1}, "style": {"seed": 2}, "layers": [6]}
    with pytest.raises(UserError, match=r"mixes layers \[6\], but this model has layers 0 to 5"):
        rebuild(bad, model, CPU)
    with pytest.raises(UserError, match="has no 'style' entry"):
        rebuild({"kind": "mix", "form": {"seed": 1}}, model, CPU)
    with pytest.raises(UserError, match="neither a seed nor a latent vector"):
        rebuild({"kind": "latent", "latent": {"file": "x.npz"}}, model, CPU)
    w = encode_array(np.zeros([8, 32], np.float32))
    with pytest.raises(UserError, match=r"The recipe's latent is \[8, 32\], but this model needs \[6, 32\]"):
        rebuild({"kind": "latent", "latent": {"w": w}}, model, CPU)


def test_an_old_recipe_without_kind_is_a_generate_recipe(model, tmp_path):
    gen = generate_images(model, [9], psi=0.5, out=tmp_path, progress=False)
    recipe = read_recipe(gen.images[0])
    del recipe["kind"]
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(recipe))
    with Image.open(gen.images[0]) as im:
        im.save(tmp_path / "old.png", pnginfo=info)
    assert reproduce_file(tmp_path / "old.png", model).identical
