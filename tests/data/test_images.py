"""Opening untrusted image files: orientation, modes, and every kind of broken file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from ganscapes.data.images import (
    DEFAULT_MAX_PIXELS,
    BadImage,
    check_image_bytes,
    is_image_name,
    load_rgb,
    open_image,
    oriented_size,
    to_rgb8,
)

from helpers_images import (
    GREY,
    RED,
    bomb_png,
    encode,
    exif_jpeg,
    jpeg_bytes,
    noise,
    pixels,
    png_bytes,
    rotated_marker_source,
    solid,
    truncated,
    with_marker,
    write,
)


def is_red(px, tol: int = 40) -> bool:
    r, g, b = (int(v) for v in px[:3])
    return r >= 255 - tol and g <= tol and b <= tol


def is_grey(px, tol: int = 20) -> bool:
    return all(abs(int(v) - 128) <= tol for v in px[:3])


# ---------------------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize(
    "orientation, displayed_size, marker_at, elsewhere",
    [
        # stored 60x40 with a 20x20 red marker in the stored top-left corner
        (1, (60, 40), (5, 5), [(55, 5), (5, 35), (55, 35)]),
        (3, (60, 40), (55, 35), [(5, 5), (55, 5), (5, 35)]),  # 180°: bottom-right
        (6, (40, 60), (35, 5), [(5, 5), (5, 55), (35, 55)]),  # 90° clockwise: top-right
        (8, (40, 60), (5, 55), [(5, 5), (35, 5), (35, 55)]),  # 90° anticlockwise: bottom-left
    ],
)
def test_exif_orientation_is_applied(orientation, displayed_size, marker_at, elsewhere):
    data = rotated_marker_source(60, 40, marker=20, orientation=orientation)
    img = open_image(data)
    assert img.size == (60, 40)  # open_image is lazy: the stored size
    assert oriented_size(img) == displayed_size
    rgb = load_rgb(img)
    assert rgb.mode == "RGB"
    assert rgb.size == displayed_size
    assert is_red(rgb.getpixel(marker_at))
    for xy in elsewhere:
        assert is_grey(rgb.getpixel(xy)), xy


def test_exif_portrait_from_file_path(tmp_path):
    path = write(tmp_path / "portrait.jpg", rotated_marker_source(orientation=6))
    assert oriented_size(open_image(path)) == (40, 60)
    assert check_image_bytes(path.read_bytes()) == (40, 60, "JPEG")
    rgb = load_rgb(open_image(path))
    assert rgb.size == (40, 60) and is_red(rgb.getpixel((35, 5)))


@pytest.mark.parametrize("fmt, params", [("PNG", {}), ("WEBP", {"lossless": True})])
def test_exif_orientation_in_png_and_webp(fmt, params):
    stored = with_marker(solid(60, 40), (0, 0, 20, 20), RED)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, fmt, exif=exif, **params)
    assert oriented_size(open_image(data)) == (40, 60)
    rgb = load_rgb(open_image(data))
    assert rgb.size == (40, 60) and is_red(rgb.getpixel((35, 5))) and is_grey(rgb.getpixel((5, 5)))


def test_corrupt_png_is_still_reported_after_probing_its_size():
    """Probing the size must not half-decode the file and hide the damage from load_rgb."""
    data = bytearray(png_bytes(noise(64, 64, seed=9)))
    for i in range(60, len(data) - 20):
        data[i] ^= 0x5A
    img = open_image(bytes(data))
    assert oriented_size(img) == (64, 64)
    with pytest.raises(BadImage, match="^cannot decode: "):
        load_rgb(img)


@pytest.mark.parametrize(
    "exif",
    [
        b"Exif\x00\x00garbage garbage garbage",
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff",  # an IFD that claims 65535 entries
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00",  # orientation 9
    ],
)
def test_broken_exif_is_not_a_reason_to_reject(exif):
    data = jpeg_bytes(noise(40, 30), exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about corrupt EXIF
        assert oriented_size(open_image(data)) == (40, 30)
        assert check_image_bytes(data) == (40, 30, "JPEG")


def test_oriented_size_without_exif():
    assert oriented_size(open_image(png_bytes(solid(30, 20)))) == (30, 20)


def test_oriented_size_for_transposed_orientations():
    stored = with_marker(solid(60, 40), (0, 0, 20, 20), RED)
    for orientation in (5, 7):
        img = open_image(exif_jpeg(stored, orientation))
        assert oriented_size(img) == (40, 60)
        assert load_rgb(img).size == (40, 60)
    for orientation in (2, 4):
        assert oriented_size(open_image(exif_jpeg(stored, orientation))) == (60, 40)


# ---------------------------------------------------------------------------------------
# Modes → 8-bit RGB


def test_rgb_passes_through_unchanged():
    img = noise(20, 10, seed=2)
    out = load_rgb(open_image(png_bytes(img)))
    assert out.mode == "RGB" and out.tobytes() == img.tobytes()


def test_grayscale_l():
    img = Image.new("L", (4, 3), 100)
    img.putpixel((0, 0), 0)
    img.putpixel((3, 2), 255)
    out = load_rgb(open_image(png_bytes(img)))
    assert out.mode == "RGB" and out.size == (4, 3)
    assert out.getpixel((1, 1)) == (100, 100, 100)
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((3, 2)) == (255, 255, 255)


def test_16_bit_grayscale_png_is_scaled_not_clipped():
    values = np.array([[0, 1000, 32768, 65535], [255, 257, 514, 65278]], dtype=np.uint16)
    data = png_bytes(Image.fromarray(values))
    img = open_image(data)
    assert img.mode == "I;16"
    out = load_rgb(img)
    assert out.mode == "RGB"
    a = pixels(out)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert a[..., 0].tolist() == [[0, 4, 128, 255], [1, 1, 2, 254]]


def test_16_bit_big_endian_is_scaled():
    img = Image.frombytes("I;16B", (3, 1), bytes([0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00]))
    assert pixels(to_rgb8(img))[0, :, 0].tolist() == [255, 128, 0]


def test_32_bit_integer_image_scaled_when_above_8_bit_range():
    wide = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert wide.mode == "I"
    assert pixels(to_rgb8(wide))[0, :, 0].tolist() == [0, 128, 255]
    narrow = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))
    assert pixels(to_rgb8(narrow))[0, :, 0].tolist() == [0, 100, 255]


def test_float_image_scaled():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert pixels(to_rgb8(unit))[0, :, 0].tolist() == [0, 128, 255]
    byte_range = Image.fromarray(np.array([[0.0, 100.0, 255.0, 300.0]], dtype=np.float32))
    assert pixels(to_rgb8(byte_range))[0, :, 0].tolist() == [0, 100, 255, 255]


def test_cmyk_jpeg():
    data = jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0)))  # pure red in CMYK
    img = open_image(data)
    assert img.mode == "CMYK"
    out = load_rgb(img)
    assert out.mode == "RGB"
    assert np.abs(pixels(out).astype(int) - np.array(RED)).max() <= 3
    assert check_image_bytes(data) == (16, 16, "JPEG")


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_composited_on_black(fmt):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 255, 255, 255, 0, 0] + [0, 0, 0] * 254)  # 0: white, 1: red
    for x in range(2):
        img.putpixel((x, 0), 1)
    img.info["transparency"] = 0  # the white entry is fully transparent
    data = encode(img, fmt, transparency=0)
    loaded = open_image(data)
    assert loaded.mode == "P" and "transparency" in loaded.info
    out = load_rgb(loaded)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == RED
    assert out.getpixel((1, 0)) == RED
    assert out.getpixel((3, 0)) == (0, 0, 0)  # transparent white → black, not white
    assert out.getpixel((0, 1)) == (0, 0, 0)


def test_palette_without_transparency():
    img = Image.new("P", (2, 1), 0)
    img.putpalette([10, 20, 30, 200, 100, 50] + [0, 0, 0] * 254)
    img.putpixel((1, 0), 1)
    out = load_rgb(open_image(png_bytes(img)))
    assert out.getpixel((0, 0)) == (10, 20, 30) and out.getpixel((1, 0)) == (200, 100, 50)


def test_rgba_composited_on_black():
    img = Image.new("RGBA", (3, 1))
    img.putpixel((0, 0), (255, 255, 255, 0))  # fully transparent white
    img.putpixel((1, 0), (10, 200, 30, 255))  # opaque colour
    img.putpixel((2, 0), (200, 100, 50, 128))  # half transparent
    out = load_rgb(open_image(png_bytes(img)))
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((1, 0)) == (10, 200, 30)
    r, g, b = out.getpixel((2, 0))
    assert abs(r - 100) <= 1 and abs(g - 50) <= 1 and abs(b - 25) <= 1


def test_la_composited_on_black():
    img = Image.new("LA", (3, 1))
    img.putpixel((0, 0), (200, 0))
    img.putpixel((1, 0), (200, 255))
    img.putpixel((2, 0), (200, 128))
    out = load_rgb(open_image(png_bytes(img)))
    assert out.getpixel((0, 0)) == (0, 0, 0)
    assert out.getpixel((1, 0)) == (200, 200, 200)
    assert abs(out.getpixel((2, 0))[0] - 100) <= 1


def test_pa_and_one_bit_modes():
    pa = Image.new("PA", (2, 2))
    assert to_rgb8(pa).mode == "RGB"
    one = Image.new("1", (3, 1), 0)
    one.putpixel((1, 0), 1)
    out = load_rgb(open_image(png_bytes(one)))
    assert [out.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (255, 255, 255), (0, 0, 0)]


def test_rgb_input_is_returned_as_is():
    img = solid(2, 2)
    assert to_rgb8(img) is img


# ---------------------------------------------------------------------------------------
# Broken files


def test_empty_bytes():
    with pytest.raises(BadImage, match="^empty file$"):
        open_image(b"")


def test_empty_file(tmp_path):
    path = write(tmp_path / "empty.jpg", b"")
    with pytest.raises(BadImage, match="^empty file$"):
        open_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(BadImage, match="^unreadable: No such file or directory$"):
        open_image(tmp_path / "nope.jpg")


def test_text_with_an_image_extension(tmp_path):
    path = write(tmp_path / "page.jpg", b"<!DOCTYPE html><html><body>Not found</body></html>\n")
    with pytest.raises(BadImage, match=r"^not an image \(unrecognised format\)$"):
        open_image(path)
    with pytest.raises(BadImage, match="not an image"):
        check_image_bytes(path.read_bytes())


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file(fmt):
    data = encode(noise(64, 64, seed=5), fmt)
    cut = truncated(data)
    img = open_image(cut)  # the header is intact, so opening works…
    assert img.size == (64, 64)
    with pytest.raises(BadImage) as info:  # …and decoding reports the damage
        load_rgb(img)
    assert str(info.value) == "truncated file"
    with pytest.raises(BadImage, match="^truncated file$"):
        check_image_bytes(cut)


def test_cut_inside_the_header():
    data = png_bytes(noise(32, 32))
    with pytest.raises(BadImage, match=r"^(not an image|truncated|cannot decode|unreadable)"):
        check_image_bytes(data[:20])


def test_corrupted_png_data_is_a_bad_image():
    data = bytearray(png_bytes(noise(64, 64, seed=9)))
    for i in range(60, len(data) - 20):  # scramble the compressed pixels, keep the header
        data[i] ^= 0x5A
    with pytest.raises(BadImage, match=r"^(truncated file|cannot decode: .+)$"):
        check_image_bytes(bytes(data))


def test_decompression_bomb_real_file():
    data = bomb_png(20000, 20000)
    assert len(data) < 200_000  # small on disk…
    with pytest.raises(BadImage) as info:  # …but 400 megapixels once decoded
        open_image(data)
    assert str(info.value) == "too many pixels (20000x20000 > 178,956,970; a decompression bomb?)"
    with pytest.raises(BadImage, match="decompression bomb"):
        check_image_bytes(data)


def test_max_pixels_is_the_callers_limit():
    data = png_bytes(noise(64, 64))
    assert open_image(data, max_pixels=64 * 64).size == (64, 64)  # at the limit: fine
    with pytest.raises(BadImage, match=r"^too many pixels \(64x64 > 4,095; a decompression bomb\?\)$"):
        open_image(data, max_pixels=64 * 64 - 1)
    with pytest.raises(BadImage, match="too many pixels"):
        check_image_bytes(data, max_pixels=100)


def test_pillows_own_limit_is_disabled_in_favour_of_ours():
    assert Image.MAX_IMAGE_PIXELS is None
    assert DEFAULT_MAX_PIXELS == 178_956_970


# ---------------------------------------------------------------------------------------
# check_image_bytes and names


@pytest.mark.parametrize(
    "fmt, params, expected",
    [
        ("PNG", {}, "PNG"),
        ("JPEG", {"quality": 90}, "JPEG"),
        ("WEBP", {}, "WEBP"),
        ("BMP", {}, "BMP"),
        ("GIF", {}, "GIF"),
        ("TIFF", {}, "TIFF"),
    ],
)
def test_check_image_bytes_formats(fmt, params, expected):
    assert check_image_bytes(encode(noise(24, 16), fmt, **params)) == (24, 16, expected)


def test_open_image_from_bytearray():
    assert open_image(bytearray(png_bytes(solid(5, 7, GREY)))).size == (5, 7)


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a.jpg", True),
        ("a.JPEG", True),
        ("dir/b.Png", True),
        ("x.webp", True),
        ("x.bmp", True),
        ("x.gif", True),
        ("x.tif", True),
        ("x.TIFF", True),
        ("manifest.jsonl", False),
        ("notes.txt", False),
        ("archive.zip", False),
        ("jpg", False),
        ("x.jpg.part", False),
    ],
)
def test_is_image_name(name, ok):
    assert is_image_name(name) is ok
