"""The studio's walks, edits, neighbours and projections, called directly on the tiny 32² model.

Each writes through the library (`make.video.latent_walk`, `make.directions`, `make.project`)
and every picture it catalogs must be rebuilt bit for bit by `ganscapes reproduce` from
the recipe it carries, and painted again by the latent the catalog points at.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganscapes.make.directions import Directions
from ganscapes.make.paint import paint
from ganscapes.make.reproduce import reproduce_file
from ganscapes.make.video import reproduce_frame
from ganscapes.provenance import read_recipe
from ganscapes.studio.core import SLIDERS, Studio, StudioConfig, StudioError


@pytest.fixture(scope="module")
def studio(model_file, tmp_path_factory) -> Studio:
    out = tmp_path_factory.mktemp("explore") / "out"
    return Studio(StudioConfig(model=model_file, out=out, device="cpu"))


@pytest.fixture(scope="module")
def pictures(studio):
    return studio.paint_seed(3, 0.7), studio.paint_seed(4, 0.7)


def rebuilt_exactly(studio, entry) -> bool:
    """`ganscapes reproduce` rebuilds the picture, and the catalog's latent paints it."""
    path = studio.path_of(entry)
    with Image.open(path) as image:
        pixels = np.asarray(image)
    again = paint(studio.model.G_ema, studio.w_of(entry)[None], "const")[0]
    return reproduce_file(path, studio.model).identical and np.array_equal(again, pixels)


def test_a_walk_through_pictures_and_a_seed_is_an_mp4_whose_frames_reproduce(studio, pictures):
    a, b = pictures
    rows = len(studio.catalog)
    video, frames = studio.walk(f"#{a.id}, {b.id}, s9", 3, True)
    assert video.suffix == ".mp4" and video.stat().st_size > 0 and frames == 9  # 3 keyframes, loop: 3 transitions
    assert (video.parent / "keyframes.npz").is_file() and len(studio.catalog) == rows
    assert reproduce_frame(video, 0, studio.model).identical and reproduce_frame(video, 4, studio.model).identical
    _, frames = studio.walk(f"#{a.id}, #{b.id}", 2, False)
    assert frames == 3
    with pytest.raises(StudioError, match=r"^A walk needs at least 2 keyframes"):
        studio.walk(f"#{a.id}", 2, False)


def test_an_edit_is_a_catalog_picture_whose_recipe_holds_the_edits(studio, pictures):
    a, _ = pictures
    names = studio.slider_names()
    assert names == [f"direction {k}" for k in range(SLIDERS)]
    edited = studio.edit(a.id, [1.5, 0, 0, -1, 0, 0])
    assert edited.kind == "edit" and edited.note == f"#{a.id} edited: direction 0 +1.5, direction 3 -1"
    assert rebuilt_exactly(studio, edited)
    recipe = read_recipe(studio.path_of(edited))
    assert [(e["index"], e["amount"]) for e in recipe["edits"]] == [(0, 1.5), (3, -1.0)]
    assert recipe["latent"]["catalog"] == a.id
    # the same edit again is the same picture; every slider at 0 is the picture itself
    rows = len(studio.catalog)
    assert studio.edit(f"#{a.id}", [1.5, 0, 0, -1, 0, 0]) == edited and len(studio.catalog) == rows
    assert studio.edit(a.id, [0] * SLIDERS) == a
    assert studio.about(edited.id).parents == edited.note


def test_sliders_take_the_names_in_the_directions_file(studio, model_file, tmp_path):
    _, path = studio.directions()
    named = Directions.load(path)
    named.rename(0, "sky")
    other = tmp_path / "out"
    other.mkdir()
    named.save(other / path.name)
    again = Studio(StudioConfig(model=model_file, out=other, device="cpu"))
    assert again.slider_names()[:2] == ["sky", "direction 1"]
    first = again.paint_seed(5, 0.7)
    assert again.edit(first.id, [2, 0, 0, 0, 0, 0]).note == f"#{first.id} edited: sky +2"


def test_more_like_this_paints_neighbours_at_the_distance_asked(studio, pictures):
    a, _ = pictures
    near = studio.more_like(a.id, 0.5, 4)
    assert len(near) == 4 and all(e.kind == "near" and e.note == f"near #{a.id} (0.5)" for e in near)
    assert all(rebuilt_exactly(studio, e) for e in near)
    w, spread = studio.w_of(a), studio.w_spread()
    for e in near:
        moved = studio.w_of(e) - w
        assert np.allclose(moved, moved[:1], atol=1e-5)  # the same move on every row
        assert np.linalg.norm(moved[0]) == pytest.approx(0.5 * spread, rel=1e-4)
    (same,) = studio.more_like(a.id, 0, 1)
    assert np.array_equal(studio.w_of(same), w)


def test_project_an_upload_catalogs_its_latent(studio, pictures, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with Image.open(studio.path_of(pictures[1])) as image:
        image.convert("RGB").resize((80, 60)).save(inbox / "painting.jpg")
    calls = []
    entry, target, psnr = studio.project_upload(
        str(inbox / "painting.jpg"), 4, 3, inbox, progress=lambda f, d: calls.append((f, d))
    )
    assert entry.kind == "project" and entry.note == "projection of painting.jpg"
    assert rebuilt_exactly(studio, entry) and target.is_file() and np.isfinite(psnr)
    assert calls[0][0] == 0 and calls[-1] == (1.0, "done") and len(calls) == 4 + 3 + 1
    # like any picture: mixed, edited, walked
    assert studio.mix(f"#{entry.id}", "s2", "fine", "", 0.7)[1]
    assert rebuilt_exactly(studio, studio.edit(entry.id, [0, 1, 0, 0, 0, 0]))
