"""Dabs: strokes scattered over each region, coloured from the underpainting beneath them.

Colours are picked up, jittered and pulled towards accents (broken colour); directions
follow the stroke field of the underpainting; every dab is drawn as a small polygon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from ganscapes.data.painter.palettes import _Light, _lit, _mix, _Season
from ganscapes.data.painter.underpainting import _WATER, _Canvas

# Dabs per unit of covered area: above 1 so that random placement leaves only small
# gaps, where the underpainting shows through as it does in a quick plein-air sketch.
COVERAGE = 1.5


@dataclass
class _Dabs:
    """A batch of strokes, drawn in order; all arrays have one entry per dab."""

    x: np.ndarray
    y: np.ndarray
    length: np.ndarray
    width: np.ndarray
    angle: np.ndarray
    colour: np.ndarray  # (n, 3) float

    @staticmethod
    def concat(batches: list[_Dabs]) -> _Dabs:
        names = ("x", "y", "length", "width", "angle", "colour")
        return _Dabs(*(np.concatenate([getattr(b, f) for b in batches]) for f in names))


def _scatter(cv: _Canvas, mask: np.ndarray, mean_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Random dab centres inside `mask`, as many as cover it about COVERAGE times."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    count = max(1, int(COVERAGE * len(idx) / mean_area))
    pick = idx[cv.rng.integers(0, len(idx), count)]
    y, x = np.divmod(pick, cv.width)
    jitter = cv.rng.random((2, count))
    # x + jitter < width in float64, but float32 rounds 238 + 0.99999997 up to 239.0, a
    # column past the edge; keep every centre strictly inside its pixel's cell.
    return _inside(x + jitter[0], cv.width), _inside(y + jitter[1], cv.height)


def _inside(coord: np.ndarray, size: int) -> np.ndarray:
    """float32 coordinates whose integer part is a valid index below `size`."""
    return np.minimum(coord.astype(np.float32), np.nextafter(np.float32(size), np.float32(0)))


def _pick_colour(cv: _Canvas, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xi = np.clip(x.astype(int), 0, cv.width - 1)
    yi = np.clip(y.astype(int), 0, cv.height - 1)
    return cv.paint[yi, xi].astype(np.float32)


def _jitter(rng: np.random.Generator, colour: np.ndarray, chroma: float, value: float) -> np.ndarray:
    """Broken colour: each dab a little off in hue and value from its neighbours."""
    n = len(colour)
    return colour + rng.normal(0, chroma, (n, 3)) + rng.normal(0, value, (n, 1))


def _accent(
    rng: np.random.Generator, colour: np.ndarray, accents, share: float, amount: tuple[float, float]
) -> np.ndarray:
    """Pull a `share` of the dabs towards accent colours, so a field is never one flat green."""
    n = len(colour)
    if n == 0 or not accents:
        return colour
    chosen = np.asarray(accents, np.float32)[rng.integers(0, len(accents), n)]
    t = rng.uniform(*amount, n) * (rng.random(n) < share)
    return colour + (chosen - colour) * t[:, None]


def _stroke_sizes(cv: _Canvas, n: int, length: tuple[float, float], thickness: tuple[float, float]):
    ln = cv.rng.uniform(*length, n) * cv.unit
    wd = ln * cv.rng.uniform(*thickness, n)
    return ln.astype(np.float32), np.maximum(wd, 1.2).astype(np.float32)


def _mean_area(cv: _Canvas, length, thickness) -> float:
    ln = (length[0] + length[1]) / 2 * cv.unit
    return max(ln * ln * (thickness[0] + thickness[1]) / 2 * 0.8, 1.0)


def _sky_dabs(cv: _Canvas, light: _Light) -> _Dabs:
    length, thick = (7.0, 13.0), (0.28, 0.42)
    x, y = _scatter(cv, cv.region == 0, _mean_area(cv, length, thick))
    n = len(x)
    ln, wd = _stroke_sizes(cv, n, length, thick)
    colour = _pick_colour(cv, x + cv.rng.normal(0, 2 * cv.unit, n), y)
    colour = _accent(cv.rng, colour, [light.cloud, light.sky[-1][1], light.halo], 0.08, (0.1, 0.3))
    colour = _jitter(cv.rng, colour, 6.0, 5.0)
    angle = cv.angle[y.astype(int), x.astype(int)] + cv.rng.normal(0, 0.12, n).astype(np.float32)
    return _Dabs(x, y, ln, wd, angle, colour)


def _sun_dabs(cv: _Canvas) -> _Dabs:
    sx, sy, r = cv.sun
    n = max(6, int(r * r * 0.6))
    a = cv.rng.uniform(0, 2 * math.pi, n)
    d = np.sqrt(cv.rng.random(n)) * r * 0.8
    x, y = (sx + d * np.cos(a)).astype(np.float32), (sy + d * np.sin(a)).astype(np.float32)
    keep = cv.region[np.clip(y.astype(int), 0, cv.height - 1), np.clip(x.astype(int), 0, cv.width - 1)] == 0
    x, y = x[keep], y[keep]
    n = len(x)
    ln = (cv.rng.uniform(0.35, 0.6, n) * r).astype(np.float32)
    wd = np.maximum(ln * 0.45, 1.2).astype(np.float32)
    colour = _jitter(cv.rng, np.tile(np.asarray(cv.sun_colour, np.float32), (n, 1)), 5.0, 6.0)
    return _Dabs(x, y, ln, wd, cv.rng.normal(0, 0.3, n).astype(np.float32), colour)


def _hill_dabs(cv: _Canvas, layer: int, layers: int, light: _Light, season: _Season, colour: np.ndarray) -> _Dabs:
    near = layer / layers
    length = (4.0 + 5.0 * near, 8.0 + 8.0 * near)
    thick = (0.3, 0.5)
    x, y = _scatter(cv, cv.region == layer, _mean_area(cv, length, thick))
    n = len(x)
    ln, wd = _stroke_sizes(cv, n, length, thick)
    # Bigger, looser strokes towards the foreground, as a painter's would be.
    ln *= (1.0 + 0.5 * np.clip((y - cv.horizon) / max(cv.height - cv.horizon, 1), 0, 1)).astype(np.float32)
    picked = _pick_colour(cv, x, y)
    # Accents are seen in the same light as the land, and fade into it with distance.
    accents = [tuple(_mix(_lit(light, a), colour, 1.0 - near * 0.75)) for a in season.accents]
    picked = _accent(cv.rng, picked, accents, 0.05 + 0.1 * near, (0.25, 0.55))
    picked = _jitter(cv.rng, picked, 5.0 + 4.0 * near, 5.0 + 5.0 * near)
    angle = cv.angle[y.astype(int), x.astype(int)] + cv.rng.normal(0, 0.25, n).astype(np.float32)
    return _Dabs(x, y, ln, wd, angle, picked)


def _water_dabs(cv: _Canvas, light: _Light) -> _Dabs:
    length, thick = (8.0, 18.0), (0.16, 0.3)
    x, y = _scatter(cv, cv.region == _WATER, _mean_area(cv, length, thick))
    n = len(x)
    ln, wd = _stroke_sizes(cv, n, length, thick)
    # Broken reflections: each dab carries colour from a little to its side.
    colour = _pick_colour(cv, x + cv.rng.normal(0, 4 * cv.unit, n), y)
    colour = _accent(cv.rng, colour, [light.sky[-1][1], light.sky[0][1], light.water], 0.18, (0.3, 0.6))
    colour = _jitter(cv.rng, colour, 6.0, 8.0)
    angle = cv.rng.normal(0, 0.05, n).astype(np.float32)
    return _Dabs(x, y, ln, wd, angle, colour)


def _sun_reflection_dabs(cv: _Canvas) -> _Dabs:
    """A broken column of light on the water below the sun (Monet's Impression, Sunrise)."""
    sx, sy, r = cv.sun
    wl = cv.water_line
    if cv.region[int(sy), int(sx)] != 0 or wl >= cv.height - 2:
        return _Dabs(*(np.zeros(0, np.float32) for _ in range(5)), np.zeros((0, 3), np.float32))
    n = max(4, int((cv.height - wl) / max(cv.unit, 0.5) * 0.8))
    y = cv.rng.uniform(wl + 1, cv.height, n).astype(np.float32)
    spread = r * (0.4 + 1.6 * (y - wl) / (cv.height - wl))
    x = (sx + cv.rng.normal(0, 1, n) * spread).astype(np.float32)
    ln = (cv.rng.uniform(0.8, 2.0, n) * r).astype(np.float32)
    wd = np.maximum(ln * cv.rng.uniform(0.12, 0.22, n), 1.2).astype(np.float32)
    base = _pick_colour(cv, x, y)
    colour = _mix(base, cv.sun_colour, cv.rng.uniform(0.5, 0.9, n)[:, None])
    colour = _jitter(cv.rng, colour, 5.0, 6.0)
    return _Dabs(x, y, ln, wd, cv.rng.normal(0, 0.04, n).astype(np.float32), colour)


# Unit hexagon, slightly fuller behind the middle: a loaded brush pressed and lifted.
_SHAPE = np.array(
    [(1.0, 0.0), (0.45, 0.95), (-0.5, 1.0), (-1.0, 0.15), (-1.0, -0.15), (-0.5, -1.0), (0.45, -0.95)],
    np.float32,
)


def _draw_dabs(draw: ImageDraw.ImageDraw, dabs: _Dabs) -> None:
    """Every dab as a small polygon; the vertex maths is vectorised, only drawing loops."""
    n = len(dabs.x)
    if n == 0:
        return
    a = (dabs.length / 2)[:, None]
    b = (dabs.width / 2)[:, None]
    u = _SHAPE[None, :, 0] * a
    v = _SHAPE[None, :, 1] * b
    c, s = np.cos(dabs.angle)[:, None], np.sin(dabs.angle)[:, None]
    px = dabs.x[:, None] + u * c - v * s
    py = dabs.y[:, None] + u * s + v * c
    pts = np.stack([px, py], axis=2).reshape(n, -1).round().astype(np.int32).tolist()
    cols = np.clip(np.rint(dabs.colour), 0, 255).astype(np.uint8).tolist()
    polygon = draw.polygon
    for p, col in zip(pts, cols):
        polygon(p, fill=tuple(col))
