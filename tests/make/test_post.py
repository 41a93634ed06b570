"""post: the percentile stretch, the aspect restore, the settings and the recipes of post-processed files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from ganscapes.errors import UserError
from ganscapes.make.generate import generate_images
from ganscapes.make.post import (
    PostSettings,
    post_files,
    post_pixels,
    resolve_aspect,
    restore_aspect,
    stretch_contrast,
)
from ganscapes.provenance import read_recipe

from helpers_images import jpeg_bytes, noise, png_bytes, write
from helpers_models import tiny_model


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# ---------------------------------------------------------------------------------------
# The stretch


def crafted(seed: int = 0) -> np.ndarray:
    """100×50 RGB: red uniformly 0..200 with a few outliers at 230-255, green 40..120, blue constant 77."""
    rng = np.random.default_rng(seed)
    red = rng.integers(0, 201, size=5000)
    red[rng.choice(5000, 4, replace=False)] = [230, 240, 250, 255]
    green = rng.integers(40, 121, size=5000)
    blue = np.full(5000, 77)
    return np.stack([red, green, blue], axis=-1).reshape(100, 50, 3).astype(np.uint8)


def assert_stretched(out: np.ndarray, channel: np.ndarray, low: float, high: float) -> None:
    """out is channel with its low/high percentiles (np.percentile) mapped linearly to 0/255, rounded, clipped."""
    x = channel.astype(np.float64)
    lo, hi = np.percentile(x, [low, high])
    exact = np.clip((x - lo) * 255.0 / (hi - lo), 0, 255)
    assert np.abs(out.astype(np.float64) - exact).max() <= 0.5 + 1e-9  # rounding only
    assert (out[x <= lo] == 0).all() and (out[x >= hi] == 255).all()
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("low, high", [(0.1, 99.9), (2.0, 98.0), (0.0, 100.0), (25.0, 75.0)])
def test_stretch_maps_the_percentiles_to_0_and_255_per_channel(low, high):
    img = crafted()
    out = stretch_contrast(img, low, high)
    assert out.dtype == np.uint8 and out.shape == img.shape
    for c in (0, 1):
        assert_stretched(out[..., c], img[..., c], low, high)
    assert np.array_equal(out[..., 2], img[..., 2])  # the constant channel is left alone


def test_the_default_percentiles_are_the_articles():
    img = crafted(1)
    out = stretch_contrast(img)
    assert np.array_equal(out, stretch_contrast(img, 0.1, 99.9))
    red = img[..., 0]
    # 0.1 % and 99.9 % of 5,000 values fall inside the uniform 0..200 part: the four
    # outliers (230..255) clip rather than set the scale, so red is scaled by 255/200.
    assert np.percentile(red, [0.1, 99.9]).tolist() == [0.0, 200.0]
    assert_stretched(out[..., 0], red, 0.1, 99.9)
    assert (out[..., 0][red >= 200] == 255).all() and (out[..., 0][red == 0] == 0).all()
    assert out[..., 0][red == 40].tolist() == [51] * int((red == 40).sum())  # 40 · 255/200 = 51 exactly
    green = img[..., 1]
    lo, hi = np.percentile(green, [0.1, 99.9])
    assert (lo, hi) == (40.0, 120.0)
    assert out[..., 1][green == 80].tolist() == [128] * int((green == 80).sum())  # 127.5 rounds to even
    assert_stretched(out[..., 1], green, 0.1, 99.9)


def test_each_channel_is_stretched_on_its_own():
    img = crafted(2)
    out = stretch_contrast(img, 1, 99)
    for c in range(3):
        other = img.copy()
        other[..., [k for k in range(3) if k != c]] = np.random.default_rng(c).integers(0, 256, (100, 50, 2))
        assert np.array_equal(stretch_contrast(other, 1, 99)[..., c], out[..., c]), c
    one = stretch_contrast(img[..., 1:2], 1, 99)  # a one-channel picture
    assert one.shape == (100, 50, 1) and np.array_equal(one[..., 0], out[..., 1])


def test_a_flat_channel_stays_as_it_is_without_warnings():
    img = np.zeros([16, 16, 3], np.uint8)
    img[..., 0] = 0
    img[..., 1] = 130
    img[..., 2] = 255
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        out = stretch_contrast(img)
        mostly_flat = np.full([10, 10, 3], 90, np.uint8)
        mostly_flat[0, 0] = 200  # one odd pixel: the 25th and 75th percentiles are both 90, nothing to stretch
        flat_again = stretch_contrast(mostly_flat, 25, 75)
    assert np.array_equal(out, img)
    assert np.array_equal(flat_again, mostly_flat)


# ---------------------------------------------------------------------------------------
# The aspect


@pytest.mark.parametrize(
    "size, aspect, width, expected",
    [
        ((32, 32), 1.27, None, (32, 25)),
        ((32, 32), 1.27, 100, (100, 79)),
        ((16, 16), 1.27, None, (16, 13)),
        ((64, 64), 1.0, None, (64, 64)),
        ((64, 64), 0.5, None, (64, 128)),  # portrait
        ((64, 64), 4 / 3, 200, (200, 150)),
        ((40, 20), 2.0, None, (40, 20)),
        ((16, 16), 10.0, 4, (4, 1)),  # at least one row
    ],
)
def test_restore_aspect_sizes(size, aspect, width, expected):
    w, h = size
    rgb = np.asarray(noise(w, h))
    out = restore_aspect(rgb, aspect, width)
    assert out.dtype == np.uint8 and out.shape == (expected[1], expected[0], 3)


def test_restore_aspect_is_a_lanczos_resize_and_keeps_grey_pictures_grey():
    rgb = np.asarray(noise(32, 32, seed=5))
    expected = np.asarray(Image.fromarray(rgb).resize((32, 25), Image.Resampling.LANCZOS))
    assert np.array_equal(restore_aspect(rgb, 1.27), expected)
    grey = rgb[..., :1]
    out = restore_aspect(grey, 1.27, 100)
    assert out.shape == (79, 100, 1)


def test_post_pixels_drops_alpha_then_stretches_then_resizes():
    rgba = np.concatenate([crafted(), np.full([100, 50, 1], 7, np.uint8)], axis=-1)
    out = post_pixels(rgba, PostSettings(aspect=2.0, width=40), 2.0)
    expected = restore_aspect(stretch_contrast(crafted()), 2.0, 40)
    assert out.shape == (20, 40, 3) and np.array_equal(out, expected)


# ---------------------------------------------------------------------------------------
# Settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"low": 99.9, "high": 0.1}, "The percentiles must satisfy 0 <= low < high <= 100, not low 99.9 and high 0.1."),
        ({"low": 50, "high": 50}, "not low 50 and high 50."),
        ({"low": -1, "high": 99}, "not low -1 and high 99."),
        ({"low": 1, "high": 100.5}, "not low 1 and high 100.5."),
        ({"low": float("nan")}, "not low nan and high 99.9."),
        ({"aspect": 0.0}, "aspect must be between 0.1 and 10 (width / height), not 0."),
        ({"aspect": -1.27}, "aspect must be between 0.1 and 10 (width / height), not -1.27."),
        ({"aspect": 11}, "aspect must be between 0.1 and 10 (width / height), not 11."),
        ({"aspect": float("inf")}, "not inf."),
        ({"width": 0}, "width must be between 1 and 16384 pixels, not 0."),
        ({"width": -5}, "width must be between 1 and 16384 pixels, not -5."),
        ({"width": 16385}, "width must be between 1 and 16384 pixels, not 16385."),
    ],
)
def test_post_settings_are_checked(kwargs, message):
    with pytest.raises(UserError) as info:
        PostSettings(**kwargs)
    assert str(info.value).endswith(message)
    assert "--" not in str(info.value)  # the library names its settings, not the command's options


def test_post_settings_accept_the_edges():
    PostSettings(low=0, high=100, aspect=0.1, width=1)
    PostSettings(aspect=10, width=16384)


def test_resolve_aspect_prefers_the_option_then_the_recipe_then_the_model():
    assert resolve_aspect(PostSettings(aspect=2.0), {"aspect": 1.27}, 1.5) == (2.0, "option")
    assert resolve_aspect(PostSettings(), {"aspect": 1.27}, 1.5) == (1.27, "recipe")
    assert resolve_aspect(PostSettings(), {"aspect": None}, 1.5) == (1.5, "model")
    assert resolve_aspect(PostSettings(), {"aspect": -2}, 1.5) == (1.5, "model")
    assert resolve_aspect(PostSettings(), None, 1.5) == (1.5, "model")
    assert resolve_aspect(PostSettings(), {"aspect": "1.27"}, None) == (1.0, "none")
    assert resolve_aspect(PostSettings(), None, None) == (1.0, "none")


# ---------------------------------------------------------------------------------------
# Files


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    return generate_images(tiny_model(res=32), [0, 1], out=out, progress=False)


def test_post_files_take_the_aspect_from_the_recipe(generated, tmp_path):
    result = post_files(generated.images, tmp_path / "post", PostSettings())
    assert result.outputs == [tmp_path / "post" / "seed0000.png", tmp_path / "post" / "seed0001.png"]
    assert result.aspects == [(1.27, "recipe"), (1.27, "recipe")]
    source = read_png(generated.images[0])
    out = read_png(result.outputs[0])
    assert out.shape == (25, 32, 3)
    assert np.array_equal(out, restore_aspect(stretch_contrast(source), 1.27))
    recipe = read_recipe(result.outputs[0])
    assert recipe["kind"] == "post" and recipe["source_file"] == "seed0000.png"
    assert recipe["post"] == {"low": 0.1, "high": 99.9, "aspect": 1.27, "width": None}
    assert recipe["source"] == read_recipe(generated.images[0])
    assert recipe["model_hash"] == recipe["source"]["model_hash"]


def test_post_files_with_a_given_aspect_and_width(generated, tmp_path):
    result = post_files(generated.images[:1], tmp_path, PostSettings(low=1, high=99, aspect=1.5, width=60))
    assert result.aspects == [(1.5, "option")]
    assert read_png(result.outputs[0]).shape == (40, 60, 3)
    assert read_recipe(result.outputs[0])["post"] == {"low": 1, "high": 99, "aspect": 1.5, "width": 60}


def test_post_files_without_a_recipe(tmp_path):
    plain = write(tmp_path / "in" / "plain.png", png_bytes(noise(32, 32, seed=1)))
    photo = write(tmp_path / "in" / "photo.jpg", jpeg_bytes(noise(40, 30, seed=2)))
    result = post_files([plain, photo], tmp_path / "a", PostSettings(), model_aspect=1.27)
    assert result.aspects == [(1.27, "model"), (1.27, "model")]
    assert [p.name for p in result.outputs] == ["plain.png", "photo.png"]  # always PNG
    assert read_png(result.outputs[1]).shape == (31, 40, 3)
    recipe = read_recipe(result.outputs[0])
    assert recipe["source"] is None and "model_hash" not in recipe and recipe["source_file"] == "plain.png"
    result = post_files([plain], tmp_path / "b", PostSettings())
    assert result.aspects == [(1.0, "none")]
    assert read_png(result.outputs[0]).shape == (32, 32, 3)


def test_post_files_refuse(generated, tmp_path):
    with pytest.raises(UserError, match="^No images to post-process.$"):
        post_files([], tmp_path, PostSettings())
    with pytest.raises(UserError, match=r"missing\.png does not exist\.$"):
        post_files([tmp_path / "missing.png"], tmp_path / "out", PostSettings())
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserError, match=r"text\.png is not a readable image"):
        post_files([tmp_path / "text.png"], tmp_path / "out", PostSettings())
    a = write(tmp_path / "x" / "same.png", png_bytes(noise(8, 8, seed=1)))
    b = write(tmp_path / "y" / "same.jpg", jpeg_bytes(noise(8, 8, seed=2)))
    with pytest.raises(UserError) as info:
        post_files([a, b], tmp_path / "both", PostSettings())
    assert str(info.value) == (
        f"{a} and {b} would both be written as {tmp_path / 'both' / 'same.png'}; post them into separate folders."
    )
    assert not (tmp_path / "both").exists()
    assert len(post_files([a, a], tmp_path / "twice", PostSettings()).outputs) == 2  # the same file twice is harmless
    before = generated.images[0].read_bytes()
    with pytest.raises(UserError, match=r"would overwrite .*seed0000\.png; choose another folder\.$"):
        post_files([generated.images[0]], generated.out, PostSettings())
    assert generated.images[0].read_bytes() == before
