"""The colours a picture is painted in: times of day, seasons, and how light tints the land.

Kept as data apart from the painting steps, so a palette can be tuned without touching
how it is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class _Light:
    """A time of day: how the sky looks and how its light colours the land."""

    name: str
    phrase: str  # for titles: "Hills at dusk"
    sky: tuple[tuple[float, RGB], ...]  # (position from top 0 to horizon 1, colour)
    cloud: RGB
    cloud_shade: RGB
    clouds: tuple[int, int]  # how many cloud banks, inclusive range
    sun: RGB
    halo: RGB
    sun_chance: float
    sun_height: tuple[float, float]  # fraction of the horizon height, 0 = top
    land_mult: RGB
    land_add: RGB
    desaturate: float
    water: RGB


_LIGHTS = (
    _Light(
        "day",
        "on a clear day",
        ((0.0, (60, 108, 188)), (0.55, (118, 162, 214)), (1.0, (200, 214, 226))),
        (246, 244, 236),
        (176, 184, 204),
        (1, 5),
        (255, 251, 228),
        (255, 246, 214),
        0.45,
        (0.1, 0.5),
        (1.0, 1.0, 1.0),
        (0, 0, 0),
        0.0,
        (70, 110, 150),
    ),
    _Light(
        "dawn",
        "at dawn",
        ((0.0, (92, 118, 178)), (0.5, (196, 170, 196)), (1.0, (250, 212, 164))),
        (250, 204, 192),
        (170, 150, 175),
        (0, 4),
        (255, 238, 196),
        (255, 214, 170),
        0.75,
        (0.55, 0.95),
        (0.92, 0.86, 0.88),
        (18, 8, 14),
        0.1,
        (90, 100, 140),
    ),
    _Light(
        "dusk",
        "at dusk",
        ((0.0, (44, 50, 104)), (0.45, (168, 96, 112)), (1.0, (250, 162, 80))),
        (232, 124, 98),
        (112, 72, 104),
        (0, 4),
        (255, 206, 112),
        (255, 168, 86),
        0.8,
        (0.5, 0.95),
        (0.70, 0.56, 0.56),
        (26, 8, 20),
        0.1,
        (70, 60, 100),
    ),
    _Light(
        "overcast",
        "on a grey day",
        ((0.0, (128, 134, 146)), (0.6, (172, 176, 180)), (1.0, (208, 208, 202))),
        (222, 222, 218),
        (140, 144, 156),
        (3, 8),
        (236, 236, 226),
        (226, 224, 214),
        0.15,
        (0.15, 0.5),
        (0.9, 0.9, 0.92),
        (4, 4, 6),
        0.4,
        (100, 110, 120),
    ),
)
_LIGHT_WEIGHTS = (0.35, 0.2, 0.25, 0.2)


@dataclass(frozen=True)
class _Season:
    """What the land and the trees are made of."""

    name: str
    ground: tuple[RGB, ...]  # the main field colours, one picked per hill layer
    light: RGB  # sunlit tops of the hills
    dark: RGB  # the shadowed feet
    accents: tuple[RGB, ...]  # broken-colour dabs: flowers, ochres, blue shadows
    foliage: tuple[RGB, ...]
    foliage_light: RGB
    bare_chance: float  # trees without leaves


_SEASONS = (
    _Season(
        "spring",
        ((104, 150, 62), (136, 176, 78), (90, 134, 74)),
        (192, 212, 112),
        (58, 92, 52),
        ((236, 200, 206), (236, 224, 120), (162, 202, 122), (196, 170, 204)),
        ((74, 122, 54), (118, 166, 70), (150, 180, 90)),
        (196, 222, 128),
        0.0,
    ),
    _Season(
        "summer",
        ((90, 128, 50), (168, 158, 70), (118, 140, 58)),
        (216, 196, 110),
        (44, 74, 36),
        ((204, 64, 42), (226, 192, 82), (92, 132, 172), (150, 170, 70)),
        ((40, 82, 36), (66, 108, 44), (54, 96, 50)),
        (146, 176, 82),
        0.0,
    ),
    _Season(
        "autumn",
        ((150, 110, 56), (122, 108, 56), (176, 132, 62)),
        (222, 172, 92),
        (82, 56, 36),
        ((192, 72, 36), (222, 172, 62), (112, 102, 52), (150, 90, 110)),
        ((192, 92, 36), (212, 150, 46), (150, 62, 30), (130, 110, 40)),
        (242, 194, 84),
        0.15,
    ),
    _Season(
        "winter",
        ((222, 224, 230), (204, 208, 220), (192, 190, 188)),
        (246, 246, 248),
        (140, 150, 178),
        ((150, 172, 212), (132, 116, 102), (240, 236, 226), (180, 170, 190)),
        ((48, 70, 56), (70, 84, 68), (94, 82, 70)),
        (214, 222, 228),
        0.5,
    ),
)

_TRUNK = (64, 48, 38)
_HAZE_BLUE = (150, 168, 204)


def _vary_light(rng: np.random.Generator, light: _Light) -> _Light:
    """The same time of day never twice in exactly the same colours."""
    shift = rng.normal(0, 6, 3)

    def v(c: RGB, s: float = 1.0) -> RGB:
        return tuple(float(np.clip(a + s * b + rng.normal(0, 4), 0, 255)) for a, b in zip(c, shift))

    return _Light(
        light.name,
        light.phrase,
        tuple((p, v(c)) for p, c in light.sky),
        v(light.cloud, 0.5),
        v(light.cloud_shade),
        light.clouds,
        light.sun,
        light.halo,
        light.sun_chance,
        light.sun_height,
        light.land_mult,
        tuple(a + 0.5 * b for a, b in zip(light.land_add, shift)),
        light.desaturate,
        v(light.water),
    )


def _lit(light: _Light, colour) -> np.ndarray:
    """A land colour as seen in this light: tinted, darkened, greyed."""
    c = np.asarray(colour, np.float32)
    c = c * np.asarray(light.land_mult, np.float32) + np.asarray(light.land_add, np.float32)
    grey = c.mean(axis=-1, keepdims=True)
    return c + (grey - c) * light.desaturate


def _mix(a, b, t):
    a = np.asarray(a, np.float32)
    return a + (np.asarray(b, np.float32) - a) * t
