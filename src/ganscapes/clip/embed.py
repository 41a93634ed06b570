"""Embedding many images: hash, look up the cache, decode the rest in worker processes.

The encoder is the bottleneck, so everything else runs beside it: DataLoader workers
read each image file once, hash it (the cache's key), and decode and preprocess only the
images the cache does not hold, while the model encodes the previous batch. New
embeddings are flushed to the cache every few hundred images and when the run stops for
any reason, so an interrupted run resumes where it was.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganscapes.data.images import BadImage, is_image_name, load_rgb, open_image
from ganscapes.errors import SettingError, UserError

FLUSH_EVERY = 256  # images per cache shard


@dataclass(frozen=True)
class ImageRef:
    """One image: a file on disk, or a member of a zip file (`member` set)."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return self.member if self.member is not None else str(self.path)

    def read_bytes(self, zips: dict | None = None) -> bytes:
        if self.member is None:
            return self.path.read_bytes()
        if zips is None:
            with zipfile.ZipFile(self.path) as zf:
                return zf.read(self.member)
        if self.path not in zips:
            zips[self.path] = zipfile.ZipFile(self.path)
        return zips[self.path].read(self.member)


def folder_refs(folder: Path, recursive: bool = True) -> list[ImageRef]:
    """The images in a folder (sorted by path), skipping hidden files and folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of images.")
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    paths = [
        p
        for p in pattern
        if p.is_file()
        and is_image_name(p.name)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return [ImageRef(p) for p in sorted(paths)]


@dataclass
class Embedded:
    refs: list[ImageRef]  # readable images, in input order
    embeddings: np.ndarray  # [len(refs), D], unit rows
    digests: list[str]
    unreadable: list[tuple[ImageRef, str]] = field(default_factory=list)  # (image, reason)
    encoded: int = 0  # how many were encoded now (the rest came from the cache)


def embed_images(
    refs: list[ImageRef],
    encoder,
    cache=None,
    batch: int = 32,
    workers: int | None = None,
    progress: bool = True,
    desc: str = "CLIP",
) -> Embedded:
    """Unit CLIP embeddings of `refs`; unreadable images are listed, not raised."""
    if batch < 1:
        raise SettingError("batch", f"must be at least 1, not {batch}.")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise SettingError("workers", f"must be 0 or more, not {workers}.")
    if cache is not None and cache.model_id != encoder.model_id:
        raise ValueError(f"The cache holds {cache.model_id} embeddings, not {encoder.model_id} ones.")
    known = cache.known_digests() if cache is not None else frozenset()
    digests = [""] * len(refs)
    unreadable: dict[int, str] = {}
    new: dict[str, np.ndarray] = {}
    cached: set[str] = set()
    pending: list[tuple[str, np.ndarray]] = []

    def run(indices: list[int], skip: frozenset[str]) -> None:
        """Read each image once: hash it, and decode it only when its digest is not in `skip`."""
        loader = torch.utils.data.DataLoader(
            _Decoded([refs[i] for i in indices], indices, encoder.preprocess, skip),
            batch_size=batch,
            num_workers=min(workers, max(1, len(indices) // batch)),
            collate_fn=_collate,
            worker_init_fn=_one_thread if workers else None,
            persistent_workers=False,
        )
        for pixels, decoded, hashed, failures in loader:
            for i, reason in failures:
                unreadable[i] = reason
            for i, digest in hashed:
                digests[i] = digest
                if digest in skip:
                    cached.add(digest)
            if decoded:
                vectors = encoder.encode_images(pixels)
                for i, v in zip(decoded, vectors):
                    new[digests[i]] = v
                    pending.append((digests[i], v))
            if len(pending) >= FLUSH_EVERY:
                _flush(cache, pending)
            bar.update(len(hashed) + len(failures))

    bar = tqdm(total=len(refs), desc=desc, unit="img", disable=not progress)
    try:
        if refs:
            run(list(range(len(refs))), known)
        found = cache.get_many(sorted(cached)) if cache is not None and cached else {}
        lost = [i for i, d in enumerate(digests) if d in cached and d not in found and i not in unreadable]
        if lost:  # cached once, but its shard is gone or damaged: encode it again
            bar.update(-len(lost))
            run(lost, frozenset())
    finally:
        _flush(cache, pending)
        bar.close()

    good = [i for i in range(len(refs)) if i not in unreadable]
    table = {**found, **new}
    dim = next(iter(table.values())).shape[0] if table else 0
    return Embedded(
        refs=[refs[i] for i in good],
        embeddings=np.stack([table[digests[i]] for i in good]) if good else np.zeros([0, dim], np.float32),
        digests=[digests[i] for i in good],
        unreadable=[(refs[i], unreadable[i]) for i in sorted(unreadable)],
        encoded=len(new),
    )


def default_workers() -> int:
    """Decoding processes beside the encoder: one per spare core, at most four."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _flush(cache, pending: list) -> None:
    if cache is not None and pending:
        cache.put_many([d for d, _ in pending], np.stack([v for _, v in pending]))
    pending.clear()


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # the cores belong to the encoder


class _Decoded(torch.utils.data.Dataset):
    """Read an image once: its digest, then (unless the digest is in `skip`, the cache's)
    its decoded, preprocessed pixels. A bad image yields its reason instead."""

    def __init__(self, refs: list[ImageRef], indices: list[int], preprocess, skip: frozenset[str] = frozenset()):
        self.refs, self.indices, self.preprocess, self.skip = refs, indices, preprocess, skip
        self._zips: dict = {}

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, k: int):
        i = self.indices[k]
        try:
            data = self.refs[k].read_bytes(self._zips)
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            return i, "", None, f"unreadable: {getattr(e, 'strerror', None) or e}"
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.skip:
            return i, digest, None, None
        try:
            return i, digest, self.preprocess(load_rgb(open_image(data))), None
        except BadImage as e:
            return i, digest, None, str(e)
        except (OSError, zipfile.BadZipFile) as e:
            return i, digest, None, f"unreadable: {e}"


def _collate(items):
    """(pixels of the decoded, their indices, (index, digest) of every image read, (index, reason) of failures)."""
    ok = [(i, x) for i, _, x, _ in items if x is not None]
    hashed = [(i, d) for i, d, _, reason in items if reason is None]
    failures = [(i, reason) for i, _, _, reason in items if reason is not None]
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return pixels, [i for i, _ in ok], hashed, failures
