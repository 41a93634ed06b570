"""Procedural impressionist landscapes, so the whole pipeline runs with no internet.

Training StyleGAN2 on real paintings needs a crawl or a download; the rest of the
pipeline (prepare, curate, train, generate, rank, post) still has to be tried and tested
on a fresh machine that has neither. This module paints stand-ins that look enough like
the real data for those stages to behave realistically: varied sizes and aspect ratios,
a sky, a horizon, hills in aerial perspective, trees, water with broken reflections, a
sun or moon, all laid down as visible, colour-jittered brush dabs over an underpainting,
in varied seasons and times of day.

Each picture depends only on `(seed, index)`, so a run is reproducible byte for byte,
can be interrupted and resumed, and can be extended (`n=300` after `n=200`) without
touching the pictures already there.
The painting itself is in `ganscapes.data.painter`.
"""

from __future__ import annotations

import hashlib
import io
import math
import numbers
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ganscapes.data.manifest import ManifestWriter, RawRecord, read_manifest
from ganscapes.data.naming import confined_path
from ganscapes.data.painter import paint_landscape, paint_scene, scene_title
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import writable_folder, write_bytes_atomic

__all__ = ["make_samples", "paint_landscape", "render_sample", "sample_aspect_and_size"]

JPEG_QUALITY = 92
MIN_SIDE_LIMIT = 16
SAMPLE_PREFIX = "sample_"
ARTIST = "ganscapes sample"
LICENCE = "CC0-1.0"
GENRE = "landscape"
GENERATOR = "ganscapes.sample"

# Real landscape paintings are mostly wider than tall; a fifth portrait or square keeps
# the later aspect-ratio handling honest.
LANDSCAPE_SHARE = 0.8
LANDSCAPE_RATIOS = (1.1, 1.8)
PORTRAIT_RATIOS = (0.75, 1.0)


# ---------------------------------------------------------------------------------------
# sizes


def sample_aspect_and_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side uniform in [min_side, max_side].

    Rounding goes towards the nearer square shape, so the ratio never leaves its
    interval even for tiny images; the shorter side is never below 16 pixels.
    """
    _check_sides(min_side, max_side)
    long_side = int(rng.integers(min_side, max_side + 1))
    if rng.random() < LANDSCAPE_SHARE:
        ratio = rng.uniform(*LANDSCAPE_RATIOS)
        width, height = long_side, math.ceil(long_side / ratio)
    else:
        ratio = rng.uniform(*PORTRAIT_RATIOS)
        width, height = math.ceil(long_side * ratio), long_side
    return max(MIN_SIDE_LIMIT, min(width, long_side)), max(MIN_SIDE_LIMIT, min(height, long_side))


def _check_sides(min_side: int, max_side: int) -> None:
    integers = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (min_side, max_side))
    if not integers or not MIN_SIDE_LIMIT <= min_side <= max_side:
        raise UserError(
            f"The image sides must be whole numbers with {MIN_SIDE_LIMIT} <= min side <= max side "
            f"(got min side {min_side} and max side {max_side})."
        )


# ---------------------------------------------------------------------------------------
# writing a sample set


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def render_sample(seed: int, index: int, min_side: int, max_side: int) -> tuple[bytes, str]:
    """The JPEG bytes and title of sample `index`; a function of its arguments alone."""
    rng = np.random.default_rng([seed, index])
    width, height = sample_aspect_and_size(rng, min_side, max_side)
    image, scene = paint_scene(rng, width, height)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), scene_title(scene, index)


def make_samples(
    out: Path,
    n: int = 200,
    seed: int = 0,
    min_side: int = 192,
    max_side: int = 512,
    progress: bool = True,
) -> list[Path]:
    """Paint samples 0..n-1 into `out` and record them in its manifest; returns all n paths.

    The returned list covers the whole set, including pictures an earlier run already
    made, because that is what the caller works with next. A picture whose file is
    present with the hash its manifest record states is left alone; a missing or
    damaged one is painted again, identically. Files that are not samples are never
    touched, and no existing file is overwritten unless it is one of ours.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise UserError(f"The number of sample images must be at least 1 (got {n}).")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UserError(f"The seed must be a non-negative integer (got {seed}).")
    _check_sides(min_side, max_side)
    n, seed, min_side, max_side = int(n), int(seed), int(min_side), int(max_side)  # numpy ints break JSON
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingError("out", f"{out} exists and is not a folder; choose another.")
    writable_folder(out)

    recorded: dict[str, set[str]] = {}
    for rec in read_manifest(out):
        recorded.setdefault(rec.file, set()).add(rec.sha256)

    paths: list[Path] = []
    with ManifestWriter(out) as manifest:
        for i in tqdm(range(n), desc="painting samples", unit="img", disable=not progress):
            name = f"{SAMPLE_PREFIX}{i:05d}.jpg"
            try:
                path = confined_path(out, name)  # a planted symlink must not redirect the write
            except ValueError:
                raise UserError(f"{out / name} points outside {out}; remove it and run again.") from None
            paths.append(path)
            known = recorded.get(name, set())
            if known and path.is_file() and _file_sha256(path) in known:
                continue
            data, title = render_sample(seed, i, min_side, max_side)
            digest = _sha256(data)
            if not (path.is_file() and _file_sha256(path) == digest):
                _write_atomically(path, data)
            if digest in known:
                continue  # the record is already there; only the file had gone
            manifest.append(
                RawRecord(
                    file=name,
                    sha256=digest,
                    bytes=len(data),
                    source=f"procedural:seed={seed}:index={i}",
                    artist=ARTIST,
                    title=title,
                    licence=LICENCE,
                    genre=GENRE,
                    extra={"generator": GENERATOR, "seed": seed, "index": i},
                )
            )
            recorded.setdefault(name, set()).add(digest)
    return paths


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so an interrupted run never leaves half a JPEG."""
    if path.is_dir():
        raise UserError(f"{path} is a folder, where a sample picture should go; move it away.")
    write_bytes_atomic(path, data, fsync=True)
