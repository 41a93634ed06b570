"""Model files: safetensors round trip, metadata, the model hash, official pickles, refusals."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from official_pickle import write_official_pickle
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import ganscapes
from ganscapes.errors import UserError
from ganscapes.gan import checkpoint
from ganscapes.gan.checkpoint import Model, load_model, model_hash, save_model

from helpers_models import tiny_generator, tiny_model


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def one_sentence(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text.endswith("."), text
    return text


@pytest.fixture(scope="module")
def full_model() -> Model:
    return tiny_model(res=16, with_training_nets=True)


# ---------------------------------------------------------------------------------------
# Round trip and metadata


def test_round_trip_is_bit_exact(full_model, tmp_path):
    path = tmp_path / "model.safetensors"
    digest = save_model(path, full_model)
    assert digest == full_model.model_hash == model_hash(full_model.G_ema)
    loaded = load_model(path)
    for name in ("G_ema", "G", "D"):
        assert_same_state(getattr(loaded, name), getattr(full_model, name))
        assert getattr(loaded, name).init_kwargs == getattr(full_model, name).init_kwargs
    assert loaded.model_hash == digest and loaded.meta["model_hash"] == digest
    assert loaded.path == path
    assert not loaded.G_ema.training
    assert not any(p.requires_grad for p in loaded.G_ema.parameters())
    assert loaded.networks == ["G_ema", "G", "D"]
    assert (loaded.resolution, loaded.c_dim, loaded.img_channels, loaded.num_ws) == (16, 0, 3, 6)

    # the same pictures
    z = torch.randn(2, 32)
    with torch.inference_mode():
        a = full_model.G_ema(z, torch.zeros(2, 0), noise_mode="const", force_fp32=True)
        b = loaded.G_ema(z, torch.zeros(2, 0), noise_mode="const", force_fp32=True)
    assert torch.equal(a, b)


def test_file_layout_and_metadata(full_model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, full_model)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert keys == {f"{net}.{k}" for net in ("G_ema", "G", "D") for k in getattr(full_model, net).state_dict()}
    assert "G_ema.mapping.w_avg" in keys and "G_ema.synthesis.b16.conv0.noise_const" in keys
    assert "D.b4.out.weight" in keys
    assert meta["format"] == "ganscapes-model"
    assert meta["format_version"] == "1"
    assert meta["ganscapes_version"] == ganscapes.__version__
    assert json.loads(meta["G_kwargs"]) == full_model.G_ema.init_kwargs
    assert json.loads(meta["D_kwargs"]) == full_model.D.init_kwargs
    assert json.loads(meta["training_set_kwargs"]) == {"path": "landscapes.zip", "resolution": 16}
    assert json.loads(meta["preset"]) == "tiny"
    assert json.loads(meta["resolution"]) == 16
    assert json.loads(meta["c_dim"]) == 0
    assert json.loads(meta["img_channels"]) == 3
    assert json.loads(meta["prepare_format"]) == "center-rect"
    assert json.loads(meta["aspect"]) == 1.27
    assert meta["source"] == "ganscapes-train"
    assert json.loads(meta["augment_p"]) == 0.125
    assert meta["model_hash"] == full_model.model_hash
    assert all(isinstance(v, str) for v in meta.values())


def test_G_ema_alone(tmp_path):
    model = tiny_model(res=16, seed=3)
    path = tmp_path / "ema.safetensors"
    save_model(path, model)
    loaded = load_model(path)
    assert loaded.G is None and loaded.D is None and loaded.networks == ["G_ema"]
    assert loaded.meta["D_kwargs"] is None
    assert_same_state(loaded.G_ema, model.G_ema)
    with safe_open(str(path), framework="pt") as f:
        assert all(k.startswith("G_ema.") for k in f.keys())


def test_conditional_grayscale_round_trip(tmp_path):
    model = tiny_model(res=32, c_dim=4, channels=1, seed=5, with_training_nets=True)
    path = tmp_path / "c.safetensors"
    save_model(path, model)
    loaded = load_model(path)
    assert (loaded.resolution, loaded.c_dim, loaded.img_channels) == (32, 4, 1)
    assert loaded.meta["c_dim"] == 4 and loaded.meta["img_channels"] == 1
    for name in ("G_ema", "G", "D"):
        assert_same_state(getattr(loaded, name), getattr(model, name))


# ---------------------------------------------------------------------------------------
# The model hash


def reference_hash(G: torch.nn.Module) -> str:
    """The documented recipe, written out independently."""
    h = hashlib.sha256()
    state = G.state_dict()
    for name in sorted(state):
        t = state[name].contiguous()
        h.update(name.encode() + b"\0" + b"float32\0" + ",".join(map(str, t.shape)).encode() + b"\0")
        h.update(t.numpy().astype("<f4").tobytes())
    return h.hexdigest()


def test_hash_recipe_and_what_it_covers(full_model, tmp_path):
    G = full_model.G_ema
    assert model_hash(G) == reference_hash(G) == model_hash(G.state_dict())
    # only G_ema counts: dropping G and D keeps the hash
    save_model(tmp_path / "full.safetensors", full_model)
    save_model(tmp_path / "ema.safetensors", Model(G_ema=G))
    assert load_model(tmp_path / "full.safetensors").model_hash == load_model(tmp_path / "ema.safetensors").model_hash
    # any change of a G_ema tensor, buffers included, changes it
    for name in ("synthesis.b8.conv0.noise_const", "mapping.w_avg", "synthesis.b4.const"):
        other = tiny_generator(16, seed=0)
        other.load_state_dict(G.state_dict())
        assert model_hash(other) == model_hash(G)
        with torch.no_grad():
            other.state_dict()[name].view(-1)[0] += 1e-3
        assert model_hash(other) != model_hash(G), name
    # a different G_ema, a different hash
    assert model_hash(tiny_generator(16, seed=9)) != model_hash(G)


def test_hash_is_stable(full_model, tmp_path):
    path = tmp_path / "m.safetensors"
    first = save_model(path, full_model)
    second = save_model(tmp_path / "again.safetensors", load_model(path))
    assert first == second == load_model(tmp_path / "again.safetensors").model_hash


# ---------------------------------------------------------------------------------------
# Official pickles


def test_official_pickle_loads_and_imports_with_the_same_hash(full_model, tmp_path):
    pkl = tmp_path / "network-snapshot-000123.pkl"
    marker = write_official_pickle(
        pkl,
        G=full_model.G,
        D=full_model.D,
        G_ema=full_model.G_ema,
        training_set_kwargs={
            "class_name": "training.dataset.ImageFolderDataset",
            "path": "x.zip",
            "use_labels": False,
            "max_size": 10,
            "xflip": False,
            "resolution": 16,
        },
        augment_p=0.25,
    )
    model = load_model(pkl)
    assert not marker.exists()  # module_src never ran
    for name in ("G_ema", "G", "D"):
        assert_same_state(getattr(model, name), getattr(full_model, name))
    assert model.model_hash == full_model.model_hash == model_hash(full_model.G_ema)
    assert model.meta["source"] == "official-pickle:network-snapshot-000123.pkl"
    assert model.meta["aspect"] is None and model.meta["prepare_format"] is None and model.meta["preset"] is None
    assert model.meta["augment_p"] == 0.25
    assert model.meta["training_set_kwargs"]["path"] == "x.zip"
    assert model.meta["resolution"] == 16 and model.meta["c_dim"] == 0 and model.meta["img_channels"] == 3
    assert not model.G_ema.training and not any(p.requires_grad for p in model.G_ema.parameters())

    out = tmp_path / "imported.safetensors"
    assert save_model(out, model) == model.model_hash
    again = load_model(out)
    assert again.model_hash == model.model_hash
    assert again.meta["source"] == "official-pickle:network-snapshot-000123.pkl"
    assert again.meta["aspect"] is None and again.meta["augment_p"] == 0.25
    for name in ("G_ema", "G", "D"):
        assert_same_state(getattr(again, name), getattr(full_model, name))


def test_generator_only_reads_G_ema_alone_from_both_formats(full_model, tmp_path):
    # What painting commands load: the same generator and hash, without G and D in memory.
    path = tmp_path / "model.safetensors"
    save_model(path, full_model)
    pkl = tmp_path / "network-snapshot-000001.pkl"
    write_official_pickle(pkl, G=full_model.G, D=full_model.D, G_ema=full_model.G_ema)
    for source in (path, pkl):
        whole, painting = load_model(source), load_model(source, generator_only=True)
        assert painting.networks == ["G_ema"] and painting.G is None and painting.D is None
        assert_same_state(painting.G_ema, full_model.G_ema)
        assert painting.model_hash == whole.model_hash == full_model.model_hash
        assert painting.meta["D_kwargs"] is not None  # the file's settings are still all there
        assert not painting.G_ema.training


def test_generator_only_still_checks_the_generator(full_model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, full_model)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    key = next(k for k in tensors if k.startswith("G_ema.") and tensors[k].dtype.is_floating_point)
    tensors[key] = tensors[key] + 1
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(UserError, match="G_ema weights do not match the model hash"):
        load_model(path, generator_only=True)


def test_official_pickle_with_G_only(tmp_path):
    G = tiny_generator(16, seed=4)
    pkl = tmp_path / "g.pkl"
    write_official_pickle(pkl, G=G, protocol=3)  # G_ema: a copy of G
    model = load_model(pkl)
    assert model.D is None and model.G is not None
    assert model.model_hash == model_hash(G)
    assert model.meta["augment_p"] is None and model.meta["training_set_kwargs"] is None


def test_refused_pickles_are_user_errors(tmp_path):
    import pickle

    bad = tmp_path / "list.pkl"
    bad.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError) as e:
        load_model(bad)
    assert str(bad) in one_sentence(e)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(UserError):
        load_model(garbage)


# ---------------------------------------------------------------------------------------
# Atomic writes


def test_save_is_atomic(full_model, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(path, full_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    before = path.read_bytes()

    import safetensors.torch

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, tiny_model(res=16, seed=8))
    assert path.read_bytes() == before  # the old model is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # and no temp file is left


def test_save_creates_folders_and_needs_the_suffix(full_model, tmp_path):
    path = tmp_path / "a" / "b" / "m.safetensors"
    save_model(path, full_model)
    assert path.is_file()
    with pytest.raises(UserError, match="must end in .safetensors"):
        save_model(tmp_path / "m.pt", full_model)


# ---------------------------------------------------------------------------------------
# Refusals


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as e:
        load_model(tmp_path / "nope.safetensors")
    assert one_sentence(e) == f"Model file {tmp_path / 'nope.safetensors'} does not exist."


def test_unknown_extension(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e) == (
        f"{path} is neither a ganscapes model (.safetensors) nor an official NVIDIA snapshot (.pkl)."
    )


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xff" * 100])
def test_corrupt_safetensors(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e).startswith(f"{path} is not a readable safetensors file (")


def test_truncated_model(full_model, tmp_path):
    path = tmp_path / "cut.safetensors"
    save_model(path, full_model)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e).startswith(f"{path} is not a readable safetensors file")


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e) == (
        f"{path} is a safetensors file but not a ganscapes model (no 'format: ganscapes-model')."
    )
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(UserError, match="not a ganscapes model"):
        load_model(path)


def rewrite(src, dst, *, tensors=None, **meta_changes):
    """Copy a model file with some tensors or metadata entries changed."""
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    state = load_file(str(src))
    state.update(tensors or {})
    meta.update(meta_changes)
    save_file(state, str(dst), metadata=meta)
    return dst


def test_newer_format_version(full_model, tmp_path):
    save_model(tmp_path / "m.safetensors", full_model)
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "v2.safetensors", format_version="2")
    with pytest.raises(UserError) as e:
        load_model(path)
    assert "format version 2" in one_sentence(e)


def test_settings_that_do_not_fit_the_weights(full_model, tmp_path):
    save_model(tmp_path / "m.safetensors", full_model)
    kwargs = dict(full_model.G_ema.init_kwargs, img_resolution=32)
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "wrong.safetensors", G_kwargs=json.dumps(kwargs))
    with pytest.raises(UserError) as e:
        load_model(path)
    text = one_sentence(e)
    assert text.startswith(f"{path}: the G_ema weights do not fit its recorded settings (missing ")
    assert "synthesis.b32" in text

    kwargs = dict(full_model.G_ema.init_kwargs, w_dim=16)
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "shape.safetensors", G_kwargs=json.dumps(kwargs))
    with pytest.raises(UserError) as e:
        load_model(path)
    assert "has shape" in one_sentence(e)

    kwargs = dict(full_model.G_ema.init_kwargs, colour="blue")
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "key.safetensors", G_kwargs=json.dumps(kwargs))
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e).startswith(f"{path} cannot be used: ")

    path = rewrite(tmp_path / "m.safetensors", tmp_path / "json.safetensors", G_kwargs="{oops")
    with pytest.raises(UserError) as e:
        load_model(path)
    assert "'G_kwargs' is not valid JSON" in one_sentence(e)


def test_weights_that_do_not_match_the_hash(full_model, tmp_path):
    save_model(tmp_path / "m.safetensors", full_model)
    w = load_file(str(tmp_path / "m.safetensors"))["G_ema.mapping.w_avg"] + 1
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "tampered.safetensors", tensors={"G_ema.mapping.w_avg": w})
    with pytest.raises(UserError) as e:
        load_model(path)
    assert one_sentence(e) == f"{path} is damaged: its G_ema weights do not match the model hash it records."


def test_stray_tensor(full_model, tmp_path):
    save_model(tmp_path / "m.safetensors", full_model)
    path = rewrite(tmp_path / "m.safetensors", tmp_path / "stray.safetensors", tensors={"E.x": torch.zeros(1)})
    with pytest.raises(UserError, match="unexpected tensor 'E.x'"):
        load_model(path)


def test_no_G_ema(full_model, tmp_path):
    save_model(tmp_path / "m.safetensors", full_model)
    state = {k: v for k, v in load_file(str(tmp_path / "m.safetensors")).items() if not k.startswith("G_ema.")}
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        meta = f.metadata()
    save_file(state, str(tmp_path / "noema.safetensors"), metadata=meta)
    with pytest.raises(UserError, match="holds no G_ema tensors"):
        load_model(tmp_path / "noema.safetensors")


def test_module_api():
    assert checkpoint.FORMAT == "ganscapes-model" and checkpoint.FORMAT_VERSION == "1"
