"""Recipes: every PNG ganscapes writes says how to make it again.

The recipe is JSON in the PNG text chunk `ganscapes`: package version, the model's
content hash, and whatever the stage needs to rebuild the pixels — seeds or latent
vectors, ψ, noise mode, class, layer range, post-processing settings, prompt and score.
`ganscapes info` prints it and `ganscapes reproduce` rebuilds the image from it.

Latent vectors are stored exactly: float32 bytes in base64 (`encode_array`), because a
decimal rendering would round them.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ganscapes import __version__
from ganscapes.errors import UserError
from ganscapes.fileio import atomic_path

RECIPE_KEY = "ganscapes"
_PNG_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def png_info(recipe: dict, keep: dict[str, str] | None = None):
    """A PngInfo with `recipe` (plus the package version) and any other text chunks to keep."""

    info = PngImagePlugin.PngInfo()
    for key, value in (keep or {}).items():
        if key != RECIPE_KEY:
            info.add_text(key, value)
    info.add_text(RECIPE_KEY, json.dumps({"version": __version__, **recipe}))
    return info


def pixels_to_image(pixels: np.ndarray):
    """uint8 pixels [H, W] or [H, W, C] (C = 1 to 4) as a PIL image of the matching mode."""

    channels = pixels.shape[-1] if pixels.ndim == 3 else 1
    array = pixels[..., 0] if pixels.ndim == 3 and channels == 1 else pixels
    return Image.fromarray(np.ascontiguousarray(array), _PNG_MODES[channels])


def write_png(path: Path, pixels: np.ndarray, recipe: dict, compress_level: int = 1) -> Path:
    """Write uint8 pixels [H, W, C] as a PNG carrying `recipe`, atomically."""
    image = pixels_to_image(pixels)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=compress_level, pnginfo=png_info(recipe))
    return Path(path)


def read_text_chunks(source: Path | bytes) -> dict[str, str]:
    """All PNG text chunks of a file ({} for other formats)."""

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            img.load()
            return dict(getattr(img, "text", None) or {})
    except FileNotFoundError:
        raise UserError(f"{source} does not exist.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError(f"{source} is not a readable image ({e}).") from None


def read_recipe(source: Path | bytes, required: bool = True) -> dict | None:
    """The recipe in a PNG; a missing one is a UserError when `required`."""
    raw = read_text_chunks(source).get(RECIPE_KEY)
    if raw is None:
        if required:
            raise UserError(f"{source} carries no ganscapes recipe; only PNGs written by ganscapes can be reproduced.")
        return None
    try:
        recipe = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: nested thousands deep
        raise UserError(f"The ganscapes recipe in {source} is not valid JSON.") from None
    if not isinstance(recipe, dict):
        raise UserError(f"The ganscapes recipe in {source} is not a JSON object.")
    return recipe


def encode_array(a: np.ndarray) -> dict:
    """An exact, JSON-safe form of a float32 array."""
    a = np.asarray(a, dtype=np.float32)  # not ascontiguousarray, which turns a 0-d array into [1]
    return {"dtype": "float32", "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}


MAX_ARRAY_VALUES = 1 << 22  # floats in one stored array: far beyond a latent (18 × 512), far below harm


def decode_array(d: dict) -> np.ndarray:
    """The float32 array `encode_array` stored; its shape and size are checked before decoding."""
    try:
        if not isinstance(d, dict) or d.get("dtype", "float32") != "float32":
            raise ValueError("not a float32 array")
        shape, text = d["shape"], d["base64"]
        if not isinstance(shape, list) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"bad shape {str(shape)[:40]}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if count > MAX_ARRAY_VALUES:
            raise ValueError(f"{count:,} values, more than {MAX_ARRAY_VALUES:,}")
        if not isinstance(text, str) or len(text) != 4 * -(-4 * count // 3):
            raise ValueError(f"{4 * count} bytes do not match the base64 text")
        data = base64.b64decode(text, validate=True)
        return np.frombuffer(data, dtype=np.float32).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"A latent vector in the recipe is damaged ({e}).") from None
