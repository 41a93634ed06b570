"""The prepare stage end to end: raw images → square power-of-two dataset (folder or zip)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganscapes.data.prepare as prepare_mod
from ganscapes.data.aspect import Format, apply_format, crop_box
from ganscapes.data.dataset import Dataset, dataset_info, image_name, is_ganscapes_dataset
from ganscapes.data.images import load_rgb, open_image
from ganscapes.data.prepare import PrepareConfig, Source, list_sources, prepare_dataset, restore_aspect
from ganscapes.errors import SettingError, UserError

from helpers_images import (
    BLUE,
    GREEN,
    GREY,
    RED,
    WHITE,
    bomb_png,
    damaged_zip,
    encode,
    file_sha256,
    jpeg_bytes,
    listing,
    noise,
    png_bytes,
    rotated_marker_source,
    sha256,
    solid,
    tree_bytes,
    tree_snapshot,
    truncated,
    vbands,
    write,
    zip_bytes,
)

RES = 16

# name → (width, height): aspect ratios 4/3, 3/4, 2 and 1
SIZES = {"a.png": (80, 60), "b.jpg": (60, 80), "c.png": (100, 50), "sub/d.png": (64, 64)}
TRUE_MEAN = (80 / 60 + 60 / 80 + 100 / 50 + 64 / 64) / 4  # 1.2708333…


def make_sources(folder: Path, sizes: dict[str, tuple[int, int]] = SIZES, seed: int = 0) -> Path:
    for i, (name, (w, h)) in enumerate(sorted(sizes.items())):
        img = noise(w, h, seed=seed + i)
        fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
        write(folder / name, encode(img, fmt, **({"quality": 90} if fmt == "JPEG" else {})))
    return folder


def cfg(**kw) -> PrepareConfig:
    kw.setdefault("res", RES)
    kw.setdefault("workers", 1)
    return PrepareConfig(**kw)


def run(src: Path, out: Path, **kw):
    """prepare_dataset with a small config; returns (result, log lines)."""
    lines: list[str] = []
    result = prepare_dataset(src, out, cfg(**kw), log=lines.append, progress=False)
    return result, lines


def manifest_of(out: Path) -> dict:
    with Dataset(out) as ds:
        return ds.manifest


def report_lines(out: Path) -> list[str]:
    return out.with_name(out.name + ".prepare-report.tsv").read_text(encoding="utf-8").splitlines()


@pytest.fixture
def src(tmp_path) -> Path:
    return make_sources(tmp_path / "src")


# ---------------------------------------------------------------------------------------
# The happy path


def test_image_names_follow_the_official_layout():
    assert image_name(0) == "00000/img00000000.png"
    assert image_name(999) == "00000/img00000999.png"
    assert image_name(1000) == "00001/img00001000.png"
    assert image_name(123456) == "00123/img00123456.png"


def test_prepare_folder_end_to_end(src, tmp_path):
    before = tree_snapshot(src)
    out = tmp_path / "ds"
    result, log = run(src, out)

    names = [f"00000/img{i:08d}.png" for i in range(4)]
    files = tree_bytes(out)
    assert sorted(files) == sorted(names + ["dataset.json", "manifest.json"])
    for name in names:
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == (RES, RES)
    assert json.loads(files["dataset.json"]) == {"labels": None}

    mean6 = round(TRUE_MEAN, 6)
    assert log[0] == f"Mean aspect ratio (width/height) of 4 source images: {TRUE_MEAN:.3f}"
    assert log[0].endswith(": 1.271")
    assert len(log) == 1  # nothing skipped
    assert result.images == 4 and result.rendered == 4 and result.reused == 0
    assert result.mean_aspect == pytest.approx(TRUE_MEAN, abs=1e-12)
    assert result.aspect == mean6
    assert result.skipped == [] and not result.up_to_date
    assert result.out == out and result.report == tmp_path / "ds.prepare-report.tsv"
    assert report_lines(out) == ["path\treason"]

    m = json.loads(files["manifest.json"])
    assert m["kind"] == "ganscapes-dataset" and m["version"] == 1
    assert m["created_by"].startswith("ganscapes ")
    assert m["source"] == str(src.resolve())
    assert m["resolution"] == RES
    assert m["format"] == "center-rect"
    assert m["crop_aspect"] == mean6
    assert m["mean_aspect"] == mean6
    assert m["aspect"] == mean6
    assert m["source_count"] == 4
    assert m["skipped"] == []
    assert m["settings"] == {"res": RES, "format": "center-rect", "aspect": mean6, "render_version": 1}
    assert [i["file"] for i in m["images"]] == names
    assert [i["source"] for i in m["images"]] == ["a.png", "b.jpg", "c.png", "sub/d.png"]
    for item in m["images"]:
        w, h = SIZES[item["source"]]
        assert item["sha256"] == file_sha256(src / item["source"])
        assert item["size"] == [w, h]
        assert item["crop_box"] == list(crop_box(Format.CENTER_RECT, w, h, mean6))
        assert "origin" not in item
    assert m["images"][2]["crop_box"] == [18, 0, 82, 50]  # 100x50 cut to 1.271:1 → 64 px wide

    assert tree_snapshot(src) == before  # sources untouched
    assert listing(tmp_path) == sorted(
        [
            "ds",
            "ds/00000",
            *(f"ds/{n}" for n in names),
            "ds/dataset.json",
            "ds/manifest.json",
            "ds.prepare-report.tsv",
            "src",
            "src/a.png",
            "src/b.jpg",
            "src/c.png",
            "src/sub",
            "src/sub/d.png",
        ]
    )  # no staging folder or temporary file left behind


def test_pixels_match_the_library_rendering(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out, res=32, format="squeeze")
    for i, rel in enumerate(["a.png", "b.jpg", "c.png", "sub/d.png"]):
        expected = apply_format(load_rgb(open_image(src / rel)), "squeeze", 32)
        with Image.open(out / image_name(i)) as img:
            assert img.tobytes() == expected.tobytes()


def test_center_rect_with_an_explicit_aspect_crops_where_expected(tmp_path):
    src = tmp_path / "src"
    write(src / "bands.png", png_bytes(vbands(32, [(32, RED), (32, GREEN), (32, WHITE), (32, BLUE)])))
    out = tmp_path / "ds"
    result, log = run(src, out, res=64, format="center-rect", aspect=2.0)
    assert log == []  # an explicit aspect: no mean is announced
    assert result.aspect == 2.0 and result.mean_aspect == 4.0
    m = manifest_of(out)
    assert m["crop_aspect"] == 2.0 and m["aspect"] == 2.0 and m["mean_aspect"] == 4.0
    assert m["images"][0]["crop_box"] == [32, 0, 96, 32]
    a = np.asarray(Image.open(out / image_name(0)))
    assert a.shape == (64, 64, 3)
    assert (a[:, :32] == GREEN).all() and (a[:, 32:] == WHITE).all()


@pytest.mark.parametrize(
    "fmt, aspect, expected_aspect, box_c",
    [
        ("center-rect", None, round(TRUE_MEAN, 6), [18, 0, 82, 50]),
        ("center-rect", 1.5, 1.5, [12, 0, 87, 50]),
        ("squeeze", None, round(TRUE_MEAN, 6), [0, 0, 100, 50]),
        ("squeeze", 3.0, round(TRUE_MEAN, 6), [0, 0, 100, 50]),  # aspect only matters to center-rect
        ("center-crop", None, 1.0, [25, 0, 75, 50]),
        ("letterbox", None, 1.0, [0, 0, 100, 50]),
    ],
)
def test_each_format_records_its_geometry(src, tmp_path, fmt, aspect, expected_aspect, box_c):
    result, log = run(src, tmp_path / "ds", format=fmt, aspect=aspect)
    m = manifest_of(tmp_path / "ds")
    assert m["format"] == fmt
    assert result.aspect == pytest.approx(expected_aspect, abs=1e-6) and m["aspect"] == expected_aspect
    assert m["mean_aspect"] == round(TRUE_MEAN, 6)
    assert m["crop_aspect"] == (m["settings"]["aspect"])
    assert m["settings"]["aspect"] == ((aspect or round(TRUE_MEAN, 6)) if fmt == "center-rect" else None)
    assert m["images"][2]["crop_box"] == box_c
    announces_mean = fmt in ("center-rect", "squeeze") and aspect is None
    assert any(line.startswith("Mean aspect ratio") for line in log) is announces_mean


def test_letterbox_output_has_black_bars(tmp_path):
    src = tmp_path / "src"
    write(src / "wide.png", png_bytes(solid(128, 32, GREY)))
    write(src / "tall.png", png_bytes(solid(32, 128, GREY)))
    run(src, tmp_path / "ds", res=32, format="letterbox")
    tall = np.asarray(Image.open(tmp_path / "ds" / image_name(0)))
    wide = np.asarray(Image.open(tmp_path / "ds" / image_name(1)))
    assert (wide[:12] == 0).all() and (wide[20:] == 0).all() and (wide[12:20] == 128).all()
    assert (tall[:, :12] == 0).all() and (tall[:, 20:] == 0).all() and (tall[:, 12:20] == 128).all()


@pytest.mark.parametrize(
    "fmt, crop, mean, expected",
    [
        (Format.CENTER_RECT, 1.27, 1.4, 1.27),
        ("center-rect", 0.8, None, 0.8),
        (Format.SQUEEZE, 1.27, 1.4, 1.4),
        (Format.SQUEEZE, 1.27, None, 1.0),
        (Format.CENTER_CROP, 1.27, 1.4, 1.0),
        (Format.LETTERBOX, 1.27, 1.4, 1.0),
    ],
)
def test_restore_aspect(fmt, crop, mean, expected):
    assert restore_aspect(fmt, crop, mean) == expected


def test_single_image_file_as_source(tmp_path):
    path = write(tmp_path / "one.jpg", jpeg_bytes(noise(90, 60)))
    result, log = run(path, tmp_path / "ds")
    assert result.images == 1
    assert log == ["Mean aspect ratio (width/height) of 1 source images: 1.500"]
    assert manifest_of(tmp_path / "ds")["images"][0]["source"] == "one.jpg"


def test_gather_manifest_origin_is_carried_over(src, tmp_path):
    record = {
        "file": "a.png",
        "sha256": "x",
        "bytes": 1,
        "source": "https://www.wikiart.org/en/x/y",
        "artist": "Claude Monet",
        "title": "Impression",
        "born": 1840,
        "licence": "public domain",
    }
    (src / "manifest.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    result, _ = run(src, tmp_path / "ds")
    assert result.images == 4  # manifest.jsonl is not a source
    items = manifest_of(tmp_path / "ds")["images"]
    assert items[0]["origin"] == {
        "sha256": "x",
        "source": "https://www.wikiart.org/en/x/y",
        "artist": "Claude Monet",
        "title": "Impression",
        "born": 1840,
        "licence": "public domain",
    }
    assert all("origin" not in item for item in items[1:])


# ---------------------------------------------------------------------------------------
# Zip in, zip out


def test_zip_output_matches_folder_output(src, tmp_path):
    folder, archive = tmp_path / "ds", tmp_path / "ds.zip"
    run(src, folder)
    result, _ = run(src, archive)
    assert result.report == tmp_path / "ds.zip.prepare-report.tsv" and result.report.exists()
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names == [f"00000/img{i:08d}.png" for i in range(4)] + ["dataset.json", "manifest.json"]
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.compress_size == info.file_size
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
        for i in range(4):
            with Image.open(zf.open(image_name(i))) as img:
                assert img.size == (RES, RES) and img.mode == "RGB"
    assert tree_bytes(archive) == tree_bytes(folder)  # same images, same json, byte for byte
    assert is_ganscapes_dataset(archive) and is_ganscapes_dataset(folder)


def test_zip_output_is_reproducible(src, tmp_path):
    run(src, tmp_path / "one.zip")
    run(src, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_sources_from_a_zip_archive(tmp_path):
    entries = [
        ("paintings/a.png", png_bytes(noise(80, 60, seed=1))),
        ("paintings/deeper/b.jpg", jpeg_bytes(noise(60, 80, seed=2))),
        ("paintings/readme.txt", b"hello"),
        ("paintings/", b""),
    ]
    archive = write(tmp_path / "raw.zip", zip_bytes(entries))
    result, log = run(archive, tmp_path / "ds")
    assert result.images == 2 and result.skipped == []
    m = manifest_of(tmp_path / "ds")
    assert [i["source"] for i in m["images"]] == ["paintings/a.png", "paintings/deeper/b.jpg"]
    assert m["images"][0]["sha256"] == sha256(entries[0][1])
    assert m["mean_aspect"] == round((80 / 60 + 60 / 80) / 2, 6)
    # the same pictures from a folder give the same dataset images
    folder = tmp_path / "unzipped"
    for name, data in entries[:3]:
        write(folder / name, data)
    run(folder, tmp_path / "ds2")
    assert [(tmp_path / "ds" / image_name(i)).read_bytes() for i in range(2)] == [
        (tmp_path / "ds2" / image_name(i)).read_bytes() for i in range(2)
    ]


def test_hidden_entries_in_a_zip_are_not_sources_as_in_folders(tmp_path):
    good = png_bytes(noise(40, 40, seed=4))
    entries = [
        ("pics/a.png", good),
        ("pics/.thumb.png", b"\x00\x05\x16\x07AppleDouble junk"),
        ("__MACOSX/pics/._a.png", b"\x00\x05\x16\x07AppleDouble junk"),
    ]
    archive = write(tmp_path / "mac.zip", zip_bytes(entries))
    assert [s.rel for s in list_sources(archive)] == ["pics/a.png"]
    folder = tmp_path / "folder"
    for name, data in entries:
        write(folder / name, data)
    assert [s.rel for s in list_sources(folder)] == ["pics/a.png"]
    result, _ = run(archive, tmp_path / "ds", strict=True)
    assert result.images == 1 and result.skipped == []


@pytest.mark.parametrize("kind", ["deflate", "crc", "method", "encrypted"])
def test_damaged_zip_entry_is_skipped_not_a_crash(tmp_path, kind):
    archive = write(tmp_path / "damaged.zip", damaged_zip(kind, [("b.png", png_bytes(noise(40, 30, seed=9)))]))
    result, log = run(archive, tmp_path / "ds")
    assert result.images == 1
    assert [s.path for s in result.skipped] == ["a.bmp"]
    assert result.skipped[0].reason.startswith("unreadable: ")
    assert report_lines(tmp_path / "ds")[1].startswith("a.bmp\tunreadable: ")
    assert [i["source"] for i in manifest_of(tmp_path / "ds")["images"]] == ["b.png"]


# ---------------------------------------------------------------------------------------
# Bad inputs: skipped, one line each, never fatal


def test_every_bad_input_is_skipped_with_its_reason(tmp_path):
    src = tmp_path / "src"
    a = write(src / "a.png", png_bytes(noise(80, 60, seed=1))).read_bytes()
    write(src / "b.jpg", jpeg_bytes(noise(60, 80, seed=2)))
    write(src / "empty.jpg", b"")
    write(src / "page.png", b"<html><body>404 Not Found</body></html>\n")
    write(src / "cut.jpg", truncated(jpeg_bytes(noise(64, 48, seed=3))))
    write(src / "bomb.png", bomb_png(20000, 20000))
    write(src / "big.png", png_bytes(noise(120, 100, seed=4)))
    write(src / "tiny.png", png_bytes(noise(10, 12, seed=5)))
    write(src / "z-dup.png", a)
    write(src / "notes.txt", b"not a source")
    write(src / ".hidden.png", b"not a source either")
    before = tree_snapshot(src)

    out = tmp_path / "ds"
    result, log = run(src, out, max_pixels=10_000, min_size=12)

    expected = [
        ("big.png", "too many pixels (120x100 > 10,000; a decompression bomb?)"),
        ("bomb.png", "too many pixels (20000x20000 > 10,000; a decompression bomb?)"),
        ("cut.jpg", "truncated file"),
        ("empty.jpg", "empty file"),
        ("page.png", "not an image (unrecognised format)"),
        ("tiny.png", "too small (10x12 < --min-size 12)"),
        ("z-dup.png", "duplicate of a.png"),
    ]
    assert [(s.path, s.reason) for s in result.skipped] == expected
    assert report_lines(out) == ["path\treason"] + [f"{p}\t{r}" for p, r in expected]
    assert [line for line in log if line.startswith("skipped ")] == [f"skipped {p}: {r}" for p, r in expected]
    assert result.images == 2
    m = manifest_of(out)
    assert [i["source"] for i in m["images"]] == ["a.png", "b.jpg"]
    assert m["skipped"] == [{"path": p, "reason": r} for p, r in expected]
    assert m["source_count"] == 9
    assert sorted(tree_bytes(out)) == [
        "00000/img00000000.png",
        "00000/img00000001.png",
        "dataset.json",
        "manifest.json",
    ]
    assert tree_snapshot(src) == before  # sources are never modified, not even the bad ones


def test_decompression_bomb_with_the_default_limit(tmp_path):
    src = tmp_path / "src"
    write(src / "bomb.png", bomb_png(20000, 20000))
    write(src / "ok.png", png_bytes(noise(40, 30)))
    result, log = run(src, tmp_path / "ds")
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("bomb.png", "too many pixels (20000x20000 > 178,956,970; a decompression bomb?)")
    ]
    assert result.images == 1


def test_corrupt_png_is_skipped_not_half_decoded(tmp_path):
    src = tmp_path / "src"
    data = bytearray(png_bytes(noise(64, 64, seed=9)))
    for i in range(60, len(data) - 20):
        data[i] ^= 0x5A
    write(src / "corrupt.png", bytes(data))
    write(src / "ok.png", png_bytes(noise(40, 30)))
    result, _ = run(src, tmp_path / "ds")
    assert [s.path for s in result.skipped] == ["corrupt.png"]
    assert result.skipped[0].reason.startswith("cannot decode: ")
    assert result.images == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_unreadable_file_is_skipped(tmp_path):
    src = tmp_path / "src"
    write(src / "ok.png", png_bytes(noise(40, 30)))
    locked = write(src / "locked.png", png_bytes(noise(30, 40)))
    locked.chmod(0)
    try:
        result, log = run(src, tmp_path / "ds")
    finally:
        locked.chmod(0o644)
    assert [(s.path, s.reason) for s in result.skipped] == [("locked.png", "unreadable: Permission denied")]
    assert "skipped locked.png: unreadable: Permission denied" in log
    assert result.images == 1


def test_unreadable_file_is_skipped_simulated(tmp_path, monkeypatch):
    """The same as above for root, who can read anything: the read itself fails."""
    src = tmp_path / "src"
    write(src / "ok.png", png_bytes(noise(40, 30)))
    write(src / "locked.png", png_bytes(noise(30, 40)))
    real_read = Source.read

    def read(self):
        if self.rel == "locked.png":
            raise PermissionError(13, "Permission denied", self.path)
        return real_read(self)

    monkeypatch.setattr(Source, "read", read)
    result, log = run(src, tmp_path / "ds")
    assert [(s.path, s.reason) for s in result.skipped] == [("locked.png", "unreadable: Permission denied")]
    assert "skipped locked.png: unreadable: Permission denied" in log
    assert report_lines(tmp_path / "ds") == ["path\treason", "locked.png\tunreadable: Permission denied"]


def test_odd_file_names_are_prepared(tmp_path):
    src = tmp_path / "src"
    names = ["Été à Giverny.jpg", "with space.png", "sub dir/ünïcödé (1).PNG", "semi;colon & 'quote'.jpeg", "日本.webp"]
    for i, name in enumerate(names):
        fmt = {"jpg": "JPEG", "png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[name.rsplit(".", 1)[1].lower()]
        write(src / name, encode(noise(50 + i, 40, seed=i), fmt))
    write(src / "Été cassé.jpg", b"")
    result, log = run(src, tmp_path / "ds")
    assert result.images == 5
    assert [i["source"] for i in manifest_of(tmp_path / "ds")["images"]] == sorted(names)
    assert report_lines(tmp_path / "ds") == ["path\treason", "Été cassé.jpg\tempty file"]
    assert "skipped Été cassé.jpg: empty file" in log


def test_exif_rotated_source_is_prepared_upright(tmp_path):
    src = tmp_path / "src"
    # stored 60x40 landscape, red marker top-left; orientation 6 shows it 40x60 with the marker top-right
    write(src / "phone.jpg", rotated_marker_source(60, 40, marker=20, orientation=6))
    result, _ = run(src, tmp_path / "ds", res=32, format="squeeze")
    m = manifest_of(tmp_path / "ds")
    assert m["images"][0]["size"] == [40, 60]
    assert result.mean_aspect == pytest.approx(40 / 60)
    a = np.asarray(Image.open(tmp_path / "ds" / image_name(0))).astype(int)
    # the marker covers x 16..32, y 0..10.7 of the square
    assert a[4, 26, 0] > 200 and a[4, 26, 1] < 60  # top-right: red
    assert abs(a[4, 5] - 128).max() < 25  # top-left: grey
    assert abs(a[26, 26] - 128).max() < 25  # bottom-right: grey


def test_large_jpeg_uses_reduced_decoding_without_visible_change(tmp_path):
    src = tmp_path / "src"
    big = vbands(300, [(100, RED), (100, GREEN), (100, WHITE), (100, BLUE)])  # 400x300
    data = write(src / "big.jpg", jpeg_bytes(big)).read_bytes()
    run(src, tmp_path / "ds", format="center-rect", aspect=4 / 3)
    out = np.asarray(Image.open(tmp_path / "ds" / image_name(0))).astype(int)
    reference = np.asarray(apply_format(load_rgb(open_image(data)), "center-rect", RES, 4 / 3)).astype(int)
    assert np.abs(out - reference).mean() < 4
    assert out[8, 2, 0] > 200 and out[8, 6, 1] > 200 and out[8, 10].min() > 200 and out[8, 14, 2] > 200


def test_large_exif_rotated_jpeg_with_reduced_decoding(tmp_path):
    src = tmp_path / "src"
    write(src / "phone.jpg", rotated_marker_source(400, 240, marker=120, orientation=6))
    run(src, tmp_path / "ds", format="squeeze")  # 240x400 displayed → 16x16
    assert manifest_of(tmp_path / "ds")["images"][0]["size"] == [240, 400]
    a = np.asarray(Image.open(tmp_path / "ds" / image_name(0))).astype(int)
    assert a[2, 12, 0] > 200 and a[2, 12, 1] < 60  # marker top-right
    assert abs(a[2, 3] - 128).max() < 25 and abs(a[12, 12] - 128).max() < 25


def test_unusual_modes_become_rgb(tmp_path):
    src = tmp_path / "src"
    write(src / "cmyk.jpg", jpeg_bytes(Image.new("CMYK", (40, 30), (0, 255, 255, 0))))
    write(src / "deep.png", png_bytes(Image.fromarray(np.full((30, 40), 65535, np.uint16))))
    rgba = Image.new("RGBA", (40, 30), (255, 255, 255, 0))
    write(src / "clear.png", png_bytes(rgba))
    run(src, tmp_path / "ds", format="squeeze")
    imgs = [np.asarray(Image.open(tmp_path / "ds" / image_name(i))) for i in range(3)]
    clear, cmyk, deep = imgs
    assert all(a.shape == (RES, RES, 3) for a in imgs)
    assert (clear == 0).all()
    assert np.abs(cmyk.astype(int) - RED).max() <= 3
    assert (deep == 255).all()


def test_duplicates_are_skipped(tmp_path):
    src = tmp_path / "src"
    data = png_bytes(noise(50, 40, seed=1))
    write(src / "b/first.png", data)
    write(src / "a/copy of first.png", data)
    write(src / "c/again.png", data)
    write(src / "other.png", png_bytes(noise(40, 50, seed=2)))
    result, log = run(src, tmp_path / "ds")
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("b/first.png", "duplicate of a/copy of first.png"),
        ("c/again.png", "duplicate of a/copy of first.png"),
    ]
    assert result.images == 2
    assert result.mean_aspect == pytest.approx((50 / 40 + 40 / 50) / 2)  # duplicates not counted twice
    assert [i["source"] for i in manifest_of(tmp_path / "ds")["images"]] == ["a/copy of first.png", "other.png"]


# ---------------------------------------------------------------------------------------
# Refusals and errors


def test_nothing_to_prepare_is_a_user_error(tmp_path):
    src = tmp_path / "src"
    write(src / "empty.jpg", b"")
    write(src / "page.png", b"hello")
    out = tmp_path / "ds"
    with pytest.raises(
        UserError, match=r"^No image in .* could be prepared \(2 skipped\); reasons are in .*ds\.prepare-report\.tsv\.$"
    ):
        run(src, out)
    assert not out.exists()
    assert report_lines(out) == [
        "path\treason",
        "empty.jpg\tempty file",
        "page.png\tnot an image (unrecognised format)",
    ]


def test_no_image_files_is_a_user_error(tmp_path):
    src = tmp_path / "src"
    write(src / "notes.txt", b"hello")
    write(src / "manifest.jsonl", b"")
    with pytest.raises(UserError, match=r"No image files \(\.jpg, \.png, …\) found in"):
        run(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_missing_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        run(tmp_path / "nowhere", tmp_path / "ds")


def test_non_image_single_file_is_a_user_error(tmp_path):
    path = write(tmp_path / "notes.txt", b"hello")
    with pytest.raises(UserError, match="is not a folder, a zip archive or an image file"):
        run(path, tmp_path / "ds")


def test_strict_refuses_and_leaves_the_dataset_unchanged(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out)
    before = tree_snapshot(out)
    write(src / "empty.jpg", b"")
    with pytest.raises(
        UserError,
        match=r"^1 source image\(s\) were skipped and --strict is set, so .*ds was not written; "
        r"reasons are in .*ds\.prepare-report\.tsv\.$",
    ):
        run(src, out, strict=True)
    assert tree_snapshot(out) == before
    assert report_lines(out) == ["path\treason", "empty.jpg\tempty file"]


def test_strict_with_a_skip_writes_no_new_dataset(src, tmp_path):
    write(src / "page.jpg", b"<html>")
    with pytest.raises(UserError, match="--strict"):
        run(src, tmp_path / "ds", strict=True)
    assert not (tmp_path / "ds").exists()
    (src / "page.jpg").unlink()
    result, _ = run(src, tmp_path / "ds", strict=True)  # and fine once the source is fixed
    assert result.images == 4


def test_out_that_is_someone_elses_folder_is_refused(src, tmp_path):
    out = tmp_path / "mine"
    write(out / "thesis.txt", b"do not delete")
    before = tree_snapshot(out)
    with pytest.raises(
        UserError, match=r"^out .*mine already exists and is not a ganscapes dataset; choose another\.$"
    ):
        run(src, out)
    assert tree_snapshot(out) == before
    assert not (tmp_path / "mine.prepare-report.tsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "src"]


@pytest.mark.parametrize("name, data", [("ds.zip", b"PK but not really"), ("ds.bin", b"\x00" * 10)])
def test_out_that_is_someone_elses_file_is_refused(src, tmp_path, name, data):
    out = write(tmp_path / name, data)
    with pytest.raises(UserError, match="is not a ganscapes dataset"):
        run(src, out)
    assert out.read_bytes() == data


def test_official_dataset_without_manifest_is_not_overwritten(src, tmp_path):
    out = tmp_path / "official"
    write(out / "00000" / "img00000000.png", png_bytes(noise(16, 16)))
    write(out / "dataset.json", b'{"labels": null}')
    with pytest.raises(UserError, match="is not a ganscapes dataset"):
        run(src, out)


def test_missing_parent_folders_of_out_are_created(src, tmp_path):
    result, _ = run(src, tmp_path / "a" / "b" / "ds.zip")
    assert result.images == 4
    assert (tmp_path / "a" / "b" / "ds.zip.prepare-report.tsv").exists()
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["ds.zip", "ds.zip.prepare-report.tsv"]


def test_empty_existing_folder_is_fine_as_out(src, tmp_path):
    (tmp_path / "ds").mkdir()
    result, _ = run(src, tmp_path / "ds")
    assert result.images == 4


@pytest.mark.parametrize("where", ["inside", "same", "contains"])
def test_out_overlapping_the_source_is_refused(src, tmp_path, where):
    out = {"inside": src / "ds", "same": src, "contains": tmp_path}[where]
    before = tree_snapshot(src)
    with pytest.raises(UserError, match=r"^out .* must not be the source .*, inside it, or contain it\.$"):
        run(src, out)
    assert tree_snapshot(src) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize("res", [100, 2, 4096, 0, -16, 3, 1])
def test_res_must_be_a_power_of_two_in_range(tmp_path, res):
    with pytest.raises(UserError, match=rf"^res must be a power of two from 4 to 2048, not {res}\.$"):
        prepare_dataset(tmp_path, tmp_path / "ds", PrepareConfig(res=res, workers=1), progress=False)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("res", [4, 8, 1024, 2048])
def test_valid_resolutions(res):
    PrepareConfig(res=res).validate()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"aspect": 0.05}, "aspect must be 'auto' or a width/height ratio between 0.1 and 10, not 0.05."),
        ({"aspect": 11.0}, "aspect must be 'auto' or a width/height ratio between 0.1 and 10, not 11.0."),
        ({"aspect": float("nan")}, "aspect must be 'auto' or a width/height ratio between 0.1 and 10, not nan."),
        ({"workers": 0}, "workers must be at least 1, not 0."),
        ({"min_size": -1}, "min_size must be 0 or more, not -1."),
    ],
)
def test_other_option_validation(kw, message):
    with pytest.raises(SettingError) as info:
        PrepareConfig(**kw).validate()
    assert str(info.value) == message and info.value.setting == next(iter(kw))


def test_format_given_as_text_is_normalised():
    config = PrepareConfig(format="squeeze")
    config.validate()
    assert config.format is Format.SQUEEZE


# ---------------------------------------------------------------------------------------
# Idempotence and resuming


def test_rerun_renders_nothing_and_touches_nothing(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out)
    before = tree_snapshot(out)
    result, log = run(src, out)
    assert result.rendered == 0 and result.reused == 4 and result.images == 4
    assert result.up_to_date
    assert tree_snapshot(out) == before  # same bytes, same mtimes
    assert not (tmp_path / ".ds.partial").exists()


def test_rerun_of_a_zip_dataset_leaves_it_alone(src, tmp_path):
    out = tmp_path / "ds.zip"
    run(src, out)
    before = tree_snapshot(out)
    result, _ = run(src, out)
    assert result.up_to_date and result.rendered == 0
    assert tree_snapshot(out) == before


@pytest.mark.parametrize("out_name", ["ds", "ds.zip"])
def test_adding_a_source_renders_only_that_one(src, tmp_path, out_name):
    out = tmp_path / out_name
    run(src, out, aspect=1.27)
    write(src / "b2.png", png_bytes(noise(70, 50, seed=42)))
    result, _ = run(src, out, aspect=1.27)
    assert result.rendered == 1 and result.reused == 4 and result.images == 5
    assert not result.up_to_date
    fresh = tmp_path / ("fresh" + Path(out_name).suffix)
    run(src, fresh, aspect=1.27)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_adding_a_source_with_squeeze_renders_only_that_one(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out, format="squeeze")
    write(src / "e.png", png_bytes(noise(33, 99, seed=7)))
    result, _ = run(src, out, format="squeeze")
    assert result.rendered == 1 and result.reused == 4
    run(src, tmp_path / "fresh", format="squeeze")
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh")


def test_auto_aspect_rerenders_only_when_the_mean_changes(tmp_path):
    src = make_sources(tmp_path / "src", {"wide.png": (80, 40), "tall.png": (40, 80)})  # mean 1.25
    out = tmp_path / "ds"
    run(src, out)
    write(src / "same-ratio.png", png_bytes(noise(50, 40, seed=11)))  # 1.25: the mean stays 1.25
    result, log = run(src, out)
    assert log[0] == "Mean aspect ratio (width/height) of 3 source images: 1.250"
    assert result.rendered == 1 and result.reused == 2
    write(src / "square.png", png_bytes(noise(40, 40, seed=12)))  # the mean moves to 1.1875
    result, log = run(src, out)
    assert log[0] == "Mean aspect ratio (width/height) of 4 source images: 1.188"
    assert result.rendered == 4 and result.reused == 0  # every crop changed
    assert manifest_of(out)["aspect"] == 1.1875


def test_changing_res_rerenders_everything(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out)
    result, _ = run(src, out, res=32)
    assert result.rendered == 4 and result.reused == 0 and not result.up_to_date
    m = manifest_of(out)
    assert m["resolution"] == 32
    for i in range(4):
        with Image.open(out / image_name(i)) as img:
            assert img.size == (32, 32)
    run(src, tmp_path / "fresh32", res=32)
    assert tree_bytes(out) == tree_bytes(tmp_path / "fresh32")


def test_changing_format_rerenders_everything(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out)
    result, _ = run(src, out, format="letterbox")
    assert result.rendered == 4 and manifest_of(out)["format"] == "letterbox"


def test_removed_source_drops_out_of_the_dataset(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out, aspect=1.27)
    (src / "b.jpg").unlink()
    result, _ = run(src, out, aspect=1.27)
    assert result.rendered == 0 and result.images == 3 and not result.up_to_date
    assert [i["source"] for i in manifest_of(out)["images"]] == ["a.png", "c.png", "sub/d.png"]
    assert sorted(tree_bytes(out)) == [f"00000/img{i:08d}.png" for i in range(3)] + ["dataset.json", "manifest.json"]


def test_deleted_dataset_image_is_restored_on_rerun(src, tmp_path):
    out = tmp_path / "ds"
    run(src, out)
    original = (out / image_name(1)).read_bytes()
    (out / image_name(1)).unlink()
    result, _ = run(src, out)
    assert result.rendered == 1 and result.reused == 3
    assert not result.up_to_date
    assert (out / image_name(1)).read_bytes() == original


def _interrupt_after(monkeypatch, n: int) -> list[str]:
    """Make render_source raise KeyboardInterrupt on its (n+1)-th call; returns the rendered names."""
    real = prepare_mod.render_source
    done: list[str] = []

    def render(source, *args):
        if len(done) == n:
            raise KeyboardInterrupt
        r = real(source, *args)
        done.append(source.rel)
        return r

    monkeypatch.setattr(prepare_mod, "render_source", render)
    return done


@pytest.mark.parametrize("out_name", ["ds", "ds.zip"])
def test_resume_after_interruption(src, tmp_path, monkeypatch, out_name):
    out = tmp_path / out_name
    done = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(src, out)
    assert done == ["a.png", "b.jpg"]
    assert not out.exists()  # never a half dataset under the real name
    staging = tmp_path / f".{out_name}.partial"
    assert len(list(staging.glob("*.png"))) == 2
    assert len((staging / "index.jsonl").read_text().splitlines()) == 2

    monkeypatch.undo()
    result, _ = run(src, out)
    assert result.rendered == 2 and result.reused == 2 and result.images == 4
    assert not staging.exists()
    fresh = tmp_path / ("fresh" + Path(out_name).suffix)
    run(src, fresh)
    assert tree_bytes(out) == tree_bytes(fresh)


def test_interrupted_update_keeps_the_old_dataset(src, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    run(src, out)
    before = tree_snapshot(out)
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run(src, out, res=32)
    assert tree_snapshot(out) == before
    monkeypatch.undo()
    result, _ = run(src, out, res=32)
    assert result.rendered == 3 and result.reused == 1
    with Image.open(out / image_name(3)) as img:
        assert img.size == (32, 32)


def test_staged_renders_of_other_settings_are_not_reused(src, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run(src, out, res=16)
    monkeypatch.undo()
    result, _ = run(src, out, res=32)
    assert result.rendered == 4
    for i in range(4):
        with Image.open(out / image_name(i)) as img:
            assert img.size == (32, 32)


def test_interrupted_index_line_is_ignored(src, tmp_path, monkeypatch):
    out = tmp_path / "ds"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(src, out)
    monkeypatch.undo()
    index = tmp_path / ".ds.partial" / "index.jsonl"
    with open(index, "a") as f:
        f.write('{"sha256": "abc", "sett')  # cut short by a crash
    result, _ = run(src, out)
    assert result.rendered == 2 and result.images == 4


# ---------------------------------------------------------------------------------------
# dataset info


def test_dataset_info_of_a_prepared_dataset(src, tmp_path):
    write(src / "empty.jpg", b"")
    run(src, tmp_path / "ds", format="squeeze")
    info = dataset_info(tmp_path / "ds")
    assert info.images == 4
    assert info.resolution == RES
    assert info.format == "squeeze"
    assert info.aspect == round(TRUE_MEAN, 6)
    assert info.source_count == 5
    assert info.skipped == 1
    assert info.labels is False
    assert info.container == "folder"
    assert info.path == tmp_path / "ds"


def test_dataset_info_of_a_zip_dataset(src, tmp_path):
    run(src, tmp_path / "ds.zip", format="center-crop", res=8)
    info = dataset_info(tmp_path / "ds.zip")
    assert (info.images, info.resolution, info.format, info.aspect, info.source_count, info.skipped) == (
        4,
        8,
        "center-crop",
        1.0,
        4,
        0,
    )
    assert info.container == "zip"


def test_dataset_info_of_an_official_dataset(tmp_path):
    out = tmp_path / "official"
    for i in range(3):
        write(out / image_name(i), png_bytes(noise(32, 32, seed=i)))
    write(out / "dataset.json", json.dumps({"labels": [[image_name(i), i % 2] for i in range(3)]}).encode())
    info = dataset_info(out)
    assert (info.images, info.resolution, info.format, info.aspect, info.source_count, info.skipped) == (
        3,
        32,
        None,
        None,
        None,
        None,
    )
    assert info.labels is True and info.container == "folder"
    assert not is_ganscapes_dataset(out)


def test_dataset_info_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        dataset_info(tmp_path / "missing")
    bad = write(tmp_path / "bad.zip", b"not a zip")
    with pytest.raises(UserError, match="neither a folder nor a readable zip file"):
        dataset_info(bad)


# ---------------------------------------------------------------------------------------
# Worker processes


def test_worker_processes_give_identical_output(tmp_path, monkeypatch):
    pools = []

    class SpyPool(prepare_mod._pool):
        def __enter__(self):
            pools.append(super().__enter__())
            return pools[-1]

    monkeypatch.setattr(prepare_mod, "_pool", SpyPool)
    sizes = {f"p{i:02d}.{'jpg' if i % 2 else 'png'}": (40 + 7 * i, 90 - 5 * i) for i in range(10)}
    src = make_sources(tmp_path / "src", sizes)
    write(src / "cut.jpg", truncated(jpeg_bytes(noise(64, 48, seed=3))))
    write(src / "empty.png", b"")
    write(src / "zz-dup.png", (src / "p00.png").read_bytes())
    one, log1 = run(src, tmp_path / "one", workers=1)
    two, log2 = run(src, tmp_path / "two", workers=2)
    assert pools[0] is None and isinstance(pools[1], cf.ProcessPoolExecutor)  # really two processes
    assert two.images == one.images == 10
    assert (
        [(s.path, s.reason) for s in two.skipped]
        == [(s.path, s.reason) for s in one.skipped]
        == [
            ("cut.jpg", "truncated file"),
            ("empty.png", "empty file"),
            ("zz-dup.png", "duplicate of p00.png"),
        ]
    )
    assert log1 == log2
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")
    assert report_lines(tmp_path / "one") == report_lines(tmp_path / "two")


def test_report_keeps_one_line_per_skip_for_names_with_tabs_and_newlines(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(src / "good.png")
    (src / "bad\tname\nx.jpg").write_bytes(b"not an image")
    out = tmp_path / "ds"
    result = prepare_dataset(src, out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    lines = result.report.read_text(encoding="utf-8").splitlines()
    assert lines == ["path\treason", "bad\\tname\\nx.jpg\tnot an image (unrecognised format)"]


def test_nothing_prepared_leaves_no_staging_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"text")
    out = tmp_path / "ds"
    with pytest.raises(UserError):
        prepare_dataset(src, out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.prepare-report.tsv", "src"]
