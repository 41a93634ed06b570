"""PNG recipes and latents files as an attacker would write them: every size is bounded first.

`info`, `reproduce` and `post` read a recipe from a PNG anyone may hand over, and
`--forms-from FILE.npz:ROWS` a latents file from anywhere. Each case here asks for a huge
allocation (a decompression bomb, a million-row network call, a picture of billions of
pixels, gigabytes of latents) or breaks the parser (nesting, 5,000-digit numbers); each
must end in one sentence, within a small memory cap where an allocation is the failure.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make import latents as latents_mod
from ganscapes.make.generate import generate_images
from ganscapes.make.latents import LatentSet, parse_latent_spec
from ganscapes.make.post import PostSettings, post_files, post_pixels
from ganscapes.make.recipes import MAX_BATCH_ROWS, parse_recipe
from ganscapes.make.reproduce import reproduce_file
from ganscapes.make.seeds import parse_seeds
from ganscapes.provenance import RECIPE_KEY, encode_array, read_recipe

from helpers_images import bomb_png
from helpers_models import tiny_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_cli import run_main  # noqa: E402

MB = 1 << 20


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16)


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, model)
    return path


def png_with_recipe(path: Path, recipe, size: int = 16) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, recipe if isinstance(recipe, str) else json.dumps(recipe))
    Image.new("RGB", (size, size), (90, 120, 150)).save(path, pnginfo=info)
    return path


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_with_recipe(recipe: dict, side: int = 40_000) -> bytes:
    """A 1-bit PNG of side² pixels (1.6 gigapixels by default) in a few hundred kB, with a recipe."""
    bomb = bomb_png(side, side)
    text = chunk(b"tEXt", RECIPE_KEY.encode() + b"\0" + json.dumps(recipe).encode())
    return bomb[:33] + text + bomb[33:]  # after the signature and IHDR, before the pixels


def generate_json(model, **changes) -> dict:
    return {"kind": "generate", "model_hash": model.model_hash, "seed": 1, "psi": 0.7, **changes}


# ---------------------------------------------------------------------------------------
# Fields: each bounded, by name


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"noise_mode": "random", "batch_rows": 1_000_000}, "batch_rows"),
        ({"noise_mode": "random", "batch_rows": 260}, "batch_rows"),
        ({"noise_mode": "random", "batch_rows": 4, "row": 10**12}, "row"),
        ({"aspect": 1e-7}, "aspect"),
        ({"aspect": 1e7}, "aspect"),
        ({"aspect": 0.05}, "aspect"),
    ],
)
def test_each_size_in_a_recipe_is_bounded_by_name(model, changes, field):
    with pytest.raises(UserError, match=rf"^The recipe's {field} must be "):
        parse_recipe(generate_json(model, **changes))


def test_the_largest_recorded_call_is_still_rebuilt(model, tmp_path):
    assert MAX_BATCH_ROWS == 256  # generate's largest --batch; written out below, never read from a bound under test
    recipe = generate_json(model, noise_mode="random", noise_seed=3, batch_rows=256, row=255)
    path = png_with_recipe(tmp_path / "big-call.png", recipe)
    assert reproduce_file(path, model).pixels.shape == (16, 16, 3)


def test_generate_refuses_a_batch_larger_than_a_recipe_may_record(model, tmp_path):
    with pytest.raises(SettingError, match=r"^batch must be at most 256, not 1000000\.$"):
        generate_images(model, [0], batch=1_000_000, out=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_nesting_huge_numbers_and_huge_base64_are_one_sentence(model, tmp_path):
    deep: object = 1
    for _ in range(500):  # valid JSON, within the parser's stack, but deeper than any recipe
        deep = {"x": deep}
    cases = {
        "deep": (generate_json(model, notes=deep), r"is nested more than 128 deep\.$"),
        "digits": ('{"kind": "generate", "seed": ' + "9" * 5000 + "}", r"is not valid JSON\.$"),
        "base64": (
            {"kind": "latent", "latent": {"w": {**encode_array(np.zeros([6, 32])), "base64": "A" * (8 * MB)}}},
            r"^The recipe's latent\.w is damaged \(768 bytes do not match the base64 text\)\.$",
        ),
    }
    for name, (recipe, message) in cases.items():
        path = png_with_recipe(tmp_path / f"{name}.png", recipe)
        with pytest.raises(UserError, match=message) as err:
            reproduce_file(path, model)
        assert "\n" not in str(err.value), name


@pytest.mark.parametrize("name", ["deep", "digits"])
def test_info_says_one_sentence_where_it_printed_a_traceback(tmp_path, monkeypatch, capsys, name):
    deep: object = 1
    for _ in range(600):
        deep = [deep]
    recipe = {"kind": "generate", "seed": 1, "notes": deep} if name == "deep" else '{"seed": ' + "7" * 5000 + "}"
    path = png_with_recipe(tmp_path / "odd.png", recipe)
    assert run_main(monkeypatch, "info", str(path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("ganscapes: error: The ganscapes recipe in ") and err.count("\n") == 1


# ---------------------------------------------------------------------------------------
# Decompression bombs: the recipe is read without decoding the pixels


def test_a_bomb_s_recipe_is_read_without_decoding_it(model, tmp_path, capped):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_with_recipe(generate_json(model)))
    assert capped(read_recipe, path, headroom=64 * MB) == ("ok", generate_json(model))


def test_reproduce_refuses_a_bomb_before_painting_or_decoding(model, tmp_path, capped, monkeypatch):
    import ganscapes.make.reproduce as reproduce_mod

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_with_recipe(generate_json(model)))
    monkeypatch.setattr(reproduce_mod, "rebuild", lambda *a: pytest.fail("painted before checking the picture"))
    kind, *rest = capped(reproduce_file, path, model, headroom=64 * MB)
    assert kind == "raised" and rest[0] == "UserError", rest
    bomb = "too many pixels (40000x40000 > 16,777,216; a decompression bomb?)"
    assert rest[1] == f"{path} is not a readable image ({bomb})."


def test_post_refuses_a_bomb(tmp_path, capped):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(40_000, 40_000))
    kind, *rest = capped(post_files, [path], tmp_path / "out", PostSettings(), headroom=64 * MB)
    assert kind == "raised" and rest[0] == "UserError" and "too many pixels (40000x40000" in rest[1], rest


# ---------------------------------------------------------------------------------------
# Output sizes: 16 megapixels at most, whatever the width and the aspect


def test_post_settings_that_ask_for_billions_of_pixels_are_refused_before_resizing(capped):
    pixels = np.full([16, 16, 3], 128, np.uint8)
    settings = PostSettings(aspect=0.1, width=16384)  # each within its own bounds
    kind, *rest = capped(post_pixels, pixels, settings, 0.1, headroom=128 * MB)
    assert (kind, rest[0]) == ("raised", "UserError"), rest
    assert rest[1] == (
        "The finished picture would be 16,384 × 163,840 pixels, more than the 16,777,216 (16 megapixels) "
        "ganscapes makes; choose a smaller width or an aspect nearer 1."
    )


def test_a_post_recipe_that_asks_for_billions_of_pixels_is_refused_before_painting(model, tmp_path, monkeypatch):
    import ganscapes.make.reproduce as reproduce_mod

    recipe = {
        "kind": "post",
        "source": generate_json(model),
        "post": {"low": 0.1, "high": 99.9, "aspect": 0.1, "width": 16384},
    }
    path = png_with_recipe(tmp_path / "tall.png", recipe)
    monkeypatch.setitem(reproduce_mod.REBUILDERS, "generate", lambda *a: pytest.fail("painted before checking"))
    with pytest.raises(UserError, match=r"^The finished picture would be 16,384 × 163,840 pixels, more than"):
        reproduce_file(path, model)


def test_post_ignores_an_aspect_a_recipe_records_outside_the_range(model, tmp_path, capped):
    path = png_with_recipe(tmp_path / "thin.png", generate_json(model, aspect=1e-7))
    outcome = capped(lambda: post_files([path], tmp_path / "out", PostSettings()).aspects, headroom=128 * MB)
    assert outcome == ("ok", [(1.0, "none")])
    with Image.open(tmp_path / "out" / "thin.png") as img:
        assert img.size == (16, 16)


@pytest.mark.parametrize("aspect", [1e-7, 20.0, float("nan"), "wide"])
def test_a_model_recording_an_aspect_outside_the_range_is_refused(model, tmp_path, aspect):
    import copy

    odd = copy.copy(model)
    odd.meta = {**model.meta, "aspect": aspect}
    path = tmp_path / "odd.safetensors"
    save_model(path, odd)
    with pytest.raises(UserError, match=r"is damaged: its aspect .* is not a width / height from 0\.1 to 10\.$"):
        load_model(path)


# ---------------------------------------------------------------------------------------
# Latents files and FILE.npz:ROWS


@pytest.mark.parametrize(
    "spec, message",
    [
        ("x.npz:0-3e8", r"^Cannot read the latent selection 'x\.npz:0-3e8'; write FILE\.npz:0,1,2"),
        ("x.npz:0-300000000", r"^'x\.npz:0-300000000' names more than 1,000,000 rows\.$"),
        ("x.npz:0-" + "9" * 5000, r"^'x\.npz:0-9{40,}…' names more than 1,000,000 rows\.$"),
    ],
)
def test_row_selections_are_bounded_before_any_list_is_built(spec, message):
    with pytest.raises(UserError, match=message):
        parse_latent_spec(spec)


def test_a_seed_of_thousands_of_digits_is_one_sentence():
    with pytest.raises(UserError, match=r"^Seeds must be at most 4294967295 \(2\*\*32 - 1\), not '9{40,}…'\.$"):
        parse_seeds("1,0-" + "9" * 5000)


def _npy(shape, descr="<f4") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return f.getvalue() + b"\0" * (int(np.prod(shape)) * np.dtype(descr).itemsize)


def test_what_one_load_reads_is_bounded_in_total_before_reading(tmp_path, monkeypatch):
    """Each member within the byte limit, but the ws and the zs together beyond it."""
    path = tmp_path / "two-halves.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.npy", _npy((100, 6, 32)))  # 76,800 bytes
        zf.writestr("z.npy", _npy((100, 96), "<f8"))  # 76,800 bytes
    monkeypatch.setattr(latents_mod, "MAX_READ", 100_000)
    monkeypatch.setattr(latents_mod.NpzReader, "read", lambda *a, **k: pytest.fail("read before the total was checked"))
    with pytest.raises(UserError, match=r"^Reading 100 rows of .*two-halves\.npz would take 0\.0 GiB; name fewer rows"):
        LatentSet.load(path)


# ---------------------------------------------------------------------------------------
# Every malformed field, through the command line: one sentence, never a traceback

W = encode_array(np.zeros([6, 32], np.float32))
MALFORMED = {
    "seed": {"seed": -1},
    "psi": {"psi": "0.7"},
    "truncation_cutoff": {"truncation_cutoff": 65},
    "class_idx": {"class_idx": True},
    "noise_mode": {"noise_mode": "fixed"},
    "batch_rows": {"noise_mode": "random", "batch_rows": 10**9},
    "row": {"noise_mode": "random", "batch_rows": 4, "row": 4},
    "noise_seed": {"noise_mode": "random", "noise_seed": -2},
    "aspect": {"aspect": 1e-7},
    "model_hash": {"model_hash": 5},
    "device": {"device": ["cpu"]},
    "prompt": {"prompt": "woods"},
    "score": {"score": float("nan")},
    "rank": {"rank": 0},
}
MALFORMED_KINDS = {
    "latent.w": {"kind": "latent", "latent": {"w": {**W, "shape": [6, 10**6]}}},
    "latent.w base64": {"kind": "latent", "latent": {"w": {**W, "base64": "!!"}}},
    "latent": {"kind": "latent", "latent": [1, 2]},
    "layers": {"kind": "mix", "form": {"seed": 1}, "style": {"seed": 2}, "layers": "fine"},
    "style.psi": {"kind": "mix", "form": {"seed": 1}, "style": {"seed": 2, "psi": "x"}},
    "post.width": {"kind": "post", "source": {"seed": 1}, "post": {"low": 0.1, "high": 99.9, "aspect": 1, "width": 0}},
    "post.high": {"kind": "post", "source": {"seed": 1}, "post": {"low": 50, "high": 40, "aspect": 1}},
    "source": {"kind": "post", "source": "seed0001.png", "post": {"low": 0.1, "high": 99.9, "aspect": 1}},
}


@pytest.mark.parametrize("name", [*MALFORMED, *MALFORMED_KINDS])
def test_reproduce_and_info_on_a_malformed_field(model, model_file, tmp_path, monkeypatch, capsys, name):
    if name in MALFORMED:
        recipe = generate_json(model, **MALFORMED[name])
    else:
        recipe = {"model_hash": model.model_hash, **MALFORMED_KINDS[name]}
    path = png_with_recipe(tmp_path / "odd.png", json.dumps(recipe))
    assert run_main(monkeypatch, "reproduce", str(path), "--model", str(model_file)) == 1
    err = capsys.readouterr().err
    assert err.startswith("ganscapes: error: The recipe's ") and err.count("\n") == 1, err
    field = name.split()[0]
    assert f"The recipe's {field} " in err, err
    assert run_main(monkeypatch, "info", str(path)) in (0, 1)  # info shows what it can of a damaged recipe
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 1, err
