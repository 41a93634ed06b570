"""`gather import`: bring paintings you already have (folders, zip archives, files) into a gather folder.

The Kaggle copy of the GANscapes dataset, a folder of scans, or another gather folder
all end up in the same shape as a crawl: images plus `manifest.jsonl`. Content hashes
make it idempotent (importing the same archive twice adds nothing) and drop duplicates
across sources. Zip archives are untrusted input: entries with absolute or `..` paths
are refused outright, and no entry name ever chooses where a file is written.
"""

from __future__ import annotations

import hashlib
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ganscapes.data.images import (
    DEFAULT_MAX_PIXELS,
    BadImage,
    check_image_bytes,
    is_image_name,
)
from ganscapes.data.manifest import ManifestWriter, RawRecord, read_manifest
from ganscapes.data.naming import confined_path, slugify, unique_name
from ganscapes.errors import UserError, first_line
from ganscapes.fileio import writable_folder, write_bytes_atomic

DEFAULT_MAX_BYTES = 100_000_000
# What reading one file or zip entry raises when it is damaged: a bad CRC (BadZipFile), a
# corrupt deflate, bzip2 or LZMA stream, an unsupported method, encryption, a short file.
ZIP_READ_ERRORS = (
    OSError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}


@dataclass
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    refused: int = 0


@dataclass
class _Candidate:
    label: str  # how the user knows it: a path, or archive.zip:entry
    name: str  # the original file name, for the title and the new name
    read: Callable[[], bytes]
    size: int
    origin: RawRecord | None = None


def import_images(
    sources: list[Path],
    out: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> ImportSummary:
    """Copy every image from `sources` into `out`, skipping ones already there by content."""
    if not sources:
        raise UserError("Name at least one folder, zip archive or image file to import.")
    out = Path(out)
    for src in sources:
        if not Path(src).exists():
            raise UserError(f"{src} does not exist.")
        if Path(src).resolve() == out.resolve():
            raise UserError(f"{src} is the output folder itself; import from somewhere else.")
    writable_folder(out)
    existing = read_manifest(out)
    known = {r.sha256: r.file for r in existing}
    taken = {r.file for r in existing} | {p.name for p in out.iterdir()}
    summary = ImportSummary()

    def skip(label: str, reason: str) -> None:
        summary.skipped += 1
        log(f"skipped {label}: {reason}")

    with ManifestWriter(out) as manifest:
        candidates = (c for src in sources for c in _candidates(Path(src), out, summary, log))
        for cand in tqdm(candidates, desc="importing", unit="img", disable=not progress):
            if cand.size > max_bytes:
                skip(cand.label, f"larger than {max_bytes:,} bytes")
                continue
            try:
                data = cand.read()
            except ZIP_READ_ERRORS as e:  # damaged entries: CRC, deflate, LZMA, method, encryption
                skip(cand.label, f"unreadable: {first_line(e)}")
                continue
            sha = hashlib.sha256(data).hexdigest()
            if sha in known:
                summary.duplicates += 1
                continue
            try:
                _w, _h, fmt = check_image_bytes(data, max_pixels)
            except BadImage as e:
                skip(cand.label, str(e))
                continue
            stem = slugify(PurePosixPath(cand.name).stem)
            name = unique_name(stem, SUFFIX_BY_FORMAT.get(fmt, ".img"), taken)
            write_bytes_atomic(confined_path(out, name), data)
            origin = cand.origin
            manifest.append(
                RawRecord(
                    file=name,
                    sha256=sha,
                    bytes=len(data),
                    source=origin.source if origin else cand.label,
                    image_url=origin.image_url if origin else None,
                    artist=origin.artist if origin else None,
                    born=origin.born if origin else None,
                    died=origin.died if origin else None,
                    title=origin.title if origin else PurePosixPath(cand.name).stem,
                    licence=origin.licence if origin else None,
                    genre=origin.genre if origin else None,
                    extra={"imported_from": cand.label},
                )
            )
            known[sha] = name
            summary.imported += 1
    log(
        f"Imported {summary.imported} image(s) into {out}; {summary.duplicates} duplicate(s), "
        f"{summary.skipped} skipped, {summary.refused} refused."
    )
    return summary


def _candidates(src: Path, out: Path, summary: ImportSummary, log) -> Iterator[_Candidate]:
    if src.is_dir():
        origins = {r.file: r for r in read_manifest(src)}
        out_resolved = out.resolve()
        for path in sorted(src.rglob("*")):
            if not path.is_file() or not is_image_name(path.name):
                continue
            if out_resolved in path.resolve().parents:
                continue  # importing a parent of the output folder must not re-import our own files
            rel = path.relative_to(src).as_posix()
            yield _Candidate(str(path), path.name, path.read_bytes, path.stat().st_size, origins.get(rel))
    elif zipfile.is_zipfile(src):
        yield from _zip_candidates(src, summary, log)
    else:
        yield _Candidate(str(src), src.name, src.read_bytes, src.stat().st_size)


def _zip_candidates(archive: Path, summary: ImportSummary, log) -> Iterator[_Candidate]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        summary.skipped += 1
        log(f"skipped {archive}: not a readable zip archive ({e})")
        return
    with zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            label = f"{archive}:{info.filename}"
            if not is_safe_member(info.filename):
                summary.refused += 1
                log(f"refused {label}: absolute or '..' path in the archive")
                continue
            if not is_image_name(info.filename):
                continue
            yield _Candidate(label, PurePosixPath(info.filename).name, lambda i=info: zf.read(i), info.file_size)


def is_safe_member(name: str) -> bool:
    """False for zip entry names that try to escape the extraction folder (zip-slip)."""
    if "\x00" in name:
        return False
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        return False
    return ".." not in PurePosixPath(normalized).parts
