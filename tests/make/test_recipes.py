"""Recipes as typed values: the JSON every stage writes round-trips through its class,
damaged fields are refused by name in one sentence, and reproduce dispatches on a registry."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import Ranking, write_ranking
from ganscapes.errors import UserError
from ganscapes.make import reproduce as reproduce_mod
from ganscapes.make.generate import generate_images
from ganscapes.make.mix import file_latents, seed_latents, style_mix
from ganscapes.make.post import PostSettings, post_files
from ganscapes.make.recipes import (
    RECIPE_KINDS,
    Choice,
    DirectionsSheetRecipe,
    GenerateRecipe,
    GuideRecipe,
    LatentRecipe,
    LatentSource,
    MixGridRecipe,
    MixRecipe,
    Noise,
    OtherRecipe,
    PostFields,
    PostRecipe,
    VideoRecipe,
    parse_recipe,
)
from ganscapes.make.reproduce import REBUILDERS, rebuild, reproduce_file
from ganscapes.provenance import RECIPE_KEY, encode_array, read_recipe

from helpers_models import tiny_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)


@pytest.fixture(scope="module")
def written(model, tmp_path_factory):
    """PNGs of every kind, as the stages write them: {name: path}."""
    root = tmp_path_factory.mktemp("written")
    const = generate_images(model, [3, 8], psi=0.7, truncation_cutoff=2, out=root / "gen", progress=False)
    noisy = generate_images(model, [5, 6, 7], noise_mode="random", batch=2, out=root / "noisy", progress=False)
    ranking = Ranking(
        refs=[ImageRef(p) for p in const.images],
        scores=np.array([0.5, 0.25]),
        digests=["0" * 64] * 2,
        prompt=Prompt(("autumn woods",), ("a photo",)),
        model_id="ViT-B-32/random-0",
    )
    pick = write_ranking(ranking, root / "ranked", 1, root=const.out).top[0]
    mix = style_mix(
        model,
        file_latents(f"{const.latents}:1", model),
        seed_latents(model.G_ema, [20], 0.9, None, None, CPU),
        [3, 4, 5],
        root / "mix",
        noise_mode="random",
    )
    post = post_files([pick, mix.cells[0][0]], root / "post", PostSettings(low=2, high=97, width=24)).outputs
    again = post_files(post[:1], root / "again", PostSettings()).outputs[0]
    return {
        "generate": const.images[0],
        "generate-random": noisy.images[2],
        "rank-pick": pick,
        "mix-form": mix.forms[0],
        "mix-style": mix.styles[0],
        "mix-cell": mix.cells[0][0],
        "mix-grid": mix.grid,
        "post": post[0],
        "post-of-post": again,
    }


# ---------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize(
    "name, cls",
    [
        ("generate", GenerateRecipe),
        ("generate-random", GenerateRecipe),
        ("rank-pick", GenerateRecipe),
        ("mix-form", LatentRecipe),
        ("mix-style", LatentRecipe),
        ("mix-cell", MixRecipe),
        ("mix-grid", MixGridRecipe),
        ("post", PostRecipe),
        ("post-of-post", PostRecipe),
    ],
)
def test_every_written_recipe_round_trips_exactly(written, name, cls):
    raw = read_recipe(written[name])
    typed = parse_recipe(raw)
    assert type(typed) is cls and typed.extra == {}  # every field is typed
    assert typed.to_json() == raw
    assert json.dumps(typed.to_json()) == json.dumps(raw)  # the same order too


def test_written_recipes_are_typed_as_expected(written, model):
    pick = parse_recipe(read_recipe(written["rank-pick"]))
    assert pick.seed == 3 and pick.psi == 0.7 and pick.truncation_cutoff == 2 and pick.noise is None
    c = pick.choice
    assert (c.prompt, c.negative, c.score, c.rank, c.clip_model) == (
        ["autumn woods"],
        ["a photo"],
        0.5,
        1,
        "ViT-B-32/random-0",
    )
    noisy = parse_recipe(read_recipe(written["generate-random"]))
    assert noisy.noise == Noise(7, 4, 0)  # seed 7 is first of the second batch of 2, padded to 4 rows
    cell = parse_recipe(read_recipe(written["mix-cell"]))
    assert cell.form.file == "latents.npz" and cell.form.row == 1 and cell.form.w.shape == (6, 32)
    assert cell.style.seed == 20 and cell.style.w is None and cell.layers == [3, 4, 5]
    grid = parse_recipe(read_recipe(written["mix-grid"]))
    assert grid.noise_mode == "random" and [s.seed for s in grid.styles] == [20] and grid.forms[0].row == 1
    post = parse_recipe(read_recipe(written["post-of-post"]))
    assert isinstance(post.source, PostRecipe) and isinstance(post.source.source, GenerateRecipe)
    assert post.made_by() == model.model_hash and post.post.low == 0.1


def built_recipes() -> list:
    w = np.random.default_rng(0).standard_normal([6, 32]).astype(np.float32)
    painting = {"model_hash": "c" * 64, "device": "cpu", "aspect": 1.27}
    seed = LatentSource(seed=4, psi=0.5, truncation_cutoff=3, class_idx=1)
    exact = LatentSource(w=w, file="latents.npz", row=2, seed=9)
    choice = Choice(["woods"], [], ["a painting of {}"], 0.25, 1, "ViT-B-32/openai")
    generate = GenerateRecipe(**painting, seed=7, psi=0.6, noise_mode="random", noise=Noise(7, 8, 3), choice=choice)
    return [
        generate,
        LatentRecipe(**painting, latent=exact, label="F1"),
        LatentRecipe(**painting, latent=LatentSource(w=w, catalog=12), noise_mode="none"),
        GuideRecipe(
            **painting, latent=LatentSource(w=w), method="genetic", search={"steps": 3, "psi": 0.7}, choice=choice
        ),
        MixRecipe(**painting, form=seed, style=exact, layers=[0, 5], label="F1-S1", noise=Noise(2, 4, 0)),
        MixGridRecipe(**painting, forms=[seed, exact], styles=[seed], layers=[1]),
        PostRecipe(
            source=generate, source_file="seed0007.png", post=PostFields(0.1, 99.9, 1.27, 40), model_hash="c" * 64
        ),
        PostRecipe(source=None, source_file="photo.jpg", post=PostFields(1.0, 99.0, 1.0)),
        OtherRecipe(data={"kind": "future", "anything": [1, 2]}),
    ]


@pytest.mark.parametrize("recipe", built_recipes(), ids=lambda r: type(r).__name__)
def test_built_recipes_round_trip_through_json(recipe):
    text = json.dumps(recipe.to_json())
    back = parse_recipe(json.loads(text))
    assert type(back) is type(recipe)
    assert json.dumps(back.to_json()) == text


def test_unknown_fields_are_kept():
    raw = {"kind": "generate", "model_hash": "a" * 64, "seed": 1, "psi": 1.0, "forced_from_model_hash": "b" * 64}
    typed = parse_recipe(raw)
    assert typed.extra == {"forced_from_model_hash": "b" * 64} and typed.to_json()["forced_from_model_hash"] == "b" * 64


# ---------------------------------------------------------------------------------------
# Refusals: one sentence that names the field


def generate_json(**changes) -> dict:
    base = {"kind": "generate", "model_hash": "a" * 64, "seed": 1, "psi": 0.7, "noise_mode": "const"}
    return {**base, **changes}


W = encode_array(np.zeros([6, 32], np.float32))
POST = {"kind": "post", "source": generate_json(), "post": {"low": 0.1, "high": 99.9, "aspect": 1.27, "width": None}}


def with_post(**changes) -> dict:
    return {**POST, "post": {**POST["post"], **changes}}


@pytest.mark.parametrize(
    "raw, field",
    [
        (generate_json(seed=-1), "seed"),
        (generate_json(seed=2**32), "seed"),
        (generate_json(seed="7"), "seed"),
        (generate_json(seed=True), "seed"),
        (generate_json(psi="0.7"), "psi"),
        (generate_json(psi=math.nan), "psi"),
        (generate_json(psi=math.inf), "psi"),
        (generate_json(truncation_cutoff=65), "truncation_cutoff"),
        (generate_json(class_idx=-1), "class_idx"),
        (generate_json(noise_mode="fixed"), "noise_mode"),
        (generate_json(noise_mode="random", batch_rows=0), "batch_rows"),
        (generate_json(noise_mode="random", batch_rows=10**9), "batch_rows"),
        (generate_json(noise_mode="random", batch_rows=4, row=4), "row"),
        (generate_json(noise_mode="random", noise_seed=2**40), "noise_seed"),
        (generate_json(aspect=-1.27), "aspect"),
        (generate_json(model_hash=5), "model_hash"),
        (generate_json(device="x" * 20_000), "device"),
        (generate_json(score="high"), "score"),
        (generate_json(rank=0), "rank"),
        (generate_json(prompt=[1]), "prompt"),
        (generate_json(prompt="woods"), "prompt"),
        ({"kind": "latent", "latent": {"w": {**W, "shape": [192]}}}, "latent.w"),
        ({"kind": "latent", "latent": {"w": {**W, "shape": [65, 32]}}}, "latent.w"),
        ({"kind": "latent", "latent": {"w": {**W, "shape": [7, 32]}}}, "latent.w"),
        ({"kind": "latent", "latent": {"w": {**W, "base64": "!!"}}}, "latent.w"),
        ({"kind": "latent", "latent": {"seed": -3}}, "latent.seed"),
        ({"kind": "latent", "latent": {"w": W, "row": -1}}, "latent.row"),
        ({"kind": "latent", "latent": [1, 2]}, "latent"),
        ({"kind": "latent", "method": "sgd", "latent": {"w": W}}, "method"),
        ({"kind": "latent", "method": "adam", "search": {"steps": [1]}, "latent": {"w": W}}, "search"),
        ({"kind": "mix", "form": {"seed": 1}, "style": {"seed": 2}, "layers": [64]}, "layers"),
        ({"kind": "mix", "form": {"seed": 1}, "style": {"seed": 2}, "layers": "fine"}, "layers"),
        ({"kind": "mix", "form": {"seed": 1}, "style": {"seed": 2, "psi": "x"}}, "style.psi"),
        ({"kind": "mix-grid", "forms": [{"seed": 1}, {"seed": -1}]}, r"forms\[1\].seed"),
        (with_post(low=-1), "post.low"),
        (with_post(low=50, high=40), "post.high"),
        (with_post(width=0), "post.width"),
        (with_post(width=10**6), "post.width"),
        (with_post(aspect=20), "post.aspect"),
        ({**POST, "source": generate_json(seed=-5)}, "source.seed"),
        ({**POST, "source": {**POST, "source": generate_json(psi=None)}}, "source.source.psi"),
        ({**POST, "source": "seed0001.png"}, "source"),
    ],
)
def test_damaged_fields_are_refused_by_name(raw, field):
    with pytest.raises(UserError) as info:
        parse_recipe(copy.deepcopy(raw))
    message = str(info.value)
    assert message.startswith("The recipe's ") and "\n" not in message and message.endswith("."), message
    assert re.match(rf"The recipe's {field} (must be|is)", message), message


def test_missing_entries_and_deep_nesting():
    with pytest.raises(UserError, match=r"^The recipe has no 'style' entry, so it cannot be rebuilt\.$"):
        parse_recipe({"kind": "mix", "form": {"seed": 1}})
    with pytest.raises(UserError, match=r"^The recipe has no 'post' entry"):
        parse_recipe({"kind": "post", "source": None})
    with pytest.raises(UserError, match=r"^The recipe holds neither a seed nor a latent vector\.$"):
        parse_recipe({"kind": "latent", "latent": {"file": "x.npz"}})
    deep = generate_json()
    for _ in range(40):
        deep = {**POST, "source": deep}
    with pytest.raises(UserError, match=r"^The recipe's source(\.source)* is nested more than 32 deep\.$"):
        parse_recipe(deep)


def test_a_damaged_recipe_in_a_png_stops_reproduce_with_the_field(model, written, tmp_path):
    raw = read_recipe(written["generate"])
    raw["truncation_cutoff"] = "two"
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, json.dumps(raw))
    with Image.open(written["generate"]) as im:
        im.save(tmp_path / "edited.png", pnginfo=info)
    with pytest.raises(UserError, match=r"^The recipe's truncation_cutoff must be a whole number from 0 to 64"):
        reproduce_file(tmp_path / "edited.png", model)


# ---------------------------------------------------------------------------------------
# The registries


def test_the_registry_reads_each_kind_with_its_class():
    assert RECIPE_KINDS == {
        "generate": GenerateRecipe,
        "latent": LatentRecipe,
        "mix": MixRecipe,
        "mix-grid": MixGridRecipe,
        "directions-sheet": DirectionsSheetRecipe,
        "post": PostRecipe,
        "video": VideoRecipe,
    }
    assert type(parse_recipe({"seed": 3, "psi": 1.0})) is GenerateRecipe  # recipes before `kind`
    assert type(parse_recipe({"kind": "latent", "latent": {"w": W}, "method": "adam"})) is GuideRecipe
    other = parse_recipe({"kind": "future", "x": 1})
    assert type(other) is OtherRecipe and other.to_json() == {"kind": "future", "x": 1}
    assert type(parse_recipe({})) is OtherRecipe


def test_reproduce_dispatches_on_its_registry(model, written, monkeypatch):
    assert list(REBUILDERS) == ["generate", "latent", "mix", "post", "video"]
    for kind in REBUILDERS:
        assert kind in RECIPE_KINDS
    for name in ("generate", "generate-random", "mix-form", "mix-cell", "post"):
        assert reproduce_file(written[name], model).identical, name
    with pytest.raises(UserError, match=r"^Cannot rebuild a recipe of kind 'future'; ganscapes rebuilds generate, la"):
        rebuild({"kind": "future"}, model, CPU)

    calls = []
    monkeypatch.setitem(REBUILDERS, "mix-grid", lambda r, m, d: calls.append(r) or np.zeros([1, 1, 3], np.uint8))
    assert rebuild(read_recipe(written["mix-grid"]), model, CPU).shape == (1, 1, 3)
    assert type(calls[0]) is MixGridRecipe
    assert reproduce_mod.REBUILDERS is REBUILDERS
