"""The procedural painter behind `ganscapes sample`: one impressionist landscape from an rng.

How a picture is made: the underpainting is computed with numpy, region by region in
painter's order (sky, sun, hills far to near, water), which also yields a region map and
a stroke-direction field. Dabs are then scattered over each region, their colours picked
up from the underpainting beneath them and jittered, their directions taken from the
form (level in sky and water, along the slope on hills), and drawn with `ImageDraw` as
small polygons; trees come last, far to near. All random parameters are drawn in
vectorised batches, so the Python loop does nothing but call `polygon`.

The modules follow those steps: `palettes` (times of day, seasons, colour helpers),
`scene` (the random choices and the title), `underpainting` (the canvas; sky, sun,
hills, water), `dabs` (scattering, colour picking, drawing strokes) and `trees`. Every
picture depends on the exact order of the rng draws, so the steps are called here, in
one place, in the order they always had. Names with a leading underscore are shared
between these modules only.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from ganscapes.data.painter.dabs import (
    COVERAGE,
    _Dabs,
    _draw_dabs,
    _hill_dabs,
    _sky_dabs,
    _sun_dabs,
    _sun_reflection_dabs,
    _water_dabs,
)
from ganscapes.data.painter.palettes import _vary_light
from ganscapes.data.painter.scene import _choose_scene, _Scene, scene_title
from ganscapes.data.painter.trees import _paint_trees
from ganscapes.data.painter.underpainting import (
    _Canvas,
    _underpaint_hills,
    _underpaint_sky,
    _underpaint_sun,
    _underpaint_water,
)

__all__ = ["COVERAGE", "paint_landscape", "paint_scene", "scene_title"]


def paint_landscape(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """An impressionist landscape of exactly `width` x `height`, RGB, drawn from `rng` only."""
    return paint_scene(rng, width, height)[0]


def paint_scene(rng: np.random.Generator, width: int, height: int) -> tuple[Image.Image, _Scene]:
    if width < 1 or height < 1:
        raise ValueError(f"a picture needs a positive size, got {width}x{height}")
    scene = _choose_scene(rng)
    light = _vary_light(rng, scene.light)
    season = scene.season
    cv = _Canvas(
        rng=rng,
        width=width,
        height=height,
        unit=math.sqrt(width * height) / 256.0,
        paint=np.zeros((height, width, 3), np.float32),
        region=np.zeros((height, width), np.int8),
        angle=np.zeros((height, width), np.float32),
    )
    cv.light_side = 1.0 if rng.random() < 0.5 else -1.0

    if scene.water:
        cv.water_line = height * rng.uniform(0.62, 0.84)
        cv.horizon = height * rng.uniform(0.34, min(0.55, cv.water_line / height - 0.1))
    else:
        cv.horizon = height * rng.uniform(0.32, 0.62)

    _underpaint_sky(cv, light)
    if scene.sun:
        _underpaint_sun(cv, light, scene.sun)
    land_colours = _underpaint_hills(cv, light, season, scene)
    if scene.water:
        _underpaint_water(cv, light)

    dabs = [_sky_dabs(cv, light)]
    if cv.sun is not None:
        dabs.append(_sun_dabs(cv))
    for k in range(scene.layers):
        dabs.append(_hill_dabs(cv, k + 1, scene.layers, light, season, land_colours[k]))
    if scene.water:
        dabs.append(_water_dabs(cv, light))
        if cv.sun is not None:
            dabs.append(_sun_reflection_dabs(cv))

    image = Image.fromarray(np.clip(cv.paint, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    dabs = [d for d in dabs if len(d.x)]
    if dabs:
        _draw_dabs(draw, _Dabs.concat(dabs))
    _paint_trees(cv, draw, scene, light, season, land_colours)
    return image, scene
