"""curate: score a prepared dataset, move the worst aside, and undo it byte for byte.

The datasets are ten 32-pixel procedural paintings made by `make_samples` + `prepare`,
as a folder and as a zip (same image bytes). Their embeddings are computed once per
module into a template cache, which each test copies, so only the test about resuming
pays for encoding.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.clip.cache import EmbeddingCache
from ganscapes.clip.curate import (
    REFUSED_DIR,
    RefuseRule,
    curate_dataset,
    curation_dir_for,
    undo_curation,
)
from ganscapes.clip.embed import ImageRef, embed_images
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import Ranking
from ganscapes.data.contact_sheet import GAP, LABEL_HEIGHT
from ganscapes.data.dataset import Dataset
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import SettingError, UserError

from helpers_clip import LOADING_RANDOM_CLIP, RANDOM_CLIP, assert_error, run_cli, stderr_lines, use_random_clip
from helpers_images import file_sha256, listing, sha256, tree_bytes, write

N = 10  # images in the test datasets
PHRASE = "impressionist landscape painting"
PROMPT = Prompt((PHRASE,))
SCORES_HEADER = ["path", "score", "rank", "refused", "sha256"]


def _make_dataset(root: Path, n: int, seed: int, zipped: bool) -> Path:
    raw = root / f"raw-{seed}-{n}"
    if not raw.exists():
        make_samples(raw, n=n, seed=seed, min_side=32, max_side=64, progress=False)
    out = root / (f"ds-{seed}-{n}.zip" if zipped else f"ds-{seed}-{n}")
    prepare_dataset(raw, out, PrepareConfig(res=32, workers=1), log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="module")
def templates(tmp_path_factory, random_clip) -> Path:
    """A folder dataset, the same as a zip, and a cache that already holds their embeddings."""
    root = tmp_path_factory.mktemp("curate_templates")
    folder = _make_dataset(root, N, seed=0, zipped=False)
    zipped = _make_dataset(root, N, seed=0, zipped=True)
    folder.rename(root / "landscapes")
    zipped.rename(root / "landscapes.zip")
    with Dataset(root / "landscapes") as ds:
        refs = [ImageRef(root / "landscapes" / name) for name in ds.image_names]
    assert len(refs) == N
    with EmbeddingCache(root / "cache", random_clip.model_id) as cache:
        embed_images(refs, random_clip, cache, workers=0, progress=False)
    return root


@pytest.fixture
def folder_ds(templates, tmp_path) -> Path:
    return Path(shutil.copytree(templates / "landscapes", tmp_path / "landscapes"))


@pytest.fixture
def zip_ds(templates, tmp_path) -> Path:
    return Path(shutil.copy2(templates / "landscapes.zip", tmp_path / "landscapes.zip"))


@pytest.fixture
def cache_dir(templates, tmp_path) -> Path:
    """A private copy of the warm cache."""
    return Path(shutil.copytree(templates / "cache", tmp_path / "cache"))


@pytest.fixture
def cache(cache_dir, random_clip):
    with EmbeddingCache(cache_dir, random_clip.model_id) as c:
        yield c


@pytest.fixture
def cli_clip(monkeypatch, random_clip, tmp_path):
    """`ganscapes curate` with the session's random CLIP; GANSCAPES_CACHE points into tmp_path."""
    return use_random_clip(monkeypatch, random_clip, tmp_path / "env-cache")


def curate(ds: Path, rule: RefuseRule, encoder, cache, **kwargs):
    return curate_dataset(ds, PROMPT, rule, encoder, cache, workers=0, progress=False, **kwargs)


def read_scores(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def image_bytes(ds: Path) -> dict[str, bytes]:
    """name → bytes of every image of a dataset, folder or zip."""
    with Dataset(ds) as d:
        return {n: d.read_bytes(n) for n in d.image_names}


def sheet_size(tiles: int, columns: int = 6, thumb: int = 160) -> tuple[int, int]:
    columns = min(columns, tiles)
    rows = -(-tiles // columns)
    return columns * (thumb + GAP) + GAP, rows * (thumb + LABEL_HEIGHT + GAP) + GAP


def assert_png(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == size
        img.verify()
    with Image.open(path) as img:
        img.load()  # decodes completely


def cli_curate(monkeypatch, ds: Path, cache_dir: Path, *args: str) -> int:
    return run_cli(monkeypatch, "curate", str(ds), *args, "--cache", str(cache_dir), "--workers", "0", *RANDOM_CLIP)


# ---------------------------------------------------------------------------------------
# What is refused, and where it goes


def test_refuse_n_moves_the_n_lowest_scores_out_of_a_folder_dataset(folder_ds, cache, random_clip):
    before = image_bytes(folder_ds)
    manifest_before = json.loads((folder_ds / "manifest.json").read_text())
    assert [e["file"] for e in manifest_before["images"]] == sorted(before)

    result = curate(folder_ds, RefuseRule(count=3), random_clip, cache)

    curation = folder_ds.with_name("landscapes-curation")
    assert result.curation == curation == curation_dir_for(folder_ds)
    assert not result.dry_run and result.encoded == 0  # all from the warm cache

    # scores.csv: every readable image once, best first, the refused ones marked
    header, rows = read_scores(curation / "scores.csv")
    assert header == SCORES_HEADER
    assert sorted(r["path"] for r in rows) == sorted(before)
    assert [int(r["rank"]) for r in rows] == list(range(1, N + 1))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [r["sha256"] for r in rows] == [sha256(before[r["path"]]) for r in rows]
    assert [int(r["refused"]) for r in rows] == [0] * (N - 3) + [1] * 3
    lowest3 = sorted(before, key=lambda n: next(float(r["score"]) for r in rows if r["path"] == n))[:3]
    assert sorted(result.refused) == sorted(lowest3)
    assert max(float(r["score"]) for r in rows if r["refused"] == "1") < min(
        float(r["score"]) for r in rows if r["refused"] == "0"
    )

    # the salon holds exactly the refused files (unchanged) and its manifest
    salon = curation / REFUSED_DIR
    salon_files = {p.relative_to(salon).as_posix() for p in salon.rglob("*") if p.is_file()}
    assert salon_files == {*result.refused, "manifest.json"}
    for name in result.refused:
        assert (salon / name).read_bytes() == before[name]
    salon_manifest = json.loads((salon / "manifest.json").read_text())
    score_of = {r["path"]: float(r["score"]) for r in rows}
    assert [item["file"] for item in salon_manifest["refused"]] == result.refused
    for item in salon_manifest["refused"]:
        assert item["score"] == pytest.approx(score_of[item["file"]], abs=1e-6)
    assert salon_manifest["prompt"]["positives"] == [PHRASE]
    assert salon_manifest["clip_model"] == random_clip.model_id

    # the curated dataset: the other seven, untouched, and a manifest that no longer names the three
    after = image_bytes(folder_ds)
    assert sorted(after) == sorted(set(before) - set(result.refused))
    assert all(after[n] == before[n] for n in after)
    with Dataset(folder_ds) as ds:
        assert len(ds) == N - 3
        manifest = ds.manifest
    assert [e["file"] for e in manifest["images"]] == sorted(after)
    assert manifest["curation"]["refused"] == 3
    assert manifest["resolution"] == manifest_before["resolution"]

    # the contact sheets of the best and worst
    assert result.top_sheet == curation / "top.png" and result.bottom_sheet == curation / "bottom.png"
    assert_png(curation / "top.png", sheet_size(N))
    assert_png(curation / "bottom.png", sheet_size(N))
    state = json.loads((curation / "curation.json").read_text())
    assert state["status"] == "done" and state["container"] == "folder" and state["refused"] == result.refused


def test_refuse_n_from_a_zip_dataset(zip_ds, cache, random_clip):
    original = zip_ds.read_bytes()
    before = image_bytes(zip_ds)

    result = curate(zip_ds, RefuseRule(count=3), random_clip, cache)

    curation = zip_ds.with_name("landscapes-curation")
    assert result.curation == curation
    _, rows = read_scores(curation / "scores.csv")
    assert sorted(result.refused) == sorted(r["path"] for r in rows[-3:])
    salon = curation / REFUSED_DIR
    assert {p.relative_to(salon).as_posix() for p in salon.rglob("*") if p.is_file()} == {
        *result.refused,
        "manifest.json",
    }
    for name in result.refused:
        assert (salon / name).read_bytes() == before[name]
    # the original zip is kept whole, for undo
    assert (curation / "original.zip").read_bytes() == original
    with zipfile.ZipFile(zip_ds) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        manifest = json.loads(zf.read("manifest.json"))
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    assert not set(result.refused) & set(names)
    with Dataset(zip_ds) as ds:
        assert len(ds) == N - 3
        assert all(ds.read_bytes(n) == before[n] for n in ds.image_names)
    assert [e["file"] for e in manifest["images"]] == sorted(set(before) - set(result.refused))


def test_refuse_fraction_and_min_score(folder_ds, cache, random_clip, tmp_path):
    dry = curate(folder_ds, RefuseRule(count=0), random_clip, cache, dry_run=True)
    scores = np.asarray(dry.ranking.scores)
    assert len(scores) == N
    ranked_names = [r.path.relative_to(folder_ds).as_posix() for r in dry.ranking.refs]

    def run(rule: RefuseRule, copy: str) -> list[str]:
        ds = Path(shutil.copytree(folder_ds, tmp_path / copy / "landscapes"))
        result = curate(ds, rule, random_clip, cache)
        with Dataset(ds) as d:
            assert sorted(d.image_names) == sorted(set(ranked_names) - set(result.refused))
        return result.refused

    # a fraction of the readable images, rounded to the nearest count (4.6 → 5)
    assert sorted(run(RefuseRule(fraction=0.46), "fraction")) == sorted(ranked_names[5:])
    # every image scoring below the threshold, and only those
    threshold = float((scores[5] + scores[6]) / 2)  # between the 6th and the 7th best
    assert sorted(run(RefuseRule(min_score=threshold), "score")) == sorted(ranked_names[6:])


@pytest.mark.parametrize(
    "rule, expected",
    [
        (RefuseRule(count=0), 0),
        (RefuseRule(count=10), 10),
        (RefuseRule(fraction=0.0), 0),
        (RefuseRule(fraction=0.3), 3),
        (RefuseRule(fraction=0.14), 1),
        (RefuseRule(fraction=0.46), 5),
        (RefuseRule(fraction=0.99), 10),
        (RefuseRule(min_score=-1.0), 0),
        (RefuseRule(min_score=0.05), 10),
        (RefuseRule(min_score=-0.0175), 6),
        (RefuseRule(min_score=-0.0225), 5),
    ],
)
def test_how_many_a_rule_refuses(rule, expected):
    ranking = Ranking(refs=[], scores=-np.arange(10) / 200, digests=[], prompt=PROMPT, model_id="m")  # 0 … -0.045
    ranking.refs = [ImageRef(Path(f"{i}.png")) for i in range(10)]
    assert rule.how_many(ranking) == expected


def test_a_bad_rule_names_its_field():
    """The library names RefuseRule's fields; the command line says --refuse and --refuse-fraction."""
    for kwargs, setting, message in [
        ({"count": -1}, "count", "count must be 0 or more, not -1."),
        ({"fraction": 1.0}, "fraction", "fraction must be at least 0 and below 1, not 1."),
        ({"fraction": -0.1}, "fraction", "fraction must be at least 0 and below 1, not -0.1."),
    ]:
        with pytest.raises(SettingError) as info:
            RefuseRule(**kwargs)
        assert (info.value.setting, str(info.value)) == (setting, message)
    for kwargs in [{}, {"count": 1, "fraction": 0.1}, {"count": 1, "fraction": 0.1, "min_score": 0.0}]:
        with pytest.raises(
            UserError, match=r"^Say how many to refuse with exactly one of count, fraction or min_score\.$"
        ):
            RefuseRule(**kwargs)
    ranking = Ranking(refs=[ImageRef(Path("a.png"))], scores=np.zeros(1), digests=[], prompt=PROMPT, model_id="m")
    with pytest.raises(SettingError, match=r"^count 2 is more than the 1 readable images in the dataset\.$"):
        RefuseRule(count=2).how_many(ranking)


def test_nothing_to_refuse_leaves_no_curation_to_undo(folder_ds, cache, random_clip):
    before = tree_bytes(folder_ds)
    result = curate(folder_ds, RefuseRule(count=0), random_clip, cache)
    assert result.refused == []
    assert tree_bytes(folder_ds) == before
    assert not (result.curation / "curation.json").exists()
    assert not (result.curation / REFUSED_DIR).exists()
    with pytest.raises(UserError, match="There is no curation of"):
        undo_curation(folder_ds)


def test_label_entries_of_refused_images_are_dropped_and_restored(folder_ds, cache, random_clip):
    with Dataset(folder_ds) as ds:
        names = list(ds.image_names)
    labels = [[name, i % 3] for i, name in enumerate(names)]
    original_json = json.dumps({"labels": labels}, indent=2).encode()
    write(folder_ds / "dataset.json", original_json)

    result = curate(folder_ds, RefuseRule(count=4), random_clip, cache)

    assert len(result.refused) == 4
    kept_labels = json.loads((folder_ds / "dataset.json").read_text())["labels"]
    assert kept_labels == [entry for entry in labels if entry[0] not in result.refused]
    assert len(kept_labels) == N - 4
    with Dataset(folder_ds) as ds:
        assert sorted(e[0] for e in kept_labels) == ds.image_names

    assert undo_curation(folder_ds) == 4
    assert (folder_ds / "dataset.json").read_bytes() == original_json


# ---------------------------------------------------------------------------------------
# Undo, through the command line


def test_undo_restores_a_folder_dataset_byte_for_byte(folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    files_before = tree_bytes(folder_ds)
    listing_before = listing(folder_ds)

    assert cli_curate(monkeypatch, folder_ds, cache_dir, "--refuse", "4") == 0
    out = capsys.readouterr().out
    curation = folder_ds.with_name("landscapes-curation")
    assert f"refused 4, moved to {curation / REFUSED_DIR}" in out
    assert f"({0} encoded, {N} from the cache)" in out
    assert len(tree_bytes(folder_ds)) == len(files_before) - 4

    assert run_cli(monkeypatch, "curate", str(folder_ds), "--undo") == 0
    assert capsys.readouterr().out == f"Restored 4 refused image(s) to {folder_ds}; {curation} is gone.\n"
    assert tree_bytes(folder_ds) == files_before  # every file, and every file's bytes
    assert listing(folder_ds) == listing_before  # and no folder more or less
    assert not curation.exists()


def test_undo_restores_a_zip_dataset_byte_for_byte(zip_ds, cache_dir, cli_clip, monkeypatch, capsys):
    digest = file_sha256(zip_ds)
    neighbours = sorted(p.name for p in zip_ds.parent.iterdir())

    assert cli_curate(monkeypatch, zip_ds, cache_dir, "--refuse", "4") == 0
    capsys.readouterr()
    assert file_sha256(zip_ds) != digest
    with Dataset(zip_ds) as ds:
        assert len(ds) == N - 4

    assert run_cli(monkeypatch, "curate", str(zip_ds), "--undo") == 0
    curation = zip_ds.with_name("landscapes-curation")
    assert capsys.readouterr().out == f"Restored 4 refused image(s) to {zip_ds}; {curation} is gone.\n"
    assert file_sha256(zip_ds) == digest
    assert not curation.exists()
    assert sorted(p.name for p in zip_ds.parent.iterdir()) == neighbours  # no temporary files left


def test_undo_without_a_curation_is_an_error(folder_ds, cli_clip, monkeypatch, capsys):
    before = tree_bytes(folder_ds)
    assert run_cli(monkeypatch, "curate", str(folder_ds), "--undo") == 1
    state = folder_ds.with_name("landscapes-curation") / "curation.json"
    assert_error(capsys.readouterr().err, f"There is no curation of {folder_ds} to undo ({state} does not exist).")
    assert tree_bytes(folder_ds) == before
    assert cli_clip == []  # undo never loads CLIP


@pytest.mark.parametrize("container", ["folder", "zip"])
def test_curating_twice_without_undo_is_an_error(container, request, cache_dir, cli_clip, monkeypatch, capsys):
    ds = request.getfixturevalue(f"{container}_ds")
    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "2") == 0
    capsys.readouterr()
    once = tree_bytes(ds)
    curation = ds.with_name("landscapes-curation")
    salon_before = tree_bytes(curation / REFUSED_DIR)

    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "2") == 1
    state = curation / "curation.json"
    err = capsys.readouterr().err
    assert_error(err, f"{ds} is already curated (see {state}); run `ganscapes curate {ds} --undo` first.", alone=False)
    assert stderr_lines(err) == [LOADING_RANDOM_CLIP, stderr_lines(err)[-1]]  # found once CLIP is loaded
    assert tree_bytes(ds) == once
    assert tree_bytes(curation / REFUSED_DIR) == salon_before


# ---------------------------------------------------------------------------------------
# Dry run and resuming


@pytest.mark.parametrize("container", ["folder", "zip"])
def test_dry_run_moves_nothing_but_writes_scores_and_sheets(
    container, request, cache_dir, cli_clip, monkeypatch, capsys
):
    ds = request.getfixturevalue(f"{container}_ds")
    before = tree_bytes(ds) if container == "folder" else None
    digest = file_sha256(ds) if container == "zip" else None

    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "3", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would refuse 3." in out and "moved to" not in out

    curation = ds.with_name("landscapes-curation")
    if container == "folder":
        assert tree_bytes(ds) == before
    else:
        assert file_sha256(ds) == digest
    assert sorted(p.name for p in curation.iterdir()) == ["bottom.png", "scores.csv", "top.png"]
    header, rows = read_scores(curation / "scores.csv")
    assert header == SCORES_HEADER and len(rows) == N
    assert [r["refused"] for r in rows] == ["0"] * (N - 3) + ["1"] * 3  # what would be refused
    assert_png(curation / "top.png", sheet_size(N))
    assert_png(curation / "bottom.png", sheet_size(N))

    # a dry run is not a curation: nothing to undo, and a real run may follow
    assert run_cli(monkeypatch, "curate", str(ds), "--undo") == 1
    capsys.readouterr()
    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "3") == 0
    assert "refused 3, moved to" in capsys.readouterr().out
    with Dataset(ds) as d:
        assert len(d) == N - 3


def test_a_second_run_resumes_from_the_cache(tmp_path, random_clip, cli_clip, monkeypatch, capsys):
    ds = _make_dataset(tmp_path, 4, seed=1, zipped=False)  # images the warm cache has never seen
    cache_dir = tmp_path / "fresh-cache"

    calls = random_clip.image_calls
    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "1", "--dry-run") == 0
    assert "(4 encoded, 0 from the cache)" in capsys.readouterr().out
    assert random_clip.image_calls > calls
    first = (ds.with_name(ds.name + "-curation") / "scores.csv").read_text()

    calls = random_clip.image_calls
    assert cli_curate(monkeypatch, ds, cache_dir, "--refuse", "1", "--dry-run") == 0
    assert "(0 encoded, 4 from the cache)" in capsys.readouterr().out
    assert random_clip.image_calls == calls
    assert (ds.with_name(ds.name + "-curation") / "scores.csv").read_text() == first
    assert not (tmp_path / "env-cache").exists()  # --cache was used, not $GANSCAPES_CACHE


def test_the_cache_defaults_to_GANSCAPES_CACHE(folder_ds, templates, tmp_path, cli_clip, monkeypatch, capsys):
    shutil.copytree(templates / "cache", tmp_path / "env-cache")  # where use_random_clip points the variable
    assert (
        run_cli(monkeypatch, "curate", str(folder_ds), "--refuse", "1", "--dry-run", "--workers", "0", *RANDOM_CLIP)
        == 0
    )
    assert f"(0 encoded, {N} from the cache)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------
# Unreadable images and user errors


def corrupt_png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


def test_unreadable_images_are_listed_and_skipped_not_refused(folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    bad = "00000/img00000099.png"
    write(folder_ds / bad, corrupt_png())

    assert cli_curate(monkeypatch, folder_ds, cache_dir, "--refuse", "2") == 0
    captured = capsys.readouterr()
    assert f"unreadable, skipped: {bad} (" in captured.err
    assert "Traceback" not in captured.err
    assert f"Scored {N} image(s)" in captured.out
    assert "refused 2, moved to" in captured.out
    assert "1 unreadable image(s) were skipped, not refused." in captured.out

    curation = folder_ds.with_name("landscapes-curation")
    _, rows = read_scores(curation / "scores.csv")
    assert len(rows) == N and bad not in {r["path"] for r in rows}
    assert (curation / "unreadable.tsv").read_text().startswith(f"{bad}\t")
    assert (folder_ds / bad).read_bytes() == corrupt_png()  # left where it was
    assert not (curation / REFUSED_DIR / bad).exists()
    state = json.loads((curation / "curation.json").read_text())
    assert bad not in state["refused"] and len(state["refused"]) == 2 and state["unreadable"] == 1
    with Dataset(folder_ds) as ds:
        assert len(ds) == N + 1 - 2


def test_refusing_more_than_the_readable_images_is_an_error(folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    write(folder_ds / "00000/img00000099.png", corrupt_png())  # N + 1 files, N readable
    before = tree_bytes(folder_ds)
    assert cli_curate(monkeypatch, folder_ds, cache_dir, "--refuse", str(N + 1)) == 1
    err = capsys.readouterr().err
    assert_error(err, f"--refuse {N + 1} is more than the {N} readable images in the dataset.", alone=False)
    assert tree_bytes(folder_ds) == before
    assert not (folder_ds.with_name("landscapes-curation") / "curation.json").exists()


@pytest.mark.parametrize(
    "rule_args",
    [
        [],
        ["--refuse", "2", "--min-score", "0.1"],
        ["--refuse-fraction", "0.1", "--refuse", "1"],
        ["--refuse", "1", "--refuse-fraction", "0.1", "--min-score", "0"],
    ],
    ids=["none", "count+score", "fraction+count", "all three"],
)
def test_exactly_one_rule_is_required(rule_args, folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    before = tree_bytes(folder_ds)
    assert cli_curate(monkeypatch, folder_ds, cache_dir, *rule_args) == 1
    assert_error(
        capsys.readouterr().err,
        "Say how many to refuse with exactly one of --refuse N, --refuse-fraction F or --min-score S.",
    )
    assert tree_bytes(folder_ds) == before
    assert not folder_ds.with_name("landscapes-curation").exists()


@pytest.mark.parametrize(
    "rule_args, message",
    [
        (["--refuse", "-1"], "--refuse must be 0 or more, not -1."),
        (["--refuse-fraction", "1"], "--refuse-fraction must be at least 0 and below 1, not 1."),
        (["--refuse-fraction", "-0.1"], "--refuse-fraction must be at least 0 and below 1, not -0.1."),
    ],
)
def test_impossible_rules_are_errors(rule_args, message, folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    assert cli_curate(monkeypatch, folder_ds, cache_dir, *rule_args) == 1
    assert_error(capsys.readouterr().err, message)
    assert not folder_ds.with_name("landscapes-curation").exists()


def test_an_empty_dataset_is_an_error(tmp_path, cli_clip, monkeypatch, capsys):
    ds = tmp_path / "empty"
    write(ds / "dataset.json", b'{"labels": null}')
    assert cli_curate(monkeypatch, ds, tmp_path / "cache", "--refuse", "1") == 1
    err = capsys.readouterr().err
    assert_error(err, f"The dataset {ds} holds no images.", alone=False)
    assert stderr_lines(err) == [LOADING_RANDOM_CLIP, stderr_lines(err)[-1]]
    assert not (tmp_path / "empty-curation").exists()


def test_a_missing_dataset_is_an_error(tmp_path, cli_clip, monkeypatch, capsys):
    ds = tmp_path / "nope"
    assert cli_curate(monkeypatch, ds, tmp_path / "cache", "--refuse", "1") == 1
    err = capsys.readouterr().err
    assert_error(err, f"Dataset {ds} does not exist.", alone=False)
    assert stderr_lines(err) == [LOADING_RANDOM_CLIP, stderr_lines(err)[-1]]


def test_curating_the_current_folder(folder_ds, cache_dir, cli_clip, monkeypatch, capsys):
    """`cd landscapes && ganscapes curate .` works like naming the folder from outside."""
    before = tree_bytes(folder_ds)
    monkeypatch.chdir(folder_ds)
    assert cli_curate(monkeypatch, Path("."), cache_dir, "--refuse", "2") == 0
    assert "refused 2, moved to" in capsys.readouterr().out
    curation = folder_ds.with_name("landscapes-curation")
    assert (curation / "curation.json").is_file()
    assert len(list((curation / REFUSED_DIR).rglob("*.png"))) == 2
    assert len(tree_bytes(folder_ds)) == len(before) - 2
    assert run_cli(monkeypatch, "curate", ".", "--undo") == 0
    capsys.readouterr()
    assert tree_bytes(folder_ds) == before
    assert not curation.exists()
