"""post: the finishing touches of GANscapes — contrast stretch and the original aspect.

StyleGAN's pictures come out slightly flat and square. Per channel, the `low` and
`high` percentiles (0.1 and 99.9 in the article) are mapped to 0 and 255, in floating
point, rounding and clipping only at the end; a channel whose two percentiles are equal
(a flat channel) is left as it is rather than divided by zero. Then the picture is
resized to the aspect ratio the training images had before `prepare` squeezed them
(1.27:1 for the article's center-rect data): the width is kept, or set with `width`, and
the height becomes width / aspect, with Lanczos resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ganscapes.data.aspect import is_aspect
from ganscapes.data.images import BadImage, load_rgb, open_image
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import writable_folder
from ganscapes.make.recipes import (
    ASPECT_RANGE,
    MAX_PICTURE_PIXELS,
    MAX_WIDTH,
    OtherRecipe,
    PostFields,
    PostRecipe,
    Recipe,
    parse_recipe,
)
from ganscapes.provenance import pixels_to_image, read_recipe, write_png

DEFAULT_LOW, DEFAULT_HIGH = 0.1, 99.9


@dataclass(frozen=True)
class PostSettings:
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH
    aspect: float | None = None  # None: "auto", from the picture's recipe or the model
    width: int | None = None  # None: keep the picture's width

    def __post_init__(self) -> None:
        if not (0 <= self.low < self.high <= 100):
            raise UserError(
                f"The percentiles must satisfy 0 <= low < high <= 100, not low {self.low:g} and high {self.high:g}."
            )
        lo, hi = ASPECT_RANGE
        if self.aspect is not None and not (lo <= self.aspect <= hi):
            raise SettingError("aspect", f"must be between {lo:g} and {hi:g} (width / height), not {self.aspect:g}.")
        if self.width is not None and not (1 <= self.width <= MAX_WIDTH):
            raise SettingError("width", f"must be between 1 and {MAX_WIDTH} pixels, not {self.width}.")


def stretch_contrast(pixels: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH) -> np.ndarray:
    """Per channel, map the `low`/`high` percentiles to 0/255; uint8 [H, W, C] in and out."""
    x = pixels.astype(np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        channel = x[..., c]
        lo, hi = np.percentile(channel, [low, high])
        if hi > lo:
            out[..., c] = (channel - lo) * (255.0 / (hi - lo))
        else:
            out[..., c] = channel  # flat channel: nothing to stretch
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def restore_aspect(pixels: np.ndarray, aspect: float, width: int | None = None) -> np.ndarray:
    """Resize to width × round(width / aspect) (width kept unless given), Lanczos."""

    w = width or pixels.shape[1]
    h = max(1, int(round(w / aspect)))
    check_picture_size(w, h)
    image = pixels_to_image(pixels)
    resized = np.asarray(image.resize((w, h), Image.Resampling.LANCZOS))
    return resized[..., None] if resized.ndim == 2 else resized


def check_picture_size(width: int, height: int) -> None:
    """Refuse, before allocating it, a picture of more than MAX_PICTURE_PIXELS (16 megapixels).

    Each setting is bounded on its own (width 16,384, aspect 0.1), but together they could
    ask for 16,384 × 163,840 pixels: 8 GB as bytes, far more while post works in floats.
    """
    if width * height > MAX_PICTURE_PIXELS:
        raise UserError(
            f"The finished picture would be {width:,} × {height:,} pixels, more than the "
            f"{MAX_PICTURE_PIXELS:,} (16 megapixels) ganscapes makes; choose a smaller width or an aspect nearer 1."
        )


def post_pixels(pixels: np.ndarray, settings: PostSettings, aspect: float) -> np.ndarray:
    stretched = stretch_contrast(pixels[..., :3] if pixels.shape[-1] == 4 else pixels, settings.low, settings.high)
    return restore_aspect(stretched, aspect, settings.width)


def resolve_aspect(settings: PostSettings, recipe: dict | None, model_aspect: float | None) -> tuple[float, str]:
    """(aspect, where it came from): the option, the picture's recipe, the model, or 1.0."""
    if settings.aspect is not None:
        return settings.aspect, "option"
    # A recorded aspect outside ASPECT_RANGE (a damaged or crafted recipe: 1e-7 would ask
    # for a picture millions of pixels tall) counts as none, like one that is not a number.
    recorded = recipe.get("aspect") if isinstance(recipe, dict) else None
    for value, origin in ((recorded, "recipe"), (model_aspect, "model")):
        if is_aspect(value):
            return float(value), origin
    return 1.0, "none"


@dataclass
class PostResult:
    outputs: list[Path]
    aspects: list[tuple[float, str]]


def post_files(
    images: list[Path], out: Path, settings: PostSettings, model_aspect: float | None = None, suffix: str = ""
) -> PostResult:
    """Post-process image files into `out` (same names plus `suffix`, always PNG), recipes extended."""

    if not images:
        raise UserError("No images to post-process.")
    out = Path(out)
    seen: dict[str, Path] = {}
    for path in map(Path, images):  # a.png and a.jpg, or x/a.png and y/a.png, would both become OUT/a.png
        name = path.stem + suffix + ".png"
        if name in seen and seen[name].resolve() != path.resolve():
            raise UserError(
                f"{seen[name]} and {path} would both be written as {out / name}; post them into separate folders."
            )
        seen[name] = path
    writable_folder(out)
    outputs, aspects = [], []
    for path in images:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path} does not exist.")
        try:
            pixels = np.asarray(load_rgb(open_image(path, MAX_PICTURE_PIXELS)))
        except BadImage as e:
            raise UserError(f"{path} is not a readable image ({e}).") from None
        source = read_recipe(path, required=False) if _is_png(path) else None
        aspect, origin = resolve_aspect(settings, source, model_aspect)
        dest = out / (path.stem + suffix + ".png")
        if dest.resolve() == path.resolve():
            raise SettingError("out", f"{out} would overwrite {path}; choose another folder.")
        recipe = PostRecipe(
            source=_as_recipe(source),
            source_file=path.name,
            post=PostFields(settings.low, settings.high, aspect, settings.width),
            model_hash=source["model_hash"] if source and "model_hash" in source else None,
        )
        outputs.append(write_png(dest, post_pixels(pixels, settings, aspect), recipe.to_json()))
        aspects.append((aspect, origin))
    return PostResult(outputs, aspects)


def _as_recipe(source: dict | None) -> Recipe | None:
    """The input's recipe, typed; one this version cannot read is kept as it is (its
    picture can still be finished, only not rebuilt)."""
    if source is None:
        return None
    try:
        return parse_recipe(source)
    except UserError:
        return OtherRecipe(data=source)


def _is_png(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"
