"""An on-disk cache of image embeddings, keyed by (image content hash, CLIP model id).

Encoding is the slow part of every CLIP stage (about 14 images/s for ViT-B/32 on two CPU
cores); the text side takes milliseconds. So embeddings are kept: re-ranking the same
thousand paintings with a new phrase encodes only the phrase, curating a dataset again
after an interruption encodes only what was not done, and a painting that moved or was
renamed is still found because the key is its content.

Layout under the cache folder: `index.sqlite` (which row of which shard holds which
embedding) and `shards/<model>/<n>.npy` (float32 arrays, one per flush). A shard is
written completely before its rows enter the index, in one transaction, so a crash can
leave an unused shard file but never an index row that points at nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Self

import numpy as np

from ganscapes.fileio import atomic_path

CACHE_ENV = "GANSCAPES_CACHE"
INDEX = "index.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS shards (id INTEGER PRIMARY KEY, model_id TEXT NOT NULL, file TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings (
    model_id TEXT NOT NULL, digest TEXT NOT NULL, shard INTEGER NOT NULL, row INTEGER NOT NULL,
    PRIMARY KEY (model_id, digest)
);
"""


def default_cache_dir() -> Path:
    """`$GANSCAPES_CACHE`, else `$XDG_CACHE_HOME/ganscapes`, else `~/.cache/ganscapes`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ganscapes"


class EmbeddingCache:
    """Embeddings of one CLIP model (`model_id`) stored under `root/clip/`."""

    def __init__(self, root: Path | None, model_id: str):
        self.root = Path(root if root is not None else default_cache_dir()) / "clip"
        self.model_id = model_id
        self.shard_dir = self.root / "shards" / re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        path = self.root / INDEX
        try:
            db = sqlite3.connect(path, timeout=60)
            db.executescript(SCHEMA)
            return db
        except sqlite3.DatabaseError:
            # Only a cache: set the damaged index aside and start again.
            aside = path.with_name(f"{INDEX}.damaged-{int(time.time())}")
            os.replace(path, aside)
            print(
                f"ganscapes: warning: the embedding index {path} was damaged; "
                f"moved it to {aside.name} and started afresh.",
                file=sys.stderr,
            )
            db = sqlite3.connect(path, timeout=60)
            db.executescript(SCHEMA)
            return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def known_digests(self) -> frozenset[str]:
        """Every digest this model has an embedding for (64 bytes each: 6 MB for 100,000 images)."""
        rows = self._db.execute("SELECT digest FROM embeddings WHERE model_id = ?", (self.model_id,))
        return frozenset(d for (d,) in rows)

    def get_many(self, digests: list[str]) -> dict[str, np.ndarray]:
        """The cached embeddings among `digests` (missing ones are simply absent)."""
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(digests))
        rows: list[tuple[str, int, int]] = []
        for i in range(0, len(wanted), 500):  # SQLite limits the number of parameters
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows += self._db.execute(
                f"SELECT digest, shard, row FROM embeddings WHERE model_id = ? AND digest IN ({marks})",
                [self.model_id, *chunk],
            ).fetchall()
        by_shard: dict[int, list[tuple[str, int]]] = {}
        for digest, shard, row in rows:
            by_shard.setdefault(shard, []).append((digest, row))
        for shard, items in by_shard.items():
            array = self._load_shard(shard)
            if array is None:
                continue
            for digest, row in items:
                if row < len(array):
                    found[digest] = np.array(array[row], dtype=np.float32)
        return found

    def _load_shard(self, shard: int) -> np.ndarray | None:
        rec = self._db.execute("SELECT file FROM shards WHERE id = ?", (shard,)).fetchone()
        path = self.root / rec[0] if rec else None
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False) if path else None
        except (OSError, ValueError):
            # A shard deleted or damaged by hand: forget it, its images get encoded again.
            with self._db:
                self._db.execute("DELETE FROM embeddings WHERE shard = ?", (shard,))
                self._db.execute("DELETE FROM shards WHERE id = ?", (shard,))
            return None

    def put_many(self, digests: list[str], embeddings: np.ndarray) -> None:
        """Store embeddings [N, D]; the shard is on disk before the index names it."""
        if not digests:
            return
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        assert len(digests) == len(embeddings)
        path = self.shard_dir / f"{uuid.uuid4().hex}.npy"
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, embeddings, allow_pickle=False)
        rel = path.relative_to(self.root).as_posix()
        with self._db:
            shard = self._db.execute(
                "INSERT INTO shards (model_id, file) VALUES (?, ?)", (self.model_id, rel)
            ).lastrowid
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings (model_id, digest, shard, row) VALUES (?, ?, ?, ?)",
                [(self.model_id, d, shard, i) for i, d in enumerate(digests)],
            )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (self.model_id,)).fetchone()[0]
