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
import struct
import zlib
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_BYTES = 64 << 20  # all text chunks of one PNG, decompressed: Pillow's own default limit
MAX_RECIPE_DEPTH = 128  # nested JSON objects and lists; a post of a post … 32 deep is about 70
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


class _NotPng(ValueError):
    """The bytes break the PNG chunk structure; the message says where."""


def read_text_chunks(source: Path | bytes) -> dict[str, str]:
    """All PNG text chunks of a file ({} for other image formats), without decoding any pixels.

    A picture's pixels are not needed to read its recipe, and decoding them would let a
    small crafted file (a decompression bomb: billions of pixels of one colour) take
    gigabytes. The chunks are walked instead: text chunks are read (at most
    MAX_TEXT_BYTES of text in all, compressed ones decompressed within that budget), the
    others skipped by their length.
    """
    label = "the given bytes" if isinstance(source, bytes) else source
    try:
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as f:
            if f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE:
                return _png_text(f, label)
    except FileNotFoundError:
        raise UserError(f"{source} does not exist.") from None
    except IsADirectoryError:
        raise UserError(f"{source} is a folder, not an image.") from None
    except OSError as e:
        raise UserError(f"{source} cannot be read ({e.strerror or e}).") from None
    except _NotPng as e:
        raise UserError(f"{label} is not a readable image ({e}).") from None
    try:  # another format: its header says whether it is an image at all; it has no recipe
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source):
            return {}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"{label} is not a readable image ({e}).") from None


def _png_text(f, label) -> dict[str, str]:
    chunks: dict[str, str] = {}
    budget = MAX_TEXT_BYTES
    first = True
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise _NotPng("the file ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            raise _NotPng(f"a chunk claims {length:,} bytes")
        if first and kind != b"IHDR":
            raise _NotPng("it does not start with an IHDR chunk")
        first = False
        if kind == b"IEND":
            return chunks
        if kind not in _TEXT_CHUNKS:
            f.seek(length + 4, io.SEEK_CUR)  # the data and its CRC, unread
            continue
        if length > budget:
            raise _NotPng(f"it holds more than {MAX_TEXT_BYTES >> 20} MiB of text")
        data = f.read(length)
        crc = f.read(4)
        if len(data) < length or len(crc) < 4:
            raise _NotPng("the file ends inside a text chunk")
        if zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
            raise _NotPng(f"a {kind.decode()} chunk fails its CRC check")
        entry = _text_entry(kind, data, budget)
        if entry is not None:
            key, text = entry
            budget -= len(text)
            chunks[key] = text


def _text_entry(kind: bytes, data: bytes, budget: int) -> tuple[str, str] | None:
    """(key, text) of a tEXt, zTXt or iTXt chunk (the PNG specification, section 11.3.4);
    None for one that cannot be decoded, which Pillow also passes over."""
    key, sep, rest = data.partition(b"\0")
    if not sep or not 1 <= len(key) <= 79:
        return None
    if kind == b"tEXt":
        return key.decode("latin-1"), rest.decode("latin-1")
    if kind == b"zTXt":
        if rest[:1] != b"\0":
            return None
        raw = _inflate(rest[1:], budget)
        return None if raw is None else (key.decode("latin-1"), raw.decode("latin-1"))
    if len(rest) < 2:
        return None
    compressed, method, rest = rest[0], rest[1], rest[2:]
    _lang, sep1, rest = rest.partition(b"\0")
    _translated, sep2, text = rest.partition(b"\0")
    if not (sep1 and sep2) or (compressed and method != 0):
        return None
    raw = _inflate(text, budget) if compressed else text
    try:
        return None if raw is None else (key.decode("latin-1"), raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def _inflate(data: bytes, budget: int) -> bytes | None:
    """zlib data decompressed, refusing (not allocating) more than `budget` bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, budget + 1)
    except zlib.error:
        return None
    if len(out) > budget or inflater.unconsumed_tail:
        raise _NotPng(f"it holds more than {MAX_TEXT_BYTES >> 20} MiB of text")
    return out


def read_recipe(source: Path | bytes, required: bool = True) -> dict | None:
    """The recipe in a PNG; a missing one is a UserError when `required`."""
    raw = read_text_chunks(source).get(RECIPE_KEY)
    if raw is None:
        if required:
            raise UserError(f"{source} carries no ganscapes recipe; only PNGs written by ganscapes can be reproduced.")
        return None
    try:
        recipe = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep; ValueError: a 5,000-digit number
        raise UserError(f"The ganscapes recipe in {source} is not valid JSON.") from None
    if not isinstance(recipe, dict):
        raise UserError(f"The ganscapes recipe in {source} is not a JSON object.")
    if json_depth(recipe) > MAX_RECIPE_DEPTH:
        raise UserError(f"The ganscapes recipe in {source} is nested more than {MAX_RECIPE_DEPTH} deep.")
    return recipe


def json_depth(value) -> int:
    """How deeply JSON objects and lists nest in `value` (a number or text: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


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
