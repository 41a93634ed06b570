"""mix: layer ranges, mixed ws, the grid and its files, and latents read from generate and rank outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import Ranking, write_ranking
from ganscapes.errors import UserError
from ganscapes.make.generate import generate_images
from ganscapes.make.latents import load_latent_rows, parse_latent_spec
from ganscapes.make.mix import (
    file_latents,
    layer_range,
    mix_ws,
    seed_latents,
    style_mix,
)
from ganscapes.make.pick import save_top_latents
from ganscapes.provenance import decode_array, read_recipe

from helpers_models import tiny_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)  # num_ws 6, w_dim 32


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def seeds(model, *s: int, psi: float = 1.0):
    return seed_latents(model.G_ema, list(s), psi, None, None, CPU)


# ---------------------------------------------------------------------------------------
# Mixing ws


def test_mix_ws_takes_exactly_the_chosen_rows_from_the_style():
    rng = np.random.default_rng(0)
    form = rng.standard_normal([14, 32]).astype(np.float32)
    style = rng.standard_normal([14, 32]).astype(np.float32)
    form_before, style_before = form.copy(), style.copy()
    none = mix_ws(form, style, [])
    assert none.dtype == np.float32 and np.array_equal(none, form)
    assert none is not form  # a copy: the form is not changed
    assert np.array_equal(mix_ws(form, style, list(range(14))), style)
    mixed = mix_ws(form, style, [8, 9, 10, 11, 12, 13])
    assert np.array_equal(mixed[:8], form[:8]) and np.array_equal(mixed[8:], style[8:])
    mixed = mix_ws(form, style, [0, 2, 4])
    for i in range(14):
        assert np.array_equal(mixed[i], (style if i in (0, 2, 4) else form)[i]), i
    assert np.array_equal(form, form_before) and np.array_equal(style, style_before)  # inputs untouched


# ---------------------------------------------------------------------------------------
# Layer ranges


@pytest.mark.parametrize(
    "num_ws, coarse, middle, fine",
    [
        (8, range(0, 4), range(0), range(4, 8)),  # 32²: no 64² layers, fine is the upper half
        (6, range(0, 3), range(0), range(3, 6)),  # 16²
        (4, range(0, 2), range(0), range(2, 4)),  # 8²
        (10, range(0, 4), range(4, 8), range(8, 10)),  # 64²
        (14, range(0, 4), range(4, 8), range(8, 14)),  # 256²
        (18, range(0, 4), range(4, 8), range(8, 18)),  # 1024²
    ],
)
def test_layer_presets(num_ws, coarse, middle, fine):
    assert layer_range("coarse", num_ws) == list(coarse)
    assert layer_range("middle", num_ws) == list(middle)
    assert layer_range("fine", num_ws) == list(fine)
    assert layer_range(" FINE ", num_ws) == list(fine)
    assert layer_range("all", num_ws) == list(range(num_ws))
    assert layer_range("none", num_ws) == []
    assert sorted(layer_range("coarse", num_ws) + layer_range("middle", num_ws) + layer_range("fine", num_ws)) == list(
        range(num_ws)
    )


@pytest.mark.parametrize(
    "res, first",
    [(16, 4), (32, 4), (64, 4), (128, 4), (256, 4), (512, 6), (1024, 8)],
)
def test_auto_layers_start_at_a_sixteenth_of_the_resolution_within_16_to_64(res, first):
    """At 1024² `auto` is the article's `fine`; at 64² it starts at 16², not at the last two layers."""
    num_ws = 2 * (res.bit_length() - 1) - 2
    assert layer_range("auto", num_ws) == list(range(first, num_ws))
    if res == 1024:
        assert layer_range("auto", num_ws) == layer_range("fine", num_ws)


@pytest.mark.parametrize(
    "spec, num_ws, layers",
    [
        ("0-6", 18, [0, 1, 2, 3, 4, 5, 6]),
        ("0-6", 14, [0, 1, 2, 3, 4, 5, 6]),
        ("8-", 18, list(range(8, 18))),
        ("8-", 14, list(range(8, 14))),
        ("8-", 9, [8]),
        ("0,2,4", 8, [0, 2, 4]),
        ("4,0,2,2", 8, [0, 2, 4]),  # sorted, duplicates dropped
        ("0-1, 6-", 8, [0, 1, 6, 7]),
        (" 3 - 5 ", 8, [3, 4, 5]),
        ("7", 8, [7]),
        ("17-17", 18, [17]),
    ],
)
def test_layer_specs(spec, num_ws, layers):
    assert layer_range(spec, num_ws) == layers


@pytest.mark.parametrize(
    "spec, num_ws, message",
    [
        ("8", 8, "Layer 8 does not exist: this model has layers 0 to 7 (num_ws = 8)."),
        ("0-8", 8, "Layer 8 does not exist: this model has layers 0 to 7 (num_ws = 8)."),
        ("8-", 8, "Layer 8 does not exist: this model has layers 0 to 7 (num_ws = 8)."),
        ("2,20", 14, "Layer 20 does not exist: this model has layers 0 to 13 (num_ws = 14)."),
        ("6-2", 8, "The layer range '6-2' runs backwards; write 2-6."),
        ("0,5-3", 8, "The layer range '5-3' runs backwards; write 3-5."),
    ],
)
def test_layer_specs_out_of_range_or_backwards(spec, num_ws, message):
    with pytest.raises(UserError) as info:
        layer_range(spec, num_ws)
    assert str(info.value) == message


@pytest.mark.parametrize("spec", ["medium", "-3", "1.5", "0-2-4", "0,,2", "a-b", "fine,coarse", "0:4"])
def test_garbage_layer_specs(spec):
    with pytest.raises(UserError) as info:
        layer_range(spec, 8)
    assert str(info.value) == (
        f"Cannot read the layer range {spec!r}; use auto, coarse, middle, fine, all, none, 0-6, 8- or 0,2,4."
    )


# ---------------------------------------------------------------------------------------
# The grid and its files


def test_mix_writes_forms_styles_cells_grid_and_latents(model, tmp_path):
    forms, styles = seeds(model, 1, 2, 3), seeds(model, 10, 11)
    layers = layer_range("fine", model.num_ws)
    result = style_mix(model, forms, styles, layers, tmp_path / "mix", labels=False)
    out = tmp_path / "mix"
    assert sorted(p.name for p in out.iterdir()) == ["cells", "forms", "grid.png", "mix.npz", "styles"]
    assert sorted(p.name for p in (out / "forms").iterdir()) == ["F1.png", "F2.png", "F3.png"]
    assert sorted(p.name for p in (out / "styles").iterdir()) == ["S1.png", "S2.png"]
    assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(
        f"F{i}-S{j}.png" for i in (1, 2, 3) for j in (1, 2)
    )
    assert result.forms == [out / "forms" / f"F{i}.png" for i in (1, 2, 3)]
    assert result.styles == [out / "styles" / f"S{j}.png" for j in (1, 2)]
    assert result.cells == [[out / "cells" / f"F{i}-S{j}.png" for i in (1, 2, 3)] for j in (1, 2)]
    assert result.grid == out / "grid.png" and result.latents == out / "mix.npz" and result.layers == [3, 4, 5]

    with np.load(result.latents, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["cells", "forms", "layers", "model_hash", "styles"]
        assert npz["forms"].shape == (3, 6, 32) and npz["forms"].dtype == np.float32
        assert npz["styles"].shape == (2, 6, 32) and npz["styles"].dtype == np.float32
        assert npz["cells"].shape == (2, 3, 6, 32) and npz["cells"].dtype == np.float32
        assert npz["layers"].dtype == np.int64 and npz["layers"].tolist() == [3, 4, 5]
        assert str(npz["model_hash"]) == model.model_hash
        assert np.array_equal(npz["forms"], forms.w) and np.array_equal(npz["styles"], styles.w)
        for j in range(2):
            for i in range(3):
                cell = npz["cells"][j, i]
                assert np.array_equal(cell[:3], forms.w[i][:3]) and np.array_equal(cell[3:], styles.w[j][3:])

    # the form and style pictures are the pictures generate makes for those seeds
    gen = generate_images(model, [1, 2, 3, 10, 11], out=tmp_path / "gen", progress=False)
    for path, picture in zip(result.forms + result.styles, gen.images):
        assert np.array_equal(read_png(path), read_png(picture)), path.name

    cell = read_recipe(result.cells[1][2])  # F3-S2
    assert cell["kind"] == "mix" and cell["label"] == "F3-S2" and cell["layers"] == [3, 4, 5]
    assert cell["form"] == {"seed": 3, "psi": 1.0, "truncation_cutoff": None, "class_idx": None}
    assert cell["style"]["seed"] == 11
    assert cell["model_hash"] == model.model_hash and cell["aspect"] == 1.27 and cell["noise_mode"] == "const"
    form = read_recipe(result.forms[0])
    assert form["kind"] == "latent" and form["label"] == "F1" and form["latent"]["seed"] == 1


def test_no_layers_gives_the_forms_and_all_layers_the_styles(model, tmp_path):
    forms, styles = seeds(model, 1, 2), seeds(model, 5, 6, 7)
    none = style_mix(model, forms, styles, layer_range("none", model.num_ws), tmp_path / "none")
    every = style_mix(model, forms, styles, layer_range("all", model.num_ws), tmp_path / "all")
    some = style_mix(model, forms, styles, layer_range("fine", model.num_ws), tmp_path / "fine")
    for j in range(3):
        for i in range(2):
            assert np.array_equal(read_png(none.cells[j][i]), read_png(none.forms[i])), (i, j)
            assert np.array_equal(read_png(every.cells[j][i]), read_png(every.styles[j])), (i, j)
            cell = read_png(some.cells[j][i])
            assert not np.array_equal(cell, read_png(some.forms[i])) and not np.array_equal(
                cell, read_png(some.styles[j])
            )


def test_the_grid_holds_the_pictures_where_they_belong(model, tmp_path):
    result = style_mix(model, seeds(model, 1, 2, 3), seeds(model, 10, 11), [3, 4, 5], tmp_path, labels=False)
    grid = read_png(result.grid)
    s = 16  # default cell: the model's resolution
    assert grid.shape == (3 * s, 4 * s, 3)  # (n_styles + 1) rows, (n_forms + 1) columns

    def tile(col: int, row: int) -> np.ndarray:
        return grid[row * s : (row + 1) * s, col * s : (col + 1) * s]

    assert (tile(0, 0) == 255).all()  # the top-left corner is white
    for i, p in enumerate(result.forms):
        assert np.array_equal(tile(i + 1, 0), read_png(p))
    for j, p in enumerate(result.styles):
        assert np.array_equal(tile(0, j + 1), read_png(p))
    for j in range(2):
        for i in range(3):
            assert np.array_equal(tile(i + 1, j + 1), read_png(result.cells[j][i])), (i, j)
    assert read_recipe(result.grid)["kind"] == "mix-grid"


def test_the_grid_resizes_to_the_cell_size_with_lanczos(model, tmp_path):
    result = style_mix(model, seeds(model, 1, 2), seeds(model, 10, 11, 12), [3, 4, 5], tmp_path, cell_size=40)
    grid = read_png(result.grid)
    s = 40
    assert grid.shape == (4 * s, 3 * s, 3)
    assert Image.open(result.grid).size == ((2 + 1) * s, (3 + 1) * s)

    def resized(path) -> np.ndarray:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((s, s), Image.Resampling.LANCZOS))

    for j in range(3):
        for i in range(2):
            got = grid[(j + 1) * s : (j + 2) * s, (i + 1) * s : (i + 2) * s]
            assert np.array_equal(got, resized(result.cells[j][i])), (i, j)
    # with labels, a header keeps its picture outside the small black label box
    header = grid[0:s, s : 2 * s]
    assert (header[:14, :26] == 0).mean() > 0.5  # the box (white text on black)
    assert np.array_equal(header[16:], resized(result.forms[0])[16:])
    assert (grid[:s, :s] == 255).all()


def test_grey_pictures_become_grey_rgb_tiles(tmp_path):
    model = tiny_model(res=16, channels=1, seed=3)
    result = style_mix(model, seeds(model, 1), seeds(model, 2), [3, 4, 5], tmp_path, labels=False)
    grid = read_png(result.grid)
    cell = read_png(result.cells[0][0])
    assert cell.shape == (16, 16)
    assert np.array_equal(grid[16:, 16:], np.repeat(cell[..., None], 3, axis=-1))


def test_mix_refuses_empty_inputs_missing_layers_and_a_file_as_out(model, tmp_path):
    empty = seeds(model)
    with pytest.raises(UserError, match="^Style mixing needs at least one form and one style.$"):
        style_mix(model, empty, seeds(model, 1), [], tmp_path / "a")
    with pytest.raises(UserError, match=r"^Layer 6 does not exist: this model has layers 0 to 5\.$"):
        style_mix(model, seeds(model, 1), seeds(model, 2), [5, 6], tmp_path / "b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        style_mix(model, seeds(model, 1), seeds(model, 2), [], tmp_path / "file")
    for batch in (0, -1):
        with pytest.raises(UserError, match=f"^batch must be at least 1, not {batch}.$"):
            style_mix(model, seeds(model, 1), seeds(model, 2), [], tmp_path / "c", batch=batch)
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------
# Latents from generate and rank outputs


@pytest.fixture(scope="module")
def generated(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    return generate_images(model, [4, 9, 2, 7, 30], psi=0.8, out=out, progress=False)


def test_forms_from_a_generate_latents_file_are_those_pictures(model, generated, tmp_path):
    forms = file_latents(f"{generated.latents}:3,0,4", model)
    with np.load(generated.latents) as npz:
        assert np.array_equal(forms.w, npz["w"][[3, 0, 4]])
    assert [s["seed"] for s in forms.sources] == [7, 4, 30]
    assert [s["row"] for s in forms.sources] == [3, 0, 4]
    assert all(s["file"] == "latents.npz" for s in forms.sources)
    for src, w in zip(forms.sources, forms.w):
        assert np.array_equal(decode_array(src["w"]).view(np.uint32), w.view(np.uint32))

    result = style_mix(model, forms, seeds(model, 1), [], tmp_path)
    by_row = {0: 4, 3: 7, 4: 30}
    for k, row in enumerate([3, 0, 4]):
        picture = generated.out / f"seed{by_row[row]:04d}.png"
        assert np.array_equal(read_png(result.forms[k]), read_png(picture)), row
        # with no style layers, the cells are the forms too
        assert np.array_equal(read_png(result.cells[0][k]), read_png(picture)), row
    assert read_recipe(result.forms[0])["latent"]["row"] == 3

    every = file_latents(str(generated.latents), model)  # no rows: all of them
    assert [s["seed"] for s in every.sources] == [4, 9, 2, 7, 30] and every.w.shape == (5, 6, 32)
    ranged = file_latents(f"{generated.latents}:1-3", model)
    assert [s["seed"] for s in ranged.sources] == [9, 2, 7]


def test_forms_from_the_rank_top_latents(model, generated, tmp_path):
    """rank's top/latents.npz (written here with made-up scores; no CLIP needed) feeds mix."""
    order = [3, 1, 4, 0, 2]  # rows of generate, best first
    ranking = Ranking(
        refs=[ImageRef(generated.images[r]) for r in order],
        scores=np.array([0.9, 0.5, 0.1, -0.2, -0.3]),
        digests=["0" * 64] * 5,
        prompt=Prompt(("autumn woods",)),
        model_id="ViT-B-32/random-0",
    )
    outputs = write_ranking(ranking, tmp_path / "ranked", 3, root=generated.out)
    top = save_top_latents(generated.out, ranking, 3, outputs.top_dir)
    assert top == tmp_path / "ranked" / "top" / "latents.npz"
    with np.load(top) as npz, np.load(generated.latents) as full:
        assert npz["seeds"].tolist() == [7, 9, 30]
        assert np.array_equal(npz["w"], full["w"][[3, 1, 4]])
        assert str(npz["model_hash"]) == model.model_hash

    forms = file_latents(f"{top}:0,2", model)
    assert [s["seed"] for s in forms.sources] == [7, 30]
    result = style_mix(model, forms, seeds(model, 1), [], tmp_path / "mix")
    assert np.array_equal(read_png(result.forms[0]), read_png(outputs.top[0]))  # 001-seed0007.png
    assert np.array_equal(read_png(result.forms[1]), read_png(generated.out / "seed0030.png"))


def test_latents_of_another_model_are_refused(model, generated, tmp_path):
    other = tiny_model(res=16, seed=1)  # same shapes, other weights
    with pytest.raises(UserError) as info:
        file_latents(f"{generated.latents}:0", other)
    assert str(info.value) == (
        f"The latents in {generated.latents} were made by model {model.model_hash[:12]}, not by this one "
        f"({other.model_hash[:12]}); their pictures would not be the ones you picked."
    )
    bigger = tiny_model(res=32, seed=0)  # num_ws 8
    with pytest.raises(UserError) as info:
        file_latents(str(generated.latents), bigger)
    assert str(info.value) == (
        f"The latents in {generated.latents} are [6, 32] per image, but this model needs [8, 32] "
        "(num_ws, w_dim): they come from another model."
    )


def test_latent_rows_out_of_range_and_bad_files(model, generated, tmp_path):
    with pytest.raises(UserError) as info:
        file_latents(f"{generated.latents}:0,5", model)
    assert str(info.value) == f"Row 5 is not in {generated.latents}, which has rows 0 to 4."
    with pytest.raises(UserError, match=r"^The latents file .*nowhere\.npz does not exist\.$"):
        file_latents(str(tmp_path / "nowhere.npz") + ":0", model)
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(UserError, match=r"bad\.npz is not a readable latents \.npz file"):
        file_latents(str(tmp_path / "bad.npz"), model)
    np.savez(tmp_path / "now.npz", z=np.zeros([2, 32]))
    with pytest.raises(UserError, match=r"now\.npz holds no w array \[N, num_ws, w_dim\]"):
        file_latents(str(tmp_path / "now.npz"), model)


def test_a_latents_file_without_a_model_hash_is_taken_on_trust(model, tmp_path):
    w = np.random.default_rng(0).standard_normal([3, 6, 32]).astype(np.float32)
    np.savez(tmp_path / "bare.npz", w=w)
    rows = load_latent_rows(f"{tmp_path / 'bare.npz'}:2,0", model)
    assert np.array_equal(rows.w, w[[2, 0]])
    assert rows.sources == [{"file": "bare.npz", "row": 2}, {"file": "bare.npz", "row": 0}]


@pytest.mark.parametrize(
    "spec, path, rows",
    [
        ("a/latents.npz", "a/latents.npz", None),
        ("a/latents.npz:0,1,5-7", "a/latents.npz", [0, 1, 5, 6, 7]),
        (" x.npz: 2 , 0 ", "x.npz", [2, 0]),
        ("d.npz/x.npz:3", "d.npz/x.npz", [3]),
    ],
)
def test_parse_latent_spec(spec, path, rows):
    got_path, got_rows = parse_latent_spec(spec)
    assert str(got_path) == path and got_rows == rows


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "latents.txt:0",
            "Cannot read the latent selection 'latents.txt:0'; write FILE.npz:0,1,2 (row numbers) or FILE.npz.",
        ),
        ("latents.npz:a", "Cannot read the latent selection 'latents.npz:a'"),
        ("latents.npz:0;1", "Cannot read the latent selection"),
        ("latents.npz:", "No rows named in 'latents.npz:'; write FILE.npz:0,1,2 or FILE.npz for all rows."),
        ("latents.npz:,", "No rows named in 'latents.npz:,'"),
        ("latents.npz:3-1", "The row range '3-1' in 'latents.npz:3-1' runs backwards."),
        (
            "latents.npz:1--2",
            "Cannot read the row '1--2' in 'latents.npz:1--2'; rows are numbers and ranges such as 0-3.",
        ),
    ],
)
def test_malformed_latent_specs(spec, message):
    with pytest.raises(UserError) as info:
        parse_latent_spec(spec)
    assert str(info.value).startswith(message)
