"""Opening untrusted image files safely and turning any of them into 8-bit RGB.

Scraped and imported files are whatever the internet gave us: empty files, HTML saved
with a .jpg name, truncated downloads, decompression bombs, CMYK JPEGs, 16-bit PNGs,
palette GIFs with transparency. Every function here either returns a clean image or
raises `BadImage` with a short reason that the caller reports and moves past.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Pillow's own limit raises on first open; we check dimensions ourselves so the reason
# reported to the user names our option, and so the limit is the caller's choice.
Image.MAX_IMAGE_PIXELS = None

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
DEFAULT_MAX_PIXELS = 178_956_970  # twice Pillow's warning threshold, where Pillow itself refuses


class BadImage(Exception):
    """The file is not a usable image; the message is the reason, e.g. 'truncated file'."""


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def open_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open lazily (header only) and check the declared size against `max_pixels`."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise BadImage("empty file")
        fp = io.BytesIO(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size == 0:
                raise BadImage("empty file")
        except OSError as e:
            raise BadImage(f"unreadable: {e.strerror or e}") from None
        fp = path
    try:
        img = Image.open(fp)
    except Image.UnidentifiedImageError:
        raise BadImage("not an image (unrecognised format)") from None
    except OSError as e:
        raise BadImage(f"unreadable: {e}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadImage("zero-sized image")
    if w * h > max_pixels:
        raise BadImage(f"too many pixels ({w}x{h} > {max_pixels:,}; a decompression bomb?)")
    return img


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) as displayed, i.e. after the EXIF orientation is applied."""
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        # Pillow's PNG getexif() decodes the whole image looking for an eXIf chunk after the
        # pixels: that made probing slow and, worse, swallowed decoding errors here so that a
        # later load_rgb() returned the half-decoded pixels of a corrupt file as if fine.
        return w, h
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is not worth rejecting the picture for
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def load_rgb(img: Image.Image) -> Image.Image:
    """Decode fully, apply EXIF orientation, and convert any mode to 8-bit RGB.

    Transparency is composited on black (what a viewer shows for a dataset that has no
    alpha channel and what NVIDIA's dataset tool does); 16-bit and 32-bit integer
    images are scaled, not clipped, to 8 bits.
    """
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except BadImage:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError… on bad data
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            raise BadImage("truncated file") from None
        raise BadImage(f"cannot decode: {msg}") from None
    return to_rgb8(img)


def to_rgb8(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float32)
        if mode == "F":
            hi = 1.0 if a.max(initial=0.0) <= 1.0 else 255.0
            a = a / hi * 255.0
        elif mode != "I" or a.max(initial=0) > 255:
            a = a / 257.0
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


def check_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int, str]:
    """(width, height, format) if `data` fully decodes as an image, else `BadImage`."""
    img = open_image(data, max_pixels)
    fmt = img.format or "unknown"
    size = oriented_size(img)
    load_rgb(img)
    return size[0], size[1], fmt
