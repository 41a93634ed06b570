"""One way to lay pictures out in a grid, for every sheet of pictures ganscapes writes.

Training's grids of reals and fakes, mix's forms × styles grid, guide's progress strip
and the contact sheets of rank and curate are the same drawing: tiles in cells of one
size, row by row, with an optional gap and an optional label per tile. Each keeps its
own look (gap, background, where and how a label is drawn) through the arguments, so
the layout itself — and any fix to it — exists once. It lives in `data/`, the lowest
layer, so that every stage can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PIL import Image, ImageDraw, ImageFont

FITS = ("none", "stretch", "contain")

Colour = int | tuple[int, ...]


def image_grid(
    tiles: Iterable[Image.Image | None],
    columns: int,
    tile: int | tuple[int, int],
    *,
    count: int | None = None,
    fit: str = "none",
    gap: int = 0,
    background: Colour = (0, 0, 0),
    mode: str = "RGB",
    labels: Sequence[str | None] | None = None,
    label_band: int = 0,
    label_at: tuple[int, int] = (2, 2),
    label_colour: Colour = (255, 255, 255),
    label_box: tuple[int, int] | str | None = None,  # "fit": sized to each label
    label_box_colour: Colour = (0, 0, 0),
) -> Image.Image:
    """`tiles` row by row, `columns` to a row, each centred in a `tile`-sized cell.

    `tiles` may be a generator, so that only one full-size picture is in memory at a
    time; `count` then says how many it yields (the grid's size is needed first). A None
    tile leaves its cell empty (the background). `fit`: "none" pastes a tile as it is;
    "stretch" resizes it to the cell; "contain" scales it to fit the cell with its aspect
    kept — small pictures are enlarged too, so tiles look alike (all Lanczos).

    `gap` pixels surround every cell, and `label_band` pixels beneath each cell are kept
    for its label. A label is drawn at `label_at` from its tile's top-left corner, over a
    box of `label_box_colour` from that corner to `label_box` (inclusive) when one is
    given (`"fit"`: a box just around each label's text, for labels of unequal lengths)
    — a label on the picture itself. Tiles are pasted and labelled in order, so a long
    label runs under the next tile rather than over it.
    """
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")
    tile_w, tile_h = (tile, tile) if isinstance(tile, int) else tile
    columns = max(1, columns)
    if count is None:
        count = len(tiles)  # type: ignore[arg-type]
    rows = max(1, -(-count // columns))
    pitch_x, pitch_y = tile_w + gap, tile_h + label_band + gap
    canvas = Image.new(mode, (gap + columns * pitch_x, gap + rows * pitch_y), background)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default() if labels else None
    for k, img in enumerate(tiles):
        x = gap + (k % columns) * pitch_x
        y = gap + (k // columns) * pitch_y
        if img is not None:
            img = _fitted(img, fit, tile_w, tile_h)
            canvas.paste(img, (x + (tile_w - img.width) // 2, y + (tile_h - img.height) // 2))
        label = labels[k] if labels else None
        if label:
            if label_box == "fit":  # a box just around this label's text
                right, bottom = draw.textbbox((x + label_at[0], y + label_at[1]), label, font=font)[2:]
                draw.rectangle([x, y, right + 2, bottom + 2], fill=label_box_colour)
            elif label_box is not None:
                draw.rectangle([x, y, x + label_box[0], y + label_box[1]], fill=label_box_colour)
            draw.text((x + label_at[0], y + label_at[1]), label, fill=label_colour, font=font)
    return canvas


def _fitted(img: Image.Image, fit: str, tile_w: int, tile_h: int) -> Image.Image:
    if fit == "stretch":
        return img.resize((tile_w, tile_h), Image.Resampling.LANCZOS)
    if fit == "contain":
        scale = min(tile_w / img.width, tile_h / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        return img.resize(size, Image.Resampling.LANCZOS)
    return img
