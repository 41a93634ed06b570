"""`ganscapes info`'s summary of a recipe: every kind in words, and when no command can rebuild it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganscapes.make.recipes import (
    Choice,
    GenerateRecipe,
    GuideRecipe,
    LatentSource,
    MixGridRecipe,
    Noise,
    PostFields,
    PostRecipe,
)
from ganscapes.make.summary import layer_span, summarize

HASH = "ab" * 32
IMAGE = Path("out dir/001-seed0421.png")


def rows_of(recipe, size=(64, 64)):
    summary = summarize(IMAGE, recipe.to_json() if hasattr(recipe, "to_json") else recipe, size)
    return dict(summary.rows), dict(summary.commands), summary.why_not


def test_a_ranked_pick_shows_its_seed_mapping_prompt_and_score():
    recipe = GenerateRecipe(
        model_hash=HASH,
        version="0.1.0",
        seed=421,
        psi=0.7,
        truncation_cutoff=8,
        class_idx=2,
        noise_mode="none",
        device="cuda:0",
        choice=Choice(prompt=["autumn woods"], negative=["a portrait"], score=0.31234, rank=1, clip_model="ViT-B-32"),
    )
    rows, commands, why_not = rows_of(recipe)
    assert rows["picture"] == "001-seed0421.png, 64x64"
    assert rows["kind"] == "generate: one seed through the mapping network"
    assert rows["model"] == f"{HASH[:12]}… (model hash)"
    assert rows["seed"] == "421" and rows["psi"] == "0.7 on the first 8 layers" and rows["class"] == "2"
    assert rows["noise"] == "none" and rows["device"] == "cuda:0"
    assert rows["prompt"] == "'autumn woods'" and rows["negative"] == "'a portrait'"
    assert rows["score"] == "+0.3123, rank 1 by ViT-B-32"
    assert rows["written by"] == "ganscapes 0.1.0"
    assert why_not is None
    assert commands["rebuild"] == "ganscapes reproduce 'out dir/001-seed0421.png' --model MODEL"
    assert commands["same picture"] == (
        "ganscapes generate --model MODEL --seeds 421 --psi 0.7 --trunc-cutoff 8 --class 2 --noise-mode none "
        "--device cuda --out OUT"
    )


def test_random_noise_depends_on_the_batch_so_only_reproduce_rebuilds_it():
    recipe = GenerateRecipe(model_hash=HASH, seed=3, noise_mode="random", noise=Noise(seed=5, batch_rows=8, row=2))
    rows, commands, _ = rows_of(recipe)
    assert rows["noise"] == "random (noise seed 5, row 2 of a 8-picture call)"
    assert rows["psi"] == "1 (no truncation)"
    assert list(commands) == ["rebuild"]


def test_a_guide_result_shows_its_exact_latent_and_search():
    w = np.zeros((6, 32), np.float32)
    recipe = GuideRecipe(
        model_hash=HASH,
        latent=LatentSource(w=w, seed=7),
        method="genetic",
        search={"steps": 40, "population": 16},
        choice=Choice(prompt=["a river", "at dusk"], score=-0.05),
    )
    rows, commands, _ = rows_of(recipe)
    assert rows["kind"] == "guide: found by a genetic algorithm"
    assert rows["latent"] == "exact w [6, 32] (seed 7)"
    assert rows["search"] == "steps 40, population 16"
    assert rows["prompt"] == "'a river' + 'at dusk'" and rows["score"] == "-0.0500"
    assert list(commands) == ["rebuild"]


def test_a_post_picture_shows_its_settings_and_its_sources_recipe():
    source = GenerateRecipe(model_hash=HASH, seed=1, psi=0.5)
    recipe = PostRecipe(source=source, source_file="seed0001.png", post=PostFields(0.1, 99.9, 1.27, width=640))
    rows, commands, why_not = rows_of(recipe, (640, 504))
    assert rows["kind"] == "post: a finished generate picture"
    assert rows["post"] == "contrast 0.1–99.9 percentiles, aspect 1.270, width 640"
    assert rows["source"] == "seed0001.png" and rows["seed"] == "1" and rows["model"].startswith(HASH[:12])
    assert why_not is None and list(commands) == ["rebuild"]


def test_pictures_no_command_can_rebuild_say_why():
    foreign = PostRecipe(source=None, source_file="photo.jpg", post=PostFields(1, 99, 1.5))
    rows, commands, why_not = rows_of(foreign)
    assert rows["source"] == "an image without a recipe (photo.jpg)"
    assert commands == {} and why_not == "the recipe names no model"

    foreign.model_hash = HASH  # post --model: the aspect's model, still no source to paint
    assert rows_of(foreign)[2] == "it was post-processed from an image without a recipe"

    grid = MixGridRecipe(model_hash=HASH, forms=[LatentSource(seed=1), LatentSource(seed=2)], styles=[], layers=[])
    rows, commands, why_not = rows_of(grid)
    assert rows["kind"] == "mix-grid: 2 forms x 0 styles" and rows["forms"] == "seeds 1, 2" and rows["styles"] == "none"
    assert rows["layers"] == "none from the style"
    assert commands == {} and why_not.startswith("it is the whole mix grid")

    rows, commands, why_not = rows_of({"kind": "collage", "model_hash": HASH})
    assert rows["kind"] == "'collage', which this version of ganscapes does not know"
    assert commands == {} and why_not == "this version of ganscapes does not rebuild pictures of kind 'collage'"


def test_layer_spans_read_as_mix_writes_them():
    assert layer_span([4, 5, 6, 7]) == "4-7"
    assert layer_span([3]) == "3"
    assert layer_span([0, 2, 4]) == "0,2,4"
    assert layer_span([]) == "none"
