"""The prepare stage: raw paintings → a square, power-of-two training dataset.

Two passes over the sources. The *probe* pass hashes every file and reads its header
(cheap), which is enough to compute the mean aspect ratio that center-rect needs. The
*render* pass decodes, crops and resizes only what is not already prepared with the
same settings, in worker processes, writing each result to a staging folder at once.
Finally the dataset is assembled in sorted source order and swapped into place, so a
run interrupted at any point loses nothing and a re-run picks up where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import lzma
import math
import multiprocessing
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from ganscapes import __version__
from ganscapes.data.aspect import (
    ASPECT_RANGE,
    Format,
    apply_format,
    crop_box,
    letterbox_placement,
    mean_aspect,
)
from ganscapes.data.dataset import (
    LABELS,
    MANIFEST,
    MANIFEST_KIND,
    Dataset,
    image_name,
    is_ganscapes_dataset,
    recover_interrupted_write,
    write_dataset,
)
from ganscapes.data.images import (
    DEFAULT_MAX_PIXELS,
    BadImage,
    is_image_name,
    load_rgb,
    open_image,
    oriented_size,
)
from ganscapes.data.manifest import read_manifest
from ganscapes.errors import SettingError, UserError, first_line
from ganscapes.fileio import writable_folder

# Bump when the pixels produced for the same settings change, so old outputs are redone.
RENDER_VERSION = 1
# The render pass decodes JPEGs at a reduced DCT scale when the output is this many
# times smaller still, so the final Lanczos step sees at least 3× oversampling.
DRAFT_MARGIN = 3
# What reading a file or a zip entry raises when it is unreadable or damaged (a bad
# deflate stream, a CRC mismatch, an unsupported compression method, encryption).
READ_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    KeyError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)


@dataclass
class PrepareConfig:
    """Options of `ganscapes prepare`; the defaults are the article's choices."""

    res: int = 1024
    format: Format = Format.CENTER_RECT
    aspect: float | None = None  # None: the mean width/height of the sources ("auto")
    workers: int | None = None  # None: every core
    min_size: int = 0  # skip sources whose shorter side is below this (0: keep all)
    max_pixels: int = DEFAULT_MAX_PIXELS
    strict: bool = False  # fail if any source is skipped
    png_compress_level: int = 1  # fast to write, still about half the size of raw pixels

    def validate(self) -> None:
        if not (4 <= self.res <= 2048 and self.res & (self.res - 1) == 0):
            raise SettingError("res", f"must be a power of two from 4 to 2048, not {self.res}.")
        self.format = Format(self.format)
        lo, hi = ASPECT_RANGE
        if self.aspect is not None and not (lo <= self.aspect <= hi):
            raise SettingError(
                "aspect", f"must be 'auto' or a width/height ratio between {lo:g} and {hi:g}, not {self.aspect}."
            )
        if self.workers is not None and self.workers < 1:
            raise SettingError("workers", f"must be at least 1, not {self.workers}.")
        if self.min_size < 0:
            raise SettingError("min_size", f"must be 0 or more, not {self.min_size}.")


@dataclass(frozen=True)
class Source:
    """One source image: a file, or an entry of a zip archive."""

    rel: str  # relative to the source root, forward slashes; how users and the manifest name it
    path: str  # the file, or the zip archive holding it
    member: str | None = None

    def read(self) -> bytes:
        if self.member is None:
            return Path(self.path).read_bytes()
        with zipfile.ZipFile(self.path) as zf:
            return zf.read(self.member)


@dataclass
class Skip:
    path: str
    reason: str


@dataclass
class PrepareResult:
    out: Path
    images: int
    rendered: int
    reused: int
    aspect: float  # the aspect ratio `post` restores (see `restore_aspect`)
    mean_aspect: float | None
    skipped: list[Skip] = field(default_factory=list)
    report: Path | None = None
    up_to_date: bool = False


# ---------------------------------------------------------------------------------------
# Sources


def list_sources(src: Path) -> list[Source]:
    """Image files under a folder (recursive), in a zip, or a single file; sorted.

    Only names with an image extension count: the gather manifest, crawl logs and
    hidden files beside the pictures are not sources.
    """
    src = Path(src)
    if not src.exists():
        raise UserError(f"Source {src} does not exist.")
    if src.is_dir():
        found = []
        for p in src.rglob("*"):
            rel = p.relative_to(src).as_posix()
            if _is_hidden(rel):
                continue
            if p.is_file() and is_image_name(p.name):
                found.append(Source(rel, str(p)))
        return sorted(found, key=lambda s: s.rel)
    if zipfile.is_zipfile(src):
        try:
            with zipfile.ZipFile(src) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/") and is_image_name(n) and not _is_hidden(n)]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise UserError(f"Source {src} is not a readable zip archive ({first_line(e)}).") from None
        return sorted((Source(n, str(src), n) for n in names), key=lambda s: s.rel)
    if is_image_name(src.name):
        return [Source(src.name, str(src))]
    raise UserError(f"Source {src} is not a folder, a zip archive or an image file.")


def _is_hidden(rel: str) -> bool:
    """Hidden files or folders (also the `__MACOSX/._name` forks in zips made on a Mac)."""
    return any(part.startswith(".") for part in rel.split("/"))


# ---------------------------------------------------------------------------------------
# Work done in worker processes (top-level functions so they pickle)


@dataclass
class Probe:
    source: Source
    sha256: str | None = None
    size: tuple[int, int] | None = None  # as displayed (EXIF orientation applied)
    error: str | None = None


def probe_source(source: Source, max_pixels: int, min_size: int) -> Probe:
    try:
        data = source.read()
    except READ_ERRORS as e:
        return Probe(source, error=f"unreadable: {getattr(e, 'strerror', None) or e}")
    sha = hashlib.sha256(data).hexdigest()
    try:
        img = open_image(data, max_pixels)
        size = oriented_size(img)
    except BadImage as e:
        return Probe(source, sha, error=str(e))
    if min(size) < min_size:
        return Probe(source, sha, size, error=f"too small ({size[0]}x{size[1]} < --min-size {min_size})")
    return Probe(source, sha, size)


@dataclass
class Rendered:
    source: Source
    sha256: str
    staged: str | None = None  # file name in the staging folder
    size: tuple[int, int] | None = None
    box: tuple[int, int, int, int] | None = None
    error: str | None = None


def render_source(
    source: Source, sha256: str, settings: dict, staging: str, max_pixels: int, compress_level: int
) -> Rendered:
    fmt, res, aspect = Format(settings["format"]), settings["res"], settings["aspect"]
    try:
        data = source.read()
    except READ_ERRORS as e:
        return Rendered(source, sha256, error=f"unreadable: {getattr(e, 'strerror', None) or e}")
    try:
        if hashlib.sha256(data).hexdigest() != sha256:
            return Rendered(source, sha256, error="changed while preparing; run again")
        img = open_image(data, max_pixels)
        size = oriented_size(img)
        box = crop_box(fmt, *size, aspect)
        _draft_jpeg(img, size, box, fmt, res)
        square = apply_format(load_rgb(img), fmt, res, aspect)
    except BadImage as e:
        return Rendered(source, sha256, error=str(e))
    except OSError as e:
        return Rendered(source, sha256, error=f"unreadable: {e}")
    buf = io.BytesIO()
    square.save(buf, format="PNG", compress_level=compress_level)
    name = staged_name(sha256, settings)
    tmp = Path(staging) / f".{name}.{os.getpid()}.tmp"
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, Path(staging) / name)
    return Rendered(source, sha256, name, size, box)


def _draft_jpeg(img, size: tuple[int, int], box, fmt: Format, res: int) -> None:
    """Ask libjpeg to decode at 1/2, 1/4 or 1/8 scale when that still oversamples ≥ 3×."""
    if img.format != "JPEG":
        return
    crop_w, crop_h = box[2] - box[0], box[3] - box[1]
    if fmt is Format.LETTERBOX:
        left, top, right, bottom = letterbox_placement(crop_w, crop_h, res)
        target_w, target_h = right - left, bottom - top
    else:
        target_w = target_h = res
    scale = max(DRAFT_MARGIN * target_w / crop_w, DRAFT_MARGIN * target_h / crop_h)
    if scale < 0.5:
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))


def staged_name(sha256: str, settings: dict) -> str:
    return f"{sha256[:40]}-{settings_key(settings)[:12]}.png"


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# The stage


def restore_aspect(fmt: Format, crop_aspect: float, mean: float | None) -> float:
    """The width/height that `post` should stretch generated squares back to.

    center-rect squeezed a crop of `crop_aspect`; squeeze squeezed whole pictures whose
    mean is `mean`; center-crop and letterbox never distorted anything.
    """
    fmt = Format(fmt)  # also the plain name, as a manifest records it
    if fmt is Format.CENTER_RECT:
        return crop_aspect
    if fmt is Format.SQUEEZE and mean is not None:
        return mean
    return 1.0


def prepare_dataset(
    src: Path,
    out: Path,
    config: PrepareConfig | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> PrepareResult:
    """Prepare every image under `src` into the dataset `out` (folder, or zip if .zip).

    Sources are never modified. Skipped files are reported, one line each, on screen and
    in `<out>.prepare-report.tsv`. Raises `UserError` if nothing could be prepared, or
    with `strict` if anything was skipped (then the dataset is left as it was).
    """
    cfg = config or PrepareConfig()
    cfg.validate()
    src, out = Path(src), Path(out)
    note = recover_interrupted_write(out)  # before _check_out looks at what is there
    if note:
        log(note)
    sources = list_sources(src)
    _check_out(src, out)
    writable_folder(out.parent)  # before the probing and rendering, not after
    if not sources:
        raise UserError(f"No image files (.jpg, .png, …) found in {src}.")
    workers = cfg.workers or os.cpu_count() or 1
    staging = out.with_name(f".{out.name}.partial")
    report = out.with_name(out.name + ".prepare-report.tsv")
    origins = {r.file: r for r in read_manifest(src)} if src.is_dir() else {}

    with _pool(workers) as pool:
        probes = _run(
            pool,
            probe_source,
            [(s, cfg.max_pixels, cfg.min_size) for s in sources],
            "probing",
            progress,
        )
        skipped = [Skip(p.source.rel, p.error) for p in probes if p.error]
        good = [p for p in probes if not p.error]
        good = _drop_duplicates(good, skipped)
        mean = mean_aspect([p.size for p in good]) if good else None
        lo, hi = ASPECT_RANGE
        if mean is not None and not lo <= mean <= hi:
            outside = f"the sources' mean width/height is {mean:.3g}, outside the {lo:g} to {hi:g}"
            if cfg.format is Format.SQUEEZE:
                raise SettingError("format", f"cannot be squeeze here: {outside} that post can restore.")
            if cfg.format is Format.CENTER_RECT and cfg.aspect is None:
                raise SettingError("aspect", f"must be given here: {outside} that a crop may have.")
        if cfg.aspect is None and cfg.format in (Format.CENTER_RECT, Format.SQUEEZE) and mean is not None:
            log(f"Mean aspect ratio (width/height) of {len(good):,} source images: {mean:.3f}")
        crop_aspect = round(cfg.aspect if cfg.aspect is not None else (mean or 1.0), 6)
        settings = {
            "res": cfg.res,
            "format": cfg.format.value,
            "aspect": crop_aspect if cfg.format is Format.CENTER_RECT else None,
            "render_version": RENDER_VERSION,
        }

        cache = _PreparedCache(out, staging, settings)
        todo = [p for p in good if not cache.has(p.sha256)]
        staging.mkdir(parents=True, exist_ok=True)
        rendered = _run(
            pool,
            render_source,
            [(p.source, p.sha256, settings, str(staging), cfg.max_pixels, cfg.png_compress_level) for p in todo],
            "preparing",
            progress,
            on_result=cache.record_staged,
        )
    for r in rendered:
        if r.error:
            skipped.append(Skip(r.source.rel, r.error))
    skipped.sort(key=lambda s: s.path)
    for s in skipped:
        log(f"skipped {_tsv_field(s.path)}: {s.reason}")
    _write_report(report, skipped)

    failed = {s.path for s in skipped}
    kept = [p for p in good if p.source.rel not in failed]
    newly_rendered = sum(1 for r in rendered if not r.error)
    result = PrepareResult(
        out=out,
        images=len(kept),
        rendered=newly_rendered,
        reused=len(kept) - newly_rendered,
        aspect=restore_aspect(cfg.format, crop_aspect, mean),
        mean_aspect=mean,
        skipped=skipped,
        report=report,
    )
    if not kept:
        _remove_if_empty(staging)
        raise UserError(f"No image in {src} could be prepared ({len(skipped)} skipped); reasons are in {report}.")
    if cfg.strict and skipped:
        raise UserError(
            f"{len(skipped)} source image(s) were skipped and --strict is set, so {out} was not written; "
            f"reasons are in {report}."
        )

    manifest = _manifest(src, cfg, settings, result, kept, cache, origins)
    if (
        all("old" in cache.entries[p.sha256] for p in kept)  # nothing had to be rendered anew
        and cache.current_manifest_images() == manifest["images"]
        and cache.current_manifest_skipped() == manifest["skipped"]
    ):
        result.up_to_date = True
    else:
        write_dataset(out, _dataset_files(kept, cache, manifest))
    cache.close()
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # it holds finished work that a re-run will reuse


def _dataset_files(kept: list[Probe], cache: _PreparedCache, manifest: dict):
    """Lazily, so that images from an old zip are read one at a time, not all at once."""
    for i, p in enumerate(kept):
        yield image_name(i), cache.source_for(p.sha256)
    yield LABELS, json.dumps({"labels": None}).encode()
    yield MANIFEST, json.dumps(manifest, indent=1).encode()


def _check_out(src: Path, out: Path) -> None:
    s, o = src.resolve(), out.resolve()
    if s == o or s in o.parents or o in s.parents:
        raise SettingError("out", f"{out} must not be the source {src}, inside it, or contain it.")
    if not out.exists():
        return
    if out.is_dir() and not any(out.iterdir()):
        return

    if not is_ganscapes_dataset(out):
        raise SettingError("out", f"{out} already exists and is not a ganscapes dataset; choose another.")


def _drop_duplicates(good: list[Probe], skipped: list[Skip]) -> list[Probe]:
    seen: dict[str, str] = {}
    unique = []
    for p in good:
        if p.sha256 in seen:
            skipped.append(Skip(p.source.rel, f"duplicate of {seen[p.sha256]}"))
        else:
            seen[p.sha256] = p.source.rel
            unique.append(p)
    return unique


class _PreparedCache:
    """Images already prepared with these settings: in the existing dataset or staged."""

    def __init__(self, out: Path, staging: Path, settings: dict):
        self.settings = settings
        self.key = settings_key(settings)
        self.staging = staging
        self.entries: dict[str, dict] = {}  # sha256 → {"size", "box"} plus where the bytes are
        self._old: Dataset | None = None
        self._old_manifest: dict | None = None
        if out.exists() and not (out.is_dir() and not any(out.iterdir())):
            self._old = Dataset(out)
            self._old_manifest = self._old.manifest
            for item in (self._old_manifest or {}).get("images", []):
                if item.get("settings") == self.key and self._old.has(item.get("file", "")):
                    self.entries[item["sha256"]] = {"size": item["size"], "box": item["crop_box"], "old": item["file"]}
        index = staging / "index.jsonl"
        if index.exists():
            for line in index.read_text(encoding="utf-8").splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line being written when a run was interrupted
                if item.get("settings") == self.key and (staging / item["staged"]).exists():
                    self.entries[item["sha256"]] = {"size": item["size"], "box": item["box"], "staged": item["staged"]}

    def has(self, sha256: str) -> bool:
        return sha256 in self.entries

    def record_staged(self, r: Rendered) -> None:
        if r.error:
            return
        item = {"sha256": r.sha256, "settings": self.key, "staged": r.staged, "size": list(r.size), "box": list(r.box)}
        with open(self.staging / "index.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(item) + "\n")
        self.entries[r.sha256] = {"size": item["size"], "box": item["box"], "staged": r.staged}

    def source_for(self, sha256: str) -> bytes | Path:
        entry = self.entries[sha256]
        if "staged" in entry:
            return self.staging / entry["staged"]
        path = self._old.file_path(entry["old"])
        return path if path is not None else self._old.read_bytes(entry["old"])

    def current_manifest_images(self) -> list | None:
        return (self._old_manifest or {}).get("images")

    def current_manifest_skipped(self) -> list | None:
        return (self._old_manifest or {}).get("skipped")

    def close(self) -> None:
        if self._old is not None:
            self._old.close()


def _manifest(src, cfg, settings, result, kept, cache, origins) -> dict:
    images = []
    for i, p in enumerate(kept):
        entry = cache.entries[p.sha256]
        item = {
            "file": image_name(i),
            "source": p.source.rel,
            "sha256": p.sha256,
            "size": list(entry["size"]),
            "crop_box": list(entry["box"]),
            "settings": cache.key,
        }
        origin = origins.get(p.source.rel)
        if origin is not None:
            item["origin"] = {
                k: v for k, v in asdict(origin).items() if v not in (None, {}) and k not in ("file", "bytes")
            }
        images.append(item)
    return {
        "kind": MANIFEST_KIND,
        "version": 1,
        "created_by": f"ganscapes {__version__}",
        "source": str(Path(src).resolve()),
        "source_count": len(kept) + len(result.skipped),
        "resolution": cfg.res,
        "format": cfg.format.value,
        "crop_aspect": settings["aspect"],
        "mean_aspect": round(result.mean_aspect, 6) if result.mean_aspect is not None else None,
        "aspect": round(result.aspect, 6),
        "settings": settings,
        "images": images,
        "skipped": [asdict(s) for s in result.skipped],
    }


def _write_report(report: Path, skipped: list[Skip]) -> None:
    report.parent.mkdir(parents=True, exist_ok=True)
    lines = ["path\treason"] + [f"{_tsv_field(s.path)}\t{_tsv_field(s.reason)}" for s in skipped]
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _tsv_field(text: str) -> str:
    """One line, one field: a file name may hold tabs or newlines; escape them like Python."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# ---------------------------------------------------------------------------------------
# Parallel map with a progress bar


class _pool:
    """A process pool, or nothing for one worker (debuggable, no start-up cost)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.executor: cf.ProcessPoolExecutor | None = None

    def __enter__(self) -> cf.ProcessPoolExecutor | None:
        if self.workers > 1:
            # spawn: safe even when the parent has threads or CUDA (torch) initialised.
            ctx = multiprocessing.get_context("spawn")
            self.executor = cf.ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self.executor

    def __exit__(self, exc_type, *exc) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=exc_type is not None)


def _run(pool, fn, arg_tuples: list[tuple], desc: str, progress: bool, on_result=None) -> list:
    results = []
    bar = tqdm(total=len(arg_tuples), desc=desc, unit="img", disable=not progress or not arg_tuples)
    try:
        if pool is None:
            outputs: Iterable = (fn(*args) for args in arg_tuples)
        else:
            futures = [pool.submit(fn, *args) for args in arg_tuples]
            outputs = (f.result() for f in cf.as_completed(futures))
        for r in outputs:
            if on_result is not None:
                on_result(r)
            results.append(r)
            bar.update(1)
    finally:
        bar.close()
    order = {args[0]: i for i, args in enumerate(arg_tuples)}
    results.sort(key=lambda r: order[r.source])
    return results
