"""mix: the form of one painting with the style of another, as a forms × styles grid.

The synthesis network reads one w per layer (`num_ws` of them: 18 at 1024², 14 at 256²),
from the coarsest to the finest. Layers 0–3 (4²–8²) set the composition — where the
horizon, the trees and the water are; layers 4–7 (16²–32²) the middle-sized shapes;
layers 8 and up (64² and finer) the palette, light and brushwork (Karras et al., 2019,
§3.1, "coarse / middle / fine styles"). A cell of the grid is its column's *form* w with
the rows of the chosen layer range taken from its row's *style* w:

    cell_w[i] = style_w[i] if i in layers else form_w[i]

`fine` is layers 8 to num_ws − 1, the GANscapes figure's choice at 1024²: a cell keeps
its form's composition and takes its style's colours and texture. Models of 32² or less
have no 64² layers; there `fine` means the upper half of the layers (num_ws // 2 and up).

The default, `auto`, chooses by resolution: the style's layers start at resolution
res / 16, kept between 16² and 64² — `fine` at 1024², from 32² at 512², from 16² at
256² and below. At 64², `fine` would be the last two layers only, which change a cell
by about 4/255 on average: no visible mixing; from 16² up the style brings its light
and palette.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ganscapes.data.grid import image_grid
from ganscapes.device import resolve_device
from ganscapes.errors import SettingError, UserError
from ganscapes.make.directions import apply_edits, check_edits
from ganscapes.make.latents import MIX_FILE, LatentSet, load_latent_rows
from ganscapes.make.paint import ROW_GROUP, paint
from ganscapes.make.recipes import Edit, LatentRecipe, LatentSource, MixGridRecipe, MixRecipe, Noise
from ganscapes.provenance import write_png

LAYER_PRESETS = ("auto", "coarse", "middle", "fine", "all", "none")
DEFAULT_LAYERS = "auto"
GRID_NAME = "grid.png"


def layer_range(spec: str, num_ws: int) -> list[int]:
    """The w rows a spec names: a preset, `A-B` (inclusive), `A-` (to the end), `A,B,C`."""
    text = spec.strip().lower()
    fine_start = 8 if num_ws > 8 else num_ws // 2
    presets = {
        "auto": range(auto_style_start(num_ws), num_ws),
        "coarse": range(0, min(4, fine_start)),
        "middle": range(min(4, fine_start), fine_start),
        "fine": range(fine_start, num_ws),
        "all": range(0, num_ws),
        "none": range(0),
        "": range(0),
    }
    if text in presets:
        return list(presets[text])
    layers: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        m = re.fullmatch(r"(\d+)\s*-\s*(\d*)|(\d+)", part)
        if m is None:
            raise UserError(
                f"Cannot read the layer range {spec!r}; use auto, coarse, middle, fine, all, none, 0-6, 8- or 0,2,4."
            )
        first = int(m.group(1) if m.group(3) is None else m.group(3))
        last = (int(m.group(2)) if m.group(2) else num_ws - 1) if m.group(3) is None else first
        if max(first, last) >= num_ws:  # first: `8-` on a model with 8 layers names no layer at all
            raise UserError(
                f"Layer {max(first, last)} does not exist: this model has layers 0 to {num_ws - 1} (num_ws = {num_ws})."
            )
        if last < first:
            raise UserError(f"The layer range {part!r} runs backwards; write {last}-{first}.")
        layers.extend(range(first, last + 1))
    return sorted(set(layers))


def auto_style_start(num_ws: int) -> int:
    """The first layer `auto` takes from the style: that of resolution res / 16, kept within 16²–64².

    Layer i of a synthesis network works at resolution 2 ** (i // 2 + 2), and a network of
    resolution res reads num_ws = 2 · log2(res) − 2 layers.
    """
    log2_res = (num_ws + 2) // 2
    log2_start = min(6, max(4, log2_res - 4))
    first = 2 * log2_start - 4
    return first if first < num_ws else num_ws // 2


def mix_ws(form: np.ndarray, style: np.ndarray, layers: list[int]) -> np.ndarray:
    """form [num_ws, w_dim] with the rows in `layers` replaced by style's."""
    w = np.array(form, dtype=np.float32, copy=True)
    w[layers] = style[layers]
    return w


def seed_latents(G, seeds: list[int], psi: float, cutoff: int | None, class_idx: int | None, dev) -> LatentSet:
    """Forms or styles from seeds, mapped as generate maps them."""
    return LatentSet.from_seeds(G, seeds, psi, cutoff, class_idx, dev)


def file_latents(spec: str, model) -> LatentSet:
    """Forms or styles from `FILE.npz:ROWS`; their recipes carry the exact ws."""
    return load_latent_rows(spec, model).exact()


@dataclass
class MixResult:
    out: Path
    grid: Path
    forms: list[Path]
    styles: list[Path]
    cells: list[list[Path]]  # cells[j][i]: style j (row), form i (column)
    layers: list[int]
    latents: Path


def style_mix(
    model,
    forms: LatentSet,
    styles: LatentSet,
    layers: list[int],
    out: Path,
    noise_mode: str = "const",
    device="cpu",
    cell_size: int | None = None,
    labels: bool = True,
    batch: int = 8,
    edits: list[Edit] | None = None,
) -> MixResult:
    """Write the grid, every cell, the form and style pictures and `mix.npz` into `out`.

    `edits` move every picture's w (forms, styles and cells, after mixing) along semantic
    directions; an edit adds to rows, so mixing edited ws gives the same cells.
    """

    if len(forms) == 0 or len(styles) == 0:
        raise UserError("Style mixing needs at least one form and one style.")
    if batch < 1:
        raise SettingError("batch", f"must be at least 1, not {batch}.")
    dev = resolve_device(device)
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    for i in layers:
        if not 0 <= i < G.num_ws:
            raise UserError(f"Layer {i} does not exist: this model has layers 0 to {G.num_ws - 1}.")
    check_edits(edits, G)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingError("out", f"{out} exists and is not a folder.")
    for sub in ("forms", "styles", "cells"):  # ours alone: cleared so no picture of an earlier grid stays
        folder = out / sub
        if folder.is_dir():
            for old in folder.glob("[FS]*.png"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)

    nf, ns = len(forms), len(styles)
    cell_ws = np.stack([mix_ws(forms.w[i], styles.w[j], layers) for j in range(ns) for i in range(nf)])
    all_ws = apply_edits(np.concatenate([forms.w, styles.w, cell_ws]), edits)
    if noise_mode == "random":
        # One picture per call, its noise seeded by its index, so reproduce can redraw it.
        pixels = np.concatenate([paint(G, all_ws[k : k + 1], noise_mode, noise_seed=k) for k in range(len(all_ws))])
    else:
        pixels = paint(G, all_ws, noise_mode, batch)

    painting = {
        "model_hash": model.model_hash,
        "noise_mode": noise_mode,
        "device": str(dev),
        "aspect": model.meta.get("aspect"),
        "edits": edits or None,
    }

    def noise(k: int) -> Noise | None:
        return Noise(k, ROW_GROUP, 0) if noise_mode == "random" else None

    form_src = [LatentSource.from_json(s, f"forms[{i}]") for i, s in enumerate(forms.sources)]
    style_src = [LatentSource.from_json(s, f"styles[{j}]") for j, s in enumerate(styles.sources)]
    form_paths, style_paths, cells = [], [], []
    for i in range(nf):
        recipe = LatentRecipe(**painting, latent=form_src[i], label=f"F{i + 1}", noise=noise(i))
        form_paths.append(write_png(out / "forms" / f"F{i + 1}.png", pixels[i], recipe.to_json()))
    for j in range(ns):
        recipe = LatentRecipe(**painting, latent=style_src[j], label=f"S{j + 1}", noise=noise(nf + j))
        style_paths.append(write_png(out / "styles" / f"S{j + 1}.png", pixels[nf + j], recipe.to_json()))
    for j in range(ns):
        row = []
        for i in range(nf):
            k = nf + ns + j * nf + i
            recipe = MixRecipe(
                **painting,
                form=form_src[i],
                style=style_src[j],
                layers=layers,
                label=f"F{i + 1}-S{j + 1}",
                noise=noise(k),
            )
            row.append(write_png(out / "cells" / f"F{i + 1}-S{j + 1}.png", pixels[k], recipe.to_json()))
        cells.append(row)

    size = cell_size or min(G.img_resolution, 256)
    grid = _grid(pixels, nf, ns, size, labels)
    grid_recipe = MixGridRecipe(**painting, forms=form_src, styles=style_src, layers=layers)
    grid_path = write_png(out / GRID_NAME, grid, grid_recipe.to_json())

    # The cells are the file's rows (F1-S1, F2-S1, …): `mix.npz:3` is a latent like any other.
    latents = LatentSet(
        all_ws[nf + ns :],
        model_hash=model.model_hash,
        settings={"layers": layers},
        grid=(all_ws[:nf], all_ws[nf : nf + ns]),
    ).save(out / MIX_FILE)
    return MixResult(out, grid_path, form_paths, style_paths, cells, layers, latents)


def _grid(pixels: np.ndarray, nf: int, ns: int, size: int, labels: bool) -> np.ndarray:
    """Forms along the top, styles down the left, cells at (column i + 1, row j + 1)."""

    channels = pixels.shape[-1]

    def tile(k: int) -> Image.Image:
        return Image.fromarray(_as_rgb(pixels[k], channels))

    tiles: list[Image.Image | None] = [None, *(tile(i) for i in range(nf))]
    names: list[str | None] = [None, *(f"F{i + 1}" for i in range(nf))]
    for j in range(ns):
        tiles += [tile(nf + j), *(tile(nf + ns + j * nf + i) for i in range(nf))]
        names += [f"S{j + 1}", *([None] * nf)]
    grid = image_grid(
        tiles,
        nf + 1,
        size,
        fit="stretch",
        background=(255, 255, 255),
        labels=names if labels else None,
        label_at=(3, 2),
        label_box=(26, 14),  # a black box under the white name, on the picture itself
    )
    return np.asarray(grid)


def _as_rgb(p: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return np.repeat(p, 3, axis=-1)
    return p[..., :3]
