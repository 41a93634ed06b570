"""The random choices that make one picture (light, season, hills, water, sun, trees) and its title.

They are drawn before any paint, and kept, so that the title names what the picture shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganscapes.data.painter.palettes import _LIGHT_WEIGHTS, _LIGHTS, _SEASONS, _Light, _Season


@dataclass
class _Scene:
    """The choices that make one picture, kept for its title."""

    light: _Light
    season: _Season
    layers: int
    water: bool
    sun: str | None  # "sun", "moon" or None
    trees: str  # "none", "scattered", "grove", "poplars"
    mountains: bool


def _choose_scene(rng: np.random.Generator) -> _Scene:
    light = _LIGHTS[rng.choice(len(_LIGHTS), p=_LIGHT_WEIGHTS)]
    season = _SEASONS[rng.integers(len(_SEASONS))]
    sun = None
    if rng.random() < light.sun_chance:
        sun = "moon" if light.name == "dusk" and rng.random() < 0.35 else "sun"
    trees = ("none", "scattered", "grove", "poplars")[rng.choice(4, p=(0.1, 0.47, 0.3, 0.13))]
    layers = int(rng.choice((1, 2, 3), p=(0.2, 0.4, 0.4)))
    return _Scene(
        light=light,
        season=season,
        layers=layers,
        water=bool(rng.random() < 0.45),
        sun=sun,
        trees=trees,
        mountains=bool(layers > 1 and rng.random() < 0.3),
    )


def scene_title(scene: _Scene, index: int) -> str:
    if scene.water and scene.trees == "poplars":
        subject = "Poplars by the water"
    elif scene.water:
        subject = "Lake"
    elif scene.trees == "poplars":
        subject = "Poplars"
    elif scene.trees == "grove":
        subject = "Trees on the hills"
    elif scene.mountains:
        subject = "Mountains"
    else:
        subject = "Hills"
    if scene.sun == "moon":
        when = "by moonlight"
    elif scene.light.name == "day":
        when = f"in {scene.season.name}"
    else:
        when = scene.light.phrase
    return f"{subject} {when} {index}"
