"""Contact sheets: a grid of labelled thumbnails, the quickest way to judge a ranking.

curate shows the 24 best and 24 worst training images with their scores, rank the top
picks; one look tells whether the phrase did what was meant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ganscapes.data.images import BadImage, load_rgb, open_image
from ganscapes.fileio import atomic_path

LABEL_HEIGHT = 18
GAP = 4


def contact_sheet(
    images: Sequence[tuple[Callable[[], bytes], str]],
    columns: int = 6,
    thumb: int = 160,
    background: tuple[int, int, int] = (24, 24, 24),
) -> Image.Image:
    """A grid of `thumb`-pixel squares, each with its label beneath; `images` are
    (read-bytes function, label) pairs. An image that fails to decode becomes a grey tile."""
    n = max(len(images), 1)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    cell_w, cell_h = thumb + GAP, thumb + LABEL_HEIGHT + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), background)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for k, (read, label) in enumerate(images):
        x = GAP + (k % columns) * cell_w
        y = GAP + (k // columns) * cell_h
        try:
            img = load_rgb(open_image(read()))
            scale = thumb / max(img.size)  # small images are enlarged too, so tiles are alike
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.LANCZOS)
        except (BadImage, OSError):
            img = Image.new("RGB", (thumb, thumb), (90, 90, 90))
        sheet.paste(img, (x + (thumb - img.width) // 2, y + (thumb - img.height) // 2))
        draw.text((x + 2, y + thumb + 3), label[:28], fill=(235, 235, 235), font=font)
    return sheet


def save_contact_sheet(path: Path, images: Sequence[tuple[Callable[[], bytes], str]], **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        contact_sheet(images, **kwargs).save(tmp, format="PNG")
    return path
