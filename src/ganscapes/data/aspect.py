"""The four ways of making a non-square painting square (the GANscapes article, §"Aspect ratio").

StyleGAN trains on squares; paintings are not square. The article compared:

- **letterbox**: fit the whole picture inside the square, black bars fill the rest;
- **center-crop**: keep the largest centred square, losing the sides;
- **squeeze**: resize to the square, distorting shapes;
- **center-rect** (the article's choice): crop the centred rectangle of the dataset's
  mean aspect ratio (about 1.27:1 for impressionist landscapes), then squeeze that to
  the square. Little is cut and little is distorted, and `post` stretches generated
  images back to 1.27:1 so the distortion cancels out.

Geometry lives in pure functions of sizes so it can be tested exactly; `apply_format`
does the pixel work.
"""

from __future__ import annotations

import math
from enum import Enum

from PIL import Image

from ganscapes.errors import SettingError


class Format(str, Enum):
    CENTER_RECT = "center-rect"
    LETTERBOX = "letterbox"
    CENTER_CROP = "center-crop"
    SQUEEZE = "squeeze"


Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive)


def centred_box(width: int, height: int, aspect: float) -> Box:
    """The largest centred rectangle of width/height ratio `aspect` inside the image.

    A wider image loses its sides, a taller one its top and bottom. When the two sides
    to cut differ by one pixel, the extra pixel goes from the right/bottom.
    """
    if aspect <= 0:
        raise ValueError("aspect must be positive")
    if width / height > aspect:  # too wide: cut the sides
        crop_w = max(1, min(width, round(height * aspect)))
        left = (width - crop_w) // 2
        return left, 0, left + crop_w, height
    crop_h = max(1, min(height, round(width / aspect)))
    top = (height - crop_h) // 2
    return 0, top, width, top + crop_h


def crop_box(fmt: Format, width: int, height: int, aspect: float | None = None) -> Box:
    """The part of the source that ends up in the square, in source pixel coordinates."""
    fmt = Format(fmt)
    if fmt is Format.CENTER_RECT:
        if aspect is None:
            raise ValueError("center-rect needs an aspect ratio")
        return centred_box(width, height, aspect)
    if fmt is Format.CENTER_CROP:
        return centred_box(width, height, 1.0)
    return 0, 0, width, height  # letterbox and squeeze keep everything


def letterbox_placement(width: int, height: int, res: int) -> Box:
    """Where the scaled picture sits inside the res×res square (the rest is black bars)."""
    scale = res / max(width, height)
    w = max(1, min(res, round(width * scale)))
    h = max(1, min(res, round(height * scale)))
    left = (res - w) // 2
    top = (res - h) // 2
    return left, top, left + w, top + h


def apply_format(img: Image.Image, fmt: Format, res: int, aspect: float | None = None) -> Image.Image:
    """Make `img` (RGB, already oriented) a res×res square in the given format.

    Lanczos with Pillow's `reducing_gap` first shrinks by whole factors with a box
    filter and then finishes with Lanczos: visually the same as plain Lanczos, several
    times faster on 3000-pixel sources.
    """
    fmt = Format(fmt)
    box = crop_box(fmt, img.width, img.height, aspect)
    if fmt is Format.LETTERBOX:
        left, top, right, bottom = letterbox_placement(img.width, img.height, res)
        inner = _resize(img, (right - left, bottom - top), box)
        canvas = Image.new("RGB", (res, res), (0, 0, 0))
        canvas.paste(inner, (left, top))
        return canvas
    return _resize(img, (res, res), box)


def _resize(img: Image.Image, size: tuple[int, int], box: Box) -> Image.Image:
    if box == (0, 0, img.width, img.height) and size == img.size:
        return img.copy()
    return img.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)


# Width / height from 1:10 to 10:1: what prepare crops to, what a dataset, a model and a
# recipe may record, and what post restores. Beyond it a picture is a strip, and a
# recorded 1e-7 would make post resize to billions of pixels.
ASPECT_RANGE = (0.1, 10.0)


def is_aspect(value) -> bool:
    """Whether `value` is a number within ASPECT_RANGE (a recorded aspect may be anything)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return ok and ASPECT_RANGE[0] <= value <= ASPECT_RANGE[1]


def mean_aspect(sizes: list[tuple[int, int]]) -> float:
    """Mean of width/height over the images (the article's 1.27 for its landscapes)."""
    if not sizes:
        raise ValueError("no image sizes to average")
    return sum(w / h for w, h in sizes) / len(sizes)


def parse_aspect(value: str) -> float | None:
    """An aspect setting as typed: 'auto' (None: use the sources' mean), 1.27, or 4:3.

    A ratio is accepted because formats are usually named that way (4:3, 16:9). The
    range is checked where the number is used (`PrepareConfig`, `ganscapes post`); the
    command line names its own option in the error (`--aspect`).
    """
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value.split(":")[0]) / float(value.split(":")[1]) if ":" in value else float(value)
    except (ValueError, ZeroDivisionError):
        raise SettingError(
            "aspect", f"must be 'auto', a number such as 1.27, or a ratio such as 4:3, not {value!r}."
        ) from None
