"""`ganscapes guide` from the command line, in this process, with the tiny random CLIP.

The tiny CLIP is registered with open_clip in this process (`helpers_tinyclip`), so the
commands run through `run_cli` and name it with `--clip-model ganscapes-test-tiny
--clip-pretrained random`; `load_clip` is the real one (spied on, never replaced).
"""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

import ganscapes.clip.encoder as encoder_mod
import ganscapes.gan.checkpoint as checkpoint_mod
from ganscapes.clip.encoder import WEIGHTS_ENV
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make.generate import generate_images
from ganscapes.make.paint import paint
from ganscapes.provenance import read_recipe

from helpers_clip import assert_error, run_cli
from helpers_models import tiny_model
from helpers_tinyclip import TINY_CLIP, TINY_CLIP_ARGS, register_tiny_clip

PROMPT = "impressionist painting of autumn woods"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def tiny_clip_registered(monkeypatch):
    register_tiny_clip()
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)  # a weights file would win over 'random'


@pytest.fixture
def loads(monkeypatch):
    """Counts of the model and CLIP loads a command makes (the real loaders run)."""
    counts = {"model": 0, "clip": 0}
    real_model, real_clip = checkpoint_mod.load_model, encoder_mod.load_clip

    def load_model_spy(*args, **kwargs):
        counts["model"] += 1
        return real_model(*args, **kwargs)

    def load_clip_spy(*args, **kwargs):
        counts["clip"] += 1
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(checkpoint_mod, "load_model", load_model_spy)
    monkeypatch.setattr(encoder_mod, "load_clip", load_clip_spy)
    return counts


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model files: the one searched, one with the same shapes but other weights, one of another size."""
    folder = tmp_path_factory.mktemp("models")
    paths = {
        "tiny": folder / "tiny.safetensors",
        "other": folder / "other.safetensors",
        "big": folder / "big.safetensors",
    }
    save_model(paths["tiny"], tiny_model(res=16, seed=0))
    save_model(paths["other"], tiny_model(res=16, seed=1))
    save_model(paths["big"], tiny_model(res=32, seed=0))
    return paths


@pytest.fixture(scope="module")
def generated(models, tmp_path_factory):
    """generate's output for each model: seedNNNN.png and latents.npz."""
    out = {}
    for name in ("tiny", "other", "big"):
        folder = tmp_path_factory.mktemp(f"gen-{name}")
        out[name] = generate_images(load_model(models[name]), [10, 11, 12, 13], psi=0.8, out=folder, progress=False)
    return out


def guide(monkeypatch, model, out, *args) -> int:
    return run_cli(
        monkeypatch,
        "guide",
        "--model",
        model,
        "--prompt",
        PROMPT,
        "--out",
        out,
        "--device",
        "cpu",
        *TINY_CLIP_ARGS,
        *args,
    )


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        a = np.asarray(im)
    return a[..., None] if a.ndim == 2 else a


# ---------------------------------------------------------------------------------------
# A search, its files, and reproduce


def test_genetic_search_writes_pictures_that_reproduce(monkeypatch, capsys, models, tmp_path):
    out = tmp_path / "guided"
    code = guide(
        monkeypatch,
        models["tiny"],
        out,
        "--method",
        "genetic",
        "--steps",
        "5",
        "--population",
        "6",
        "--keep",
        "2",
        "--seed",
        "3",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err
    m = re.fullmatch(
        r"genetic: best CLIP score ([+-]\d\.\d{4}) \(from ([+-]\d\.\d{4}) at the start\) after (\d+) generator "
        r"evaluations; 2 picture\(s\) in (.+), history in (.+)\.\n",
        captured.out,
    )
    assert m, captured.out
    best, first, evaluations = float(m.group(1)), float(m.group(2)), int(m.group(3))
    assert evaluations == 6 + 4 * (6 - 2)  # the first population, then 4 generations of children
    assert m.group(4) == str(out) and m.group(5) == str(out / "history.csv")
    assert best >= first

    assert sorted(p.name for p in out.iterdir()) == [
        "best-01.png",
        "best-02.png",
        "history.csv",
        "history.png",
        "latents.npz",
        "strip.png",
    ]
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "evaluations", "best", "mean"] and len(rows) == 5
    assert [int(r["evaluations"]) for r in rows] == [6, 10, 14, 18, 22]
    bests = [float(r["best"]) for r in rows]
    assert bests == sorted(bests) and round(bests[-1], 4) == best and round(bests[0], 4) == first
    for name in ("history.png", "strip.png"):
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG"

    recipes = [read_recipe(out / f"best-0{k}.png") for k in (1, 2)]
    for k, recipe in enumerate(recipes, 1):
        assert recipe["kind"] == "latent" and recipe["method"] == "genetic" and recipe["rank"] == k
        assert recipe["prompt"] == [PROMPT] and recipe["clip_model"] == f"{TINY_CLIP}/random-0"
        assert recipe["search"]["population"] == 6 and recipe["search"]["seed"] == 3
    assert round(recipes[0]["score"], 4) == best and recipes[0]["score"] >= recipes[1]["score"]

    # latents.npz paints exactly the saved pictures …
    loaded = load_model(models["tiny"])
    with np.load(out / "latents.npz") as npz:
        w, scores = npz["w"], npz["score"]
        assert str(npz["model_hash"]) == loaded.model_hash
    assert np.allclose(scores, [r["score"] for r in recipes], atol=1e-6)
    painted = paint(loaded.G_ema, w, "const")
    for k in (1, 2):
        assert np.array_equal(read_png(out / f"best-0{k}.png"), painted[k - 1])

    # … and so does `ganscapes reproduce`, from the recipe alone.
    for k in (1, 2):
        image = out / f"best-0{k}.png"
        assert run_cli(monkeypatch, "reproduce", image, "--model", models["tiny"]) == 0
        assert capsys.readouterr().out == f"{image}: identical\n"


def test_adam_search_from_the_command_line_climbs(monkeypatch, capsys, models, tmp_path):
    out = tmp_path / "adam"
    code = guide(
        monkeypatch,
        models["tiny"],
        out,
        "--steps",
        "20",
        "--population",
        "2",
        "--cutouts",
        "0",
        "--w-penalty",
        "0",
        "--keep",
        "1",
        "--space",
        "wplus",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    m = re.match(
        r"adam: best CLIP score ([+-]\d\.\d{4}) \(from ([+-]\d\.\d{4}) at the start\) after 40 generator "
        r"evaluations; 1 picture\(s\)",
        captured.out,
    )
    assert m, captured.out
    assert float(m.group(1)) > float(m.group(2)) + 0.02
    assert read_recipe(out / "best-01.png")["search"]["space"] == "wplus"
    assert run_cli(monkeypatch, "reproduce", out / "best-01.png", "--model", models["tiny"]) == 0
    assert capsys.readouterr().out.endswith(": identical\n")


# ---------------------------------------------------------------------------------------
# --init


def test_init_starts_from_the_picked_rows(monkeypatch, capsys, models, generated, tmp_path):
    """One adam step (its learning rate is 0 at step 0): the saved pictures are the two
    picked rows of generate's output, pixel for pixel, and the latents are theirs."""
    gen = generated["tiny"]
    out = tmp_path / "from-init"
    code = guide(
        monkeypatch,
        models["tiny"],
        out,
        "--init",
        f"{gen.latents}:1,3",
        "--steps",
        "1",
        "--population",
        "2",
        "--cutouts",
        "0",
        "--keep",
        "2",
    )
    assert code == 0, capsys.readouterr().err
    with np.load(gen.latents) as npz:
        picked = npz["w"][[1, 3]]
    with np.load(out / "latents.npz") as npz:
        w = npz["w"]
    assert sorted(map(bytes, w)) == sorted(map(bytes, picked))  # the same two rows, best first
    seed_pngs = {bytes(picked[0]): gen.images[1], bytes(picked[1]): gen.images[3]}
    for k in range(2):
        assert np.array_equal(read_png(out / f"best-0{k + 1}.png"), read_png(seed_pngs[bytes(w[k])]))

    # The step-0 score is the score of those pictures: the same in history and recipe.
    with open(out / "history.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["step"] == "0" and row["evaluations"] == "2"
    assert float(row["best"]) == pytest.approx(read_recipe(out / "best-01.png")["score"], abs=2e-6)
    mean = (read_recipe(out / "best-01.png")["score"] + read_recipe(out / "best-02.png")["score"]) / 2
    assert float(row["mean"]) == pytest.approx(mean, abs=2e-6)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "other",
            (
                r"The latents in .*latents\.npz were made by model [0-9a-f]{12}, not by this one "
                r"\([0-9a-f]{12}\); their pictures would not be the ones you picked\."
            ),
        ),
        (
            "big",
            (
                r"The latents in .*latents\.npz are \[\d+, \d+\] per image, but this model needs \[\d+, \d+\] "
                r"\(num_ws, w_dim\): they come from another model\."
            ),
        ),
    ],
)
def test_init_from_another_models_latents_is_refused(
    monkeypatch, capsys, loads, models, generated, tmp_path, source, message
):
    out = tmp_path / "refused"
    code = guide(monkeypatch, models["tiny"], out, "--init", f"{generated[source].latents}:0")
    err = capsys.readouterr().err
    assert code == 1
    assert_error(err, err.strip().removeprefix("ganscapes: error: "))
    assert re.fullmatch(message, err.strip().removeprefix("ganscapes: error: ")), err
    assert loads["clip"] == 0  # refused before CLIP was loaded
    assert not out.exists()


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ("{tmp}/missing.npz:0", "The latents file {tmp}/missing.npz does not exist."),
        ("{gen}:9", "Row 9 is not in {gen}, which has rows 0 to 3."),
        (
            "{tmp}/latents.txt",
            ("Cannot read the latent selection '{tmp}/latents.txt'; write FILE.npz:0,1,2 (row numbers) or FILE.npz."),
        ),
    ],
    ids=["missing", "no-such-row", "not-npz"],
)
def test_bad_init_is_one_line(monkeypatch, capsys, loads, models, generated, tmp_path, init, message):
    fill = {"tmp": tmp_path, "gen": generated["tiny"].latents}
    code = guide(monkeypatch, models["tiny"], tmp_path / "o", "--init", init.format(**fill))
    assert code == 1
    assert_error(capsys.readouterr().err, message.format(**fill))
    assert loads["clip"] == 0
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------
# --compare


def test_compare_runs_three_methods_at_one_budget(monkeypatch, capsys, models, tmp_path):
    out = tmp_path / "compare"
    code = guide(
        monkeypatch,
        models["tiny"],
        out,
        "--compare",
        "--steps",
        "12",
        "--population",
        "4",
        "--cutouts",
        "1",
        "--keep",
        "2",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == f"Best CLIP score for '{PROMPT}' at a budget of 48 generator evaluations:"
    assert lines[-1] == f"Pictures in {out}/rank, {out}/adam, {out}/genetic; curves in {out / 'compare.png'}."
    printed = {}
    for line in lines[1:4]:
        m = re.fullmatch(r"  (\w+) +([+-]\d\.\d{4})  \((\d+) evaluations, \d+\.\d s\)", line)
        assert m, line
        printed[m.group(1)] = (float(m.group(2)), int(m.group(3)))
    assert list(printed) == ["rank", "adam", "genetic"] and len(lines) == 5
    assert printed["rank"][1] == printed["adam"][1] == 12 * 4
    assert 0 < printed["genetic"][1] <= 48

    with open(out / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["rank", "adam", "genetic"]
    assert list(rows[0]) == ["method", "evaluations", "best_score", "seconds"]
    for r in rows:
        score, evaluations = printed[r["method"]]
        assert int(r["evaluations"]) == evaluations
        assert round(float(r["best_score"]), 4) == score
        best = read_recipe(out / r["method"] / "best-01.png")
        assert best["method"] == r["method"] and best["score"] == pytest.approx(float(r["best_score"]), abs=1e-6)
        assert sorted(p.name for p in (out / r["method"]).glob("best-*.png")) == ["best-01.png", "best-02.png"]
        assert (out / r["method"] / "latents.npz").is_file() and (out / r["method"] / "history.csv").is_file()
    with Image.open(out / "compare.png") as im:
        im.verify()
        assert im.format == "PNG"
    # rank's single row, the searches' one row per step or generation
    with open(out / "rank" / "history.csv", newline="") as f:
        assert [r["evaluations"] for r in csv.DictReader(f)] == ["48"]
    with open(out / "adam" / "history.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 12


# ---------------------------------------------------------------------------------------
# Bad input: one line, before the model is loaded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prompt", "  "), "A prompt phrase is empty; remove it or write some words."),
        (("--steps", "0"), "--steps must be at least 1, not 0."),
        (("--population", "0"), "--population must be at least 1, not 0."),
        (
            ("--population", "1", "--method", "genetic"),
            "--population must be at least 2 for the genetic method, not 1.",
        ),
        (("--keep", "0"), "--keep must be at least 1, not 0."),
        (("--lr", "-1"), "--lr must be positive, not -1."),
        (("--cutouts", "-2"), "--cutouts must be 0 or more, not -2."),
        (
            ("--template", "no placeholder"),
            "The template 'no placeholder' must contain {} exactly once, where the phrase goes.",
        ),
    ],
)
def test_bad_settings_fail_before_the_model_is_loaded(monkeypatch, capsys, loads, tmp_path, args, message):
    # The model file does not exist: reaching it would be a different error.
    code = run_cli(
        monkeypatch,
        "guide",
        "--model",
        tmp_path / "absent.safetensors",
        "--prompt",
        PROMPT,
        "--out",
        tmp_path / "o",
        *TINY_CLIP_ARGS,
        *args,
    )
    assert code == 1
    assert_error(capsys.readouterr().err, message)
    assert loads == {"model": 0, "clip": 0}
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_is_refused_before_loading(monkeypatch, capsys, loads, tmp_path):
    (tmp_path / "o").write_text("x")
    code = run_cli(
        monkeypatch,
        "guide",
        "--model",
        tmp_path / "absent.safetensors",
        "--prompt",
        PROMPT,
        "--out",
        tmp_path / "o",
        *TINY_CLIP_ARGS,
    )
    assert code == 1
    assert_error(capsys.readouterr().err, f"--out {tmp_path / 'o'} exists and is not a folder.")
    assert loads == {"model": 0, "clip": 0}


def test_missing_model_and_unknown_clip_are_one_line(monkeypatch, capsys, models, tmp_path):
    code = run_cli(
        monkeypatch,
        "guide",
        "--model",
        tmp_path / "absent.safetensors",
        "--prompt",
        PROMPT,
        "--out",
        tmp_path / "o",
        *TINY_CLIP_ARGS,
    )
    assert code == 1
    assert_error(capsys.readouterr().err, f"Model file {tmp_path / 'absent.safetensors'} does not exist.")

    code = run_cli(
        monkeypatch,
        "guide",
        "--model",
        models["tiny"],
        "--prompt",
        PROMPT,
        "--out",
        tmp_path / "o",
        "--device",
        "cpu",
        "--clip-model",
        "no-such-clip",
        "--clip-pretrained",
        "random",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert_error(err, err.strip().splitlines()[-1].removeprefix("ganscapes: error: "), alone=False)
    assert err.startswith("loading CLIP no-such-clip (random weights) …\n")  # then one sentence
    assert "open_clip does not know the model 'no-such-clip'" in err


def test_conditional_class_is_checked(monkeypatch, capsys, models, tmp_path):
    code = guide(monkeypatch, models["tiny"], tmp_path / "o", "--class", "1")
    assert code == 1
    assert_error(capsys.readouterr().err, "--class 1 was given, but this model is unconditional (it has no classes).")


def test_compare_with_too_small_a_budget_is_one_line(monkeypatch, capsys, loads, models, tmp_path):
    code = guide(monkeypatch, models["tiny"], tmp_path / "o", "--compare", "--steps", "1", "--population", "1")
    assert code == 1
    assert_error(
        capsys.readouterr().err,
        "--compare needs a budget of at least 2 generator evaluations (--steps × --population).",
    )
    assert loads == {"model": 0, "clip": 0}  # refused before anything was loaded
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("option", "value"), [("--method", "sgd"), ("--space", "z")])
def test_unknown_choice_is_a_usage_error(monkeypatch, capsys, loads, tmp_path, option, value):
    """Choices are parsed by click (as every enum option of ganscapes): its usage error,
    exit 2, no traceback, nothing loaded."""
    code = run_cli(
        monkeypatch,
        "guide",
        "--model",
        tmp_path / "absent.safetensors",
        "--prompt",
        PROMPT,
        "--out",
        tmp_path / "o",
        option,
        value,
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert f"Invalid value for '{option}'" in err and repr(value) in err
    assert loads == {"model": 0, "clip": 0}


def test_no_prompt_is_a_usage_error(monkeypatch, capsys, tmp_path):
    code = run_cli(monkeypatch, "guide", "--model", tmp_path / "m.safetensors", "--out", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and "Missing option '--prompt'" in err and "Traceback" not in err
