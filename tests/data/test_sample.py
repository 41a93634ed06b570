"""The procedural sample generator: reproducible, resumable, and actually painterly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.data.manifest import MANIFEST_NAME, read_manifest
from ganscapes.data.sample import make_samples, paint_landscape, sample_aspect_and_size
from ganscapes.errors import SettingError, UserError

SMALL = dict(min_side=48, max_side=96, progress=False)


def _bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def _manifest_lines(folder: Path) -> list[str]:
    return (folder / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()


def _mtimes(paths: list[Path]) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


# ---------------------------------------------------------------------------------------
# determinism


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = make_samples(tmp_path / "a", n=4, seed=3, **SMALL)
    b = make_samples(tmp_path / "b", n=4, seed=3, **SMALL)
    assert [p.name for p in a] == [f"sample_{i:05d}.jpg" for i in range(4)]
    assert _bytes(a) == _bytes(b)


def test_different_seed_gives_different_images(tmp_path):
    a = make_samples(tmp_path / "a", n=3, seed=1, **SMALL)
    b = make_samples(tmp_path / "b", n=3, seed=2, **SMALL)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() != pb.read_bytes()
    # Different pictures, not just different bytes: compare pixels at a common size.
    x = np.asarray(Image.open(a[0]).convert("RGB").resize((32, 32)), dtype=float)
    y = np.asarray(Image.open(b[0]).convert("RGB").resize((32, 32)), dtype=float)
    assert np.abs(x - y).mean() > 10


def test_images_within_a_set_differ(tmp_path):
    paths = make_samples(tmp_path, n=3, seed=0, **SMALL)
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}) == 3


def test_image_depends_only_on_seed_and_index(tmp_path):
    short = make_samples(tmp_path / "short", n=3, seed=7, **SMALL)
    long = make_samples(tmp_path / "long", n=5, seed=7, **SMALL)
    assert _bytes(short) == _bytes(long[:3])


def test_paint_landscape_is_a_pure_function_of_the_generator():
    a = paint_landscape(np.random.default_rng([4, 2]), 80, 50)
    b = paint_landscape(np.random.default_rng([4, 2]), 80, 50)
    assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------
# sizes


def test_aspect_ratios_spread_mostly_landscape():
    rng = np.random.default_rng(123)
    sizes = [sample_aspect_and_size(rng, 48, 128) for _ in range(200)]
    ratios = np.array([w / h for w, h in sizes])
    assert ratios.min() >= 0.75 and ratios.max() <= 1.8
    assert (ratios > 1.05).mean() >= 0.6
    assert (ratios < 1.0).mean() >= 0.08
    for w, h in sizes:
        assert 48 <= max(w, h) <= 128  # the longer side is the one drawn from the range
        assert 16 <= min(w, h) <= max(w, h)
    longs = np.array([max(w, h) for w, h in sizes])
    assert longs.min() < 60 and longs.max() > 116  # spread over the range, not one size


def test_sizes_stay_valid_at_the_smallest_range():
    rng = np.random.default_rng(5)
    for _ in range(100):
        w, h = sample_aspect_and_size(rng, 16, 16)
        assert w >= 16 and h >= 16 and max(w, h) == 16


def test_written_files_are_rgb_jpegs_of_the_chosen_size(tmp_path):
    seed = 11
    paths = make_samples(tmp_path, n=4, seed=seed, min_side=40, max_side=120, progress=False)
    for i, path in enumerate(paths):
        expected = sample_aspect_and_size(np.random.default_rng([seed, i]), 40, 120)
        with Image.open(path) as img:
            assert img.format == "JPEG"
            assert img.mode == "RGB"
            assert img.size == expected
            img.load()  # decodes without error


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (33, 17), (17, 45), (300, 20)])
def test_paint_landscape_exact_size(size):
    img = paint_landscape(np.random.default_rng(size[0] * 1000 + size[1]), *size)
    assert img.mode == "RGB" and img.size == size


# ---------------------------------------------------------------------------------------
# manifest


def test_manifest_records(tmp_path):
    paths = make_samples(tmp_path, n=3, seed=9, **SMALL)
    records = read_manifest(tmp_path)
    assert len(records) == 3 == len(_manifest_lines(tmp_path))
    for i, (rec, path) in enumerate(zip(records, paths)):
        data = path.read_bytes()
        assert rec.file == path.name == f"sample_{i:05d}.jpg"
        assert rec.sha256 == hashlib.sha256(data).hexdigest()
        assert rec.bytes == len(data)
        assert rec.source == f"procedural:seed=9:index={i}"
        assert rec.artist == "ganscapes sample"
        assert rec.licence == "CC0-1.0"
        assert rec.genre == "landscape"
        assert rec.extra == {"generator": "ganscapes.sample", "seed": 9, "index": i}
        assert isinstance(rec.title, str) and 0 < len(rec.title) <= 60
        assert rec.title.endswith(f" {i}")
        assert rec.image_url is None
    # One JSON object per line.
    for line in _manifest_lines(tmp_path):
        assert isinstance(json.loads(line), dict)


def test_titles_vary(tmp_path):
    make_samples(tmp_path, n=12, seed=0, min_side=16, max_side=24, progress=False)
    stems = {r.title.rsplit(" ", 1)[0] for r in read_manifest(tmp_path)}
    assert len(stems) >= 3


# ---------------------------------------------------------------------------------------
# resuming


def test_second_run_writes_nothing(tmp_path):
    paths = make_samples(tmp_path, n=3, seed=0, **SMALL)
    before = _mtimes(paths)
    lines = _manifest_lines(tmp_path)
    again = make_samples(tmp_path, n=3, seed=0, **SMALL)
    assert again == paths
    assert _mtimes(again) == before
    assert _manifest_lines(tmp_path) == lines


def test_larger_n_appends_only_new_images(tmp_path):
    first = make_samples(tmp_path, n=2, seed=0, **SMALL)
    before = _mtimes(first)
    lines = _manifest_lines(tmp_path)
    more = make_samples(tmp_path, n=4, seed=0, **SMALL)
    assert more[:2] == first and len(more) == 4
    assert _mtimes(first) == before
    now = _manifest_lines(tmp_path)
    assert now[:2] == lines and len(now) == 4
    assert [r.file for r in read_manifest(tmp_path)] == [p.name for p in more]


def test_corrupted_image_is_repainted_identically(tmp_path):
    paths = make_samples(tmp_path, n=3, seed=0, **SMALL)
    original = paths[1].read_bytes()
    lines = _manifest_lines(tmp_path)
    paths[1].write_bytes(b"not a jpeg at all")
    paths[2].unlink()
    make_samples(tmp_path, n=3, seed=0, **SMALL)
    assert paths[1].read_bytes() == original
    assert paths[2].is_file()
    # Same bytes, same hash: the existing records still hold, nothing is duplicated.
    assert _manifest_lines(tmp_path) == lines


def test_unrecorded_sample_file_gets_a_record(tmp_path):
    """A crash between writing a picture and recording it must not lose the record."""
    paths = make_samples(tmp_path, n=2, seed=0, **SMALL)
    (tmp_path / MANIFEST_NAME).unlink()
    make_samples(tmp_path, n=2, seed=0, **SMALL)
    records = read_manifest(tmp_path)
    assert [r.file for r in records] == [p.name for p in paths]
    assert records[0].sha256 == hashlib.sha256(paths[0].read_bytes()).hexdigest()


def test_truncated_manifest_line_is_survived(tmp_path):
    make_samples(tmp_path, n=2, seed=0, **SMALL)
    with open(tmp_path / MANIFEST_NAME, "a", encoding="utf-8") as f:
        f.write('{"file": "sample_00002.jpg", "sha2')  # an interrupted write
    make_samples(tmp_path, n=3, seed=0, **SMALL)
    assert [r.file for r in read_manifest(tmp_path)] == [f"sample_{i:05d}.jpg" for i in range(3)]


def test_foreign_files_are_left_alone(tmp_path):
    notes = tmp_path / "notes.txt"
    photo = tmp_path / "holiday.jpg"
    sub = tmp_path / "keep" / "sample_00000.jpg"
    sub.parent.mkdir()
    for p, data in ((notes, b"mine"), (photo, b"\xff\xd8 not ours"), (sub, b"nested")):
        p.write_bytes(data)
    make_samples(tmp_path, n=2, seed=0, **SMALL)
    assert notes.read_bytes() == b"mine"
    assert photo.read_bytes() == b"\xff\xd8 not ours"
    assert sub.read_bytes() == b"nested"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["holiday.jpg", "keep", MANIFEST_NAME, "notes.txt", "sample_00000.jpg", "sample_00001.jpg"]


def test_creates_missing_parent_folders(tmp_path):
    out = tmp_path / "a" / "b" / "raw"
    paths = make_samples(out, n=1, seed=0, **SMALL)
    assert paths[0].parent == out.resolve() and paths[0].is_file()


# ---------------------------------------------------------------------------------------
# the look


def _pictures() -> list[np.ndarray]:
    out = []
    for i in range(12):
        rng = np.random.default_rng([0, i])
        w, h = sample_aspect_and_size(rng, 96, 128)
        out.append(np.asarray(paint_landscape(rng, w, h), dtype=np.float64))
    return out


@pytest.fixture(scope="module")
def pictures() -> list[np.ndarray]:
    return _pictures()


def test_pictures_are_not_flat(pictures):
    for a in pictures:
        assert a.std() > 15


def test_sky_differs_from_the_ground(pictures):
    diffs = []
    for a in pictures:
        k = max(1, a.shape[0] // 8)
        diffs.append(np.abs(a[:k].mean(axis=(0, 1)) - a[-k:].mean(axis=(0, 1))).max())
    assert min(diffs) > 4  # water can mirror the sky, but never exactly
    assert np.median(diffs) > 20


def test_brush_dabs_give_high_frequency_texture(pictures):
    for a in pictures:
        dx = np.abs(np.diff(a, axis=1)).mean()
        dy = np.abs(np.diff(a, axis=0)).mean()
        assert (dx + dy) / 2 > 4
    # A smooth gradient of the same range would score far lower: the texture is the dabs.
    smooth = np.linspace(0, 255, 128)[None, :, None] * np.ones((96, 1, 3))
    assert np.abs(np.diff(smooth, axis=1)).mean() < 2.1


def test_palettes_vary_between_pictures(pictures):
    means = np.array([a.mean(axis=(0, 1)) for a in pictures])
    assert means.std(axis=0).max() > 10
    # Hue varies too, not just brightness: the red-blue balance moves.
    balance = means[:, 0] - means[:, 2]
    assert balance.max() - balance.min() > 20


# ---------------------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0),
        dict(n=-3),
        dict(min_side=15, max_side=64),
        dict(min_side=100, max_side=64),
        dict(min_side=0, max_side=0),
        dict(seed=-1),
    ],
)
def test_bad_arguments_raise_user_error(tmp_path, kwargs):
    args = dict(n=2, seed=0, min_side=48, max_side=96, progress=False) | kwargs
    with pytest.raises(UserError) as exc:
        make_samples(tmp_path / "out", **args)
    message = str(exc.value)
    assert message.endswith(".") and "\n" not in message
    assert not (tmp_path / "out").exists()  # refused before touching the disk


def test_sample_aspect_and_size_rejects_bad_sides():
    rng = np.random.default_rng(0)
    with pytest.raises(UserError):
        sample_aspect_and_size(rng, 10, 64)
    with pytest.raises(UserError):
        sample_aspect_and_size(rng, 65, 64)


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "raw"
    target.write_text("a file")
    with pytest.raises(SettingError, match=r"^out .*raw exists and is not a folder; choose another\.$"):
        make_samples(target, n=1, **SMALL)
    assert target.read_text() == "a file"


def test_symlink_pointing_outside_is_refused(tmp_path):
    outside = tmp_path / "precious.jpg"
    outside.write_bytes(b"do not touch")
    out = tmp_path / "raw"
    out.mkdir()
    (out / "sample_00000.jpg").symlink_to(outside)
    with pytest.raises(UserError):
        make_samples(out, n=1, **SMALL)
    assert outside.read_bytes() == b"do not touch"


# ---------------------------------------------------------------------------------------
# every size and seed paints


def test_the_sample_that_once_crashed_paints():
    """Seed 4, image 472 put a float32 dab centre on x == width (an IndexError)."""
    from ganscapes.data.sample import render_sample

    data, title = render_sample(4, 472, 192, 512)
    with Image.open(__import__("io").BytesIO(data)) as img:
        assert img.format == "JPEG" and title
        assert img.size == sample_aspect_and_size(np.random.default_rng([4, 472]), 192, 512)


def test_dab_centres_stay_inside_the_canvas_when_jitter_rounds_up():
    """The largest jitter below 1 must not round a centre onto the next (missing) pixel."""
    from ganscapes.data.painter.dabs import _scatter
    from ganscapes.data.painter.underpainting import _Canvas

    class AlmostOne:
        def integers(self, low, high, size):
            return np.full(size, high - 1)  # the last pixel of the mask: bottom-right corner

        def random(self, shape):
            return np.full(shape, np.nextafter(1.0, 0.0))

    width, height = 239, 97
    cv = _Canvas(
        rng=AlmostOne(),
        width=width,
        height=height,
        unit=1.0,
        paint=np.zeros((height, width, 3), np.float32),
        region=np.zeros((height, width), np.int8),
        angle=np.zeros((height, width), np.float32),
    )
    x, y = _scatter(cv, np.ones((height, width), bool), mean_area=50.0)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert int(x.max()) == width - 1 and int(y.max()) == height - 1
    cv.angle[y.astype(int), x.astype(int)]  # indexes without error


@pytest.mark.parametrize("seed", range(6))
def test_many_seeds_indices_and_odd_sizes_paint(seed):
    """A sweep of (seed, index, size), odd and tiny sizes included: every picture paints."""
    from ganscapes.data.sample import render_sample

    rng = np.random.default_rng(seed)
    for index in range(40):
        low = int(rng.integers(16, 80))
        high = low + int(rng.integers(0, 40))
        data, _ = render_sample(seed, index * 37 + seed, low, high)
        assert data[:2] == b"\xff\xd8"  # a JPEG
    for width, height in [(1, 7), (3, 3), (239, 5), (5, 239), (101, 63), (127, 255)]:
        img = paint_landscape(np.random.default_rng([seed, width, height]), width, height)
        assert img.size == (width, height)
