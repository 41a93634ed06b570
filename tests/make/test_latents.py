"""LatentSet: the latents files of generate, rank, mix and guide — saved, loaded, selected,
and read within bounds (headers checked before data, only the rows asked for)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.errors import UserError
from ganscapes.make import latents as latents_mod
from ganscapes.make.generate import generate_images
from ganscapes.make.latents import (
    MAX_ROWS,
    LatentSet,
    file_seeds,
    load_latent_rows,
    parse_latent_spec,
    render_ws,
)
from ganscapes.make.mix import file_latents, seed_latents, style_mix
from ganscapes.make.paint import paint
from ganscapes.make.seeds import map_seeds
from ganscapes.provenance import decode_array

from helpers_models import tiny_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)  # num_ws 6, w_dim 32


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def rng_ws(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal([n, 6, 32]).astype(np.float32)


def npy_member(shape, descr: str = "<f4", data: bytes = b"", fortran: bool = False) -> bytes:
    """An .npy file whose header claims `shape`, followed by `data` (which may be short)."""
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    return f.getvalue() + data


def write_npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for key, blob in members.items():
            z.writestr(f"{key}.npy", blob)


# ---------------------------------------------------------------------------------------
# Round trips


def test_a_full_set_round_trips_with_the_documented_arrays(tmp_path):
    w = rng_ws(4)
    s = LatentSet(
        w,
        model_hash="ab" * 32,
        seeds=np.array([5, 1, 9, 2]),
        z=np.random.default_rng(1).standard_normal([4, 32]),
        score=np.array([0.3, 0.2, 0.1, 0.0]),
        settings={"psi": 0.7, "truncation_cutoff": None, "noise_mode": "random", "class_idx": 2},
    )
    path = s.save(tmp_path / "latents.npz")
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["seeds", "z", "w", "score", "psi", "truncation_cutoff", "noise_mode", "class_idx", "model_hash"]
        )
        assert npz["seeds"].dtype == np.int64 and npz["z"].dtype == np.float64 and npz["w"].dtype == np.float32
        assert int(npz["truncation_cutoff"]) == -1 and int(npz["class_idx"]) == 2 and str(npz["noise_mode"]) == "random"
    back = LatentSet.load(path)
    assert np.array_equal(back.w.view(np.uint32), w.view(np.uint32))
    assert back.seeds.tolist() == [5, 1, 9, 2] and np.array_equal(back.z, s.z) and np.array_equal(back.score, s.score)
    assert back.settings == s.settings and back.model_hash == s.model_hash and back.grid is None
    assert back.sources == [{"file": "latents.npz", "row": r, "seed": seed} for r, seed in enumerate([5, 1, 9, 2])]

    again = back.save(tmp_path / "again.npz")
    with np.load(path) as a, np.load(again) as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


def test_a_bare_set_writes_only_w(tmp_path):
    path = LatentSet(rng_ws(2)).save(tmp_path / "bare.npz")
    with np.load(path) as npz:
        assert npz.files == ["w"]
    back = LatentSet.load(path)
    assert back.model_hash is None and back.seeds is None and back.settings == {}


def test_select_and_exact(tmp_path):
    s = LatentSet(rng_ws(3), [{"seed": 4}, {"seed": 5}, {"seed": 6}], seeds=np.array([4, 5, 6]), score=np.arange(3.0))
    picked = s.select([2, 0])
    assert picked.seeds.tolist() == [6, 4] and picked.score.tolist() == [2.0, 0.0]
    assert [src["seed"] for src in picked.sources] == [6, 4] and np.array_equal(picked.w, s.w[[2, 0]])
    exact = picked.exact()
    assert np.array_equal(decode_array(exact.sources[0]["w"]), s.w[2]) and "w" not in picked.sources[0]


def test_a_set_refuses_mismatched_parts():
    with pytest.raises(ValueError, match="seeds has 2 rows, w has 3"):
        LatentSet(rng_ws(3), seeds=np.array([1, 2]))
    with pytest.raises(ValueError, match="unknown settings"):
        LatentSet(rng_ws(1), settings={"speed": 3})


def test_generate_latents_are_the_seeds_ws(model, tmp_path):
    result = generate_images(model, [4, 9, 2], psi=0.8, out=tmp_path, progress=False)
    s = LatentSet.load(result.latents)
    assert s.seeds.tolist() == [4, 9, 2] and s.model_hash == model.model_hash
    assert s.settings == {"psi": 0.8, "truncation_cutoff": None, "noise_mode": "const", "class_idx": None}
    mapped = LatentSet.from_seeds(model.G_ema, [4, 9, 2], 0.8, None, None, CPU)
    assert np.array_equal(s.w, mapped.w) and np.array_equal(s.z, mapped.z)
    assert mapped.sources[0] == {"seed": 4, "psi": 0.8, "truncation_cutoff": None, "class_idx": None}
    assert file_seeds(result.latents) == [4, 9, 2]


# ---------------------------------------------------------------------------------------
# mix.npz: its cells are rows like any others


def test_mix_cells_load_with_file_rows(model, tmp_path):
    forms, styles = (
        seed_latents(model.G_ema, [1, 2, 3], 1.0, None, None, CPU),
        seed_latents(model.G_ema, [10, 11], 1.0, None, None, CPU),
    )
    result = style_mix(model, forms, styles, [3, 4, 5], tmp_path / "mix")
    with np.load(result.latents) as npz:
        cells = npz["cells"].reshape(-1, 6, 32)  # F1-S1, F2-S1, F3-S1, F1-S2, …
    rows = load_latent_rows(f"{result.latents}:4,0", model)
    assert np.array_equal(rows.w, cells[[4, 0]])
    assert rows.sources == [{"file": "mix.npz", "row": 4}, {"file": "mix.npz", "row": 0}]
    whole = LatentSet.load(result.latents)
    assert len(whole) == 6 and whole.settings == {"layers": [3, 4, 5]}
    assert np.array_equal(whole.grid[0], forms.w) and np.array_equal(whole.grid[1], styles.w)
    copy = whole.save(tmp_path / "copy.npz")
    with np.load(copy) as npz:
        assert sorted(npz.files) == ["cells", "forms", "layers", "model_hash", "styles"]

    # a cell read back and painted is the cell's picture (row 4: F2-S2)
    again = style_mix(model, file_latents(f"{result.latents}:4", model), styles.select([0]), [], tmp_path / "again")
    assert np.array_equal(read_png(again.forms[0]), read_png(result.cells[1][1]))


def test_mix_cells_of_another_model_are_refused(model, tmp_path):
    result = style_mix(
        model,
        seed_latents(model.G_ema, [1], 1.0, None, None, CPU),
        seed_latents(model.G_ema, [2], 1.0, None, None, CPU),
        [],
        tmp_path,
    )
    with pytest.raises(UserError, match=r"were made by model .*, not by this one"):
        load_latent_rows(f"{result.latents}:0", tiny_model(res=16, seed=1))


# ---------------------------------------------------------------------------------------
# Bounds: headers first, then only the rows asked for


def test_only_the_rows_asked_for_are_read(tmp_path):
    """A header claiming 1,000 rows over two rows of data: rows 0 and 1 load, all rows do not."""
    w = rng_ws(2)
    path = tmp_path / "short.npz"
    write_npz(path, {"w": npy_member((1000, 6, 32), data=w.tobytes())})
    assert np.array_equal(LatentSet.load(path, [1, 0]).w, w[[1, 0]])
    with pytest.raises(UserError, match=r"short\.npz is not a readable latents \.npz file \(member 'w' is cut short\)"):
        LatentSet.load(path)


@pytest.mark.parametrize(
    "shape",
    [(MAX_ROWS + 1, 6, 32), (10**12, 6, 32), (1, 10**6, 32), (1, 6, 10**7)],
)
def test_huge_shapes_are_refused_from_the_header(tmp_path, shape):
    path = tmp_path / "huge.npz"
    write_npz(path, {"w": npy_member(shape)})
    with pytest.raises(UserError) as info:
        LatentSet.load(path, [0])
    assert str(info.value).startswith(f"The w array in {path} is {list(shape)}: more than 1,000,000 rows")


def test_reading_more_than_the_byte_limit_is_refused(tmp_path, monkeypatch):
    path = LatentSet(rng_ws(8)).save(tmp_path / "many.npz")
    monkeypatch.setattr(latents_mod, "MAX_READ", 3 * 6 * 32 * 4)
    assert len(LatentSet.load(path, [0, 1, 2])) == 3
    with pytest.raises(UserError, match=r"^Reading 8 rows of .*many\.npz would take .* GiB; name fewer rows"):
        LatentSet.load(path)


def test_objects_long_texts_and_other_damage_are_refused(tmp_path):
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match=r"not a readable latents \.npz file \(member 'w' holds Python objects"):
        LatentSet.load(tmp_path / "objects.npz")
    np.savez(tmp_path / "hash.npz", w=rng_ws(1), model_hash=np.str_("x" * 1000))
    with pytest.raises(UserError, match=r"The model_hash entry of .* is not a text of at most 256 characters\."):
        LatentSet.load(tmp_path / "hash.npz")
    np.savez(tmp_path / "ints.npz", w=np.zeros([1, 6, 32], np.int32))
    with pytest.raises(UserError, match=r"holds int32, not floating-point ws\.$"):
        LatentSet.load(tmp_path / "ints.npz")
    write_npz(tmp_path / "header.npz", {"w": b"\x93NUMPY\x01\x00" + b"\xff\xff" + b"{" * 10})
    with pytest.raises(UserError, match=r"not a readable latents \.npz file \(member 'w' is damaged"):
        LatentSet.load(tmp_path / "header.npz")


def test_compressed_and_fortran_order_files_load(tmp_path):
    w = rng_ws(3)
    np.savez_compressed(tmp_path / "small.npz", w=w, seeds=np.array([7, 8, 9]))
    s = LatentSet.load(tmp_path / "small.npz", [2, 0])
    assert np.array_equal(s.w, w[[2, 0]]) and s.seeds.tolist() == [9, 7]
    np.savez(tmp_path / "fortran.npz", w=np.asfortranarray(w))
    assert np.array_equal(LatentSet.load(tmp_path / "fortran.npz", [1, 2]).w, w[[1, 2]])
    assert np.array_equal(LatentSet.load(tmp_path / "fortran.npz").w, w)


def test_a_row_list_beyond_the_limit_is_refused():
    with pytest.raises(UserError, match=r"^'x\.npz:0-2000000' names more than 1,000,000 rows\.$"):
        parse_latent_spec("x.npz:0-2000000")


# ---------------------------------------------------------------------------------------
# paint, the one painting path


def test_paint_does_not_depend_on_batch_or_input_type(model):
    G = model.G_ema
    ws = map_seeds(G, list(range(7)), 0.8, None, None, CPU)
    ref = paint(G, ws, "const", 8)
    assert ref.shape == (7, 16, 16, 3) and ref.dtype == np.uint8
    for batch in (1, 3, 4):
        assert np.array_equal(paint(G, ws, "const", batch), ref), batch
    assert np.array_equal(paint(G, torch.from_numpy(ws)), ref)
    assert np.array_equal(render_ws(G, ws, "const", CPU), ref)  # the former name
    assert paint(G, ws[:0]).shape == (0, 16, 16, 3)
    # random noise: seeded per call, repeatable, and the caller's random state is left alone
    state = torch.get_rng_state()
    a, b = paint(G, ws, "random", noise_seed=3), paint(G, ws, "random", noise_seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, paint(G, ws, "random", noise_seed=4))
    assert torch.equal(torch.get_rng_state(), state)
