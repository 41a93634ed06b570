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
    created REAL NOT NULL,
    psi REAL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS images_prompt ON images (prompt);
"""
# Columns added since the first catalogs: a catalog without them gains them, empty, when opened.
ADDED_COLUMNS = {"psi": "REAL", "note": "TEXT"}


@dataclass(frozen=True)
class Entry:
    id: int
    file: str
    kind: str  # seed, prompt, mix, guide, post, edit, near (more like this), project
    prompt: str | None
    seed: int | None
    latents: str | None
    row: int | None
    score: float | None
    model_hash: str
    created: float
    psi: float | None = None  # of a picture painted from a seed
    note: str | None = None  # its parents in words: "#7 × s4" for a mix cell, "from #3" for a guided one

    @property
    def caption(self) -> str:
        """The number, the score, and what the picture is made of, short enough for a gallery's cell."""
        bits = [f"#{self.id}"]
        if self.score is not None:
            bits.append(f"score {self.score:+.3f}")
        if self.note:
            bits.append(self.note)
        elif self.seed is not None:
            bits.append(f"seed {self.seed}" + (f", ψ {self.psi:g}" if self.psi is not None else ""))
        else:
            bits.append(self.kind)
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
        missing = set(Entry.__dataclass_fields__) - columns - set(ADDED_COLUMNS)
        if missing:
            raise UserError(f"{self.path} is an SQLite database but not a studio catalog (no {sorted(missing)[0]}).")
        with self._connect() as db:
            for name, kind in ADDED_COLUMNS.items():
                if name not in columns:
                    db.execute(f"ALTER TABLE images ADD COLUMN {name} {kind}")

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
        psi: float | None = None,
        note: str | None = None,
    ) -> Entry:
        created = time.time()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO images (file, kind, prompt, seed, latents, row, score, model_hash, created, psi, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (file, kind, prompt, seed, latents, row, score, model_hash, created, psi, note),
            )
            return Entry(cur.lastrowid, file, kind, prompt, seed, latents, row, score, model_hash, created, psi, note)

    def painted(self, seed: int, psi: float, model_hash: str) -> list[Entry]:
        """The pictures painted from `seed` at `psi` with this model, newest first: a repaint finds them."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM images WHERE kind = 'seed' AND seed = ? AND psi = ? AND model_hash = ?"
                " ORDER BY id DESC",
                (int(seed), float(psi), model_hash),
            ).fetchall()
        return [Entry(*rec) for rec in rows]

    def made(self, kind: str, note: str, model_hash: str) -> list[Entry]:
        """The pictures of `kind` made as `note` says with this model, newest first: an edit made again finds them."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM images WHERE kind = ? AND note = ? AND model_hash = ? ORDER BY id DESC",
                (kind, note, model_hash),
            ).fetchall()
        return [Entry(*rec) for rec in rows]

    def get(self, entry_id: int) -> Entry | None:
        with self._connect() as db:
            rec = db.execute(f"SELECT {COLUMNS} FROM images WHERE id = ?", (int(entry_id),)).fetchone()
        return Entry(*rec) if rec else None

    def search(self, text: str = "", limit: int = 100) -> list[Entry]:
        """Newest first; `text` matches the prompt (case-insensitive substring)."""
        query = f"SELECT {COLUMNS} FROM images"
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


# The columns in Entry's order, named: an older catalog that gained psi and note has them in another place.
COLUMNS = ", ".join(Entry.__dataclass_fields__)
