"""reproduce: rebuild a PNG from the recipe it carries and compare the pixels.

The recipe is read into its typed class (`recipes.parse_recipe`, which refuses damaged
fields by name), and `REBUILDERS` says how each kind is rebuilt:

- `generate` (also the top picks of rank, which add prompt and score): the seed's z,
  mapped with the recorded ψ, cutoff and class, painted with the recorded noise mode;
- `latent` (the form and style pictures of mix, guided-search results): the recorded
  seed or the exact w stored in the recipe;
- `mix`: the form's and the style's w, mixed on the recorded layers;
- `post`: the source picture rebuilt from its own recipe, then post-processed with the
  recorded settings;
- edits along semantic directions (`--edit`, `make.directions`), recorded in any of
  these, move the w before it is painted;
- `video`: one frame of a latent walk (a PNG that `video --keep-frames` wrote), its w
  recomputed from the keyframes (`make.video.Walk`).

Random noise is redrawn from the recorded generator seed for a call of the recorded
number of rows; other rows do not influence a picture, so its own row is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ganscapes.data.images import BadImage, open_image, to_rgb8
from ganscapes.device import resolve_device
from ganscapes.errors import SettingError, UserError, first_line
from ganscapes.make.directions import apply_edits, check_edits
from ganscapes.make.mix import mix_ws
from ganscapes.make.paint import paint
from ganscapes.make.post import PostSettings, check_picture_size, post_pixels
from ganscapes.make.recipes import (
    MAX_PICTURE_PIXELS,
    GenerateRecipe,
    LatentRecipe,
    LatentSource,
    MixRecipe,
    Noise,
    PaintedRecipe,
    PostRecipe,
    Recipe,
    VideoRecipe,
    kind_of,
    parse_recipe,
)
from ganscapes.make.seeds import map_seeds
from ganscapes.provenance import pixels_to_image, read_recipe

Rebuilder = Callable[[Recipe, object, object], np.ndarray]  # (recipe, model, device) → pixels [H, W, C]
REBUILDERS: dict[str, Rebuilder] = {}


def rebuilds(kind: str) -> Callable[[Rebuilder], Rebuilder]:
    """Register the function that rebuilds recipes of `kind`."""

    def add(fn: Rebuilder) -> Rebuilder:
        REBUILDERS[kind] = fn
        return fn

    return add


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

    path = Path(path)
    raw = read_recipe(path)
    recipe = parse_recipe(raw)
    made_by = recipe.made_by()
    if made_by and made_by != model.model_hash and not force:
        raise SettingError(
            "force",
            f"is needed to rebuild {path.name} anyway: it was made by model {made_by[:12]}, "
            f"but {model.path or 'this model'} is {model.model_hash[:12]}.",
        )
    if not made_by and not isinstance(recipe, PostRecipe):
        raise UserError(f"The recipe in {path.name} names no model_hash, so it cannot be rebuilt.")
    dev = resolve_device(device)
    image = _open_picture(path)  # before the model runs: a decompression bomb is refused from its header
    pixels = rebuild(recipe, model, dev)
    try:
        with image:
            original = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path} is not a readable image ({first_line(e)}).") from None
    if original.ndim == 2:
        original = original[..., None]
    return Reproduction(pixels=pixels, original=original, recipe=raw)


def _open_picture(path: Path) -> Image.Image:
    """The picture, opened (its header read) but not decoded; no ganscapes picture has more
    than MAX_PICTURE_PIXELS, so a larger one is refused before its pixels take memory."""
    try:
        return open_image(path, MAX_PICTURE_PIXELS)
    except BadImage as e:
        raise UserError(f"{path} is not a readable image ({e}).") from None


def rebuild(recipe: dict | Recipe, model, dev) -> np.ndarray:
    """Pixels [H, W, C] uint8 for a recipe (its JSON or its typed form)."""
    typed = recipe if isinstance(recipe, Recipe) else parse_recipe(recipe)
    kind = kind_of(typed)
    rebuilder = REBUILDERS.get(kind) if isinstance(kind, str) else None
    if rebuilder is None:
        raise UserError(f"Cannot rebuild a recipe of kind {kind!r}; ganscapes rebuilds {', '.join(REBUILDERS)}.")
    return rebuilder(typed, model, dev)


def _painted(recipe: PaintedRecipe, w: np.ndarray, G) -> np.ndarray:
    """Paint w as the recipe's picture was painted: with random noise, in a call of the
    recorded rows, seeded as recorded, keeping the picture's own row. Recorded edits along
    semantic directions move w first, as the picture's command moved it."""
    check_edits(recipe.edits, G)
    w = apply_edits(w, recipe.edits)
    if recipe.noise_mode == "random":
        noise = recipe.noise or Noise()
        batch = np.repeat(w[None], noise.batch_rows, axis=0)
        return paint(G, batch, "random", noise.batch_rows, noise_seed=noise.seed)[noise.row]
    return paint(G, w[None], recipe.noise_mode)[0]


def _generator(model, dev):
    return model.G_ema.to(dev).eval().requires_grad_(False)


@rebuilds(GenerateRecipe.kind)
def _rebuild_generate(recipe: GenerateRecipe, model, dev) -> np.ndarray:
    G = _generator(model, dev)
    return _painted(recipe, _w_of(recipe.source(), G, dev), G)


@rebuilds(LatentRecipe.kind)
def _rebuild_latent(recipe: LatentRecipe, model, dev) -> np.ndarray:
    G = _generator(model, dev)
    return _painted(recipe, _w_of(recipe.latent, G, dev), G)


@rebuilds(MixRecipe.kind)
def _rebuild_mix(recipe: MixRecipe, model, dev) -> np.ndarray:
    G = _generator(model, dev)
    form, style = _w_of(recipe.form, G, dev), _w_of(recipe.style, G, dev)
    if any(not 0 <= i < G.num_ws for i in recipe.layers):
        raise UserError(f"The recipe mixes layers {recipe.layers}, but this model has layers 0 to {G.num_ws - 1}.")
    return _painted(recipe, mix_ws(form, style, recipe.layers), G)


@rebuilds(PostRecipe.kind)
def _rebuild_post(recipe: PostRecipe, model, dev) -> np.ndarray:

    if recipe.source is None:
        raise UserError("This picture was post-processed from an image without a recipe; its source cannot be rebuilt.")
    p = recipe.post
    if p.width is not None:  # the finished size is known: refuse it before painting anything
        check_picture_size(p.width, max(1, int(round(p.width / p.aspect))))
    pixels = rebuild(recipe.source, model, dev)
    # post read its input as 8-bit RGB; do the same to the rebuilt source
    rgb = np.asarray(to_rgb8(pixels_to_image(pixels)))
    return post_pixels(rgb, PostSettings(low=p.low, high=p.high, width=p.width, aspect=p.aspect), p.aspect)


@rebuilds(VideoRecipe.kind)
def _rebuild_video(recipe: VideoRecipe, model, dev) -> np.ndarray:
    from ganscapes.make.video import rebuild_frame

    if recipe.frame is None:
        raise UserError("This is a whole video's recipe; name the frame to rebuild (reproduce VIDEO.mp4 --frame N).")
    return rebuild_frame(recipe, recipe.frame, model, dev)


def _w_of(source: LatentSource, G, dev) -> np.ndarray:
    """w [num_ws, w_dim] of a seed (mapped as generate maps it) or an exact w."""
    if source.w is not None:
        if source.w.shape != (G.num_ws, G.w_dim):
            raise UserError(
                f"The recipe's latent is {list(source.w.shape)}, but this model needs [{G.num_ws}, {G.w_dim}]."
            )
        return source.w
    return map_seeds(G, [source.seed], source.psi, source.truncation_cutoff, source.class_idx, dev)[0]
