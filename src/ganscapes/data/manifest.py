"""The raw-image manifest: one JSON object per line in `raw/manifest.jsonl`.

Every way of gathering images (the WikiArt crawler, importing folders or zips, the
procedural sample generator) appends records in this one format, so that later stages
can trace each training image back to where it came from. Appending line by line makes
an interrupted gather resumable: whatever reached the file is done.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


@dataclass
class RawRecord:
    """One gathered image and where it came from."""

    file: str  # path of the saved image, relative to the gather folder
    sha256: str
    bytes: int
    source: str  # painting page URL, original path, or "zip:entry" for imports
    image_url: str | None = None
    artist: str | None = None
    born: int | None = None
    died: int | None = None
    title: str | None = None
    licence: str | None = None
    genre: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> RawRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_manifest(folder: Path) -> list[RawRecord]:
    """Records of `folder/manifest.jsonl`; a missing file is an empty manifest.

    A line cut short by an interrupted write (the last one, typically) is ignored, so a
    crash never makes the folder unreadable.
    """
    return list(iter_manifest(folder))


def iter_manifest(folder: Path) -> Iterator[RawRecord]:
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield RawRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


class ManifestWriter:
    """Appends records and flushes each one to disk at once (crash-safe resume)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / MANIFEST_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        if needs_newline:  # a line cut short by a crash must not swallow the next record
            self._file.write("\n")

    def append(self, record: RawRecord) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
