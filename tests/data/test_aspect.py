"""Geometry and pixels of the four square formats (letterbox, center-crop, squeeze, center-rect)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganscapes.data.aspect import (
    Format,
    apply_format,
    centred_box,
    crop_box,
    letterbox_placement,
    mean_aspect,
    parse_aspect,
)
from ganscapes.errors import UserError

from helpers_images import BLACK, BLUE, GREEN, RED, WHITE, hbands, noise, pixels, vbands


def colours(a: np.ndarray) -> set[tuple[int, int, int]]:
    """The distinct RGB triples in an array of pixels."""
    return {tuple(int(v) for v in px) for px in a.reshape(-1, 3)}


def near(px, colour, tol: int = 16) -> bool:
    return bool(np.abs(np.asarray(px, int) - np.asarray(colour, int)).max() <= tol)


# ---------------------------------------------------------------------------------------
# centred_box


@pytest.mark.parametrize(
    "width, height, aspect, box",
    [
        (4000, 3000, 1.27, (95, 0, 3905, 3000)),  # wider than 1.27: sides cut, 3810 px kept
        (1000, 1000, 1.27, (0, 106, 1000, 893)),  # square: top/bottom cut, 787 px kept
        (3000, 4000, 1.27, (0, 819, 3000, 3181)),  # portrait: 2362 rows kept
        (127, 100, 1.27, (0, 0, 127, 100)),  # already that ratio: nothing cut
        (200, 100, 1.0, (50, 0, 150, 100)),
        (100, 200, 1.0, (0, 50, 100, 150)),
        (101, 50, 1.0, (25, 0, 75, 50)),  # odd cut: 25 px off the left, 26 off the right
        (50, 101, 1.0, (0, 25, 50, 75)),  # odd cut: 25 rows off the top, 26 off the bottom
        (160, 32, 2.0, (48, 0, 112, 32)),
        (64, 128, 2.0, (0, 48, 64, 80)),
        (1, 1000, 20.0, (0, 499, 1, 500)),  # never empty: at least one row
        (1000, 1, 0.05, (499, 0, 500, 1)),  # never empty: at least one column
    ],
)
def test_centred_box_exact(width, height, aspect, box):
    assert centred_box(width, height, aspect) == box
    left, top, right, bottom = box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height


def test_centred_box_ratio_is_as_close_as_whole_pixels_allow():
    for w, h in [(4000, 3000), (3000, 4000), (1234, 987), (640, 480), (333, 777)]:
        for aspect in (0.5, 0.75, 1.0, 1.27, 1.5, 2.0):
            left, top, right, bottom = centred_box(w, h, aspect)
            cw, ch = right - left, bottom - top
            # one side is kept whole, the other is the rounded length for the ratio
            assert (cw == w and abs(ch - w / aspect) <= 0.5) or (ch == h and abs(cw - h * aspect) <= 0.5)
            # centred: the two cut margins differ by at most one pixel, the larger on the right/bottom
            assert 0 <= (w - right) - left <= 1
            assert 0 <= (h - bottom) - top <= 1


@pytest.mark.parametrize("aspect", [0, -1.0])
def test_centred_box_rejects_non_positive_aspect(aspect):
    with pytest.raises(ValueError, match="aspect must be positive"):
        centred_box(100, 100, aspect)


# ---------------------------------------------------------------------------------------
# crop_box


def test_crop_box_per_format():
    assert crop_box(Format.CENTER_RECT, 4000, 3000, 1.27) == (95, 0, 3905, 3000)
    assert crop_box(Format.CENTER_CROP, 4000, 3000) == (500, 0, 3500, 3000)
    assert crop_box(Format.CENTER_CROP, 3000, 4000) == (0, 500, 3000, 3500)
    assert crop_box(Format.CENTER_CROP, 4000, 3000, 1.27) == (500, 0, 3500, 3000)  # aspect ignored
    assert crop_box(Format.LETTERBOX, 4000, 3000) == (0, 0, 4000, 3000)
    assert crop_box(Format.SQUEEZE, 3000, 4000, 1.27) == (0, 0, 3000, 4000)


def test_crop_box_accepts_format_names():
    assert crop_box("center-crop", 200, 100) == (50, 0, 150, 100)
    assert crop_box("center-rect", 200, 100, 1.5) == (25, 0, 175, 100)
    assert crop_box("squeeze", 200, 100) == (0, 0, 200, 100)
    assert crop_box("letterbox", 200, 100) == (0, 0, 200, 100)
    with pytest.raises(ValueError):
        crop_box("stretch", 200, 100)


def test_center_rect_needs_an_aspect():
    with pytest.raises(ValueError, match="center-rect needs an aspect ratio"):
        crop_box(Format.CENTER_RECT, 200, 100)


def test_format_values_are_the_cli_names():
    assert [f.value for f in Format] == ["center-rect", "letterbox", "center-crop", "squeeze"]


# ---------------------------------------------------------------------------------------
# letterbox_placement


@pytest.mark.parametrize(
    "width, height, res, placed",
    [
        (4000, 3000, 1024, (0, 128, 1024, 896)),
        (3000, 4000, 1024, (128, 0, 896, 1024)),
        (500, 500, 64, (0, 0, 64, 64)),
        (128, 32, 32, (0, 12, 32, 20)),
        (120, 40, 32, (0, 10, 32, 21)),  # 10.67 → 11 rows: bars 10 above, 11 below
        (180, 120, 32, (0, 5, 32, 26)),  # 21 rows: bars 5 above, 6 below
        (120, 180, 32, (5, 0, 26, 32)),  # 21 columns: bars 5 left, 6 right
        (10000, 10, 64, (0, 31, 64, 32)),  # never thinner than one row
        (10, 10000, 64, (31, 0, 32, 64)),
    ],
)
def test_letterbox_placement_exact(width, height, res, placed):
    assert letterbox_placement(width, height, res) == placed
    left, top, right, bottom = placed
    # the longer side fills the square, the bars differ by at most a pixel (extra on right/bottom)
    assert (right - left == res) or (bottom - top == res)
    assert 0 <= (res - right) - left <= 1 and 0 <= (res - bottom) - top <= 1


# ---------------------------------------------------------------------------------------
# mean_aspect


def test_mean_aspect_exact():
    assert mean_aspect([(4, 3), (3, 4)]) == pytest.approx((4 / 3 + 3 / 4) / 2)
    assert mean_aspect([(1270, 1000)]) == pytest.approx(1.27)
    assert mean_aspect([(80, 40), (40, 80), (50, 40)]) == pytest.approx((2.0 + 0.5 + 1.25) / 3)
    # the mean of the ratios, not the ratio of the sums
    assert mean_aspect([(300, 100), (100, 100)]) == pytest.approx(2.0)


def test_mean_aspect_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no image sizes"):
        mean_aspect([])


# ---------------------------------------------------------------------------------------
# apply_format on asymmetric images: where the crop lands, exactly


def wide_bands(cut: int, half: int, height: int) -> Image.Image:
    """red | green | white | blue: red and blue are the parts a centred crop should cut."""
    return vbands(height, [(cut, RED), (half, GREEN), (half, WHITE), (cut, BLUE)])


def tall_bands(cut: int, half: int, width: int) -> Image.Image:
    """red / green / white / blue from top to bottom."""
    return hbands(width, [(cut, RED), (half, GREEN), (half, WHITE), (cut, BLUE)])


def test_center_crop_wide_keeps_exactly_the_centre_square():
    img = wide_bands(cut=48, half=16, height=32)  # 128x32 → box (48, 0, 80, 32) at 1:1 scale
    assert crop_box(Format.CENTER_CROP, *img.size) == (48, 0, 80, 32)
    out = pixels(apply_format(img, Format.CENTER_CROP, 32))
    assert out.shape == (32, 32, 3)
    assert colours(out[:, :16]) == {GREEN}
    assert colours(out[:, 16:]) == {WHITE}


def test_center_crop_tall_keeps_exactly_the_centre_square():
    img = tall_bands(cut=48, half=16, width=32)  # 32x128 → box (0, 48, 32, 80)
    out = pixels(apply_format(img, Format.CENTER_CROP, 32))
    assert out.shape == (32, 32, 3)
    assert colours(out[:16]) == {GREEN}
    assert colours(out[16:]) == {WHITE}


def test_center_crop_downscaled_is_centred_and_cuts_both_sides():
    img = wide_bands(cut=60, half=30, height=60)  # 180x60 → box (60, 0, 120, 60) → 16x16
    out = pixels(apply_format(img, "center-crop", 16)).astype(int)
    assert out.shape == (16, 16, 3)
    left, right = out[:, :8], out[:, 8:]
    # green on the left half, white on the right half: a shifted crop would move the seam,
    # and nothing of the red and blue bands that were cut off survives (only a faint halo
    # of the resampling filter at the outermost columns)
    assert (left[..., 0] <= 20).all() and (left[..., 1] >= 235).all() and (left[..., 2] <= 20).all()
    assert (right >= 235).all()
    assert colours(out[:, 1:7].astype(np.uint8)).issubset({GREEN, (1, 254, 0), (1, 255, 1), (0, 254, 0)})


def test_center_rect_wide_crops_the_sides_to_the_aspect():
    img = wide_bands(cut=32, half=32, height=32)  # 128x32, aspect 2 → box (32, 0, 96, 32)
    assert crop_box(Format.CENTER_RECT, *img.size, 2.0) == (32, 0, 96, 32)
    out = pixels(apply_format(img, Format.CENTER_RECT, 64, 2.0))  # 64x32 → 64x64: rows doubled
    assert out.shape == (64, 64, 3)
    assert colours(out[:, :32]) == {GREEN}
    assert colours(out[:, 32:]) == {WHITE}


def test_center_rect_tall_crops_top_and_bottom_to_the_aspect():
    img = tall_bands(cut=48, half=16, width=64)  # 64x128, aspect 2 → box (0, 48, 64, 80)
    assert crop_box(Format.CENTER_RECT, *img.size, 2.0) == (0, 48, 64, 80)
    out = pixels(apply_format(img, Format.CENTER_RECT, 32, 2.0))  # 64x32 → 32x32
    assert out.shape == (32, 32, 3)
    assert colours(out[:16]) == {GREEN}
    assert colours(out[16:]) == {WHITE}


def test_center_rect_with_the_images_own_aspect_keeps_everything():
    img = wide_bands(cut=16, half=16, height=32)  # 64x32, aspect 2
    out = pixels(apply_format(img, "center-rect", 64, 2.0))
    # nothing cut: all four bands survive, each 16 columns wide
    assert colours(out[:, 2:14]) == {RED}
    assert colours(out[:, 18:30]) == {GREEN}
    assert colours(out[:, 34:46]) == {WHITE}
    assert colours(out[:, 50:62]) == {BLUE}


def test_letterbox_wide_has_black_bars_top_and_bottom():
    img = wide_bands(cut=60, half=30, height=120)  # 180x120 at 32: picture in rows 5..25
    out = pixels(apply_format(img, Format.LETTERBOX, 32))
    assert out.shape == (32, 32, 3)
    assert colours(out[:5]) == {BLACK}
    assert colours(out[26:]) == {BLACK}
    picture = out[5:26]
    assert not (picture == 0).all(axis=-1).any()  # no black pixel inside the picture
    # the whole width is picture, and all four bands are there, in order
    assert tuple(picture[10, 0]) == RED and tuple(picture[10, 31]) == BLUE
    assert near(picture[10, 13], GREEN) and near(picture[10, 18], WHITE)


def test_letterbox_tall_has_black_bars_left_and_right():
    img = tall_bands(cut=60, half=30, width=120)  # 120x180 at 32: picture in columns 5..25
    out = pixels(apply_format(img, Format.LETTERBOX, 32))
    assert out.shape == (32, 32, 3)
    assert colours(out[:, :5]) == {BLACK}
    assert colours(out[:, 26:]) == {BLACK}
    picture = out[:, 5:26]
    assert not (picture == 0).all(axis=-1).any()
    assert tuple(picture[0, 10]) == RED and tuple(picture[31, 10]) == BLUE
    assert near(picture[13, 10], GREEN) and near(picture[18, 10], WHITE)


def test_letterbox_odd_margin_gives_the_extra_row_to_the_bottom_bar():
    img = noise(120, 40, seed=3)  # 32 wide, 11 tall at res 32: bars of 10 (top) and 11 (bottom)
    out = pixels(apply_format(img, "letterbox", 32))
    black_rows = [r for r in range(32) if (out[r] == 0).all()]
    assert black_rows == list(range(0, 10)) + list(range(21, 32))


def test_letterbox_of_a_square_has_no_bars():
    img = vbands(40, [(20, RED), (20, BLUE)])
    out = pixels(apply_format(img, "letterbox", 16))
    assert not (out == 0).all(axis=-1).any()


def test_squeeze_keeps_all_bands_in_order():
    img = wide_bands(cut=32, half=32, height=32)  # 128x32 → 64x64: each band 16 columns wide
    out = pixels(apply_format(img, Format.SQUEEZE, 64))
    assert out.shape == (64, 64, 3)
    assert colours(out[:, 0:13]) == {RED}
    assert colours(out[:, 19:29]) == {GREEN}
    assert colours(out[:, 35:45]) == {WHITE}
    assert colours(out[:, 51:64]) == {BLUE}


def test_squeeze_tall_keeps_all_bands_in_order():
    img = tall_bands(cut=32, half=32, width=32)
    out = pixels(apply_format(img, "squeeze", 64))
    assert colours(out[0:13]) == {RED}
    assert colours(out[19:29]) == {GREEN}
    assert colours(out[35:45]) == {WHITE}
    assert colours(out[51:64]) == {BLUE}


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("size", [(200, 150), (150, 200), (97, 41), (41, 97), (64, 64), (7, 300)])
@pytest.mark.parametrize("res", [16, 64])
def test_output_is_exactly_res_square_rgb(fmt, size, res):
    out = apply_format(noise(*size, seed=1), fmt, res, 1.27)
    assert out.size == (res, res)
    assert out.mode == "RGB"


def test_upscaling_a_small_source_works():
    out = apply_format(noise(10, 8), "center-rect", 64, 1.25)
    assert out.size == (64, 64)


def test_same_size_square_is_returned_as_an_independent_copy():
    img = noise(32, 32)
    out = apply_format(img, "squeeze", 32)
    assert out is not img
    assert out.tobytes() == img.tobytes()
    before = img.getpixel((0, 0))
    out.putpixel((0, 0), (1, 2, 3))
    assert img.getpixel((0, 0)) == before != (1, 2, 3)


def test_apply_format_is_deterministic():
    img = noise(150, 100, seed=7)
    for fmt in Format:
        a = apply_format(img, fmt, 32, 1.3).tobytes()
        b = apply_format(img.copy(), fmt, 32, 1.3).tobytes()
        assert a == b


@pytest.mark.parametrize("text, value", [("auto", None), (" Auto ", None), ("1.27", 1.27), ("4:3", 4 / 3)])
def test_parse_aspect(text, value):
    assert parse_aspect(text) == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize("text", ["foo", "4:0", ":", ""])
def test_parse_aspect_names_the_setting_not_an_option(text):
    """The library names the setting; the command line puts its option name in front."""
    with pytest.raises(UserError, match=r"^aspect must be 'auto', a number such as 1\.27, or a ratio such as 4:3"):
        parse_aspect(text)
