"""The embedding cache on its own: round trips, model separation, damage (no model needed)."""

from __future__ import annotations

import sqlite3

import numpy as np

from ganscapes.clip.cache import CACHE_ENV, INDEX, EmbeddingCache, default_cache_dir


def vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def keys(n: int, prefix: str = "d") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ganscapes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ganscapes"


def test_round_trip_across_instances(tmp_path):
    v = vectors(5)
    with EmbeddingCache(tmp_path, "ViT-B-32/openai") as cache:
        assert len(cache) == 0 and cache.get_many(keys(5)) == {}
        cache.put_many(keys(3), v[:3])
        cache.put_many(keys(5)[3:], v[3:])
        assert len(cache) == 5
    with EmbeddingCache(tmp_path, "ViT-B-32/openai") as cache:
        got = cache.get_many(["missing", *keys(5), "d00001"])
        assert set(got) == set(keys(5))  # missing ones simply absent, repeats once
        for i, k in enumerate(keys(5)):
            assert got[k].dtype == np.float32 and np.array_equal(got[k], v[i])
    assert (tmp_path / "clip" / INDEX).is_file()
    assert len(list((tmp_path / "clip" / "shards" / "ViT-B-32_openai").glob("*.npy"))) == 2  # one per put
    assert not list((tmp_path / "clip").rglob("*.tmp"))


def test_put_nothing_writes_nothing(tmp_path):
    with EmbeddingCache(tmp_path, "m") as cache:
        cache.put_many([], np.zeros([0, 8], np.float32))
        assert len(cache) == 0
    assert not list((tmp_path / "clip" / "shards").rglob("*.npy"))


def test_many_digests_in_one_lookup(tmp_path):
    """SQLite limits query parameters; lookups are chunked."""
    v = vectors(1234, dim=4)
    with EmbeddingCache(tmp_path, "m") as cache:
        cache.put_many(keys(1234), v)
        got = cache.get_many(keys(1234) + keys(50, "x"))
        assert len(got) == 1234
        assert np.array_equal(np.stack([got[k] for k in keys(1234)]), v)


def test_models_do_not_share_embeddings(tmp_path):
    with EmbeddingCache(tmp_path, "ViT-B-32/openai") as a, EmbeddingCache(tmp_path, "ViT-B-32/sha256-0123") as b:
        a.put_many(["same"], vectors(1, seed=1))
        b.put_many(["same"], vectors(1, seed=2))
        assert len(a) == len(b) == 1
        assert np.array_equal(a.get_many(["same"])["same"], vectors(1, seed=1)[0])
        assert np.array_equal(b.get_many(["same"])["same"], vectors(1, seed=2)[0])
    with EmbeddingCache(tmp_path, "ViT-L-14/openai") as c:
        assert c.get_many(["same"]) == {}


def test_a_digest_stored_again_takes_the_new_value(tmp_path):
    with EmbeddingCache(tmp_path, "m") as cache:
        cache.put_many(["k"], vectors(1, seed=1))
        cache.put_many(["k"], vectors(1, seed=2))
        assert len(cache) == 1
        assert np.array_equal(cache.get_many(["k"])["k"], vectors(1, seed=2)[0])


def test_damaged_index_is_set_aside(tmp_path, capsys):
    index = tmp_path / "clip" / INDEX
    index.parent.mkdir(parents=True)
    index.write_bytes(b"this is not an SQLite database " * 100)
    with EmbeddingCache(tmp_path, "m") as cache:
        err = capsys.readouterr().err
        assert "warning: the embedding index" in err and "was damaged" in err and "started afresh" in err
        aside = list(index.parent.glob(f"{INDEX}.damaged-*"))
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not an SQLite database")
        assert aside[0].name in err
        cache.put_many(keys(2), vectors(2))
        assert len(cache) == 2
    with EmbeddingCache(tmp_path, "m") as cache:  # the new index is a good one
        assert len(cache.get_many(keys(2))) == 2
    assert "warning" not in capsys.readouterr().err
    sqlite3.connect(index).execute("SELECT COUNT(*) FROM embeddings").fetchone()


def test_deleted_or_damaged_shard_is_forgotten(tmp_path):
    with EmbeddingCache(tmp_path, "m") as cache:
        cache.put_many(keys(3), vectors(3, seed=1))
        cache.put_many(keys(6)[3:], vectors(3, seed=2))
        rows = dict(cache._db.execute("SELECT id, file FROM shards").fetchall())
    first, second = (tmp_path / "clip" / rows[k] for k in sorted(rows))
    first.unlink()
    with EmbeddingCache(tmp_path, "m") as cache:
        assert set(cache.get_many(keys(6))) == set(keys(6)[3:])
        assert len(cache) == 3  # the rows of the missing shard are gone from the index
    second.write_bytes(b"garbage")
    with EmbeddingCache(tmp_path, "m") as cache:
        assert cache.get_many(keys(6)) == {}
        assert len(cache) == 0
        cache.put_many(keys(1), vectors(1))  # and it keeps working
        assert len(cache.get_many(keys(6))) == 1
