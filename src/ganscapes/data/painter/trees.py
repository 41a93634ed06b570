"""Trees, painted last and far to near: shadow, trunk, then foliage dabs lit from the sun's side."""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from ganscapes.data.painter.dabs import _accent, _Dabs, _draw_dabs, _jitter
from ganscapes.data.painter.palettes import _HAZE_BLUE, _TRUNK, _Light, _lit, _mix, _Season
from ganscapes.data.painter.scene import _Scene
from ganscapes.data.painter.underpainting import _Canvas


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
