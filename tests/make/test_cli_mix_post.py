"""mix, post, reproduce, info and the --post flags, as a user runs them (in-process, tiny 32² models on CPU)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make.generate import generate_images
from ganscapes.provenance import read_recipe

from helpers_clip import assert_error, run_cli
from helpers_images import noise, png_bytes, write
from helpers_models import tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = {
        "tiny": folder / "tiny.safetensors",
        "other": folder / "other.safetensors",
        "small": folder / "small.safetensors",
    }
    save_model(paths["tiny"], tiny_model(res=32, seed=0))  # num_ws 8, aspect 1.27
    save_model(paths["other"], tiny_model(res=32, seed=1))  # same shapes, another hash
    save_model(paths["small"], tiny_model(res=16, seed=0))  # num_ws 6
    return paths


@pytest.fixture(scope="module")
def generated(models, tmp_path_factory) -> Path:
    """`generate --seeds 0-4 --psi 0.8` with the 32² model: OUT/seed0000.png … and latents.npz."""
    out = tmp_path_factory.mktemp("gen")
    generate_images(load_model(models["tiny"]), [0, 1, 2, 3, 4], psi=0.8, out=out, progress=False)
    return out


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# ---------------------------------------------------------------------------------------
# --post on generate and mix


def test_generate_post_writes_finished_pictures_at_the_models_aspect(models, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code = run_cli(
        monkeypatch, "generate", "--model", models["tiny"], "--seeds", "0-2", "--out", out, "--device", "cpu", "--post"
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in (out / "post").iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png"]
    for s in range(3):
        finished = out / "post" / f"seed{s:04d}.png"
        assert Image.open(finished).size == (32, 25)  # 32 / 1.27 = 25.2
        recipe = read_recipe(finished)
        assert recipe["kind"] == "post" and recipe["post"]["aspect"] == 1.27 and recipe["source"]["seed"] == s
    assert f"Post-processed 3 picture(s) into {out / 'post'} at aspect 1.270." in captured.out
    code = run_cli(monkeypatch, "reproduce", out / "post" / "seed0001.png", "--model", models["tiny"])
    assert code == 0 and capsys.readouterr().out == f"{out / 'post' / 'seed0001.png'}: identical\n"


def test_mix_post_writes_the_cells_finished(models, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mix"
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["tiny"],
        "--forms",
        "1,2",
        "--styles",
        "5-7",
        "--out",
        out,
        "--device",
        "cpu",
        "--post",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    names = sorted(f"F{i}-S{j}.png" for i in (1, 2) for j in (1, 2, 3))  # styles 5, 6, 7 are S1 to S3
    assert sorted(p.name for p in (out / "post").iterdir()) == names
    assert sorted(p.name for p in (out / "cells").iterdir()) == names
    for name in names:
        assert Image.open(out / "post" / name).size == (32, 25)
    assert captured.out.splitlines()[0] == (
        f"2 forms x 3 styles, style layers 4-7 of 8: {out / 'grid.png'}; cells in {out / 'cells'}; "
        f"latents in {out / 'mix.npz'}."
    )
    assert captured.out.splitlines()[1] == f"Post-processed 6 picture(s) into {out / 'post'} at aspect 1.270."
    assert Image.open(out / "grid.png").size == (3 * 32, 4 * 32)


# ---------------------------------------------------------------------------------------
# mix


def test_mix_forms_from_a_latents_file(models, generated, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mix"
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["tiny"],
        "--forms-from",
        f"{generated / 'latents.npz'}:4,1",
        "--styles",
        "9",
        "--layers",
        "none",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-labels",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "style layers none of 8" in captured.out
    assert np.array_equal(read_png(out / "forms" / "F1.png"), read_png(generated / "seed0004.png"))
    assert np.array_equal(read_png(out / "forms" / "F2.png"), read_png(generated / "seed0001.png"))
    assert np.array_equal(read_png(out / "cells" / "F2-S1.png"), read_png(generated / "seed0001.png"))
    with np.load(out / "mix.npz") as npz, np.load(generated / "latents.npz") as gen:
        assert np.array_equal(npz["forms"], gen["w"][[4, 1]])
        assert npz["layers"].tolist() == []


def test_mix_layer_spans_in_the_summary(models, tmp_path, monkeypatch, capsys):
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["tiny"],
        "--forms",
        "1",
        "--styles",
        "2",
        "--layers",
        "0,2,5-",
        "--out",
        tmp_path,
        "--device",
        "cpu",
        "--cell-size",
        "16",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "style layers 0,2,5,6,7 of 8" in captured.out
    assert Image.open(tmp_path / "grid.png").size == (32, 32)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--styles", "1"], "Give the forms with exactly one of --forms SEEDS or --forms-from FILE.npz:ROWS."),
        (
            ["--forms", "1", "--forms-from", "x.npz", "--styles", "1"],
            "Give the forms with exactly one of --forms SEEDS or --forms-from FILE.npz:ROWS.",
        ),
        (["--forms", "1"], "Give the styles with exactly one of --styles SEEDS or --styles-from FILE.npz:ROWS."),
        (
            ["--forms", "1", "--styles", "2", "--cell-size", "8"],
            "--cell-size must be between 16 and 2048 pixels, not 8.",
        ),
        (["--forms", "1", "--styles", "2", "--batch", "0"], "--batch must be at least 1, not 0."),
        (
            ["--forms", "1", "--styles", "2", "--layers", "8-"],
            "Layer 8 does not exist: this model has layers 0 to 7 (num_ws = 8).",
        ),
        (["--forms", "1", "--styles", "2", "--layers", "5-2"], "The layer range '5-2' runs backwards; write 2-5."),
        (
            ["--forms", "1", "--styles", "2", "--layers", "upper"],
            "Cannot read the layer range 'upper'; use auto, coarse, middle, fine, all, none, 0-6, 8- or 0,2,4.",
        ),
        (
            ["--forms", "1", "--styles", "2", "--trunc-cutoff", "9"],
            "--trunc-cutoff must be from 0 to 8 (the model's num_ws), not 9.",
        ),
        (
            ["--forms", "1", "--styles-from", "latents.npz:x"],
            "Cannot read the latent selection 'latents.npz:x'; write FILE.npz:0,1,2 (row numbers) or FILE.npz.",
        ),
    ],
)
def test_mix_errors(models, tmp_path, monkeypatch, capsys, args, message):
    code = run_cli(monkeypatch, "mix", "--model", models["tiny"], "--out", tmp_path / "out", "--device", "cpu", *args)
    assert code == 1
    assert_error(capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


def test_mix_refuses_latents_of_another_model(models, generated, tmp_path, monkeypatch, capsys):
    latents = generated / "latents.npz"
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["other"],
        "--forms-from",
        f"{latents}:0",
        "--styles",
        "1",
        "--out",
        tmp_path / "a",
        "--device",
        "cpu",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert_error(err, err.strip().removeprefix("ganscapes: error: "))
    assert f"The latents in {latents} were made by model " in err
    assert "their pictures would not be the ones you picked." in err

    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["small"],
        "--forms",
        "1",
        "--styles-from",
        str(latents),
        "--out",
        tmp_path / "b",
        "--device",
        "cpu",
    )
    assert code == 1
    assert_error(
        capsys.readouterr().err,
        f"The latents in {latents} are [8, 32] per image, but this model needs "
        "[6, 32] (num_ws, w_dim): they come from another model.",
    )
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        models["tiny"],
        "--forms-from",
        f"{latents}:2,7",
        "--styles",
        "1",
        "--out",
        tmp_path / "c",
        "--device",
        "cpu",
    )
    assert code == 1
    assert_error(capsys.readouterr().err, f"Row 7 is not in {latents}, which has rows 0 to 4.")


# ---------------------------------------------------------------------------------------
# post


def test_post_takes_the_aspect_from_the_recipe_the_model_or_nothing(models, generated, tmp_path, monkeypatch, capsys):
    code = run_cli(monkeypatch, "post", generated / "seed0000.png", generated / "seed0001.png", "--out", tmp_path / "a")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == f"2 picture(s) in {tmp_path / 'a'}; stretch 0.1/99.9 %, aspect 1.270 (recipe).\n"
    assert captured.err == ""
    assert Image.open(tmp_path / "a" / "seed0001.png").size == (32, 25)

    plain = write(tmp_path / "in" / "plain.png", png_bytes(noise(64, 64)))
    code = run_cli(monkeypatch, "post", plain, "--out", tmp_path / "b", "--model", models["tiny"], "--width", "100")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "aspect 1.270 (model)" in captured.out and captured.err == ""
    assert Image.open(tmp_path / "b" / "plain.png").size == (100, 79)

    code = run_cli(monkeypatch, "post", plain, "--out", tmp_path / "c")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "aspect 1.000 (none)" in captured.out
    assert captured.err == (
        "note: no aspect recorded for some pictures (no recipe and no --model); they keep 1.0. "
        "Pass --aspect 1.27 or --model to restore one.\n"
    )
    assert Image.open(tmp_path / "c" / "plain.png").size == (64, 64)


@pytest.mark.parametrize("aspect, size", [("4:3", (32, 24)), ("2", (32, 16)), ("0.5", (32, 64))])
def test_post_with_a_given_aspect(generated, tmp_path, monkeypatch, capsys, aspect, size):
    code = run_cli(
        monkeypatch,
        "post",
        generated / "seed0002.png",
        "--out",
        tmp_path,
        "--aspect",
        aspect,
        "--low",
        "1",
        "--high",
        "99",
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "(option)" in captured.out and "stretch 1/99 %" in captured.out
    assert Image.open(tmp_path / "seed0002.png").size == size
    assert read_recipe(tmp_path / "seed0002.png")["post"]["low"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--aspect", "wide"], "--aspect must be 'auto', a number such as 1.27, or a ratio such as 4:3, not 'wide'."),
        (["--aspect", "4:0"], "--aspect must be 'auto', a number such as 1.27, or a ratio such as 4:3, not '4:0'."),
        (["--aspect", "0"], "--aspect must be 'auto' or a positive ratio such as 1.27 or 4:3, not '0'."),
        (["--aspect", "-1.27"], "--aspect must be 'auto' or a positive ratio such as 1.27 or 4:3, not '-1.27'."),
        (["--aspect", "20"], "--aspect must be between 0.1 and 10 (width / height), not 20."),
        (["--low", "99", "--high", "1"], "The percentiles must satisfy 0 <= low < high <= 100, not low 99 and high 1."),
        (["--high", "101"], "The percentiles must satisfy 0 <= low < high <= 100, not low 0.1 and high 101."),
        (["--width", "0"], "--width must be between 1 and 16384 pixels, not 0."),
    ],
)
def test_post_errors(generated, tmp_path, monkeypatch, capsys, args, message):
    code = run_cli(monkeypatch, "post", generated / "seed0000.png", "--out", tmp_path / "out", *args)
    assert code == 1
    assert_error(capsys.readouterr().err, message)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# reproduce and info


def test_reproduce_a_generate_picture_and_write_it(models, generated, tmp_path, monkeypatch, capsys):
    image = generated / "seed0003.png"
    code = run_cli(monkeypatch, "reproduce", image, "--model", models["tiny"], "--out", tmp_path / "re")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = tmp_path / "re" / "seed0003.png"
    assert captured.out == f"rebuilt: {written}\n{image}: identical\n"
    assert np.array_equal(read_png(written), read_png(image))
    assert read_recipe(written) == read_recipe(image)


def test_reproduce_refuses_another_model_and_forced_reports_the_difference(
    models, generated, tmp_path, monkeypatch, capsys
):
    image = generated / "seed0003.png"
    recipe = read_recipe(image)
    code = run_cli(monkeypatch, "reproduce", image, "--model", models["other"])
    assert code == 1
    err = capsys.readouterr().err
    assert_error(err, err.strip().removeprefix("ganscapes: error: "))
    assert f"seed0003.png anyway: it was made by model {recipe['model_hash'][:12]}, but {models['other']} is " in err
    assert "--force is needed to rebuild" in err

    code = run_cli(monkeypatch, "reproduce", image, "--model", models["other"], "--force", "--out", tmp_path)
    captured = capsys.readouterr()
    assert code == 3, captured.err  # differs
    lines = captured.out.splitlines()
    assert lines[0] == f"rebuilt: {tmp_path / 'seed0003.png'}"
    assert lines[1].startswith(f"{image}: differs, max pixel difference ") and lines[1].endswith(" pixels)")
    assert not np.array_equal(read_png(tmp_path / "seed0003.png"), read_png(image))
    rebuilt = read_recipe(tmp_path / "seed0003.png")  # says which model really made it
    assert rebuilt["model_hash"] == load_model(models["other"]).model_hash
    assert rebuilt["forced_from_model_hash"] == recipe["model_hash"]

    code = run_cli(monkeypatch, "reproduce", image, "--model", models["small"], "--force")
    captured = capsys.readouterr()
    assert code == 3
    assert captured.out == f"{image}: differs in size ((16, 16) rebuilt, (32, 32) on file)\n"


def test_reproduce_needs_a_recipe(models, tmp_path, monkeypatch, capsys):
    plain = write(tmp_path / "plain.png", png_bytes(noise(32, 32)))
    code = run_cli(monkeypatch, "reproduce", plain, "--model", models["tiny"])
    assert code == 1
    assert_error(
        capsys.readouterr().err,
        f"{plain} carries no ganscapes recipe; only PNGs written by ganscapes can be reproduced.",
    )
    (tmp_path / "notes.png").write_text("not a picture")
    code = run_cli(monkeypatch, "reproduce", tmp_path / "notes.png", "--model", models["tiny"])
    assert code == 1
    assert f"ganscapes: error: {tmp_path / 'notes.png'} is not a readable image (" in capsys.readouterr().err


def test_reproduce_mix_outputs(models, generated, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mix"
    assert (
        run_cli(
            monkeypatch,
            "mix",
            "--model",
            models["tiny"],
            "--forms-from",
            f"{generated / 'latents.npz'}:0",
            "--styles",
            "3",
            "--out",
            out,
            "--device",
            "cpu",
            "--noise-mode",
            "random",
        )
        == 0
    )
    capsys.readouterr()
    for image in (out / "forms" / "F1.png", out / "styles" / "S1.png", out / "cells" / "F1-S1.png"):
        code = run_cli(monkeypatch, "reproduce", image, "--model", models["tiny"])
        assert code == 0 and capsys.readouterr().out == f"{image}: identical\n"


def info_rows(text: str) -> dict[str, str]:
    """`ganscapes info`'s rows (`what  value`), up to the blank line before the commands."""
    head = text.split("\n\n")[0]
    return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in head.splitlines())


def test_info_summarises_a_mix_cell_and_json_prints_the_recipe(models, generated, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mix"
    assert (
        run_cli(
            monkeypatch,
            "mix",
            "--model",
            models["tiny"],
            "--forms-from",
            f"{generated / 'latents.npz'}:2",
            "--styles",
            "3",
            "--layers",
            "fine",
            "--out",
            out,
            "--device",
            "cpu",
        )
        == 0
    )
    capsys.readouterr()
    cell = out / "cells" / "F1-S1.png"
    code = run_cli(monkeypatch, "info", cell)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    full = read_recipe(cell)
    rows = info_rows(captured.out)
    assert rows["picture"] == "F1-S1.png, 32x32"
    assert rows["kind"] == "mix: one cell of a style-mixing grid"
    assert rows["model"] == f"{full['model_hash'][:12]}… (model hash)"
    assert rows["form"] == "exact w [8, 32] (latents.npz row 2, seed 2)"
    assert rows["style"] == "seed 3, psi 1"
    assert rows["layers"] == "4-7 from the style"
    assert rows["noise"] == "const" and rows["device"] == "cpu"
    assert f"rebuild  ganscapes reproduce {cell} --model MODEL\n" in captured.out
    assert "base64" not in captured.out

    code = run_cli(monkeypatch, "info", cell, "--json")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out) == full  # the raw recipe, exact latents included
    assert captured.out.startswith("{\n  ")  # indented

    plain = write(tmp_path / "plain.png", png_bytes(noise(8, 8)))
    for args in ([plain], [plain, "--json"]):
        code = run_cli(monkeypatch, "info", *args)
        assert code == 1
        assert_error(
            capsys.readouterr().err,
            f"{plain} carries no ganscapes recipe; only PNGs written by ganscapes can be reproduced.",
        )


def test_info_gives_the_command_lines_that_rebuild_a_generated_picture(
    models, generated, tmp_path, monkeypatch, capsys
):
    image = generated / "seed0004.png"
    code = run_cli(monkeypatch, "info", image)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = info_rows(captured.out)
    assert rows["seed"] == "4" and rows["psi"] == "0.8 on all layers" and rows["aspect"].startswith("1.270")
    commands = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in captured.out.split("\n\n")[1].splitlines()[:2])
    assert commands["rebuild"] == f"ganscapes reproduce {image} --model MODEL"
    again = commands["same picture"]
    assert again == "ganscapes generate --model MODEL --seeds 4 --psi 0.8 --device cpu --out OUT"

    # both lines do what they say, once MODEL and OUT are filled in
    words = [
        str(models["tiny"]) if w == "MODEL" else str(tmp_path / "again") if w == "OUT" else w
        for w in shlex.split(again)
    ]
    assert run_cli(monkeypatch, *words[1:]) == 0
    assert np.array_equal(read_png(tmp_path / "again" / "seed0004.png"), read_png(image))
    assert run_cli(monkeypatch, "reproduce", image, "--model", models["tiny"]) == 0
    capsys.readouterr()


@pytest.mark.slow
def test_reproduce_in_a_real_shell(models, generated, tmp_path):
    """The exit status a script sees: 0 identical, 3 different, 1 refused, 2 a usage error."""
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "ganscapes", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
        )

    image = generated / "seed0004.png"
    proc = run("reproduce", image, "--model", models["other"], "--force")
    assert proc.returncode == 3, proc.stderr
    assert "max pixel difference" in proc.stdout and "Traceback" not in proc.stderr
    proc = run("reproduce", image, "--model", models["tiny"])
    assert proc.returncode == 0 and proc.stdout == f"{image}: identical\n", proc.stderr
    proc = run("reproduce", image, "--model", models["other"])  # another model, without --force
    assert proc.returncode == 1 and proc.stderr.startswith("ganscapes: error: "), proc.stderr
    for usage in (["reproduce", image], ["reproduce", image, "--model", models["tiny"], "--device", "tpu"]):
        proc = run(*usage)  # no --model; a device that does not exist
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    proc = run("reproduce", "--help")
    assert proc.returncode == 0
    assert "0 identical; 3 differs; 1 cannot rebuild" in " ".join(proc.stdout.split())


def test_reproduce_never_overwrites_its_input(models, generated, tmp_path, monkeypatch, capsys):
    image = generated / "seed0001.png"
    before = image.read_bytes()
    code = run_cli(monkeypatch, "reproduce", image, "--model", models["other"], "--force", "--out", generated)
    assert code == 1
    err = capsys.readouterr().err
    assert_error(err, f"--out {generated} would overwrite {image} with its rebuild; choose another folder.")
    assert image.read_bytes() == before
