"""The underpainting: sky, sun, hills far to near and water, computed with numpy.

Besides the colours it records, per pixel, which region a pixel belongs to and which
way strokes run there; the dab pass (`dabs`) reads both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ganscapes.data.painter.palettes import _HAZE_BLUE, RGB, _Light, _lit, _mix, _Season
from ganscapes.data.painter.scene import _Scene


@dataclass
class _Canvas:
    """The underpainting and what the dab pass needs to know about it."""

    rng: np.random.Generator
    width: int
    height: int
    unit: float  # stroke scale, 1.0 at the area of 256x256, so the look is the same at any size
    paint: np.ndarray  # (h, w, 3) float32
    region: np.ndarray  # (h, w) int8: 0 sky, 1.. hill layers far to near, WATER
    angle: np.ndarray  # (h, w) float32 stroke direction, radians, image coordinates
    ridges: list[np.ndarray] = field(default_factory=list)
    horizon: float = 0.0
    water_line: float | None = None
    sun: tuple[float, float, float] | None = None  # x, y, radius
    sun_colour: RGB = (255, 255, 255)
    light_side: float = 1.0  # +1 light from the right, -1 from the left


_WATER = 100


def _waves(
    rng: np.random.Generator, h: int, w: int, count: int, freq: tuple[float, float], rows: slice = slice(None)
) -> np.ndarray:
    """Smooth noise in about [-1, 1]: a few plane waves, the cheapest organic texture.

    `rows` picks the band of the picture actually needed, so layers that cover only the
    lower part cost only that part.
    """
    s = float(max(h, w))
    ys = np.arange(h, dtype=np.float32)[rows, None] / s
    xs = np.arange(w, dtype=np.float32)[None, :] / s
    out = np.zeros((len(ys), w), np.float32)
    for _ in range(count):
        f = rng.uniform(*freq) * 2 * math.pi
        t = rng.uniform(0, math.pi)
        phase = np.float32(rng.uniform(0, 6.3))
        out += np.sin(xs * np.float32(f * math.cos(t)) + ys * np.float32(f * math.sin(t)) + phase)
    return out / math.sqrt(count) * 0.7


def _ridge(rng: np.random.Generator, w: int, rough: float) -> np.ndarray:
    """A hill profile in [0, 1]: a few sinusoids, big ones slow, small ones quick."""
    x = np.arange(w, dtype=np.float64) / w
    out = np.zeros(w)
    for j in range(rng.integers(3, 6)):
        f = rng.uniform(0.4, 1.4) * (1.7**j) * (1 + 0.5 * rough)
        out += rng.uniform(0.5, 1.0) / (1.0 + j * (1.8 - rough)) * np.sin(2 * math.pi * f * x + rng.uniform(0, 6.3))
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo + 1e-9)


def _slope(ridge: np.ndarray) -> np.ndarray:
    return np.gradient(ridge) if len(ridge) > 1 else np.zeros_like(ridge)


def _underpaint_sky(cv: _Canvas, light: _Light) -> None:
    h, w, rng = cv.height, cv.width, cv.rng
    pos = np.array([p for p, _ in light.sky])
    cols = np.array([c for _, c in light.sky])
    t = np.clip(np.arange(h) / max(cv.horizon, 1.0), 0, 1)
    rows = np.stack([np.interp(t, pos, cols[:, c]) for c in range(3)], axis=1).astype(np.float32)
    cv.paint[:] = rows[:, None, :]
    # Below the horizon there is always land or water, so the sky stops there.
    sky = slice(0, min(h, int(math.ceil(cv.horizon)) + 1))
    paint = cv.paint[sky]
    paint += _waves(rng, h, w, 3, (0.5, 2.0), sky)[..., None] * np.float32(7.0)

    ys = np.arange(h, dtype=np.float32)[sky, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    lo, hi = light.clouds
    for _ in range(int(rng.integers(lo, hi + 1))):
        cx = rng.uniform(-0.1, 1.1) * w
        cy = rng.uniform(0.05, 0.85) * cv.horizon
        rx = rng.uniform(0.12, 0.4) * w
        ry = rng.uniform(0.025, 0.08) * h
        gx = np.exp(-(((xs - cx) / rx) ** 2))
        gy = np.exp(-(((ys - cy) / ry) ** 2))
        top = np.exp(-(((ys - cy + 0.5 * ry) / ry) ** 2))  # lit upper edge, shaded belly
        strength = np.float32(rng.uniform(0.45, 0.9))
        g = (gx * gy * strength)[..., None]
        colour = _mix(light.cloud_shade, light.cloud, np.clip(top / (gy + top + 1e-6), 0, 1)[..., None] * 1.3)
        paint += (colour - paint) * g
    cv.angle[:] = cv.rng.uniform(-0.08, 0.08)


def _underpaint_sun(cv: _Canvas, light: _Light, kind: str) -> None:
    rng = cv.rng
    r = cv.unit * rng.uniform(5.0, 10.0) * (0.7 if kind == "moon" else 1.0)
    x = rng.uniform(0.12, 0.88) * cv.width
    y = min(max(r * 1.2, rng.uniform(*light.sun_height) * cv.horizon), cv.height - 1.0)
    if kind == "moon":
        disc, halo = np.array((240, 236, 212), np.float32), np.array((200, 196, 200), np.float32)
        reach, strength = 2.5, 0.35
    else:
        disc, halo = np.asarray(light.sun, np.float32), np.asarray(light.halo, np.float32)
        reach, strength = rng.uniform(3.0, 7.0), rng.uniform(0.5, 0.85)
    if light.name == "overcast":
        strength *= 0.5
        disc = _mix(disc, light.cloud, 0.3)
    sky = slice(0, min(cv.height, int(math.ceil(cv.horizon)) + 1))
    ys = np.arange(cv.height, dtype=np.float32)[sky, None]
    xs = np.arange(cv.width, dtype=np.float32)[None, :]
    d = np.sqrt((xs - x) ** 2 + (ys - y) ** 2)
    g = (np.exp(-d / (r * reach)) * strength)[..., None]
    paint = cv.paint[sky]
    paint += (halo - paint) * g
    paint[d < r] = disc
    cv.sun = (x, y, r)
    cv.sun_colour = tuple(disc.tolist())
    cv.light_side = 1.0 if x > cv.width / 2 else -1.0


def _underpaint_hills(cv: _Canvas, light: _Light, season: _Season, scene: _Scene) -> list[np.ndarray]:
    """Hill layers far to near; far ones pale and blue (aerial perspective), near ones full."""
    h, w, rng = cv.height, cv.width, cv.rng
    n = scene.layers
    bottom = cv.water_line if cv.water_line is not None else h
    horizon_colour = np.asarray(light.sky[-1][1], np.float32)
    haze = _mix(horizon_colour, _HAZE_BLUE, 0.35)
    colours = []
    for k in range(n):
        depth = (k + 1) / n  # 1 for the nearest layer
        base = cv.horizon + ((k / n) ** 1.3) * (bottom - cv.horizon) * 0.8
        if k == 0 and scene.mountains:
            amp = rng.uniform(0.12, 0.25) * h
            profile = _ridge(rng, w, rough=0.8)
        else:
            amp = rng.uniform(0.03, 0.12 if k == 0 else 0.09) * h
            profile = _ridge(rng, w, rough=0.0)
        ridge = base - amp * profile
        ridge = np.minimum(ridge, bottom - 0.04 * h).astype(np.float32)
        cv.ridges.append(ridge)

        ground = np.asarray(season.ground[rng.integers(len(season.ground))], np.float32)
        if k == 0 and scene.mountains and season.name != "winter":
            ground = _mix(ground, (120, 120, 130), 0.5)
        ground = ground + rng.normal(0, 8, 3).astype(np.float32)
        aerial = (1.0 - depth) * 0.75 if n > 1 else 0.15
        top = _mix(_lit(light, season.light), haze, aerial)
        mid = _mix(_lit(light, ground), haze, aerial)
        foot = _mix(_lit(light, season.dark), haze, aerial)
        colours.append(mid)

        band = slice(max(0, int(ridge.min())), h)
        ys = np.arange(h, dtype=np.float32)[band, None]
        mask = ys >= ridge[None, :]
        t = np.clip((ys - ridge[None, :]) / max(bottom - cv.horizon, 1.0), 0, 1)
        shade = _mix(top, mid, np.clip(t * 6, 0, 1)[..., None])
        shade = _mix(shade, foot, (np.clip(t * 1.5 - 0.3, 0, 1) * 0.6)[..., None])
        # Slopes facing the light are brighter: the one cue that makes sinusoids read as hills.
        slope = _slope(ridge)
        facing = np.clip(-slope * cv.light_side * 0.12, -0.16, 0.16).astype(np.float32)
        shade = shade * (1.0 + facing[None, :, None])
        # Fields: broad patches of the other ground colours.
        patches = _waves(rng, h, w, 3, (1.5, 5.0), band)
        other = _mix(_lit(light, season.ground[rng.integers(len(season.ground))]), haze, aerial)
        shade = _mix(shade, other, (np.clip(patches, 0, 1) * (0.6 * depth))[..., None])
        cv.paint[band] = np.where(mask[..., None], shade, cv.paint[band])
        cv.region[band][mask] = k + 1
        # Strokes follow the ridge near the top and level out towards the foot.
        along = np.arctan(_slope(ridge)).astype(np.float32)
        cv.angle[band] = np.where(mask, along[None, :] * np.exp(-t * 5.0), cv.angle[band])
    return colours


def _underpaint_water(cv: _Canvas, light: _Light) -> None:
    """Everything above the water line, mirrored, rippled and sunk into the water colour."""
    h, w, rng = cv.height, cv.width, cv.rng
    wl = int(round(cv.water_line))
    rows = np.arange(wl, h)
    if len(rows) == 0:
        return
    depth = (rows - wl) / max(h - wl, 1)
    src_rows = np.clip(2 * wl - rows - 1, 0, h - 1)
    amplitude, freq, phase = rng.uniform(1.0, 3.0), rng.uniform(0.3, 0.9), rng.uniform(0, 6.3)
    ripple = cv.unit * amplitude * (0.5 + depth) * np.sin(rows * freq / cv.unit + phase)
    src_cols = np.clip(np.arange(w)[None, :] + ripple[:, None].astype(int), 0, w - 1)
    mirrored = cv.paint[src_rows[:, None], src_cols]
    tint = np.asarray(light.water, np.float32)
    # Nearer water reflects less of the bright sky and shows more of its own dark body.
    dim = (0.9 - 0.22 * depth)[:, None, None].astype(np.float32)
    body = _mix(mirrored * dim, tint, (0.2 + 0.35 * depth)[:, None, None].astype(np.float32))
    bands = np.sin(rows * rng.uniform(0.5, 1.2) / cv.unit)[:, None, None] * 6.0
    cv.paint[wl:] = (body + bands).astype(np.float32)
    cv.region[wl:] = _WATER
    cv.angle[wl:] = 0.0
