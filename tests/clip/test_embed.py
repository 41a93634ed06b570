"""embed_images: the cache saves encoding, survives interruption and damage; bad images are listed."""

from __future__ import annotations

import math
import shutil
import zipfile

import numpy as np
import pytest

from ganscapes.clip import embed as embed_module
from ganscapes.clip.cache import INDEX, EmbeddingCache
from ganscapes.clip.embed import ImageRef, embed_images, folder_refs
from ganscapes.clip.encoder import ClipEncoder
from ganscapes.errors import UserError

from helpers_images import noise, png_bytes, truncated, write, zip_bytes


def run(refs, encoder, cache=None, batch=4, workers=0):
    return embed_images(refs, encoder, cache, batch=batch, workers=workers, progress=False)


class Interrupting:
    """The encoder, but Ctrl-C arrives during its call number `after` + 1."""

    def __init__(self, encoder, after: int):
        self.encoder, self.after, self.calls = encoder, after, 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_images(self, pixels):
        if self.calls == self.after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.encoder.encode_images(pixels)


def other_model(encoder) -> ClipEncoder:
    """The same network under another model_id (as if other weights)."""
    return ClipEncoder(encoder.model, encoder.preprocess, encoder.tokenizer, "ViT-B-32/other", encoder.device)


# ---------------------------------------------------------------------------------------
# Plain embedding


def test_embeddings_shape_order_and_units(random_clip, make_images, tmp_path):
    paths = make_images(tmp_path / "imgs", 6)
    before = random_clip.image_calls
    result = run(folder_refs(tmp_path / "imgs"), random_clip, batch=4)
    assert random_clip.image_calls - before == 2  # 6 images, batches of 4
    assert [r.path for r in result.refs] == paths and result.unreadable == [] and result.encoded == 6
    assert result.embeddings.dtype == np.float32 and result.embeddings.shape == (6, 512)
    assert np.allclose(np.linalg.norm(result.embeddings, axis=1), 1, atol=1e-5)
    assert len(set(result.digests)) == 6
    assert np.abs(result.embeddings[0] - result.embeddings[1]).max() > 1e-3


def test_workers_do_not_change_embeddings(random_clip, make_images, tmp_path):
    refs = [ImageRef(p) for p in make_images(tmp_path, 6)]
    a = run(refs, random_clip, workers=0)
    b = run(refs, random_clip, workers=1)
    assert [r.path for r in a.refs] == [r.path for r in b.refs]
    assert np.array_equal(a.embeddings, b.embeddings)


def test_batch_size_does_not_change_embeddings(random_clip, make_images, tmp_path):
    refs = [ImageRef(p) for p in make_images(tmp_path, 5)]
    assert np.allclose(
        run(refs, random_clip, batch=5).embeddings, run(refs, random_clip, batch=2).embeddings, atol=1e-5
    )


def test_same_bytes_twice(random_clip, make_images, tmp_path):
    (a,) = make_images(tmp_path, 1)
    b = write(tmp_path / "copy.png", a.read_bytes())
    result = run([ImageRef(a), ImageRef(b)], random_clip)
    assert [r.path for r in result.refs] == [a, b]
    assert result.digests[0] == result.digests[1]
    assert np.array_equal(result.embeddings[0], result.embeddings[1])


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_images_are_listed_not_raised(workers, random_clip, make_images, tmp_path):
    good = make_images(tmp_path, 2)
    write(tmp_path / "garbage.png", b"<html>not an image</html>" * 20)
    write(tmp_path / "empty.png", b"")
    write(tmp_path / "truncated.png", truncated(png_bytes(noise(64, 64, seed=99))))
    refs = folder_refs(tmp_path) + [ImageRef(tmp_path / "gone.png")]
    result = run(refs, random_clip, workers=workers)
    assert [r.path for r in result.refs] == good
    assert result.embeddings.shape == (2, 512) and len(result.digests) == 2
    reasons = {ref.path.name: reason for ref, reason in result.unreadable}
    assert reasons.keys() == {"garbage.png", "empty.png", "truncated.png", "gone.png"}
    assert reasons["garbage.png"] == "not an image (unrecognised format)"
    assert reasons["empty.png"] == "empty file"
    assert reasons["truncated.png"] == "truncated file"
    assert reasons["gone.png"].startswith("unreadable: No such file or directory")
    assert [ref.path.name for ref, _ in result.unreadable] == ["empty.png", "garbage.png", "truncated.png", "gone.png"]
    alone = run([ImageRef(p) for p in good], random_clip)
    assert np.allclose(result.embeddings, alone.embeddings, atol=1e-5)


def test_nothing_readable(random_clip, tmp_path):
    write(tmp_path / "empty.png", b"")
    result = run(folder_refs(tmp_path), random_clip)
    assert result.refs == [] and len(result.embeddings) == 0 and [r for _, r in result.unreadable] == ["empty file"]


def test_zip_members_embed_like_files(random_clip, make_images, tmp_path):
    paths = make_images(tmp_path / "files", 3)
    archive = write(
        tmp_path / "paintings.zip",
        zip_bytes([(f"set/{p.name}", p.read_bytes()) for p in paths] + [("set/empty.png", b"")], zipfile.ZIP_DEFLATED),
    )
    refs = [ImageRef(archive, f"set/{p.name}") for p in paths]
    refs += [ImageRef(archive, "set/empty.png"), ImageRef(archive, "set/missing.png")]
    assert refs[0].name == "set/img_000.png" and refs[0].read_bytes() == paths[0].read_bytes()
    from_zip = run(refs, random_clip, workers=1)
    from_files = run([ImageRef(p) for p in paths], random_clip)
    assert from_zip.refs == refs[:3]
    assert np.array_equal(from_zip.embeddings, from_files.embeddings)
    assert from_zip.digests == from_files.digests
    reasons = {ref.member: reason for ref, reason in from_zip.unreadable}
    assert reasons["set/empty.png"] == "empty file"
    assert reasons["set/missing.png"].startswith("unreadable:") and "missing.png" in reasons["set/missing.png"]


def test_bad_options(random_clip, tmp_path):
    with pytest.raises(UserError, match=r"^batch must be at least 1, not 0\.$"):
        run([], random_clip, batch=0)
    with pytest.raises(UserError, match=r"^workers must be 0 or more, not -1\.$"):
        run([], random_clip, workers=-1)


def test_folder_refs(tmp_path):
    for name in ["b.png", "a.JPG", "sub/c.webp", "notes.txt", ".hidden.png", ".thumbs/d.png", "sub/.e.png"]:
        write(tmp_path / name, b"x")
    assert [r.path.relative_to(tmp_path).as_posix() for r in folder_refs(tmp_path)] == ["a.JPG", "b.png", "sub/c.webp"]
    assert [r.path.name for r in folder_refs(tmp_path, recursive=False)] == ["a.JPG", "b.png"]
    with pytest.raises(UserError, match="is not a folder of images"):
        folder_refs(tmp_path / "b.png")
    with pytest.raises(UserError, match="is not a folder of images"):
        folder_refs(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------
# The cache


def test_cache_avoids_encoding_again(random_clip, make_images, tmp_path):
    make_images(tmp_path / "imgs", 6)
    refs = folder_refs(tmp_path / "imgs")
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        first = run(refs, random_clip, cache)
        assert first.encoded == 6 and len(cache) == 6
        before = random_clip.image_calls
        second = run(refs, random_clip, cache)
        assert random_clip.image_calls == before and second.encoded == 0
    assert np.array_equal(first.embeddings, second.embeddings) and first.digests == second.digests
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:  # a new process, as it were
        third = run(refs, random_clip, cache)
        assert random_clip.image_calls == before and third.encoded == 0
        assert np.array_equal(first.embeddings, third.embeddings)


def test_moved_and_renamed_images_still_hit(random_clip, make_images, tmp_path):
    paths = make_images(tmp_path / "imgs", 4)
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        first = run(folder_refs(tmp_path / "imgs"), random_clip, cache)
        moved = tmp_path / "elsewhere" / "deep" / "renamed.png"
        moved.parent.mkdir(parents=True)
        shutil.move(paths[0], moved)
        before = random_clip.image_calls
        again = run([ImageRef(moved), *map(ImageRef, paths[1:])], random_clip, cache)
        assert random_clip.image_calls == before and again.encoded == 0
        assert np.array_equal(again.embeddings, first.embeddings)
        # one new image among known ones: only it is encoded
        (new,) = make_images(tmp_path / "imgs", 1, start=10)
        more = run(folder_refs(tmp_path / "imgs"), random_clip, cache)
        assert more.encoded == 1 and random_clip.image_calls == before + 1
        assert [r.path for r in more.refs] == [*paths[1:], new]


def test_another_model_does_not_hit(random_clip, make_images, tmp_path):
    refs = [ImageRef(p) for p in make_images(tmp_path / "imgs", 3)]
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        run(refs, random_clip, cache)
    other = other_model(random_clip)
    with EmbeddingCache(tmp_path / "cache", other.model_id) as cache:
        before = random_clip.image_calls
        result = run(refs, other, cache)
        assert result.encoded == 3 and random_clip.image_calls == before  # counted on `other`
        assert other.image_calls == 1 and len(cache) == 3
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        assert len(cache) == 3


@pytest.mark.parametrize(
    "flush_every, after, saved, workers",
    [
        (1000, 1, 4, 0),  # nothing flushed yet: the `finally` saves the first batch
        (4, 2, 8, 0),  # flushed every batch
    ],
)
def test_interrupted_run_resumes(flush_every, after, saved, workers, random_clip, make_images, monkeypatch, tmp_path):
    monkeypatch.setattr(embed_module, "FLUSH_EVERY", flush_every)
    refs = [ImageRef(p) for p in make_images(tmp_path / "imgs", 10)]
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        with pytest.raises(KeyboardInterrupt):
            run(refs, Interrupting(random_clip, after), cache, batch=4, workers=workers)
        assert len(cache) == saved
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        before = random_clip.image_calls
        resumed = run(refs, random_clip, cache, batch=4)
        assert resumed.encoded == 10 - saved
        assert random_clip.image_calls - before == math.ceil((10 - saved) / 4)
        assert len(cache) == 10
    fresh = run(refs, random_clip)
    assert [r.path for r in resumed.refs] == [r.path for r in fresh.refs]
    assert np.allclose(resumed.embeddings, fresh.embeddings, atol=1e-5)


def test_flushes_every_few_images(random_clip, make_images, monkeypatch, tmp_path):
    monkeypatch.setattr(embed_module, "FLUSH_EVERY", 4)
    refs = [ImageRef(p) for p in make_images(tmp_path / "imgs", 10)]
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        run(refs, random_clip, cache, batch=4)
        assert len(list(cache.shard_dir.glob("*.npy"))) == 3  # 4 + 4, and the last 2 at the end
        assert len(cache) == 10


def test_damaged_index_still_caches(random_clip, make_images, tmp_path, capsys):
    refs = [ImageRef(p) for p in make_images(tmp_path / "imgs", 3)]
    write(tmp_path / "cache" / "clip" / INDEX, b"\x00garbage\xff" * 500)
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        assert "was damaged" in capsys.readouterr().err
        assert run(refs, random_clip, cache).encoded == 3
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        assert run(refs, random_clip, cache).encoded == 0
    assert "damaged" not in capsys.readouterr().err


def test_deleted_shard_is_encoded_again(random_clip, make_images, monkeypatch, tmp_path):
    monkeypatch.setattr(embed_module, "FLUSH_EVERY", 4)
    refs = [ImageRef(p) for p in make_images(tmp_path / "imgs", 8)]
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        first = run(refs, random_clip, cache, batch=4)
        shards = sorted(cache.shard_dir.glob("*.npy"))
    assert len(shards) == 2
    shards[0].unlink()
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        before = random_clip.image_calls
        second = run(refs, random_clip, cache, batch=4)
        assert second.encoded == 4 and random_clip.image_calls == before + 1
        assert np.allclose(second.embeddings, first.embeddings, atol=1e-5)
        assert run(refs, random_clip, cache).encoded == 0  # stored again


def test_each_image_is_read_once_and_cached_ones_are_not_decoded(random_clip, make_images, monkeypatch, tmp_path):
    refs = folder_refs(make_images(tmp_path / "imgs", 6)[0].parent)
    reads, decodes = [], []
    real_read, real_load = ImageRef.read_bytes, embed_module.load_rgb
    monkeypatch.setattr(
        ImageRef, "read_bytes", lambda self, zips=None: reads.append(self.name) or real_read(self, zips)
    )
    monkeypatch.setattr(embed_module, "load_rgb", lambda img: decodes.append(1) or real_load(img))
    with EmbeddingCache(tmp_path / "cache", random_clip.model_id) as cache:
        first = run(refs, random_clip, cache)
        assert sorted(reads) == sorted(r.name for r in refs) and len(decodes) == 6  # one read each, fresh cache
        reads.clear(), decodes.clear()
        second = run(refs, random_clip, cache)
        assert sorted(reads) == sorted(r.name for r in refs) and decodes == []  # hashed, not decoded
    assert second.encoded == 0 and np.array_equal(first.embeddings, second.embeddings)
