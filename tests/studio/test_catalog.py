"""The studio's catalog: add, get, search (escaped, newest first, limited), and what survives a restart."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ganscapes.studio.catalog import SCHEMA, Catalog, Entry
from ganscapes.studio.core import Studio, StudioConfig

HASH = "ab" * 32


def add(catalog: Catalog, prompt: str | None, **fields) -> Entry:
    return catalog.add(f"requests/x/{len(catalog)}.png", fields.pop("kind", "prompt"), HASH, prompt=prompt, **fields)


def test_add_and_get_round_trip(tmp_path):
    catalog = Catalog(tmp_path / "deep" / "folder" / "catalog.sqlite")  # the folder is made
    assert len(catalog) == 0 and catalog.get(1) is None
    entry = catalog.add(
        "requests/a/seed0007.png",
        "prompt",
        HASH,
        prompt="autumn woods",
        seed=7,
        latents="requests/a/latents.npz",
        row=3,
        score=0.25,
    )
    assert entry.id == 1 and len(catalog) == 1
    assert catalog.get(1) == entry
    assert catalog.get("1") == entry  # numbers from a text box
    assert (
        entry.file,
        entry.kind,
        entry.prompt,
        entry.seed,
        entry.latents,
        entry.row,
        entry.score,
        entry.model_hash,
    ) == ("requests/a/seed0007.png", "prompt", "autumn woods", 7, "requests/a/latents.npz", 3, 0.25, HASH)
    assert entry.created > 0
    assert catalog.get(2) is None
    bare = catalog.add("requests/b/cell.png", "mix", HASH)
    assert catalog.get(bare.id) == bare and bare.prompt is bare.seed is bare.score is None


def test_caption_says_number_score_and_what_the_picture_is_made_of(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    assert catalog.add("a.png", "prompt", HASH, seed=12, score=0.123456).caption == "#1 · score +0.123 · seed 12"
    assert catalog.add("b.png", "mix", HASH).caption == "#2 · mix"
    assert catalog.add("c.png", "seed", HASH, seed=0, psi=0.7).caption == "#3 · seed 0, ψ 0.7"  # seed 0 is a seed
    assert catalog.add("d.png", "mix", HASH, note="#3 × s4").caption == "#4 · #3 × s4"


def test_a_seed_and_psi_painted_before_is_found(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    first = catalog.add("a.png", "seed", HASH, seed=7, psi=0.7)
    catalog.add("b.png", "seed", HASH, seed=7, psi=0.5)
    catalog.add("c.png", "prompt", HASH, seed=7, psi=0.7)
    catalog.add("d.png", "seed", "another-model", seed=7, psi=0.7)
    assert catalog.painted(7, 0.7, HASH) == [first]
    assert catalog.painted(8, 0.7, HASH) == []


def test_a_catalog_of_an_earlier_studio_gains_the_new_columns(tmp_path):
    """A catalog written before psi and note existed opens, keeps its rows, and takes new ones."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA.replace(",\n    psi REAL,\n    note TEXT", ""))
        db.execute(
            "INSERT INTO images (file, kind, seed, model_hash, created) VALUES ('a.png', 'seed', 3, ?, 1.0)", (HASH,)
        )
    catalog = Catalog(path)
    old = catalog.get(1)
    assert (old.file, old.seed, old.psi, old.note) == ("a.png", 3, None, None)
    new = catalog.add("b.png", "mix", HASH, note="#1 × s2")
    assert catalog.get(new.id) == new and catalog.search() == [new, old]


def test_search_is_newest_first_and_limited(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    entries = [add(catalog, f"woods {i}") for i in range(6)]
    assert [e.id for e in catalog.search()] == [6, 5, 4, 3, 2, 1]
    assert catalog.search() == entries[::-1]
    assert [e.id for e in catalog.search(limit=2)] == [6, 5]
    assert [e.id for e in catalog.search("woods", limit=3)] == [6, 5, 4]
    assert catalog.search(limit=0) == []


def test_search_matches_prompt_substrings_case_insensitively(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    a = add(catalog, "Impressionist painting of autumn woods")
    b = add(catalog, "a misty lake at dawn")
    seed = catalog.add("s.png", "seed", HASH, seed=3)  # no prompt
    assert catalog.search("autumn") == [a]
    assert catalog.search("AUTUMN WOODS") == [a]
    assert catalog.search("  lake ") == [b]  # surrounding blanks are ignored
    assert catalog.search("a") == [b, a]  # substrings, newest first; a row without prompt never matches text
    assert catalog.search("") == catalog.search("   ") == [seed, b, a]
    assert catalog.search("winter") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("%", ["100% oil"]),
        ("_", ["snake_case"]),
        ("0% o", ["100% oil"]),
        ("e_c", ["snake_case"]),
        ("\\", ["back\\slash"]),
        ("k\\s", ["back\\slash"]),
        ("%%", []),
        ("a%e", []),  # would match "snake_case" and "back\\slash" if % were a wildcard
        ("s_a", []),  # would match "snake" … if _ were a wildcard
    ],
)
def test_search_escapes_like_wildcards(tmp_path, text, expected):
    catalog = Catalog(tmp_path / "c.sqlite")
    for prompt in ("100% oil", "snake_case", "back\\slash", "plain words"):
        add(catalog, prompt)
    assert [e.prompt for e in catalog.search(text)] == expected


def test_the_catalog_persists_across_instances(tmp_path):
    path = tmp_path / "c.sqlite"
    first = Catalog(path)
    entries = [add(first, "autumn woods", seed=i, score=i / 10) for i in range(3)]
    again = Catalog(path)  # the schema is not re-created over the rows
    assert len(again) == 3
    assert again.search() == entries[::-1]
    assert again.add("n.png", "seed", HASH).id == 4  # numbering continues


def test_a_restarted_studio_keeps_its_catalog_and_pictures(model_file, tmp_path, monkeypatch):
    """A second Studio on the same folder (a restart) sees, reuses and extends the first one's catalog."""
    from ganscapes.make.latents import render_ws
    from ganscapes.studio import core

    # request folders are named by the second; make both studios' requests fall in the same one
    monkeypatch.setattr(core, "time", SimpleNamespace(strftime=lambda fmt: "20260101-000000"))
    cfg = StudioConfig(model=model_file, out=tmp_path / "out", device="cpu")
    first = Studio(cfg)
    painted = first.paint_seed(7, 0.7)
    del first

    again = Studio(cfg)
    assert (tmp_path / "out" / "catalog.sqlite").is_file()
    assert again.catalog.get(painted.id) == painted
    path = again.path_of(painted)
    w = again.w_of(painted)  # the latent is found again, so it can be mixed or guided
    with Image.open(path) as im:
        assert np.array_equal(np.asarray(im), render_ws(again.model.G_ema, w[None], "const", again.device)[0])
    # in the same second as the first studio's request: its folder must not be reused
    second = again.paint_seed(8, 0.7)
    assert second.id == painted.id + 1
    assert again.path_of(second) != path and path.is_file()
    assert [e.id for e in again.catalog.search()] == [second.id, painted.id]


def test_a_catalog_elsewhere_is_used_when_named(model_file, tmp_path):
    studio = Studio(
        StudioConfig(model=model_file, out=tmp_path / "out", catalog=tmp_path / "cat" / "mine.sqlite", device="cpu")
    )
    entry = studio.paint_seed(1, 0.7)
    assert not (tmp_path / "out" / "catalog.sqlite").exists()
    assert Catalog(tmp_path / "cat" / "mine.sqlite").get(entry.id) == entry
