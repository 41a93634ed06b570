"""Recipes in PNG text chunks, and latent vectors stored bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ganscapes import __version__
from ganscapes.errors import UserError
from ganscapes.provenance import (
    RECIPE_KEY,
    decode_array,
    encode_array,
    png_info,
    read_recipe,
    read_text_chunks,
    write_png,
)

from helpers_images import jpeg_bytes, noise, png_bytes, write


def pixels(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


RECIPE = {
    "kind": "generate",
    "model_hash": "ab" * 32,
    "psi": 0.7,
    "truncation_cutoff": None,
    "noise_mode": "const",
    "layers": [8, 9, 10],
    "nested": {"prompt": ["impressionist painting of autumn woods", "étang à Giverny — 睡蓮"], "score": -0.123456},
    "seed": 4294967295,
}


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_recipe_and_pixels_round_trip_through_png(tmp_path, channels, mode):
    p = pixels(12, 20, channels, seed=channels)
    path = write_png(tmp_path / "a.png", p, RECIPE)
    assert path == tmp_path / "a.png"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.png"]  # no temporary file left behind
    with Image.open(path) as im:
        assert im.mode == mode and im.size == (20, 12)
        back = np.asarray(im)
    assert np.array_equal(back.reshape(p.shape), p)
    recipe = read_recipe(path)
    assert recipe == {"version": __version__, **RECIPE}
    assert read_recipe(path.read_bytes()) == recipe  # bytes work as well as paths
    assert read_text_chunks(path) == {RECIPE_KEY: json.dumps(recipe)}


def test_a_two_dimensional_array_is_a_grey_picture(tmp_path):
    p = pixels(5, 7, 1)[..., 0]
    write_png(tmp_path / "g.png", p, {"kind": "x"})
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), p)


def test_png_info_keeps_other_chunks_and_replaces_an_old_recipe(tmp_path):
    info = png_info({"kind": "generate", "score": 1.5}, keep={"Software": "elsewhere", RECIPE_KEY: '{"kind": "old"}'})
    Image.fromarray(pixels(4, 4, 3)).save(tmp_path / "a.png", pnginfo=info)
    chunks = read_text_chunks(tmp_path / "a.png")
    assert chunks["Software"] == "elsewhere"
    assert json.loads(chunks[RECIPE_KEY]) == {"version": __version__, "kind": "generate", "score": 1.5}


def test_encode_decode_is_bitwise_exact_for_special_values():
    tiny = np.finfo(np.float32).tiny
    special = np.array(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            np.nan,
            tiny,
            tiny / 8,
            -tiny / 1024,
            np.finfo(np.float32).max,
            np.finfo(np.float32).min,
            np.float32(1) / 3,
            np.nextafter(np.float32(1), np.float32(2)),
            1e-45,
        ],
        dtype=np.float32,
    )
    payload = np.frombuffer(np.array([0x7FC00001, 0xFFC12345, 0x7F800001], dtype=np.uint32).tobytes(), np.float32)
    a = np.concatenate([special, payload])  # NaNs with payloads and signs, a signalling NaN
    rng = np.random.default_rng(0)
    b = (rng.standard_normal([3, 6, 32]) * 10).astype(np.float32)
    for x in (a, b, b[:, ::2, :], np.zeros([0, 6, 32], np.float32), np.float32(2.5).reshape(())):
        d = encode_array(x)
        assert d["dtype"] == "float32" and d["shape"] == list(x.shape)
        d = json.loads(json.dumps(d))  # as it travels in a recipe
        y = decode_array(d)
        assert y.dtype == np.float32 and y.shape == x.shape
        assert np.array_equal(y.view(np.uint32), x.copy().view(np.uint32))
        assert y.flags.writeable  # a copy, not a view of the base64 buffer


def test_encode_casts_to_float32():
    x = np.array([[1 / 3, 2.0]], dtype=np.float64)
    y = decode_array(encode_array(x))
    assert y.dtype == np.float32 and np.array_equal(y, x.astype(np.float32))


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("base64"),
        lambda d: d.update(base64="not base64!"),
        lambda d: d.update(shape=[7, 7]),
        lambda d: d.update(base64=d["base64"][:-8]),
    ],
)
def test_a_damaged_array_is_a_user_error(damage):
    d = encode_array(np.ones([2, 3], np.float32))
    damage(d)
    with pytest.raises(UserError, match=r"^A latent vector in the recipe is damaged \(.+\)\.$"):
        decode_array(d)


@pytest.mark.parametrize(
    "shape, text, why",
    [
        ([10**9], "AAAA", "more than"),  # refused from the shape, before any decoding
        ([2, -3], "AAAA", "bad shape"),
        ("6x32", "AAAA", "bad shape"),
        ([2], "A" * 10**6, "do not match"),  # refused from the length, before decoding
    ],
)
def test_sizes_are_checked_before_decoding(shape, text, why):
    with pytest.raises(UserError, match=rf"^A latent vector in the recipe is damaged \(.*{why}.*\)\.$"):
        decode_array({"dtype": "float32", "shape": shape, "base64": text})


def test_a_recipe_nested_thousands_deep_is_refused_as_json(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, "[" * 100_000 + "]" * 100_000)
    Image.fromarray(pixels(4, 4, 3)).save(tmp_path / "deep.png", pnginfo=info)
    with pytest.raises(UserError, match=r"deep\.png is not valid JSON\.$"):
        read_recipe(tmp_path / "deep.png")


def test_reading_a_png_without_a_recipe_names_the_file(tmp_path):
    path = write(tmp_path / "plain.png", png_bytes(noise(8, 8)))
    with pytest.raises(UserError) as info:
        read_recipe(path)
    assert str(info.value) == (f"{path} carries no ganscapes recipe; only PNGs written by ganscapes can be reproduced.")
    assert read_recipe(path, required=False) is None
    jpeg = write(tmp_path / "photo.jpg", jpeg_bytes(noise(8, 8)))
    with pytest.raises(UserError, match=r"photo\.jpg carries no ganscapes recipe"):
        read_recipe(jpeg)


def test_reading_something_that_is_not_an_image(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("hello, not a picture")
    with pytest.raises(UserError) as info:
        read_recipe(text)
    assert str(info.value).startswith(f"{text} is not a readable image (")
    with pytest.raises(UserError, match=r"missing\.png does not exist\.$"):
        read_recipe(tmp_path / "missing.png")
    with pytest.raises(UserError, match="is not a readable image"):
        read_recipe(b"\x89PNG\r\n\x1a\n truncated")


@pytest.mark.parametrize("raw, message", [("{not json", "is not valid JSON"), ("[1, 2]", "is not a JSON object")])
def test_a_broken_recipe_is_a_user_error(tmp_path, raw, message):
    info = PngImagePlugin.PngInfo()
    info.add_text(RECIPE_KEY, raw)
    Image.fromarray(pixels(4, 4, 3)).save(tmp_path / "b.png", pnginfo=info)
    with pytest.raises(UserError, match=f"The ganscapes recipe in .*b\\.png {message}\\."):
        read_recipe(tmp_path / "b.png")
