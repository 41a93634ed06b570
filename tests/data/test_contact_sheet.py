"""Contact sheets (the grid layout, the labels, broken images as grey tiles) and the one grid painter under them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.data.contact_sheet import contact_sheet, save_contact_sheet
from ganscapes.data.grid import image_grid

from helpers_images import BLUE, GREEN, RED, WHITE, noise, png_bytes, solid, truncated

BACKGROUND = (24, 24, 24)
BROKEN = (90, 90, 90)
GAP, LABEL = 4, 18  # pixels between tiles; height of the label strip under each thumbnail


def item(img: Image.Image, label: str = ""):
    data = png_bytes(img)
    return (lambda: data), label


def origin(k: int, columns: int, thumb: int) -> tuple[int, int]:
    """Top-left corner of the k-th thumbnail square."""
    return GAP + (k % columns) * (thumb + GAP), GAP + (k // columns) * (thumb + LABEL + GAP)


def at(sheet: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return sheet.getpixel((x, y))


@pytest.mark.parametrize(
    "n, columns, thumb, size",
    [
        (7, 3, 20, (76, 130)),  # 3 columns × 3 rows, the last row one short
        (6, 3, 20, (76, 88)),  # exactly 2 rows
        (2, 6, 20, (52, 46)),  # fewer images than columns: only as wide as needed
        (1, 6, 32, (40, 58)),
        (13, 4, 16, (84, 156)),
        (24, 6, 160, (988, 732)),  # curate's sheets: 24 at the default size
        (0, 6, 20, (28, 46)),  # nothing to show: one empty cell, not an error
    ],
)
def test_grid_size(n, columns, thumb, size):
    sheet = contact_sheet([item(noise(24, 24, seed=i), f"#{i + 1}") for i in range(n)], columns=columns, thumb=thumb)
    assert sheet.mode == "RGB"
    assert sheet.size == size


def test_default_grid_is_six_columns_of_160_pixels():
    sheet = contact_sheet([item(noise(24, 24, seed=i)) for i in range(8)])
    assert sheet.size == (6 * 164 + 4, 2 * (160 + 18 + 4) + 4)


def test_each_image_lands_in_its_cell_in_reading_order():
    colours = [RED, GREEN, BLUE, WHITE, (200, 100, 0)]
    sheet = contact_sheet([item(solid(20, 20, c)) for c in colours], columns=3, thumb=20)
    for k, c in enumerate(colours):
        x, y = origin(k, 3, 20)
        assert at(sheet, x + 10, y + 10) == c, k
        assert at(sheet, x, y) == c and at(sheet, x + 19, y + 19) == c  # the whole square
    x, y = origin(5, 3, 20)  # the empty sixth cell
    assert at(sheet, x + 10, y + 10) == BACKGROUND
    assert at(sheet, 1, 1) == BACKGROUND  # the gap around the grid


def test_thumbnails_keep_their_shape_centred_and_small_images_are_enlarged():
    sheet = contact_sheet([item(solid(40, 20, BLUE)), item(solid(10, 30, RED)), item(solid(5, 5, GREEN))], thumb=20)
    x, y = origin(0, 3, 20)  # 40×20 → 20×10, five rows of background above and below
    assert at(sheet, x + 10, y + 2) == BACKGROUND and at(sheet, x + 10, y + 17) == BACKGROUND
    assert at(sheet, x + 10, y + 5) == BLUE and at(sheet, x + 10, y + 14) == BLUE
    x, y = origin(1, 3, 20)  # 10×30 → 7×20, centred across
    assert at(sheet, x + 10, y + 10) == RED
    assert at(sheet, x + 2, y + 10) == BACKGROUND and at(sheet, x + 17, y + 10) == BACKGROUND
    x, y = origin(2, 3, 20)  # 5×5 → 20×20
    assert at(sheet, x, y) == GREEN and at(sheet, x + 19, y + 19) == GREEN


def label_strip(sheet: Image.Image, k: int, columns: int, thumb: int) -> np.ndarray:
    x, y = origin(k, columns, thumb)
    return np.asarray(sheet)[y + thumb : y + thumb + LABEL, x : x + thumb]


def test_labels_are_drawn_under_their_thumbnail():
    images = [solid(40, 40, BLUE), solid(40, 40, RED)]
    labelled = contact_sheet([item(images[0], "#1 +0.2871"), item(images[1], "")], thumb=80)
    blank = contact_sheet([item(images[0], ""), item(images[1], "")], thumb=80)

    strip = label_strip(labelled, 0, 2, 80)
    assert (strip >= 200).all(axis=-1).sum() > 20  # light text on the dark strip
    assert not (label_strip(blank, 0, 2, 80) != BACKGROUND).any()
    # only the first label strip differs: images and the unlabelled cell are the same
    diff = np.argwhere((np.asarray(labelled) != np.asarray(blank)).any(axis=-1))
    x, y = origin(0, 2, 80)
    assert diff[:, 0].min() >= y + 80 and diff[:, 0].max() < y + 80 + LABEL
    assert diff[:, 1].min() >= x and diff[:, 1].max() < x + 80 + GAP

    # different labels draw differently
    other = contact_sheet([item(images[0], "#1 -0.0500"), item(images[1], "")], thumb=80)
    assert not np.array_equal(label_strip(other, 0, 2, 80), strip)


def test_long_labels_are_cut_to_28_characters():
    img = solid(20, 20, BLUE)
    short = contact_sheet([item(img, "x" * 28)], thumb=160)
    long = contact_sheet([item(img, "x" * 28 + " and a great deal more")], thumb=160)
    assert np.array_equal(np.asarray(short), np.asarray(long))


@pytest.mark.parametrize(
    "read",
    [
        lambda: b"\x89PNG\r\n\x1a\n" + bytes(200),  # a corrupt PNG
        lambda: truncated(png_bytes(noise(64, 64, seed=3))),  # half a PNG
        lambda: b"not an image at all",
        lambda: Path("/nonexistent/ganscapes/picture.png").read_bytes(),  # the file went away
    ],
    ids=["corrupt", "truncated", "garbage", "missing"],
)
def test_a_broken_image_becomes_a_grey_tile(read):
    images = [item(solid(20, 20, RED), "#1"), (read, "#2 broken"), item(solid(20, 20, GREEN), "#3")]
    sheet = contact_sheet(images, columns=3, thumb=20)
    assert sheet.size == (76, 46)
    x, y = origin(1, 3, 20)
    tile = np.asarray(sheet)[y : y + 20, x : x + 20]
    assert (tile == BROKEN).all()
    assert (label_strip(sheet, 1, 3, 20) >= 200).all(axis=-1).any()  # still labelled
    assert at(sheet, *(v + 10 for v in origin(0, 3, 20))) == RED  # its neighbours are unaffected
    assert at(sheet, *(v + 10 for v in origin(2, 3, 20))) == GREEN


def test_save_contact_sheet_writes_a_png(tmp_path):
    path = tmp_path / "deep" / "er" / "top.png"
    returned = save_contact_sheet(
        path, [item(noise(30, 20, seed=i), f"#{i + 1}") for i in range(4)], columns=2, thumb=24
    )
    assert returned == path
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (2 * 28 + 4, 2 * (24 + 18 + 4) + 4)
        img.verify()
    assert sorted(p.name for p in path.parent.iterdir()) == ["top.png"]  # no temporary file left
    save_contact_sheet(path, [item(solid(8, 8, RED))], thumb=8)  # replaced, not appended to
    with Image.open(path) as img:
        assert img.size == (16, 34)


def test_background_colour():
    sheet = contact_sheet([item(solid(10, 10, RED))], thumb=10, background=(1, 2, 3))
    assert at(sheet, 0, 0) == (1, 2, 3)


# ---------------------------------------------------------------------------------------
# image_grid: the one grid painter under contact sheets, training's grids, mix's grid and
# guide's strip


def test_grid_places_tiles_row_by_row_and_leaves_empty_cells_blank():
    tiles = [solid(4, 4, RED), None, solid(4, 4, GREEN), solid(4, 4, BLUE)]
    grid = image_grid(tiles, 3, 4, background=WHITE)
    assert grid.size == (12, 8)  # 3 columns, 2 rows (the second one short)
    assert at(grid, 1, 1) == RED and at(grid, 5, 1) == WHITE and at(grid, 9, 1) == GREEN
    assert at(grid, 1, 5) == BLUE and at(grid, 5, 5) == WHITE


def test_grid_gap_and_label_band_set_the_pitch():
    grid = image_grid([solid(6, 6, RED)] * 4, 2, 6, gap=2, label_band=5, background=(1, 2, 3))
    assert grid.size == (2 + 2 * (6 + 2), 2 + 2 * (6 + 5 + 2))
    assert at(grid, 2, 2) == RED and at(grid, 10, 15) == RED  # second row starts at 2 + 13
    assert at(grid, 2, 9) == (1, 2, 3)  # the label band stays the background


def test_grid_fits_stretch_contain_or_none():
    wide = solid(20, 10, RED)
    stretched = image_grid([wide], 1, 8, fit="stretch", background=WHITE)
    assert at(stretched, 0, 0) == RED and at(stretched, 7, 7) == RED
    contained = image_grid([wide], 1, 8, fit="contain", background=WHITE)
    assert at(contained, 0, 0) == WHITE and at(contained, 0, 3) == RED  # 8×4, centred
    as_is = image_grid([solid(2, 2, RED)], 1, 8, background=WHITE)
    assert at(as_is, 3, 3) == RED and at(as_is, 2, 2) == WHITE  # centred, not resized
    with pytest.raises(ValueError, match="fit must be one of"):
        image_grid([wide], 1, 8, fit="cover")


def test_grid_takes_a_generator_with_its_count_and_grey_pictures():
    tiles = (Image.new("L", (3, 3), v) for v in (10, 20, 30))
    grid = image_grid(tiles, 2, 3, count=3, mode="L", background=0)
    assert grid.mode == "L" and grid.size == (6, 6)
    assert [grid.getpixel(p) for p in ((0, 0), (3, 0), (0, 3), (3, 3))] == [10, 20, 30, 0]


def test_grid_labels_on_a_box_or_beneath():
    tiles = [solid(40, 40, RED)] * 2
    boxed = image_grid(tiles, 2, 40, labels=["F1", None], label_at=(3, 2), label_box=(26, 14))
    assert at(boxed, 0, 0) == (0, 0, 0) and at(boxed, 26, 14) == (0, 0, 0) and at(boxed, 27, 15) == RED
    assert at(boxed, 40, 0) == RED  # no label, no box
    beneath = np.asarray(image_grid(tiles, 2, 40, labels=["step 3", ""], label_band=16, label_at=(3, 42)))
    assert (beneath[40:, :40] != 0).any() and not (beneath[40:, 40:] != 0).any()
