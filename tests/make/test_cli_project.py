"""`ganscapes project` from the command line: the files it writes, their reuse, its refusals."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from PIL import Image

import ganscapes.clip.encoder as encoder_mod
from ganscapes.clip.encoder import WEIGHTS_ENV
from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make.latents import LatentSet
from ganscapes.make.paint import paint
from ganscapes.make.seeds import map_seeds
from ganscapes.provenance import read_recipe

from helpers_clip import assert_error, run_cli
from helpers_models import tiny_model
from helpers_tinyclip import TINY_CLIP_ARGS, register_tiny_clip

FAST = ("--steps-w", "12", "--steps-wplus", "8", "--device", "cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def no_clip_weights(monkeypatch):
    register_tiny_clip()
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model(res=16, seed=0))
    return path


@pytest.fixture(scope="module")
def painting(tmp_path_factory, model_path):
    """A 2:1 picture whose centre (at the model's aspect, 1.27) the model itself painted, scaled up."""
    loaded = load_model(model_path)
    px = paint(loaded.G_ema, map_seeds(loaded.G_ema, [4], 1.0, None, None, "cpu"))[0]
    wide = Image.new("RGB", (254, 100), (255, 0, 255))
    wide.paste(Image.fromarray(px).resize((127, 100), Image.Resampling.LANCZOS), (63, 0))
    path = tmp_path_factory.mktemp("target") / "my painting.png"
    wide.save(path)
    return path


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def no_clip(monkeypatch):
    """An offline machine: CLIP's weights are not here."""

    def absent(spec, device="cpu"):
        raise UserError("The CLIP weights for ViT-B-32 (openai) are not on this machine and it is offline.")

    monkeypatch.setattr(encoder_mod, "load_clip", absent)


def test_project_writes_everything_and_the_result_is_reusable(monkeypatch, capsys, model_path, painting, tmp_path):
    no_clip(monkeypatch)
    out = tmp_path / "proj"
    code = run_cli(monkeypatch, "project", painting, "--model", model_path, "--out", out, *FAST)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Projecting without the CLIP term: The CLIP weights" in captured.err
    m = re.search(
        r"Projected my painting\.png in 20 steps \(pixels \+ laplacian\): PSNR (\d+\.\d\d) dB, mean error "
        r"(\d+\.\d) of 255 levels\.",
        captured.out,
    )
    assert m, captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "history.csv",
        "latents.npz",
        "projected.png",
        "projection.mp4",
        "strip.png",
        "target.png",
    ]
    # The target as the model sees it: center-rect at the model's 1.27 drops the magenta sides.
    target = np.asarray(Image.open(out / "target.png"))
    assert target.shape == (16, 16, 3)
    assert not ((target[:, :, 0] > 200) & (target[:, :, 1] < 60) & (target[:, :, 2] > 200)).any()

    recipe = read_recipe(out / "projected.png")
    assert recipe["kind"] == "latent" and recipe["method"] == "project"
    s = recipe["search"]
    assert s["target"] == "my painting.png" and len(s["target_sha256"]) == 64
    assert s["target_format"] == "center-rect" and s["target_aspect"] == 1.27
    assert s["steps_w"] == 12 and s["steps_wplus"] == 8 and s["weight_clip"] == 0.0
    assert f"{s['psnr_db']:.2f}" == m.group(1)
    result = read_png(out / "projected.png")
    diff = result.astype(float) - target.astype(float)
    assert 10 * np.log10(255**2 / np.mean(diff**2)) == pytest.approx(s["psnr_db"], abs=1e-3)

    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and [r["phase"] for r in rows[11:13]] == ["w", "wplus"]
    assert {"step", "phase", "lr", "loss", "pixels", "laplacian"} <= set(rows[0])
    with Image.open(out / "strip.png") as strip:
        assert strip.height >= 128 and strip.width >= 3 * 128
    import av

    with av.open(str(out / "projection.mp4")) as video:
        frames = list(video.decode(video=0))
    assert frames[0].width == 2 * 256 and frames[0].height == 256  # target | search, zoomed 16×

    # The latents: row 0 the result, row 1 phase W's single w; made by this model.
    loaded = load_model(model_path)
    latents = LatentSet.load(out / "latents.npz", model=loaded)
    assert len(latents) == 2 and latents.model_hash == loaded.model_hash
    assert np.array_equal(paint(loaded.G_ema, latents.w[:1])[0], result)
    assert np.allclose(latents.w[1], latents.w[1][:1])

    # reproduce rebuilds it, info explains it, and mix and video take it.
    assert run_cli(monkeypatch, "reproduce", out / "projected.png", "--model", model_path) == 0
    assert capsys.readouterr().out == f"{out / 'projected.png'}: identical\n"
    assert run_cli(monkeypatch, "info", out / "projected.png") == 0
    info = capsys.readouterr().out
    assert "project: a latent fitted to a picture" in info and "my painting.png (center-rect" in info
    mixed = tmp_path / "mixed"
    code = run_cli(
        monkeypatch,
        "mix",
        "--model",
        model_path,
        "--forms-from",
        f"{out / 'latents.npz'}:0",
        "--styles",
        "1,2",
        "--out",
        mixed,
        "--device",
        "cpu",
    )
    assert code == 0, capsys.readouterr().err
    assert (mixed / "grid.png").is_file()
    walk = tmp_path / "walk.mp4"
    code = run_cli(
        monkeypatch,
        "video",
        "--model",
        model_path,
        "--latents",
        f"{out / 'latents.npz'}:0,1",
        "--frames",
        "3",
        "--space",
        "w",
        "--out",
        walk,
        "--device",
        "cpu",
    )
    assert code == 0, capsys.readouterr().err
    assert walk.is_file()


def test_clip_term_is_used_when_clip_loads(monkeypatch, capsys, model_path, painting, tmp_path):
    out = tmp_path / "proj"
    code = run_cli(
        monkeypatch,
        "project",
        painting,
        "--model",
        model_path,
        "--out",
        out,
        *FAST,
        "--no-video",
        "--format",
        "squeeze",
        *TINY_CLIP_ARGS,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "(pixels + laplacian + clip)" in captured.out
    assert not (out / "projection.mp4").exists()
    recipe = read_recipe(out / "projected.png")
    assert recipe["search"]["weight_clip"] == 0.1 and recipe["search"]["target_format"] == "squeeze"
    assert recipe["search"]["clip_model"].startswith("ganscapes-test-tiny")
    with open(out / "history.csv", newline="") as f:
        assert "clip" in next(csv.DictReader(f))


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ("--steps-w", "0", "--steps-wplus", "0"),
            "--steps-w and --steps-wplus are both 0: there is nothing to optimise.",
        ),
        (("--aspect", "0.01"), "--aspect must be from 0.1 to 10, not 0.01."),
        (("--lpips-weights", "nowhere.pth"), None),
        (("--clip-weight", "-1"), "--clip-weight must be 0 or more, not -1."),
    ],
)
def test_bad_options_are_one_sentence_before_any_work(
    monkeypatch, capsys, model_path, painting, tmp_path, extra, message
):
    out = tmp_path / "proj"
    code = run_cli(monkeypatch, "project", painting, "--model", model_path, "--out", out, *extra)
    captured = capsys.readouterr()
    assert code != 0
    if message is None:
        message = (
            "The LPIPS weights file nowhere.pth does not exist; ganscapes does not download them: give VGG16's "
            "vgg16-397923af.pth and the lpips package's vgg.pth as saved on this machine."
        )
    assert_error(captured.err, message)
    assert not out.exists() or not any(out.iterdir())


def test_missing_or_broken_target_is_one_sentence(monkeypatch, capsys, model_path, tmp_path):
    no_clip(monkeypatch)
    code = run_cli(monkeypatch, "project", tmp_path / "none.jpg", "--model", model_path, "--out", tmp_path / "o")
    assert code != 0
    assert_error(capsys.readouterr().err, f"The target picture {tmp_path / 'none.jpg'} does not exist.")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    code = run_cli(monkeypatch, "project", tmp_path / "broken.jpg", "--model", model_path, "--out", tmp_path / "o")
    assert code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"Cannot use {tmp_path / 'broken.jpg'} as the target" in err


def test_explicit_clip_weights_that_fail_are_an_error_not_a_note(monkeypatch, capsys, model_path, painting, tmp_path):
    code = run_cli(
        monkeypatch,
        "project",
        painting,
        "--model",
        model_path,
        "--out",
        tmp_path / "o",
        *FAST,
        "--clip-weights",
        tmp_path / "absent.safetensors",
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "absent.safetensors does not exist" in err
