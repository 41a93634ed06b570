"""Contact sheets: a grid of labelled thumbnails, the quickest way to judge a ranking.

curate shows the 24 best and 24 worst training images with their scores, rank the top
picks; one look tells whether the phrase did what was meant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from ganscapes.data.grid import image_grid
from ganscapes.data.images import BadImage, load_rgb, open_image
from ganscapes.fileio import atomic_path

LABEL_HEIGHT = 18
GAP = 4
LABEL_CHARS = 28  # what fits beneath a 160-pixel thumbnail in the default font


def contact_sheet(
    images: Sequence[tuple[Callable[[], bytes], str]],
    columns: int = 6,
    thumb: int = 160,
    background: tuple[int, int, int] = (24, 24, 24),
) -> Image.Image:
    """A grid of `thumb`-pixel squares, each with its label beneath; `images` are
    (read-bytes function, label) pairs. An image that fails to decode becomes a grey tile."""
    n = max(len(images), 1)

    def tiles():  # decoded one at a time, as they are pasted
        for read, _ in images:
            try:
                yield load_rgb(open_image(read()))
            except (BadImage, OSError):
                yield Image.new("RGB", (thumb, thumb), (90, 90, 90))

    return image_grid(
        tiles(),
        max(1, min(columns, n)),
        thumb,
        count=len(images),
        fit="contain",  # small images are enlarged too, so tiles are alike
        gap=GAP,
        background=background,
        labels=[label[:LABEL_CHARS] for _, label in images],
        label_band=LABEL_HEIGHT,
        label_at=(2, thumb + 3),
        label_colour=(235, 235, 235),
    )


def save_contact_sheet(path: Path, images: Sequence[tuple[Callable[[], bytes], str]], **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        contact_sheet(images, **kwargs).save(tmp, format="PNG")
    return path
