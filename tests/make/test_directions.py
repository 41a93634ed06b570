"""Semantic directions (make.directions, `ganscapes directions`, `--edit`) with tiny 32² models on CPU."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import load_model, save_model
from ganscapes.make.directions import (
    PREVIEW_STEPS,
    Directions,
    apply_edits,
    edits_from,
    find_directions,
    parse_edit,
    preview_sheet,
    sample_ws,
    sefa_matrix,
    style_affines,
    w_covariance,
)
from ganscapes.make.generate import generate_images
from ganscapes.make.mix import seed_latents, style_mix
from ganscapes.make.recipes import Edit, parse_recipe
from ganscapes.make.reproduce import reproduce_file
from ganscapes.make.summary import summarize
from ganscapes.provenance import read_recipe

from helpers_clip import assert_error, run_cli
from helpers_models import tiny_model

SAMPLES = 500


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=32, seed=0)  # num_ws 8


@pytest.fixture(scope="module")
def files(model, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("directions")
    paths = {"tiny": folder / "tiny.safetensors", "other": folder / "other.safetensors"}
    save_model(paths["tiny"], model)
    save_model(paths["other"], tiny_model(res=32, seed=1))
    found = find_directions(load_model(paths["tiny"]), "pca", list(range(8)), 4, samples=SAMPLES)
    found.rename(1, "sky")
    paths["pca"] = found.save(folder / "pca.npz")
    return paths


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# ---------------------------------------------------------------------------------------
# PCA and SeFa


def test_pca_directions_are_orthonormal_sorted_by_variance_and_reproducible(model):
    a = find_directions(model, "pca", [0, 1, 2, 3], 5, samples=SAMPLES, seed=3)
    assert a.vectors.shape == (5, model.G_ema.w_dim) and a.layers == [0, 1, 2, 3]
    np.testing.assert_allclose(a.vectors @ a.vectors.T, np.eye(5), atol=1e-5)
    assert np.all(np.diff(a.sigma) <= 0) and a.sigma[-1] > 0
    # σ is the spread of the samples along each direction
    ws = sample_ws(model.G_ema, SAMPLES, 3, "cpu")
    spread = ((ws - ws.mean(0)) @ a.vectors.T.astype(np.float64)).std(0, ddof=1)
    np.testing.assert_allclose(spread, a.sigma, rtol=1e-3)
    b = find_directions(model, "pca", [0, 1, 2, 3], 5, samples=SAMPLES, seed=3)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.sigma, b.sigma)
    c = find_directions(model, "pca", [0, 1, 2, 3], 5, samples=SAMPLES, seed=4)
    assert not np.array_equal(a.vectors, c.vectors)


def test_the_covariance_is_accumulated_batch_by_batch_as_one_would_compute_it_at_once(model, monkeypatch):
    monkeypatch.setattr("ganscapes.make.directions.SAMPLE_BATCH", 64)  # 500 samples: 8 batches, the last short
    ws = sample_ws(model.G_ema, SAMPLES, 7, "cpu")
    assert ws.shape == (SAMPLES, model.G_ema.w_dim)
    np.testing.assert_allclose(w_covariance(model.G_ema, SAMPLES, 7, "cpu"), np.cov(ws.T), rtol=1e-9, atol=1e-12)


def test_sefa_directions_are_orthonormal_and_the_top_eigenvectors_of_the_stacked_affine_weights(model):
    G = model.G_ema
    layers = [0, 1, 2]
    found = find_directions(model, "sefa", layers, 4, samples=SAMPLES)
    np.testing.assert_allclose(found.vectors @ found.vectors.T, np.eye(4), atol=1e-5)
    # direct: A is every affine layer that reads rows 0–2, each weight with its runtime gain
    rows = {0: [G.synthesis.b4.conv1], 1: [G.synthesis.b8.conv0], 2: [G.synthesis.b8.conv1]}
    rows[1].append(G.synthesis.b4.torgb)  # b4's toRGB reads the row after its convolution
    A = torch.cat([m.affine.weight.double() * m.affine.weight_gain for ms in rows.values() for m in ms]).numpy()
    assert len([r for r, _ in style_affines(G) if r in layers]) == len(rows[0]) + len(rows[1]) + len(rows[2])
    np.testing.assert_allclose(sefa_matrix(G, layers), A.T @ A, rtol=1e-10)
    values, vectors = np.linalg.eig(A.T @ A)
    top = vectors[:, np.argsort(-values.real)[:4]].real.T
    np.testing.assert_allclose(np.abs(np.sum(top * found.vectors, axis=1)), 1.0, atol=1e-5)  # same up to sign
    # σ: the spread of sampled w along each direction
    ws = sample_ws(G, SAMPLES, 0, "cpu")
    np.testing.assert_allclose((ws @ found.vectors.T.astype(np.float64)).std(0, ddof=1), found.sigma, rtol=1e-3)
    other = find_directions(model, "sefa", [6, 7], 4, samples=SAMPLES)
    assert not np.allclose(np.abs(other.vectors @ found.vectors.T), np.eye(4), atol=1e-3)


def test_settings_out_of_range_are_refused_in_one_sentence(model):
    for kwargs, word in (
        ({"method": "ica"}, "method"),
        ({"count": 0}, "count"),
        ({"count": 10_000}, "count"),
        ({"samples": 1}, "samples"),
        ({"layers": []}, "layers"),
        ({"layers": [99]}, "layers"),
    ):
        settings = {"method": "pca", "layers": [0], "count": 2, "samples": SAMPLES, **kwargs}
        with pytest.raises(UserError, match=word):
            find_directions(model, **settings)


# ---------------------------------------------------------------------------------------
# Files


def test_a_directions_file_round_trips_with_its_names(files, model, tmp_path):
    found = Directions.load(files["pca"], model)
    assert found.names == ["", "sky", "", ""] and found.method == "pca" and found.layers == list(range(8))
    assert found.model_hash == model.model_hash and found.samples == SAMPLES
    found.rename(3, "season")
    again = Directions.load(found.save(tmp_path / "again.npz"))
    assert again.names == ["", "sky", "", "season"]
    np.testing.assert_array_equal(again.vectors, found.vectors)
    np.testing.assert_array_equal(again.sigma, found.sigma)
    assert again.index_of("season") == 3 and again.index_of("2") == 2
    with pytest.raises(UserError, match="already direction 1"):
        again.rename(0, "sky")
    with pytest.raises(UserError, match="cannot be taken for an index"):
        again.rename(0, "12")


def test_a_file_of_another_model_is_refused(files):
    other = load_model(files["other"])
    with pytest.raises(UserError, match=r"holds directions of model .* not of this model") as e:
        Directions.load(files["pca"], other)
    assert str(e.value).count(".") >= 1 and "\n" not in str(e.value)


def _hostile(path: Path, shape: tuple[int, ...]) -> Path:
    """A directions file whose `directions` header claims `shape` (with 16 bytes of data)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    buffer = bytearray()
    import io

    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, header)
    buffer += f.getvalue() + b"\0" * 16
    good = {
        "sigma": np.ones(shape[0] if shape[0] < 10 else 1, np.float32),
        "layers": np.arange(2),
        "method": np.str_("pca"),
        "model_hash": np.str_("x"),
    }
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("directions.npy", bytes(buffer))
        for key, value in good.items():
            g = io.BytesIO()
            np.save(g, value)
            z.writestr(f"{key}.npy", g.getvalue())
    return path


def test_a_hostile_file_claiming_huge_sizes_is_refused_before_reading(tmp_path, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr("ganscapes.make.npz.NpzReader.read", no_reading)
    for shape in ((10**12, 512), (4, 10**9), (4,)):
        path = _hostile(tmp_path / f"bad{len(shape)}{shape[0]}.npz", shape)
        with pytest.raises(UserError, match="is not a directions file") as e:
            Directions.load(path)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="does not exist"):
        Directions.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable directions"):
        Directions.load(tmp_path / "junk.npz")


# ---------------------------------------------------------------------------------------
# Preview and edits


def test_the_preview_sheet_has_seven_columns_and_one_row_per_direction(files, model):
    found = Directions.load(files["pca"])
    sheet, recipe = preview_sheet(model, found, [0], cell_size=32)
    assert sheet.size == (len(PREVIEW_STEPS) * 32, len(found) * 32)
    assert recipe.to_json()["kind"] == "directions-sheet"
    two, _ = preview_sheet(model, found, [0, 5], cell_size=32)
    assert two.size == (7 * 32, 2 * len(found) * 32)


def test_parse_edit_and_its_one_sentence_errors(files, model):
    assert parse_edit("sky=1.5") == ("sky", 1.5) and parse_edit(" 0 = -2") == ("0", -2.0)
    for text, message in (
        ("sky", "takes NAME=AMOUNT"),
        ("sky=much", "must be a number"),
        ("sky=nan", "from -100 to 100"),
        ("0=1e9", "from -100 to 100"),
    ):
        with pytest.raises(UserError, match=message):
            parse_edit(text)
    with pytest.raises(UserError, match="no direction is named 'clouds'"):
        edits_from(["clouds=1"], files["pca"], model)
    with pytest.raises(UserError, match="there is no direction 9"):
        edits_from(["9=1"], files["pca"], model)
    with pytest.raises(UserError, match="needs --directions"):
        edits_from(["sky=1"], None, model)


def test_an_edit_moves_only_its_rows_by_amount_sigma_direction(files, model):
    found = Directions.load(files["pca"])
    found.layers = [2, 3]
    w = np.random.RandomState(0).randn(2, 8, model.G_ema.w_dim).astype(np.float32)
    edit = found.edit(1, 2.0)
    moved = apply_edits(w, [edit])
    np.testing.assert_array_equal(moved[:, [0, 1, 4, 5, 6, 7]], w[:, [0, 1, 4, 5, 6, 7]])
    np.testing.assert_allclose(
        moved[:, 2:4] - w[:, 2:4], np.broadcast_to(2 * found.sigma[1] * found.vectors[1], (2, 2, 32)), atol=1e-5
    )


def test_edit_changes_the_picture_zero_is_identical_and_it_reproduces_from_the_recipe(files, model, tmp_path):
    plain = generate_images(model, [0, 1], psi=0.7, out=tmp_path / "plain", progress=False)
    zero = edits_from(["sky=0"], files["pca"], model)
    none = generate_images(model, [0, 1], psi=0.7, out=tmp_path / "zero", progress=False, edits=zero)
    edits = edits_from(["sky=2", "0=-1.5"], files["pca"], model)
    moved = generate_images(model, [0, 1], psi=0.7, out=tmp_path / "moved", progress=False, edits=edits)
    for a, b, c in zip(plain.images, none.images, moved.images):
        assert np.array_equal(read_png(a), read_png(b))
        assert not np.array_equal(read_png(a), read_png(c))
    recipe = read_recipe(moved.images[0])
    assert [e["amount"] for e in recipe["edits"]] == [2.0, -1.5] and recipe["edits"][0]["name"] == "sky"
    assert isinstance(parse_recipe(recipe).edits[0], Edit)
    for path in moved.images:
        assert reproduce_file(path, model).identical
    # random noise too
    random = generate_images(
        model, [3, 4, 5], out=tmp_path / "random", noise_mode="random", progress=False, edits=edits, batch=2
    )
    assert all(reproduce_file(p, model).identical for p in random.images)
    rows = dict(summarize(moved.images[0], recipe).rows)
    assert "sky (PCA direction 1) +2σ" in rows["edit"]
    commands = dict(summarize(moved.images[0], recipe).commands)
    assert "--directions pca.npz --edit sky=2.0 --edit 0=-1.5" in commands["same picture"]


def test_mix_with_an_edit_reproduces_cells_and_headers(files, model, tmp_path):
    G = model.G_ema
    edits = edits_from(["sky=1.5"], files["pca"], model)
    forms, styles = seed_latents(G, [0, 1], 0.7, None, None, "cpu"), seed_latents(G, [2], 0.7, None, None, "cpu")
    result = style_mix(model, forms, styles, [4, 5, 6, 7], tmp_path / "mix", edits=edits)
    plain = style_mix(model, forms, styles, [4, 5, 6, 7], tmp_path / "plain")
    assert not np.array_equal(read_png(result.cells[0][0]), read_png(plain.cells[0][0]))
    for path in [*result.forms, *result.styles, result.cells[0][1]]:
        assert reproduce_file(path, model).identical


def test_a_recipe_edit_that_does_not_fit_the_model_is_refused(files, model, tmp_path):
    edits = edits_from(["sky=1"], files["pca"], model)
    edits[0].layers = [60]
    with pytest.raises(UserError, match="this model has 8 rows"):
        generate_images(model, [0], out=tmp_path / "x", progress=False, edits=edits)
    recipe = read_recipe(generate_images(model, [0], out=tmp_path / "y", progress=False).images[0])
    bad = {**recipe, "edits": [{**edits[0].to_json(), "amount": 1e9}]}
    with pytest.raises(UserError, match=r"edits\[0\]\.amount must be a number from -100 to 100"):
        parse_recipe(bad)
    with pytest.raises(UserError, match="edits must be a list of 1 to 16"):
        parse_recipe({**recipe, "edits": [edits[0].to_json()] * 17})
    huge = {**edits[0].to_json(), "direction": {"dtype": "float32", "shape": [10**9], "base64": ""}}
    with pytest.raises(UserError, match=r"edits\[0\]\.direction must be a vector of 1 to 4096 numbers"):
        parse_recipe({**recipe, "edits": [huge]})
    with pytest.raises(UserError, match=r"edits\[0\]\.layers must be a list of layer numbers"):
        parse_recipe({**recipe, "edits": [{**edits[0].to_json(), "layers": [10**6]}]})


# ---------------------------------------------------------------------------------------
# Command line


def test_cli_directions_preview_name_generate_edit_reproduce_info(files, tmp_path, monkeypatch, capsys):
    out = tmp_path / "d.npz"
    code = run_cli(
        monkeypatch,
        *("directions", "--model", files["tiny"], "--method", "sefa", "--layers", "0-3", "--count", "3"),
        *("--out", out, "--samples", "200", "--preview", "--preview-seeds", "0,1", "--name", "2=light"),
        *("--device", "cpu"),
    )
    assert code == 0, capsys.readouterr().err
    assert "3 SEFA directions" in capsys.readouterr().out
    with Image.open(out.with_suffix(".png")) as sheet:
        assert sheet.size == (7 * 32, 2 * 3 * 32)
    assert run_cli(monkeypatch, "directions", "name", out, "0", "horizon") == 0
    assert Directions.load(out).names == ["horizon", "", "light"]
    assert run_cli(monkeypatch, "directions", "--out", out, "--name", "1=season") == 0
    assert Directions.load(out).names == ["horizon", "season", "light"]
    assert run_cli(monkeypatch, "directions", "name", out, "x", "y") == 1
    assert_error(capsys.readouterr().err, "The index of the direction to name must be a number from 0, not 'x'.")
    # recomputing the same directions keeps their names
    again = ("directions", "--model", files["tiny"], "--method", "sefa", "--layers", "0-3", "--count", "3")
    assert run_cli(monkeypatch, *again, "--out", out, "--samples", "200", "--device", "cpu") == 0
    assert Directions.load(out).names == ["horizon", "season", "light"]
    capsys.readouterr()

    gen = tmp_path / "gen"
    args = ("generate", "--model", files["tiny"], "--seeds", "0", "--out", gen, "--device", "cpu")
    code = run_cli(monkeypatch, *args, "--directions", out, "--edit", "horizon=2", "--edit", "light=-1")
    assert code == 0, capsys.readouterr().err
    picture = gen / "seed0000.png"
    assert run_cli(monkeypatch, "reproduce", picture, "--model", files["tiny"]) == 0
    assert "identical" in capsys.readouterr().out
    assert run_cli(monkeypatch, "info", picture) == 0
    shown = capsys.readouterr().out
    assert "horizon (SEFA direction 0) +2σ" in shown and "light (SEFA direction 2) -1σ" in shown
    assert run_cli(monkeypatch, "info", out.with_suffix(".png")) == 0
    assert "directions-sheet" in capsys.readouterr().out

    video = tmp_path / "walk.mp4"
    code = run_cli(
        monkeypatch,
        *("video", "--model", files["tiny"], "--seeds", "0,1", "--frames", "2", "--out", video, "--device", "cpu"),
        *("--directions", out, "--edit", "light=3", "--keep-frames"),
    )
    assert code == 0, capsys.readouterr().err
    frame = tmp_path / "walk_frames" / "frame00001.png"
    assert read_recipe(frame)["edits"][0]["name"] == "light"
    assert run_cli(monkeypatch, "reproduce", frame, "--model", files["tiny"]) == 0
    assert run_cli(monkeypatch, "reproduce", video, "--frame", "2", "--model", files["tiny"]) == 0
    assert "identical" in capsys.readouterr().out

    mix = tmp_path / "mix"
    code = run_cli(
        monkeypatch,
        *("mix", "--model", files["tiny"], "--forms", "0", "--styles", "1", "--out", mix, "--device", "cpu"),
        *("--directions", out, "--edit", "0=1"),
    )
    assert code == 0, capsys.readouterr().err
    assert run_cli(monkeypatch, "reproduce", mix / "cells" / "F1-S1.png", "--model", files["tiny"]) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--edit", "clouds=1"), "--edit: no direction is named 'clouds' (names: sky)."),
        (("--edit", "sky=lots"), "--edit 'sky=lots': the amount must be a number of σ, such as 1.5 or -2."),
        (("--edit", "sky=1"), "--edit needs --directions FILE.npz, the directions file made by ganscapes directions."),
    ],
)
def test_cli_edit_errors_are_one_sentence(files, tmp_path, monkeypatch, capsys, extra, message):
    args = ("generate", "--model", files["tiny"], "--seeds", "0", "--out", tmp_path / "g", "--device", "cpu")
    with_file = ("--directions", files["pca"]) if "clouds=1" in extra else ()
    assert run_cli(monkeypatch, *args, *with_file, *extra) == 1
    assert_error(capsys.readouterr().err, message, alone=False)


def test_cli_missing_directions_file_and_wrong_model(files, tmp_path, monkeypatch, capsys):
    args = ("generate", "--seeds", "0", "--out", tmp_path / "g", "--device", "cpu", "--edit", "sky=1")
    assert run_cli(monkeypatch, *args, "--model", files["tiny"], "--directions", tmp_path / "none.npz") == 1
    assert_error(capsys.readouterr().err, f"The directions file {tmp_path / 'none.npz'} does not exist.")
    assert run_cli(monkeypatch, *args, "--model", files["other"], "--directions", files["pca"]) == 1
    err = capsys.readouterr().err
    assert "holds directions of model" in err and "Traceback" not in err


def test_a_fitted_label_box_is_as_wide_as_its_own_label():
    from ganscapes.data.grid import image_grid

    white = Image.new("RGB", (64, 32), (255, 255, 255))
    grid = np.asarray(image_grid([white, white], 2, (64, 32), labels=["-2", "0 autumn -3"], label_box="fit"))
    black = (grid == 0).all(axis=-1)
    short, long = black[2, :64].sum(), black[2, 64:].sum()  # a row inside the boxes, under the text's top
    assert 8 < short < long < 64 and not black[20:].any()
