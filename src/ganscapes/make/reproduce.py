"""reproduce: rebuild a PNG from the recipe it carries and compare the pixels.

Kinds of recipe and how each is rebuilt:

- `generate` (also the top picks of rank, which add prompt and score): the seed's z,
  mapped with the recorded ψ, cutoff and class, painted with the recorded noise mode;
- `latent` (the form and style pictures of mix, guided-search results): the recorded
  seed or the exact w stored in the recipe;
- `mix`: the form's and the style's w, mixed on the recorded layers;
- `post`: the source picture rebuilt from its own recipe, then post-processed with the
  recorded settings.

Random noise is redrawn from the recorded generator seed for a call of the recorded
number of rows; other rows do not influence a picture, so its own row is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganscapes.errors import UserError
from ganscapes.provenance import decode_array, pixels_to_image, read_recipe

KINDS = ("generate", "latent", "mix", "post")


@dataclass
class Reproduction:
    pixels: np.ndarray  # rebuilt, [H, W, C] uint8
    original: np.ndarray
    recipe: dict

    @property
    def identical(self) -> bool:
        return self.pixels.shape == self.original.shape and bool(np.array_equal(self.pixels, self.original))

    @property
    def max_difference(self) -> int | None:
        """Largest per-pixel difference (None when the sizes differ)."""
        if self.pixels.shape != self.original.shape:
            return None
        return int(np.abs(self.pixels.astype(np.int16) - self.original.astype(np.int16)).max(initial=0))


def reproduce_file(path: Path, model, device="cpu", force: bool = False) -> Reproduction:
    """Rebuild the picture at `path` with `model`; a different model is refused unless `force`."""
    from PIL import Image

    from ganscapes.device import resolve_device

    path = Path(path)
    recipe = read_recipe(path)
    made_by = _model_hash(recipe)
    if made_by and made_by != model.model_hash and not force:
        raise UserError(
            f"{path.name} was made by model {made_by[:12]}, "
            f"but {model.path or 'this model'} is {model.model_hash[:12]}; "
            "pass --force to rebuild it anyway."
        )
    if not made_by and recipe.get("kind") != "post":
        raise UserError(f"The recipe in {path.name} names no model_hash, so it cannot be rebuilt.")
    dev = resolve_device(device)
    pixels = rebuild(recipe, model, dev)
    with Image.open(path) as img:
        original = np.asarray(img)
    if original.ndim == 2:
        original = original[..., None]
    return Reproduction(pixels=pixels, original=original, recipe=recipe)


def _model_hash(recipe: dict) -> str | None:
    if recipe.get("model_hash"):
        return str(recipe["model_hash"])
    source = recipe.get("source")
    return _model_hash(source) if isinstance(source, dict) else None


def rebuild(recipe: dict, model, dev) -> np.ndarray:
    """Pixels [H, W, C] uint8 for a recipe."""
    from ganscapes.make.latents import render_ws
    from ganscapes.make.mix import mix_ws

    kind = recipe.get("kind", "generate" if "seed" in recipe else None)
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    if kind == "post":
        return _rebuild_post(recipe, model, dev)
    if kind == "generate":
        w = _ws_of_source(recipe, G, dev)
    elif kind == "latent":
        w = _ws_of_source(_field(recipe, "latent"), G, dev)
    elif kind == "mix":
        form = _ws_of_source(_field(recipe, "form"), G, dev)
        style = _ws_of_source(_field(recipe, "style"), G, dev)
        layers = [int(i) for i in recipe.get("layers", [])]
        if any(not 0 <= i < G.num_ws for i in layers):
            raise UserError(f"The recipe mixes layers {layers}, but this model has layers 0 to {G.num_ws - 1}.")
        w = mix_ws(form, style, layers)
    else:
        raise UserError(f"Cannot rebuild a recipe of kind {kind!r}; ganscapes rebuilds {', '.join(KINDS)}.")
    noise_mode = recipe.get("noise_mode", "const")
    if noise_mode == "random":
        rows = int(recipe.get("batch_rows", 1))
        row = int(recipe.get("row", 0))
        batch = np.repeat(w[None], rows, axis=0)
        return render_ws(G, batch, noise_mode, dev, noise_seed=int(recipe.get("noise_seed", 0)), batch=rows)[row]
    return render_ws(G, w[None], noise_mode, dev)[0]


def _field(recipe: dict, key: str) -> dict:
    value = recipe.get(key)
    if not isinstance(value, dict):
        raise UserError(f"The recipe has no {key!r} entry, so it cannot be rebuilt.")
    return value


def _ws_of_source(source: dict, G, dev) -> np.ndarray:
    """w [num_ws, w_dim] from {"seed", "psi", …} or {"w": exact array}."""
    from ganscapes.make.latents import map_seeds

    if "w" in source:
        w = decode_array(source["w"])
        if w.shape != (G.num_ws, G.w_dim):
            raise UserError(f"The recipe's latent is {list(w.shape)}, but this model needs [{G.num_ws}, {G.w_dim}].")
        return w
    if "seed" not in source:
        raise UserError("The recipe holds neither a seed nor a latent vector.")
    cutoff = source.get("truncation_cutoff")
    return map_seeds(G, [int(source["seed"])], float(source.get("psi", 1.0)), cutoff, source.get("class_idx"), dev)[0]


def _rebuild_post(recipe: dict, model, dev) -> np.ndarray:
    from ganscapes.data.images import to_rgb8
    from ganscapes.make.post import PostSettings, post_pixels

    source = recipe.get("source")
    if not isinstance(source, dict):
        raise UserError("This picture was post-processed from an image without a recipe; its source cannot be rebuilt.")
    pixels = rebuild(source, model, dev)
    # post read its input as 8-bit RGB; do the same to the rebuilt source
    rgb = np.asarray(to_rgb8(pixels_to_image(pixels)))
    settings = dict(_field(recipe, "post"))
    aspect = float(settings.pop("aspect"))
    return post_pixels(
        rgb, PostSettings(**{k: settings.get(k) for k in ("low", "high", "width")}, aspect=aspect), aspect
    )
