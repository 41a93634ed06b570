"""generate --prompt: make pictures, let CLIP pick the best, keep the picks' latents.

A tiny 16-pixel generator (tests/helpers_models.py) saved as a model file, twelve seeds,
and the random-weights CLIP: the pictures mean nothing, but every file and every latent
row must land where the user expects it.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.gan.checkpoint import save_model

from helpers_clip import LOADING_RANDOM_CLIP, RANDOM_CLIP, assert_error, run_cli, stderr_lines, use_random_clip
from helpers_models import tiny_model

SEEDS = list(range(12))
TOP = 3


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model(res=16))
    return path


@pytest.fixture
def cli_clip(monkeypatch, random_clip, tmp_path):
    return use_random_clip(monkeypatch, random_clip, tmp_path / "env-cache")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def seed_of(name: str) -> int:
    m = re.fullmatch(r"(?:\d{3}-)?seed(\d{4})\.png", name)
    assert m, name
    return int(m.group(1))


def test_generate_with_a_prompt_keeps_everything_and_ranks_the_best(
    model_file, tmp_path, cli_clip, random_clip, monkeypatch, capsys
):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    code = run_cli(
        monkeypatch,
        "generate",
        "--model",
        model_file,
        "--seeds",
        "0-11",
        "--out",
        out,
        "--prompt",
        "autumn woods",
        "--top",
        str(TOP),
        "--device",
        "cpu",
        "--cache",
        cache,
        "--workers",
        "1",
        *RANDOM_CLIP,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    assert len(cli_clip) == 1
    assert stderr_lines(captured.err).count(LOADING_RANDOM_CLIP) == 1  # said once, while it loads
    assert "loading CLIP" not in captured.out

    # every picture stays, with the run's latents
    pictures = sorted(p.name for p in out.glob("seed*.png"))
    assert pictures == [f"seed{s:04d}.png" for s in SEEDS]
    assert sorted(p.name for p in out.iterdir()) == ["latents.npz", "ranked", *pictures]

    # the ranking: all twelve, best first
    rows = read_csv(out / "ranked" / "ranking.csv")
    assert sorted(r["path"] for r in rows) == pictures
    assert [int(r["rank"]) for r in rows] == list(range(1, len(SEEDS) + 1))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    top_seeds = [seed_of(r["path"]) for r in rows[:TOP]]

    # the picks, and the latents of just those rows, in rank order
    top_dir = out / "ranked" / "top"
    assert sorted(p.name for p in top_dir.iterdir()) == sorted(
        ["latents.npz", *(f"{k + 1:03d}-seed{s:04d}.png" for k, s in enumerate(top_seeds))]
    )
    for k, s in enumerate(top_seeds):
        with Image.open(top_dir / f"{k + 1:03d}-seed{s:04d}.png") as pick, Image.open(out / f"seed{s:04d}.png") as src:
            assert np.array_equal(np.asarray(pick), np.asarray(src))
            recipe = json.loads(pick.text["ganscapes"])
        assert recipe["seed"] == s and recipe["rank"] == k + 1 and recipe["prompt"] == ["autumn woods"]
        assert recipe["score"] == pytest.approx(scores[k], abs=1e-6)
    with np.load(out / "latents.npz") as everything, np.load(top_dir / "latents.npz") as picked:
        assert list(everything["seeds"]) == SEEDS
        assert list(picked["seeds"]) == top_seeds
        rows_of = [SEEDS.index(s) for s in top_seeds]
        assert np.array_equal(picked["w"], everything["w"][rows_of])
        assert np.array_equal(picked["z"], everything["z"][rows_of])
        np.testing.assert_allclose(picked["score"], scores[:TOP], atol=1e-5)
        for key in ("psi", "truncation_cutoff", "noise_mode", "class_idx", "model_hash"):
            assert picked[key] == everything[key], key  # the run's settings come along
    with Image.open(out / "ranked" / "top.png") as sheet:
        assert sheet.format == "PNG"

    lines = captured.out.splitlines()
    assert lines[0].startswith(
        f"12 image(s) in {out} (seed0000.png … seed0011.png); latents in {out / 'latents.npz'}; cpu"
    )
    assert [line.split()[-1] for line in lines[1 : 1 + TOP]] == [f"seed{s:04d}.png" for s in top_seeds]
    assert lines[-1] == (
        f"Ranked by 'autumn woods': {out / 'ranked' / 'ranking.csv'}; the top {TOP} with their latents in {top_dir}."
    )

    # ranking the same folder again later: nothing to encode, and the picks still get their latents
    calls = random_clip.image_calls
    code = run_cli(
        monkeypatch,
        "rank",
        out,
        "--prompt",
        "autumn woods",
        "--top",
        "2",
        "--cache",
        cache,
        "--workers",
        "0",
        *RANDOM_CLIP,
    )
    assert code == 0
    assert "with their latents" in capsys.readouterr().out
    assert random_clip.image_calls == calls
    assert read_csv(out / "ranked" / "ranking.csv") == rows
    with np.load(top_dir / "latents.npz") as picked, np.load(out / "latents.npz") as everything:
        assert list(picked["seeds"]) == top_seeds[:2]
        assert np.array_equal(picked["w"], everything["w"][[SEEDS.index(s) for s in top_seeds[:2]]])
    assert sorted(p.name for p in top_dir.glob("*.png")) == [
        f"{k + 1:03d}-seed{s:04d}.png" for k, s in enumerate(top_seeds[:2])
    ]


def test_fewer_seeds_than_top_keeps_them_all(model_file, tmp_path, cli_clip, monkeypatch, capsys):
    """`--seeds 0-2` with the default `--top 6`: all three are the picks, and the command says so."""
    out = tmp_path / "out"
    code = run_cli(
        monkeypatch,
        "generate",
        "--model",
        model_file,
        "--seeds",
        "0-2",
        "--out",
        out,
        "--prompt",
        "autumn woods",
        "--device",
        "cpu",
        "--cache",
        tmp_path / "cache",
        "--workers",
        "0",
        *RANDOM_CLIP,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note: --top 6 but 3 seed(s); keeping all 3." in stderr_lines(captured.err)
    picks = sorted(p.name for p in (out / "ranked" / "top").glob("*.png"))
    assert len(picks) == 3 and sorted(seed_of(p.split("-", 1)[1]) for p in picks) == [0, 1, 2]
    assert captured.out.splitlines()[-1].endswith(f"the top 3 with their latents in {out / 'ranked' / 'top'}.")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "autumn woods", "--top", "0"], "--top must be at least 1, not 0."),
        (["--prompt", ""], "A prompt phrase is empty; remove it or write some words."),
        (["--negative", "a portrait"], "--negative and --template only apply with --prompt."),
        (["--template", "a painting of {}"], "--negative and --template only apply with --prompt."),
    ],
    ids=["top-zero", "empty-prompt", "negative-alone", "template-alone"],
)
def test_prompt_errors_come_before_generating_anything(
    args, message, model_file, tmp_path, cli_clip, monkeypatch, capsys
):
    out = tmp_path / "out"
    code = run_cli(
        monkeypatch,
        "generate",
        "--model",
        model_file,
        "--seeds",
        "0-11",
        "--out",
        out,
        "--cache",
        tmp_path / "cache",
        *RANDOM_CLIP,
        *args,
    )
    assert code == 1
    assert_error(capsys.readouterr().err, message)
    assert not out.exists()
    assert cli_clip == []  # CLIP not loaded either
