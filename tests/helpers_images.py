"""Builders of small test images and files, shared by the data-stage tests.

Everything here is deterministic (fixed colours, seeded noise) and tiny, so the tests
that use it stay fast and their expected numbers stay exact.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (128, 128, 128)

Colour = tuple[int, int, int]


# ---------------------------------------------------------------------------------------
# Images


def solid(width: int, height: int, colour: Colour = GREY, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (width, height), colour)


def vbands(height: int, bands: Sequence[tuple[int, Colour]]) -> Image.Image:
    """Vertical bands side by side: `bands` is [(width, colour), …] from left to right."""
    a = np.concatenate([np.tile(np.array(c, np.uint8), (height, w, 1)) for w, c in bands], axis=1)
    return Image.fromarray(a, "RGB")


def hbands(width: int, bands: Sequence[tuple[int, Colour]]) -> Image.Image:
    """Horizontal bands stacked: `bands` is [(height, colour), …] from top to bottom."""
    a = np.concatenate([np.tile(np.array(c, np.uint8), (h, width, 1)) for h, c in bands], axis=0)
    return Image.fromarray(a, "RGB")


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Smooth-ish random colours (blocks of noise), different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(1, height // 4), max(1, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small, "RGB").resize((width, height), Image.Resampling.NEAREST)


def with_marker(img: Image.Image, box: tuple[int, int, int, int], colour: Colour = RED) -> Image.Image:
    """A copy of `img` with the rectangle `box` (left, top, right, bottom) filled."""
    out = img.copy()
    out.paste(colour, box)
    return out


def pixels(img: Image.Image) -> np.ndarray:
    """The image as a (height, width, channels) uint8 array."""
    return np.asarray(img)


# ---------------------------------------------------------------------------------------
# Encoded files


def encode(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    return encode(img, "PNG")


def jpeg_bytes(img: Image.Image, quality: int = 95, **params) -> bytes:
    return encode(img, "JPEG", quality=quality, **params)


def exif_jpeg(stored: Image.Image, orientation: int, quality: int = 95) -> bytes:
    """A JPEG of the stored (not yet rotated) pixels carrying an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return jpeg_bytes(stored, quality=quality, exif=exif)


def rotated_marker_source(width: int = 60, height: int = 40, marker: int = 20, orientation: int = 6) -> bytes:
    """Landscape stored pixels (grey) with a red marker in the stored top-left corner."""
    stored = with_marker(solid(width, height, GREY), (0, 0, marker, marker), RED)
    return exif_jpeg(stored, orientation)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=4)
def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real, complete 1-bit PNG of huge dimensions that is only a few tens of kB on disk."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed zero bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def truncated(data: bytes) -> bytes:
    """The first half of a file, like an interrupted download."""
    return data[: len(data) // 2]


def zip_bytes(entries: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive with exactly these entry names (no normalisation of '..', '/', '\\')."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# Files and trees


def write(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(Path(path).read_bytes())


def tree_snapshot(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """rel path → (sha256, size, mtime_ns, mode) for every file under `root` (or `root` itself)."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    snap = {}
    for p in files:
        st = p.stat()
        rel = p.name if p == root else p.relative_to(root).as_posix()
        snap[rel] = (file_sha256(p), st.st_size, st.st_mtime_ns, st.st_mode)
    return snap


def tree_bytes(root: Path) -> dict[str, bytes]:
    """rel path → content for every file under a folder, or every entry of a zip file."""
    root = Path(root)
    if root.is_file():
        with zipfile.ZipFile(root) as zf:
            return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def listing(root: Path) -> list[str]:
    """Every path (files and folders) under `root`, relative, sorted."""
    return sorted(os.path.relpath(p, root) for p in Path(root).rglob("*"))


def damaged_zip(kind: str, good: Iterable[tuple[str, bytes]] = ()) -> bytes:
    """A zip whose first entry `a.bmp` cannot be read back, plus the `good` entries.

    kind: "deflate" (a corrupt deflate stream: zlib.error), "crc" (wrong CRC: BadZipFile),
    "method" (compression method 9, Deflate64: NotImplementedError), "encrypted"
    (flagged as encrypted: RuntimeError).
    """
    bmp = encode(noise(64, 64, seed=8), "BMP")
    entries = [("a.bmp", bmp), *good]
    raw = bytearray(zip_bytes(entries, zipfile.ZIP_STORED if kind in ("method", "encrypted") else zipfile.ZIP_DEFLATED))
    central = raw.find(b"PK\x01\x02")  # the first entry's central directory record
    if kind == "deflate":
        for i in range(100, 140):
            raw[i] ^= 0xFF
    elif kind == "crc":
        for i in range(300, 340):
            raw[i] ^= 0xFF
    elif kind == "method":
        raw[8:10] = raw[central + 10 : central + 12] = (9).to_bytes(2, "little")
    elif kind == "encrypted":
        raw[6:8] = raw[central + 8 : central + 10] = (1).to_bytes(2, "little")
    else:
        raise ValueError(kind)
    expected = {
        "deflate": zlib.error,
        "crc": zipfile.BadZipFile,
        "method": NotImplementedError,
        "encrypted": RuntimeError,
    }
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
            zf.read("a.bmp")
    except expected[kind]:
        return bytes(raw)
    raise AssertionError(f"the {kind} damage did not make a.bmp unreadable")
