"""rank: any folder of images, ordered by CLIP similarity to a prompt, the best kept.

The folder holds six small PNGs that carry a generate-style recipe (the "ganscapes" text
chunk) and a title, plus one JPEG. Their embeddings are computed once per module into a
template cache that each test copies; the scores are checked against numpy computed
from the encoder's own embeddings.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ganscapes.clip.cache import EmbeddingCache
from ganscapes.clip.embed import ImageRef, embed_images, folder_refs
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import rank_images, write_ranking
from ganscapes.data.contact_sheet import GAP, LABEL_HEIGHT
from ganscapes.data.images import load_rgb, open_image

from helpers_clip import RANDOM_CLIP, assert_error, run_cli, use_random_clip
from helpers_images import file_sha256, jpeg_bytes, noise, tree_bytes, write

PNGS = 6
JPEG = "photo.jpg"
ALL = PNGS + 1
CSV_HEADER = ["rank", "path", "score", "sha256"]


def _picture(i: int) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("ganscapes", json.dumps({"model_hash": "cafe" * 4, "seed": i, "psi": 0.7}))
    info.add_text("Title", f"Picture {i}")
    buf = io.BytesIO()
    noise(32, 32, seed=100 + i).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


@pytest.fixture(scope="module")
def templates(tmp_path_factory, random_clip) -> Path:
    root = tmp_path_factory.mktemp("rank_templates")
    folder = root / "pictures"
    for i in range(PNGS):
        write(folder / f"pic_{i:02d}.png", _picture(i))
    write(folder / JPEG, jpeg_bytes(noise(40, 30, seed=7)))
    with EmbeddingCache(root / "cache", random_clip.model_id) as cache:
        embedded = embed_images(folder_refs(folder), random_clip, cache, workers=0, progress=False)
    assert len(embedded.refs) == ALL
    return root


@pytest.fixture(scope="module")
def direct_embeddings(templates, random_clip) -> dict[str, np.ndarray]:
    """name → the encoder's embedding of each picture, computed here without the pipeline."""
    folder = templates / "pictures"
    names = sorted(p.name for p in folder.iterdir())
    pixels = [random_clip.preprocess(load_rgb(open_image((folder / n).read_bytes()))) for n in names]
    import torch

    embeddings = random_clip.encode_images(torch.stack(pixels))
    return dict(zip(names, embeddings))


@pytest.fixture
def folder(templates, tmp_path) -> Path:
    return Path(shutil.copytree(templates / "pictures", tmp_path / "pictures"))


@pytest.fixture
def cache_dir(templates, tmp_path) -> Path:
    return Path(shutil.copytree(templates / "cache", tmp_path / "cache"))


@pytest.fixture
def cli_clip(monkeypatch, random_clip, tmp_path):
    return use_random_clip(monkeypatch, random_clip, tmp_path / "env-cache")


def cli_rank(monkeypatch, folder: Path, cache_dir: Path, *args: str) -> int:
    return run_cli(monkeypatch, "rank", str(folder), *args, "--cache", str(cache_dir), "--workers", "0", *RANDOM_CLIP)


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def expected_scores(
    encoder, embeddings: dict[str, np.ndarray], positives, negatives=(), templates=()
) -> dict[str, float]:
    """score = mean cosine to the positive phrases − mean cosine to the negative ones, in numpy."""

    phrases = [*positives, *negatives]
    fills = [[t.format(p) for t in templates] if templates else [p] for p in phrases]
    texts = encoder.encode_texts([text for group in fills for text in group])  # one call for all
    per_phrase = np.split(texts, np.cumsum([len(g) for g in fills])[:-1])
    units = [e.mean(axis=0) / np.linalg.norm(e.mean(axis=0)) for e in per_phrase]
    pos = np.stack(units[: len(positives)])
    neg = np.stack(units[len(positives) :]) if negatives else None
    out = {}
    for name, e in embeddings.items():
        s = float(np.mean(pos @ e))
        if neg is not None:
            s -= float(np.mean(neg @ e))
        out[name] = s
    return out


def assert_ranking_matches(rows: list[dict], expected: dict[str, float]) -> None:
    assert sorted(r["path"] for r in rows) == sorted(expected)
    order = sorted(expected, key=lambda n: -expected[n])
    gaps = np.diff(sorted(expected.values()))
    assert gaps.min() > 2e-5, "two scores too close to tell apart; choose other test images"
    assert [r["path"] for r in rows] == order
    for r in rows:
        assert float(r["score"]) == pytest.approx(expected[r["path"]], abs=1e-5)


def sheet_size(tiles: int, columns: int = 6, thumb: int = 160) -> tuple[int, int]:
    columns = min(columns, tiles)
    rows = -(-tiles // columns)
    return columns * (thumb + GAP) + GAP, rows * (thumb + LABEL_HEIGHT + GAP) + GAP


# ---------------------------------------------------------------------------------------
# The ranking itself


def test_ranking_is_by_descending_score_computed_from_the_embeddings(
    folder, cache_dir, cli_clip, random_clip, direct_embeddings, monkeypatch, capsys
):
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "3") == 0
    out = capsys.readouterr().out

    header, rows = read_csv(folder / "ranked" / "ranking.csv")
    assert header == CSV_HEADER
    assert [int(r["rank"]) for r in rows] == list(range(1, ALL + 1))
    expected = expected_scores(random_clip, direct_embeddings, ["autumn woods"])
    assert_ranking_matches(rows, expected)
    for r in rows:
        assert r["sha256"] == file_sha256(folder / r["path"])

    lines = out.splitlines()
    for k in range(3):
        assert lines[k] == f"{k + 1:4d}  {float(rows[k]['score']):+.4f}  {rows[k]['path']}"
    assert lines[3] == (
        f"Ranked {ALL} image(s): {folder / 'ranked' / 'ranking.csv'}; the top 3 in {folder / 'ranked' / 'top'} "
        f"and {folder / 'ranked' / 'top.png'}."
    )
    assert len(lines) == 4


def test_negatives_several_phrases_and_templates_score_as_documented(
    folder, cache_dir, cli_clip, random_clip, direct_embeddings, monkeypatch, capsys
):
    args = [
        "--prompt",
        "autumn woods",
        "--prompt",
        "a river at dusk",
        "--negative",
        "a portrait",
        "--template",
        "an oil painting of {}",
        "--template",
        "a sketch of {}",
    ]
    assert cli_rank(monkeypatch, folder, cache_dir, *args, "--top", "2") == 0
    capsys.readouterr()
    _, rows = read_csv(folder / "ranked" / "ranking.csv")
    expected = expected_scores(
        random_clip,
        direct_embeddings,
        ["autumn woods", "a river at dusk"],
        ["a portrait"],
        ["an oil painting of {}", "a sketch of {}"],
    )
    assert_ranking_matches(rows, expected)


def test_rank_images_uses_the_cache_and_encodes_nothing_twice(folder, cache_dir, random_clip):
    calls = random_clip.image_calls
    with EmbeddingCache(cache_dir, random_clip.model_id) as cache:
        ranking = rank_images(
            folder_refs(folder), random_clip, Prompt(("autumn woods",)), cache, workers=0, progress=False
        )
    assert random_clip.image_calls == calls
    assert len(ranking) == ALL
    assert list(ranking.scores) == sorted(ranking.scores, reverse=True)


# ---------------------------------------------------------------------------------------
# The picks


def test_top_holds_the_best_k_with_their_score_in_the_recipe(
    folder, cache_dir, cli_clip, random_clip, monkeypatch, capsys
):
    (folder / JPEG).unlink()  # PNGs only here; the JPEG has its own test
    before = tree_bytes(folder)
    prompt = "autumn woods"
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", prompt, "--negative", "a photograph", "--top", "3") == 0
    capsys.readouterr()
    ranked = folder / "ranked"
    _, rows = read_csv(ranked / "ranking.csv")
    top_dir = ranked / "top"
    names = sorted(p.name for p in top_dir.iterdir())
    assert names == [f"{k + 1:03d}-{rows[k]['path']}" for k in range(3)]
    assert sorted(p.name for p in ranked.iterdir()) == ["ranking.csv", "top", "top.png"]
    assert {k: v for k, v in tree_bytes(folder).items() if not k.startswith("ranked/")} == before  # sources untouched

    for k, name in enumerate(names):
        source = folder / rows[k]["path"]
        with Image.open(top_dir / name) as pick, Image.open(source) as original:
            assert pick.format == "PNG"
            assert np.array_equal(np.asarray(pick), np.asarray(original))  # same pixels
            recipe = json.loads(pick.text["ganscapes"])
            original_recipe = json.loads(original.text["ganscapes"])
            assert pick.text["Title"] == original.text["Title"]  # other text chunks are kept
        assert original_recipe.items() <= recipe.items()  # the generate recipe is kept…
        assert recipe["prompt"] == [prompt]  # …and gains the ranking
        assert recipe["negative"] == ["a photograph"]
        assert recipe["rank"] == k + 1
        assert recipe["score"] == pytest.approx(float(rows[k]["score"]), abs=1e-6)
        assert recipe["clip_model"] == random_clip.model_id

    with Image.open(ranked / "top.png") as sheet:
        assert sheet.format == "PNG" and sheet.size == sheet_size(3)
        sheet.verify()


def test_a_jpeg_is_ranked_and_copied_byte_for_byte(folder, cache_dir, cli_clip, monkeypatch, capsys):
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", str(ALL)) == 0
    capsys.readouterr()
    _, rows = read_csv(folder / "ranked" / "ranking.csv")
    k = [r["path"] for r in rows].index(JPEG)
    top = sorted(p.name for p in (folder / "ranked" / "top").iterdir())
    assert len(top) == ALL
    assert top[k] == f"{k + 1:03d}-{JPEG}"
    assert (folder / "ranked" / "top" / top[k]).read_bytes() == (folder / JPEG).read_bytes()


@pytest.mark.parametrize("recursive", [False, True])
def test_a_second_run_does_not_rank_its_own_outputs(
    recursive, folder, cache_dir, cli_clip, random_clip, monkeypatch, capsys
):
    extra = ["--recursive"] if recursive else []
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "2", *extra) == 0
    first = (folder / "ranked" / "ranking.csv").read_text()
    calls = random_clip.image_calls
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "3", *extra) == 0
    capsys.readouterr()
    assert random_clip.image_calls == calls  # nothing new to encode: the picks were not taken for images
    assert (folder / "ranked" / "ranking.csv").read_text() == first
    _, rows = read_csv(folder / "ranked" / "ranking.csv")
    assert len(rows) == ALL and not any(r["path"].startswith("ranked") for r in rows)
    assert len(list((folder / "ranked" / "top").iterdir())) == 3  # top/ is replaced, not added to


def test_out_elsewhere_and_subfolders(folder, cache_dir, cli_clip, tmp_path, monkeypatch, capsys):
    (folder / "sub").mkdir()
    (folder / "pic_00.png").rename(folder / "sub" / "pic_00.png")
    out = tmp_path / "picks"
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "1", "--out", str(out)) == 0
    _, rows = read_csv(out / "ranking.csv")
    assert len(rows) == ALL - 1  # not recursive: sub/ is not looked into
    assert not (folder / "ranked").exists()
    assert (
        cli_rank(
            monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "1", "--out", str(out), "--recursive"
        )
        == 0
    )
    capsys.readouterr()
    _, rows = read_csv(out / "ranking.csv")
    assert sorted(r["path"] for r in rows) == sorted(
        ["sub/pic_00.png", *(f"pic_{i:02d}.png" for i in range(1, PNGS)), JPEG]
    )


def test_unreadable_images_are_skipped(folder, cache_dir, cli_clip, monkeypatch, capsys):
    write(folder / "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "2") == 0
    captured = capsys.readouterr()
    assert f"unreadable, skipped: {folder / 'broken.png'} (" in captured.err
    assert "Traceback" not in captured.err
    _, rows = read_csv(folder / "ranked" / "ranking.csv")
    assert len(rows) == ALL and "broken.png" not in {r["path"] for r in rows}


def test_write_ranking_rejects_a_top_beyond_the_ranking(folder, cache_dir, random_clip, tmp_path):
    from ganscapes.errors import UserError

    with EmbeddingCache(cache_dir, random_clip.model_id) as cache:
        ranking = rank_images(
            [ImageRef(folder / JPEG)], random_clip, Prompt(("woods",)), cache, workers=0, progress=False
        )
    with pytest.raises(UserError, match=r"^top 2 asks for more than the 1 images there are\.$"):
        write_ranking(ranking, tmp_path / "out", 2)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# User errors: exit status 1, one line, nothing written


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--prompt", "autumn woods", "--top", str(ALL + 1)],
            f"--top {ALL + 1} asks for more than the {ALL} images there are.",
        ),
        (["--prompt", "autumn woods", "--top", "0"], "--top must be at least 1, not 0."),
        (["--prompt", ""], "A prompt phrase is empty; remove it or write some words."),
        (["--prompt", "   "], "A prompt phrase is empty; remove it or write some words."),
        (["--prompt", "woods", "--negative", ""], "A prompt phrase is empty; remove it or write some words."),
        (
            ["--prompt", "woods", "--template", "a painting"],
            "The template 'a painting' must contain {} exactly once, where the phrase goes.",
        ),
    ],
    ids=["top-too-big", "top-zero", "empty-prompt", "blank-prompt", "empty-negative", "bad-template"],
)
def test_user_errors(args, message, folder, cache_dir, cli_clip, monkeypatch, capsys):
    before = tree_bytes(folder)
    assert cli_rank(monkeypatch, folder, cache_dir, *args) == 1
    assert_error(capsys.readouterr().err, message)
    assert tree_bytes(folder) == before
    assert cli_clip == []  # refused before CLIP was even loaded


def test_a_folder_without_images_is_an_error(tmp_path, cli_clip, monkeypatch, capsys):
    empty = tmp_path / "empty"
    write(empty / "notes.txt", b"no pictures here")
    assert cli_rank(monkeypatch, empty, tmp_path / "cache", "--prompt", "woods") == 1
    assert_error(capsys.readouterr().err, f"There are no images in {empty}.")
    assert sorted(p.name for p in empty.iterdir()) == ["notes.txt"]


def test_a_missing_folder_is_an_error(tmp_path, cli_clip, monkeypatch, capsys):
    assert cli_rank(monkeypatch, tmp_path / "nope", tmp_path / "cache", "--prompt", "woods") == 1
    assert_error(capsys.readouterr().err, f"{tmp_path / 'nope'} is not a folder of images.")
    assert not (tmp_path / "nope").exists()


def test_post_finishes_the_top_picks(folder, cache_dir, cli_clip, monkeypatch, capsys):
    (folder / JPEG).unlink()
    assert cli_rank(monkeypatch, folder, cache_dir, "--prompt", "autumn woods", "--top", "2", "--post") == 0
    out = capsys.readouterr().out
    post = folder / "ranked" / "post"
    picks = sorted(p.name for p in (folder / "ranked" / "top").glob("*.png"))
    assert sorted(p.name for p in post.iterdir()) == picks
    for name in picks:
        with Image.open(post / name) as finished, Image.open(folder / "ranked" / "top" / name) as pick:
            recipe = json.loads(finished.text["ganscapes"])
            assert recipe["kind"] == "post"
            assert recipe["source"]["rank"] == json.loads(pick.text["ganscapes"])["rank"]
            assert finished.width == pick.width  # width kept; these pictures record no aspect, so 1.0
            assert finished.height == pick.height
    assert f"Post-processed 2 picture(s) into {post}" in out
