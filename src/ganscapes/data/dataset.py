"""StyleGAN-style datasets: a folder or a `.zip` of square PNGs plus `dataset.json`.

The layout is the one NVIDIA's `dataset_tool.py` writes and its training code reads
(`00000/img00000000.png`, …, uncompressed zip, `{"labels": null}`), so a dataset made
here also trains with the official code. ganscapes adds `manifest.json`, which records
for every image its source and crop box and for the whole dataset the format and the
aspect ratio that `post` later restores.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ganscapes.data.images import is_image_name
from ganscapes.errors import UserError, first_line
from ganscapes.fileio import remove_path, remove_stale_copies, stale_copies

MANIFEST = "manifest.json"
LABELS = "dataset.json"
MANIFEST_KIND = "ganscapes-dataset"
# What reading one member of a dataset raises when it is damaged or gone.
READ_ERRORS = (
    OSError,
    KeyError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)


def image_name(index: int) -> str:
    """The official file name of the index-th image."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def is_zip_path(path: Path) -> bool:
    return Path(path).suffix.lower() == ".zip"


class Dataset:
    """Read access to a prepared dataset, folder or zip alike."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            recover_interrupted_write(self.path)
        if not self.path.exists():
            raise UserError(f"Dataset {self.path} does not exist.")
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_file():
            try:
                self._zip = zipfile.ZipFile(self.path)
                entries = self._zip.namelist()
            except (zipfile.BadZipFile, OSError, EOFError, ValueError):
                raise UserError(f"Dataset {self.path} is neither a folder nor a readable zip file.") from None
        elif self.path.is_dir():
            entries = [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]
        else:
            raise UserError(f"Dataset {self.path} is neither a folder nor a zip file.")
        self._entries = set(entries)
        self.image_names = sorted(n for n in entries if is_image_name(n))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.image_names)

    def has(self, name: str) -> bool:
        return name in self._entries

    def read_bytes(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def file_path(self, name: str) -> Path | None:
        """The file on disk for `name` (folders only), so callers can link instead of copy."""
        return None if self._zip is not None else self.path / name

    def read_json(self, name: str) -> dict | None:
        if not self.has(name):
            return None
        try:
            data = json.loads(self.read_bytes(name))
        except (ValueError, RecursionError):  # also undecodable text, 5,000-digit numbers, nesting past the stack
            raise UserError(f"{name} in dataset {self.path} is not valid JSON.") from None
        except READ_ERRORS as e:
            raise UserError(f"{name} in dataset {self.path} cannot be read ({first_line(e)}).") from None
        return data if isinstance(data, dict) else None

    @property
    def manifest(self) -> dict | None:
        data = self.read_json(MANIFEST)
        return data if data and data.get("kind") == MANIFEST_KIND else None


def is_ganscapes_dataset(path: Path) -> bool:
    try:
        with Dataset(path) as ds:
            return ds.manifest is not None
    except UserError:
        return False


@dataclass
class DatasetInfo:
    path: Path
    images: int
    resolution: int | None
    format: str | None
    aspect: float | None
    source_count: int | None
    skipped: int | None
    labels: bool
    container: str


def dataset_info(path: Path) -> DatasetInfo:
    """What `ganscapes dataset info` prints; works on official datasets too (fewer fields)."""
    with Dataset(path) as ds:
        manifest = ds.manifest or {}
        # A hand-edited or damaged manifest: a field of the wrong type shows as unknown.
        resolution = _count(manifest.get("resolution"))
        if resolution is None and ds.image_names:
            try:
                with Image.open(io.BytesIO(ds.read_bytes(ds.image_names[0]))) as img:
                    resolution = img.width  # the header only
            except (*READ_ERRORS, SyntaxError, Image.DecompressionBombError):
                resolution = None
        labels_json = ds.read_json(LABELS) or {}
        skipped = manifest.get("skipped")
        aspect = manifest.get("aspect")
        fmt = manifest.get("format")
        return DatasetInfo(
            path=ds.path,
            images=len(ds),
            resolution=resolution,
            format=fmt[:40] if isinstance(fmt, str) else None,
            aspect=float(aspect) if _number(aspect) and aspect > 0 else None,
            source_count=_count(manifest.get("source_count")),
            skipped=len(skipped) if isinstance(skipped, list) else None,
            labels=bool(labels_json.get("labels")),
            container="zip" if ds._zip is not None else "folder",
        )


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------
# Writing


FileSource = bytes | Path  # in-memory bytes, or a file on disk to link/copy


def write_dataset(out: Path, files: Iterable[tuple[str, FileSource]]) -> None:
    """Write a complete dataset at `out` (folder, or zip if it ends in .zip) atomically.

    Everything goes to a temporary sibling first and replaces `out` only when complete,
    so an interrupted write never leaves a half dataset under the real name. In folders
    the images are hard-linked from their source when possible (no copy of gigabytes).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        if is_zip_path(out):
            # Uncompressed like the official tool: PNGs are already compressed, and
            # stored entries can be read without inflating.
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
                for name, src in files:
                    zf.writestr(_zip_info(name), src if isinstance(src, bytes) else Path(src).read_bytes())
        else:
            tmp.mkdir()
            for name, src in files:
                dest = tmp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(src, bytes):
                    dest.write_bytes(src)
                else:
                    _link_or_copy(Path(src), dest)
        _swap_into_place(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed: reproducible bytes
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Put the finished `tmp` where `out` is. A folder cannot be replaced in one rename, so
    the old one is set aside as `.NAME.old-PID` first and deleted only once the new one is
    in place; a kill between the two renames leaves it there for `recover_interrupted_write`."""
    if out.is_dir():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(out, old)
        os.replace(tmp, out)
        _remove(old)
    else:
        os.replace(tmp, out)


def recover_interrupted_write(out: Path) -> str | None:
    """Undo what a killed `write_dataset` left beside `out`; returns a note when it restored `out`.

    A dataset killed between its two renames is missing: its previous version, set aside
    as `.NAME.old-PID`, goes back in place. Then the copies of processes that are gone —
    old versions and half-built new ones (`.NAME.tmp-PID`), each as large as the dataset —
    are deleted. Copies of a process still running are left alone.
    """
    out = Path(out)
    note = None
    if not (out.exists() or out.is_symlink()):
        olds = stale_copies(out, "old")
        if olds:
            os.replace(olds[0], out)
            note = f"{out} was missing after an interrupted run; its previous version is back in place."
    remove_stale_copies(out, ("old", "tmp"))
    return note


def _remove(path: Path) -> None:
    remove_path(path)
