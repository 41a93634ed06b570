"""The procedural painter behind `ganscapes sample`: one impressionist landscape from an rng.

How a picture is made: the underpainting is computed with numpy, region by region in
painter's order (sky, sun, hills far to near, water), which also yields a region map and
a stroke-direction field. Dabs are then scattered over each region, their colours picked
up from the underpainting beneath them and jittered, their directions taken from the
form (level in sky and water, along the slope on hills), and drawn with `ImageDraw` as
small polygons; trees come last, far to near. All random parameters are drawn in
vectorised batches, so the Python loop does nothing but call `polygon`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

# Dabs per unit of covered area: above 1 so that random placement leaves only small
# gaps, where the underpainting shows through as it does in a quick plein-air sketch.
COVERAGE = 1.5

RGB = tuple[float, float, float]

# ---------------------------------------------------------------------------------------
# palettes


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


# ---------------------------------------------------------------------------------------
# painting


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


# ---------------------------------------------------------------------------------------
# dabs


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


# ---------------------------------------------------------------------------------------
# trees


def _paint_trees(
    cv: _Canvas, draw: ImageDraw.ImageDraw, scene: _Scene, light: _Light, season: _Season, land_colours
) -> None:
    """Trees stand on land only, weighted to the nearer layers, and are painted far to near."""
    rng = cv.rng
    if scene.trees == "none":
        return
    n = {"scattered": rng.integers(2, 9), "grove": rng.integers(5, 14), "poplars": rng.integers(3, 8)}[scene.trees]
    centre = rng.uniform(0.1, 0.9) * cv.width
    weights = np.arange(1, scene.layers + 1, dtype=float) ** 2
    weights /= weights.sum()
    trees = []
    for i in range(int(n)):
        layer = int(rng.choice(scene.layers, p=weights)) + 1
        if scene.trees == "scattered":
            x = rng.uniform(0.02, 0.98) * cv.width
        elif scene.trees == "grove":
            x = centre + rng.normal(0, 0.08) * cv.width
        else:
            x = centre + (i - n / 2) * rng.uniform(0.04, 0.07) * cv.width
            layer = scene.layers
        xi = int(np.clip(x, 0, cv.width - 1))
        column = cv.region[:, xi]
        rows = np.flatnonzero(column == layer)
        if len(rows) == 0:  # that hill is hidden here: stand on whatever land is in front
            rows = np.flatnonzero((column >= 1) & (column <= scene.layers))
            if len(rows) == 0:
                continue
            layer = int(column[rows[0]])
            rows = np.flatnonzero(column == layer)
        # Only the upper part of the visible slope, so the whole tree shows above the foot.
        y = rows[int(rng.uniform(0.03, 0.45) * len(rows))] + 0.5
        trees.append((float(y), float(x), layer))
    for y, x, layer in sorted(trees):
        _paint_tree(cv, draw, scene, light, season, x, y, land_colours[layer - 1])


def _paint_tree(cv, draw, scene, light, season, x, y, ground) -> None:
    rng = cv.rng
    # Perspective: a tree lower in the picture is nearer, hence bigger.
    near = np.clip((y - cv.horizon) / max(cv.height - cv.horizon, 1.0), 0.0, 1.0)
    height = cv.unit * rng.uniform(34, 72) * (0.3 + 0.9 * near)
    if height < 3:
        return
    haze = _mix(light.sky[-1][1], _HAZE_BLUE, 0.35)
    aerial = (1.0 - near) * 0.5
    if scene.trees == "poplars":
        kind = "poplar"
    else:
        kind = "conifer" if season.name == "winter" and rng.random() < 0.5 else "round"
    bare = kind == "round" and rng.random() < season.bare_chance
    lean = rng.normal(0, 0.05) * height
    trunk = _mix(_lit(light, _TRUNK), haze, aerial)

    # Shadow on the ground, away from the light.
    m = max(3, int(height / 4))
    sx = x - cv.light_side * rng.uniform(0.1, 0.5, m) * height
    sy = y + rng.normal(0, 0.03, m) * height
    shadow = _jitter(rng, np.tile(np.asarray(ground, np.float32) * 0.65, (m, 1)), 4, 4)
    ln = (rng.uniform(0.15, 0.3, m) * height).astype(np.float32)
    angle = rng.normal(0, 0.05, m).astype(np.float32)
    _draw_dabs(draw, _Dabs(sx.astype(np.float32), sy.astype(np.float32), ln, np.maximum(ln * 0.25, 1.2), angle, shadow))

    top_frac = {"round": 0.55, "poplar": 0.35, "conifer": 0.2}[kind]
    tw = max(1, int(round(height * (0.06 if kind != "poplar" else 0.045))))
    top = (x + lean, y - height * top_frac)
    draw.line([(x, y), top], fill=tuple(int(c) for c in np.clip(trunk, 0, 255)), width=tw)
    draw.line(
        [(x + tw * 0.4 * cv.light_side, y), (top[0] + tw * 0.3 * cv.light_side, top[1])],
        fill=tuple(int(c) for c in np.clip(trunk * 1.35 + 10, 0, 255)),
        width=max(1, tw // 2),
    )

    if bare:
        _paint_branches(cv, draw, x + lean, y - height * top_frac, height, trunk)
        return

    fol = np.asarray(season.foliage, np.float32)
    base = fol[rng.integers(len(fol))] + rng.normal(0, 8, 3)
    dark = _mix(_lit(light, base * 0.55), haze, aerial)
    mid = _mix(_lit(light, base), haze, aerial)
    bright = _mix(_lit(light, _mix(base, season.foliage_light, 0.6)), haze, aerial)
    if kind == "round":
        rx, ry = height * rng.uniform(0.25, 0.4), height * rng.uniform(0.26, 0.38)
        cx, cy = x + lean, y - height + ry
    elif kind == "poplar":
        rx, ry = height * rng.uniform(0.1, 0.15), height * 0.45
        cx, cy = x + lean, y - height + ry
    else:
        rx, ry = height * rng.uniform(0.18, 0.26), height * 0.45
        cx, cy = x + lean, y - height + ry
    shadow_fill = tuple(int(c) for c in np.clip(dark, 0, 255))
    if kind == "conifer":
        triangle = [(cx, cy - ry), (cx + rx * 0.8, cy + ry * 0.85), (cx - rx * 0.8, cy + ry * 0.85)]
        draw.polygon(triangle, fill=shadow_fill)
    else:
        draw.ellipse((cx - rx * 0.8, cy - ry * 0.85, cx + rx * 0.8, cy + ry * 0.85), fill=shadow_fill)

    dab_len = max(2.0, height * (0.14 if kind == "round" else 0.1))
    k = int(np.clip(3.0 * math.pi * rx * ry / (dab_len * dab_len * 0.4), 8, 500))
    if kind == "conifer":
        ty = rng.random(k)  # 0 top, 1 bottom: wider towards the foot
        tx = rng.uniform(-1, 1, k) * (0.15 + 0.85 * ty)
        ty = ty * 2 - 1
    else:
        a = rng.uniform(0, 2 * math.pi, k)
        d = np.sqrt(rng.random(k)) * rng.uniform(0.75, 1.05, k)
        tx, ty = d * np.cos(a), d * np.sin(a)
    px = (cx + tx * rx).astype(np.float32)
    py = (cy + ty * ry).astype(np.float32)
    # Lit from the sun's side and from above; order dabs dark to light so highlights sit on top.
    lit = np.clip(0.5 + 0.45 * tx * cv.light_side - 0.35 * ty + rng.normal(0, 0.2, k), 0, 1)
    shadow_side = _mix(dark, mid, (lit * 2)[:, None])
    sun_side = _mix(mid, bright, (lit * 2 - 1)[:, None])
    colour = np.where((lit < 0.5)[:, None], shadow_side, sun_side)
    colour = _accent(rng, colour, [tuple(c) for c in fol], 0.15, (0.3, 0.6))
    if season.name == "winter" and kind == "conifer":
        colour = _accent(rng, colour, [(240, 242, 248)], 0.3, (0.6, 0.9))
    colour = _jitter(rng, colour, 7.0, 8.0)
    order = np.argsort(lit, kind="stable")
    ln = (rng.uniform(0.7, 1.3, k) * dab_len).astype(np.float32)
    wd = np.maximum(ln * rng.uniform(0.4, 0.6, k), 1.2).astype(np.float32)
    if kind == "conifer":
        angle = (np.sign(tx) * 0.5 + rng.normal(0, 0.25, k)).astype(np.float32)
    else:
        angle = (math.pi / 2 + rng.normal(0, 0.6, k)).astype(np.float32)
    _draw_dabs(draw, _Dabs(px[order], py[order], ln[order], wd[order], angle[order], colour[order]))


def _paint_branches(cv, draw, x, y, height, trunk) -> None:
    """A bare winter tree: a few forking strokes, thinner as they go."""
    rng = cv.rng
    col = tuple(int(c) for c in np.clip(trunk, 0, 255))
    stack = [(x, y, -math.pi / 2, height * 0.3, max(1, int(height * 0.04)))]
    for _ in range(24):
        if not stack:
            break
        bx, by, ang, ln, wd = stack.pop(0)
        ex, ey = bx + ln * math.cos(ang), by + ln * math.sin(ang)
        draw.line([(bx, by), (ex, ey)], fill=col, width=wd)
        if ln > height * 0.06:
            for side in (-1, 1):
                stack.append((ex, ey, ang + side * rng.uniform(0.25, 0.7), ln * rng.uniform(0.6, 0.8), max(1, wd - 1)))


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
