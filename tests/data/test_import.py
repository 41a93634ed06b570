"""`gather import`: folders, zips and files into a gather folder, deduplicated and zip-slip safe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ganscapes.data.importer import ImportSummary, import_images, is_safe_member
from ganscapes.data.manifest import MANIFEST_NAME, read_manifest
from ganscapes.errors import UserError

from helpers_images import (
    damaged_zip,
    encode,
    file_sha256,
    jpeg_bytes,
    listing,
    noise,
    png_bytes,
    sha256,
    tree_snapshot,
    truncated,
    write,
    zip_bytes,
)


def do_import(sources, out, **kw):
    lines: list[str] = []
    summary = import_images([Path(s) for s in sources], out, log=lines.append, progress=False, **kw)
    return summary, lines


def images_in(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME)


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------
# Folders, zips, files


def test_import_folder_recursively(tmp_path):
    src = tmp_path / "scans"
    a = write(src / "a.jpg", jpeg_bytes(noise(40, 30, seed=1)))
    b = write(src / "sub" / "b.png", png_bytes(noise(30, 40, seed=2)))
    c = write(src / "sub" / "deeper" / "c.gif", encode(noise(20, 20, seed=3), "GIF"))
    write(src / "readme.txt", b"not an image")
    before = tree_snapshot(src)
    out = tmp_path / "raw"

    summary, log = do_import([src], out)
    assert summary == ImportSummary(imported=3, duplicates=0, skipped=0, refused=0)
    assert images_in(out) == ["a.jpg", "b.png", "c.gif"]
    for name, original in [("a.jpg", a), ("b.png", b), ("c.gif", c)]:
        assert (out / name).read_bytes() == original.read_bytes()
    assert log == [f"Imported 3 image(s) into {out}; 0 duplicate(s), 0 skipped, 0 refused."]
    assert tree_snapshot(src) == before  # the originals are untouched

    records = read_manifest(out)
    assert [r.file for r in records] == ["a.jpg", "b.png", "c.gif"]
    for r, original in zip(records, [a, b, c]):
        assert r.sha256 == file_sha256(out / r.file) == file_sha256(original)
        assert r.bytes == original.stat().st_size
        assert r.source == str(original)
        assert r.title == original.stem
        assert r.extra == {"imported_from": str(original)}
        assert r.artist is None and r.image_url is None


def test_import_zip(tmp_path):
    pic = jpeg_bytes(noise(40, 30, seed=4))
    archive = write(
        tmp_path / "kaggle.zip",
        zip_bytes([("landscapes/Pic One.JPG", pic), ("landscapes/notes.txt", b"hi"), ("landscapes/", b"")]),
    )
    out = tmp_path / "raw"
    summary, log = do_import([archive], out)
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=0, refused=0)
    assert images_in(out) == ["pic-one.jpg"]
    assert (out / "pic-one.jpg").read_bytes() == pic
    (r,) = read_manifest(out)
    assert r.file == "pic-one.jpg"
    assert r.source == f"{archive}:landscapes/Pic One.JPG"
    assert r.title == "Pic One"
    assert r.sha256 == sha256(pic) and r.bytes == len(pic)


def test_import_single_files(tmp_path):
    one = write(tmp_path / "in" / "One.png", png_bytes(noise(20, 20, seed=5)))
    two = write(tmp_path / "in" / "two.webp", encode(noise(20, 10, seed=6), "WEBP"))
    out = tmp_path / "raw"
    summary, _ = do_import([one, two], out)
    assert summary.imported == 2
    assert images_in(out) == ["one.png", "two.webp"]
    assert [r.source for r in read_manifest(out)] == [str(one), str(two)]


def test_mixed_sources_in_one_call(tmp_path):
    folder = tmp_path / "folder"
    write(folder / "x.png", png_bytes(noise(20, 20, seed=1)))
    archive = write(tmp_path / "a.zip", zip_bytes([("y.png", png_bytes(noise(20, 20, seed=2)))]))
    single = write(tmp_path / "z.jpg", jpeg_bytes(noise(20, 20, seed=3)))
    summary, _ = do_import([folder, archive, single], tmp_path / "raw")
    assert summary.imported == 3
    assert images_in(tmp_path / "raw") == ["x.png", "y.png", "z.jpg"]


# ---------------------------------------------------------------------------------------
# Deduplication and idempotence


def test_same_content_under_different_names_is_imported_once(tmp_path):
    data = png_bytes(noise(30, 30, seed=7))
    src = tmp_path / "src"
    write(src / "a" / "monet.png", data)
    write(src / "b" / "copy of monet.png", data)
    archive = write(tmp_path / "again.zip", zip_bytes([("third.png", data)]))
    summary, log = do_import([src, archive], tmp_path / "raw")
    assert summary == ImportSummary(imported=1, duplicates=2, skipped=0, refused=0)
    assert images_in(tmp_path / "raw") == ["monet.png"]
    assert log[-1].endswith("1 image(s) into " + str(tmp_path / "raw") + "; 2 duplicate(s), 0 skipped, 0 refused.")


def test_second_run_imports_nothing(tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        write(src / f"p{i}.png", png_bytes(noise(20, 20, seed=i)))
    out = tmp_path / "raw"
    do_import([src], out)
    before = tree_snapshot(out)
    summary, _ = do_import([src], out)
    assert summary == ImportSummary(imported=0, duplicates=3, skipped=0, refused=0)
    assert tree_snapshot(out) == before


def test_new_files_are_added_on_a_later_run(tmp_path):
    src = tmp_path / "src"
    write(src / "p0.png", png_bytes(noise(20, 20, seed=0)))
    out = tmp_path / "raw"
    do_import([src], out)
    write(src / "p1.png", png_bytes(noise(20, 20, seed=1)))
    summary, _ = do_import([src], out)
    assert summary == ImportSummary(imported=1, duplicates=1, skipped=0, refused=0)
    assert [r.file for r in read_manifest(out)] == ["p0.png", "p1.png"]


def test_importing_a_parent_of_the_output_does_not_reimport_its_own_files(tmp_path):
    lib = tmp_path / "library"
    write(lib / "scan.png", png_bytes(noise(20, 20, seed=1)))
    out = lib / "raw"
    assert do_import([lib], out)[0].imported == 1
    summary, _ = do_import([lib], out)
    assert summary == ImportSummary(imported=0, duplicates=1, skipped=0, refused=0)
    assert images_in(out) == ["scan.png"]


# ---------------------------------------------------------------------------------------
# Names


def test_names_are_slugified_and_unique(tmp_path):
    src = tmp_path / "src"
    write(src / "Été à Giverny.jpg", jpeg_bytes(noise(20, 20, seed=1)))
    write(src / "x" / "pic.jpg", jpeg_bytes(noise(20, 20, seed=2)))
    write(src / "y" / "pic.jpg", jpeg_bytes(noise(20, 20, seed=3)))
    write(src / "z" / "PIC.jpg", jpeg_bytes(noise(20, 20, seed=4)))
    write(src / "!!!.png", png_bytes(noise(20, 20, seed=5)))
    write(src / "photo.jpg", png_bytes(noise(20, 20, seed=6)))  # really a PNG
    write(src / "..hidden..name.png", png_bytes(noise(20, 20, seed=7)))
    out = tmp_path / "raw"
    summary, _ = do_import([src], out)
    assert summary.imported == 7
    assert images_in(out) == sorted(
        ["ete-a-giverny.jpg", "pic.jpg", "pic-2.jpg", "pic-3.jpg", "untitled.png", "photo.png", "hidden-name.png"]
    )
    titles = {r.file: r.title for r in read_manifest(out)}
    assert titles["ete-a-giverny.jpg"] == "Été à Giverny"
    assert titles["untitled.png"] == "!!!"


def test_existing_files_in_out_are_never_overwritten(tmp_path):
    out = tmp_path / "raw"
    mine = write(out / "a.jpg", b"my own file, not in the manifest")
    src = write(tmp_path / "in" / "a.jpg", jpeg_bytes(noise(20, 20, seed=1)))
    summary, _ = do_import([src], out)
    assert summary.imported == 1
    assert mine.read_bytes() == b"my own file, not in the manifest"
    assert images_in(out) == ["a-2.jpg", "a.jpg"]
    assert (out / "a-2.jpg").read_bytes() == src.read_bytes()


# ---------------------------------------------------------------------------------------
# Zip slip and bad entries


def test_zip_slip_entries_are_refused(tmp_path):
    good = png_bytes(noise(20, 20, seed=1))
    evil = png_bytes(noise(20, 20, seed=2))
    names = ["../evil.jpg", "/abs.jpg", "a/../../b.jpg", "C:\\x.jpg", "..\\win.jpg", "d:/drive.jpg"]
    archive = write(tmp_path / "in" / "evil.zip", zip_bytes([(n, evil) for n in names] + [("ok.png", good)]))
    out = tmp_path / "work" / "raw"
    summary, log = do_import([archive], out)
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=0, refused=len(names))
    for name in names:
        assert f"refused {archive}:{name}: absolute or '..' path in the archive" in log
    assert images_in(out) == ["ok.png"]
    # nothing landed outside out, nor anywhere else the names point at
    assert listing(tmp_path) == ["in", "in/evil.zip", "work", "work/raw", "work/raw/manifest.jsonl", "work/raw/ok.png"]
    assert not Path("/abs.jpg").exists()
    assert sorted(os.listdir(tmp_path.parent)).count("evil.jpg") == 0


@pytest.mark.parametrize(
    "name",
    ["a.jpg", "dir/sub/a.jpg", "a..b.jpg", "...jpg", "a/./b.jpg", "dir\\a.jpg", "Été/à.jpg", "a/b..", ".hidden.jpg"],
)
def test_is_safe_member_accepts(name):
    assert is_safe_member(name)


@pytest.mark.parametrize(
    "name",
    [
        "../evil.jpg",
        "..",
        "a/..",
        "/abs.jpg",
        "//server/share/x.jpg",
        "a/../../b.jpg",
        "a/../b.jpg",
        "C:\\x.jpg",
        "C:x.jpg",
        "c:/x.jpg",
        "..\\x.jpg",
        "a\\..\\..\\x.jpg",
        "\\abs.jpg",
        "\\\\server\\share\\x.jpg",
        "x\x00.jpg",
    ],
)
def test_is_safe_member_refuses(name):
    assert not is_safe_member(name)


def test_non_image_entries_are_ignored(tmp_path):
    archive = write(
        tmp_path / "mixed.zip",
        zip_bytes([("a.png", png_bytes(noise(20, 20))), ("b.txt", b"text"), ("c.zip", b"PK"), ("d/", b"")]),
    )
    summary, log = do_import([archive], tmp_path / "raw")
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=0, refused=0)
    assert images_in(tmp_path / "raw") == ["a.png"]
    assert not any(line.startswith("skipped") for line in log)


def test_bad_images_are_skipped_with_reasons(tmp_path):
    src = tmp_path / "src"
    write(src / "empty.jpg", b"")
    write(src / "page.png", b"<html></html>")
    write(src / "cut.jpg", truncated(jpeg_bytes(noise(64, 48, seed=3))))
    write(src / "ok.png", png_bytes(noise(20, 20)))
    summary, log = do_import([src], tmp_path / "raw")
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=3, refused=0)
    assert [line for line in log if line.startswith("skipped")] == [
        f"skipped {src / 'cut.jpg'}: truncated file",
        f"skipped {src / 'empty.jpg'}: empty file",
        f"skipped {src / 'page.png'}: not an image (unrecognised format)",
    ]
    assert images_in(tmp_path / "raw") == ["ok.png"]


def test_oversize_files_are_skipped(tmp_path):
    small = write(tmp_path / "src" / "small.png", png_bytes(noise(8, 8)))
    big = write(tmp_path / "src" / "big.png", png_bytes(noise(64, 64, seed=2)))
    limit = small.stat().st_size
    assert big.stat().st_size > limit
    summary, log = do_import([tmp_path / "src"], tmp_path / "raw", max_bytes=limit)
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=1, refused=0)
    assert f"skipped {big}: larger than {limit:,} bytes" in log
    assert images_in(tmp_path / "raw") == ["small.png"]


def test_oversize_zip_entries_are_skipped_before_reading(tmp_path):
    archive = write(tmp_path / "a.zip", zip_bytes([("big.png", png_bytes(noise(64, 64)))]))
    summary, log = do_import([archive], tmp_path / "raw", max_bytes=100)
    assert summary.skipped == 1 and summary.imported == 0
    assert log[0] == f"skipped {archive}:big.png: larger than 100 bytes"


def test_decompression_bomb_is_skipped(tmp_path):
    src = write(tmp_path / "src" / "bomb.png", png_bytes(noise(100, 100)))
    summary, log = do_import([src], tmp_path / "raw", max_pixels=5000)
    assert summary.skipped == 1
    assert log[0] == f"skipped {src}: too many pixels (100x100 > 5,000; a decompression bomb?)"


@pytest.mark.parametrize("kind", ["deflate", "crc", "method", "encrypted"])
def test_damaged_zip_entries_are_skipped_not_a_crash(tmp_path, kind):
    archive = write(tmp_path / "d.zip", damaged_zip(kind, [("b.png", png_bytes(noise(20, 20, seed=9)))]))
    summary, log = do_import([archive], tmp_path / "raw")
    assert summary == ImportSummary(imported=1, duplicates=0, skipped=1, refused=0)
    assert log[0].startswith(f"skipped {archive}:a.bmp: unreadable: ")
    assert images_in(tmp_path / "raw") == ["b.png"]


def test_unreadable_zip_archive_with_zip_name(tmp_path):
    """A file named .zip that is not a zip is an ordinary (bad) file, skipped with a reason."""
    fake = write(tmp_path / "fake.zip", b"nope")
    summary, log = do_import([fake], tmp_path / "raw")
    assert summary.skipped == 1 and summary.imported == 0
    assert log[0] == f"skipped {fake}: not an image (unrecognised format)"


# ---------------------------------------------------------------------------------------
# Gather manifests travel along


def test_gather_manifest_is_carried_over(tmp_path):
    src = tmp_path / "crawl"
    data = jpeg_bytes(noise(40, 30, seed=1))
    write(src / "claude-monet" / "impression-sunrise.jpg", data)
    write(src / "plain.png", png_bytes(noise(20, 20, seed=2)))
    record = {
        "file": "claude-monet/impression-sunrise.jpg",
        "sha256": sha256(data),
        "bytes": len(data),
        "source": "https://www.wikiart.org/en/claude-monet/impression-sunrise",
        "image_url": "https://uploads.wikiart.org/monet.jpg",
        "artist": "Claude Monet",
        "born": 1840,
        "died": 1926,
        "title": "Impression, Sunrise",
        "licence": "public domain",
        "genre": "landscape",
        "extra": {"ignored": True},
    }
    (src / MANIFEST_NAME).write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "raw"
    summary, _ = do_import([src], out)
    assert summary.imported == 2
    by_file = {r.file: r for r in read_manifest(out)}
    monet = by_file["impression-sunrise.jpg"]
    assert monet.source == record["source"]
    assert monet.image_url == record["image_url"]
    assert monet.artist == "Claude Monet" and monet.born == 1840 and monet.died == 1926
    assert monet.title == "Impression, Sunrise"
    assert monet.licence == "public domain" and monet.genre == "landscape"
    assert monet.sha256 == sha256(data)
    assert monet.extra == {"imported_from": str(src / "claude-monet" / "impression-sunrise.jpg")}
    plain = by_file["plain.png"]
    assert plain.artist is None and plain.title == "plain" and plain.source == str(src / "plain.png")


def test_manifest_is_one_json_object_per_line(tmp_path):
    write(tmp_path / "src" / "Été.png", png_bytes(noise(20, 20)))
    do_import([tmp_path / "src"], tmp_path / "raw")
    (line,) = manifest_lines(tmp_path / "raw")
    assert line["file"] == "ete.png" and line["title"] == "Été"
    assert set(line) == {
        "file",
        "sha256",
        "bytes",
        "source",
        "image_url",
        "artist",
        "born",
        "died",
        "title",
        "licence",
        "genre",
        "extra",
    }


# ---------------------------------------------------------------------------------------
# User errors


def test_no_sources_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="Name at least one folder"):
        import_images([], tmp_path / "raw", progress=False)


def test_missing_source_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"does not exist\.$"):
        import_images([tmp_path / "nope"], tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw").exists()


def test_importing_the_output_into_itself_is_a_user_error(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(UserError, match="is the output folder itself"):
        import_images([tmp_path / "raw"], tmp_path / "raw", progress=False)
