"""The studio's catalog: every picture it made, in SQLite, kept across restarts.

A row says what the picture is (file, kind), how it came about (prompt, seed, score)
and where its latent is (a latents .npz and the row in it), so a picture from last
week can be mixed, guided or finished again. Paths are stored relative to the studio's
output folder, which the studio confines every file access to.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from ganscapes.errors import UserError, first_line

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file TEXT NOT NULL,
    kind TEXT NOT NULL,
    prompt TEXT,
    seed INTEGER,
    latents TEXT,
    row INTEGER,
    score REAL,
    model_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_prompt ON images (prompt);
"""


@dataclass(frozen=True)
class Entry:
    id: int
    file: str
    kind: str  # seed, prompt, mix, guide, post
    prompt: str | None
    seed: int | None
    latents: str | None
    row: int | None
    score: float | None
    model_hash: str
    created: float

    @property
    def caption(self) -> str:
        bits = [f"#{self.id}"]  # the score first: long captions are cut on the page
        if self.score is not None:
            bits.append(f"score {self.score:+.3f}")
        bits.append(self.kind)
        if self.seed is not None:
            bits.append(f"seed {self.seed}")
        return " · ".join(bits)


class Catalog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per call keeps it safe under Gradio's worker threads.
        try:
            with self._connect() as db:
                db.executescript(SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(images)")}
        except sqlite3.DatabaseError as e:  # a file of another kind, a folder, a damaged database
            raise UserError(f"{self.path} is not a studio catalog (an SQLite database): {first_line(e)}.") from None
        missing = set(Entry.__dataclass_fields__) - columns
        if missing:
            raise UserError(f"{self.path} is an SQLite database but not a studio catalog (no {sorted(missing)[0]}).")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add(
        self,
        file: str,
        kind: str,
        model_hash: str,
        prompt: str | None = None,
        seed: int | None = None,
        latents: str | None = None,
        row: int | None = None,
        score: float | None = None,
    ) -> Entry:
        created = time.time()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO images (file, kind, prompt, seed, latents, row, score, model_hash, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file, kind, prompt, seed, latents, row, score, model_hash, created),
            )
            return Entry(cur.lastrowid, file, kind, prompt, seed, latents, row, score, model_hash, created)

    def get(self, entry_id: int) -> Entry | None:
        with self._connect() as db:
            rec = db.execute("SELECT * FROM images WHERE id = ?", (int(entry_id),)).fetchone()
        return Entry(*rec) if rec else None

    def search(self, text: str = "", limit: int = 100) -> list[Entry]:
        """Newest first; `text` matches the prompt (case-insensitive substring)."""
        query = "SELECT * FROM images"
        args: list = []
        if text.strip():
            query += " WHERE prompt LIKE ? ESCAPE '\\'"
            escaped = text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        query += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        with self._connect() as db:
            return [Entry(*rec) for rec in db.execute(query, args).fetchall()]

    def __len__(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM images").fetchone()[0]
