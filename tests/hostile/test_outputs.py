"""Where files go wrong around a command: one sentence, never a traceback, and nothing lost.

Output folders that cannot be written (checked before any long work), a disk that fills
while a snapshot is written, damaged zip entries among good ones, a studio catalog that
is not SQLite, and dataset manifests with fields of the wrong type.

The tests run as whatever user the machine gives; root may write anywhere, so a folder
that refuses writes is made by refusing them in `os.open` and `os.mkdir` for paths below
it (what the kernel does for a read-only folder), and a path through a regular file
stands in for the real thing (which refuses everyone).
"""

from __future__ import annotations

import errno
import io
import json
import lzma
import os
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest

from ganscapes.data.dataset import dataset_info
from ganscapes.data.importer import import_images
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import save_model
from ganscapes.studio.catalog import Catalog

from helpers_images import damaged_zip, noise, png_bytes, write
from helpers_models import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_cli import run_main  # noqa: E402


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    make_samples(root / "raw", n=4, seed=6, min_side=24, max_side=40, progress=False)
    return root / "raw"


@pytest.fixture(scope="module")
def dataset(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "paintings.zip"
    prepare_dataset(raw, out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model(16))
    return path


@pytest.fixture(scope="module")
def picture(model_file, tmp_path_factory) -> Path:
    from ganscapes.make.generate import generate_images

    out = tmp_path_factory.mktemp("pictures")
    return generate_images(model_file, [1], out=out, progress=False).images[0]


def deny_writes_below(monkeypatch, folder: Path) -> None:
    """Make creating anything below `folder` fail with EACCES, as a read-only folder does."""
    real_open, real_mkdir = os.open, os.mkdir
    inside = str(folder) + os.sep

    def check(path):
        if os.fspath(path).startswith(inside):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            check(path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        check(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


# ---------------------------------------------------------------------------------------
# Output folders that cannot be written: one sentence, before the work


COMMANDS = {
    "prepare": lambda c, out: ["prepare", str(c["raw"]), "--out", str(out / "ds.zip"), "--res", "16", "--workers", "1"],
    "gather import": lambda c, out: ["gather", "import", str(c["raw"]), "--out", str(out / "raw")],
    "sample": lambda c, out: ["sample", "--out", str(out / "raw"), "-n", "1"],
    "generate": lambda c, out: ["generate", "--model", str(c["model"]), "--seeds", "0", "--out", str(out / "pics")],
    "train": lambda c, out: [
        "train",
        "--data",
        str(c["data"]),
        "--outdir",
        str(out / "runs"),
        "--cfg",
        "tiny",
        "--kimg",
        "0.004",
        "--batch",
        "4",
        "--metrics",
        "",
        "--workers",
        "0",
    ],
    "post": lambda c, out: ["post", str(c["picture"]), "--out", str(out / "final")],
    "metrics --out": lambda c, out: [
        "metrics",
        "--model",
        str(c["model"]),
        "--data",
        str(c["data"]),
        "--num",
        "4",
        "--out",
        str(out / "m.jsonl"),
    ],
}


@pytest.mark.parametrize("how", ["denied", "through a file"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_output_folder_is_one_sentence(
    command, how, raw, dataset, model_file, picture, tmp_path, monkeypatch, capsys
):
    import ganscapes.gan.metrics as metrics_mod

    monkeypatch.setattr(metrics_mod, "run_metrics", lambda *a, **k: pytest.fail("measured before checking --out"))
    parent = tmp_path / "outputs"
    if how == "denied":
        parent.mkdir()
        deny_writes_below(monkeypatch, parent)
    else:
        parent.write_text("a file where a folder should be")
    context = {"raw": raw, "data": dataset, "model": model_file, "picture": picture}
    code = run_main(monkeypatch, *COMMANDS[command](context, parent))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and err.count("ganscapes: error:") == 1, err
    line = err.strip().splitlines()[-1]
    reason = "permission denied" if how == "denied" else "not a directory"
    assert line.startswith(f"ganscapes: error: Cannot write {parent}") and line.endswith(f": {reason}."), err


def test_an_unexpected_write_refusal_is_one_line_too(monkeypatch, capsys, tmp_path):
    """Any command: the command line's last net turns a refused write into one sentence."""
    import ganscapes.data.sample as sample_mod

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "raw" / "x.jpg"))

    monkeypatch.setattr(sample_mod, "make_samples", full)
    assert run_main(monkeypatch, "sample", "--out", str(tmp_path / "raw"), "-n", "1") == 1
    assert (
        capsys.readouterr().err
        == f"ganscapes: error: Cannot write {tmp_path / 'raw' / 'x.jpg'}: no space left on device.\n"
    )


# ---------------------------------------------------------------------------------------
# A disk that fills while a snapshot is written


def _train(dataset: Path, outdir: Path, **changes):
    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.training import train

    base = dict(data=str(dataset), outdir=str(outdir), cfg="tiny", batch=4, kimg=0.004, metrics=[], workers=0)
    return train(TrainConfig(**{**base, **changes}), log=lambda _: None, progress=False)


def _full_disk(*args, **kwargs):
    file = args[1] if len(args) > 1 else None
    if hasattr(file, "write"):
        file.write(b"PK\x03\x04 the first bytes")  # some of it reached the disk
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _full_disk_as_safetensors_says_it(*args, **kwargs):
    """What safetensors' Rust writer raises on a really full disk (checked on a 600 kB tmpfs)."""
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


@pytest.mark.parametrize("victim", ["model", "model-rust", "state"])
def test_a_disk_full_during_a_snapshot_keeps_the_previous_one_and_says_one_sentence(
    dataset, tmp_path, monkeypatch, victim
):
    import safetensors.torch
    import torch

    from ganscapes.gan.train_state import list_snapshots

    first = _train(dataset, tmp_path / "runs")
    before = list_snapshots(first.run_dir)
    assert len(before) == 1
    with monkeypatch.context() as patch:
        if victim == "state":
            patch.setattr(torch, "save", _full_disk)
        else:
            patch.setattr(
                safetensors.torch, "save_file", _full_disk if victim == "model" else _full_disk_as_safetensors_says_it
            )
        with pytest.raises(UserError) as err:
            _train(dataset, tmp_path / "runs", kimg=0.008, resume="latest")
    message = str(err.value)
    name = "training-state-" if victim == "state" else "network-snapshot-"
    assert message.startswith(f"Cannot write {first.run_dir}{os.sep}{name}") and message.endswith(
        ": no space left on device."
    ), message
    assert list_snapshots(first.run_dir) == before  # the last complete snapshot is still the one before
    assert not list(first.run_dir.glob(".*.tmp"))  # and no half-written file is left
    resumed = _train(dataset, tmp_path / "runs", kimg=0.008, resume="latest")
    assert resumed.run_dir == first.run_dir and resumed.kimg == pytest.approx(0.008)


# ---------------------------------------------------------------------------------------
# Damaged zip entries among good ones: skipped with a line, the rest imported or prepared


def lzma_damaged_zip(good: list[tuple[str, bytes]]) -> bytes:
    """A zip whose LZMA-compressed first entry `a.png` cannot be decompressed, plus `good` stored entries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("a.png", (2020, 1, 1, 0, 0, 0)), png_bytes(noise(48, 48, seed=5)), zipfile.ZIP_LZMA)
        for name, data in good:
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    raw = bytearray(buf.getvalue())
    start = 30 + len("a.png") + 4 + 5  # local header, name, LZMA's own header and properties
    for i in range(start + 8, start + 40):
        raw[i] ^= 0x5A
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
            zf.read("a.png")
    except lzma.LZMAError:
        return bytes(raw)
    raise AssertionError("the damage did not make a.png undecompressable")


@pytest.mark.parametrize("kind", ["lzma", "crc"])
def test_gather_import_skips_a_damaged_zip_entry_and_imports_the_rest(tmp_path, kind):
    good = [("b.png", png_bytes(noise(24, 24, seed=9)))]
    archive = write(tmp_path / "in.zip", lzma_damaged_zip(good) if kind == "lzma" else damaged_zip(kind, good))
    lines: list[str] = []
    summary = import_images([archive], tmp_path / "raw", log=lines.append, progress=False)
    assert summary.imported == 1 and summary.skipped == 1
    skipped = [line for line in lines if line.startswith(f"skipped {archive}:a.")]
    assert len(skipped) == 1 and "unreadable: " in skipped[0] and "\n" not in skipped[0]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("kind", ["lzma", "crc"])
def test_prepare_skips_a_damaged_zip_entry_and_prepares_the_rest(tmp_path, kind, workers):
    good = [(f"b{i}.png", png_bytes(noise(24, 20, seed=i))) for i in range(2)]
    archive = write(tmp_path / "in.zip", lzma_damaged_zip(good) if kind == "lzma" else damaged_zip(kind, good))
    lines: list[str] = []
    result = prepare_dataset(
        archive, tmp_path / "ds.zip", PrepareConfig(res=8, workers=workers), log=lines.append, progress=False
    )
    assert result.images == 2 and [s.path for s in result.skipped] == [f"a.{'png' if kind == 'lzma' else 'bmp'}"]
    assert any(line.startswith("skipped a.") and ": unreadable: " in line for line in lines)


def test_prepare_of_a_zip_with_a_damaged_directory_is_one_sentence(tmp_path):
    archive = write(tmp_path / "in.zip", damaged_zip("crc", [("b.png", png_bytes(noise(24, 24)))]))
    data = bytearray(archive.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central : central + 4] = b"XX\x01\x02"  # the end record still says "zip"; its directory does not
    archive.write_bytes(bytes(data))
    with pytest.raises(UserError, match=rf"^Source {archive} is not a readable zip archive \("):
        prepare_dataset(
            archive, tmp_path / "ds.zip", PrepareConfig(res=8, workers=1), log=lambda _: None, progress=False
        )


# ---------------------------------------------------------------------------------------
# studio --catalog that is not a catalog


@pytest.mark.parametrize("what", ["text", "folder", "other database", "random bytes"])
def test_a_catalog_that_is_not_a_studio_catalog_is_one_sentence(tmp_path, what):
    path = tmp_path / "catalog.sqlite"
    if what == "text":
        path.write_text("these are my notes, not a database\n" * 10)
    elif what == "folder":
        path.mkdir()
    elif what == "random bytes":
        path.write_bytes(os.urandom(4096))
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE images (name TEXT)")
        db.close()
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(UserError) as err:
        Catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path} is ") and "studio catalog" in message and "\n" not in message
    if before is not None:
        assert path.read_bytes() == before


# ---------------------------------------------------------------------------------------
# dataset info on malformed manifests


def with_manifest(dataset: Path, out: Path, change) -> Path:
    with zipfile.ZipFile(dataset) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "manifest.json":
                data = change(json.loads(data))
            dst.writestr(info, data if isinstance(data, bytes) else json.dumps(data))
    return out


def test_dataset_info_shows_unknown_for_fields_of_the_wrong_type(dataset, tmp_path, monkeypatch, capsys):
    fields = {"resolution": "big", "format": 42, "aspect": "wide", "source_count": -3, "skipped": 5}
    odd = with_manifest(dataset, tmp_path / "odd.zip", lambda m: {**m, **fields})
    info = dataset_info(odd)
    assert (info.format, info.aspect, info.source_count, info.skipped) == (None, None, None, None)
    assert info.resolution == 16  # read from the first image's header instead
    monkeypatch.setattr(sys, "argv", ["ganscapes", "dataset", "info", str(odd)])
    from ganscapes.cli import main

    try:
        main()
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert "aspect      unknown" in out and "skipped     unknown" in out


@pytest.mark.parametrize(
    "manifest",
    [b"[" * 100_000 + b"]" * 100_000, b'{"kind": "ganscapes-dataset", "aspect": 1' + b"0" * 5000 + b"}", b"\xff\xfe{"],
)
def test_dataset_info_on_a_manifest_that_is_not_json_is_one_sentence(dataset, tmp_path, monkeypatch, capsys, manifest):
    odd = with_manifest(dataset, tmp_path / "odd.zip", lambda m: manifest)
    assert run_main(monkeypatch, "dataset", "info", str(odd)) == 1
    assert capsys.readouterr().err == f"ganscapes: error: manifest.json in dataset {odd} is not valid JSON.\n"
