"""Model files whose settings ask for huge networks are refused before anything is built.

A crafted file can pair tiny tensors with settings for a 16384² generator or a million
mapping layers; building that first would allocate gigabytes. Every case here must be
refused in one sentence without the real network ever being constructed.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import ganscapes.gan.networks as networks
from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import load_model, save_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gan"))
from official_pickle import write_official_pickle  # noqa: E402

from helpers_models import tiny_model  # noqa: E402


@pytest.fixture
def no_real_builds(monkeypatch):
    """Call it to fail the test if, from then on, a network is built anywhere but on the meta device."""
    real = networks._build

    def guarded(cls, kwargs, what):
        import torch

        if torch.empty(0).device.type != "meta":
            raise AssertionError(f"a real {what} was built from a hostile file: {kwargs}")
        return real(cls, kwargs, what)

    return lambda: monkeypatch.setattr(networks, "_build", guarded)


def _with_settings(src: Path, dst: Path, change) -> Path:
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    kwargs = json.loads(meta["G_kwargs"])
    change(kwargs)
    meta["G_kwargs"] = json.dumps(kwargs)
    save_file(tensors, str(dst), metadata=meta)
    return dst


HOSTILE_G_SETTINGS = {
    "resolution 16384": lambda k: k.update(img_resolution=16384),
    "resolution not a power of two": lambda k: k.update(img_resolution=48),
    "a million mapping layers": lambda k: k["mapping_kwargs"].update(num_layers=1_000_000),
    "huge w_dim": lambda k: k.update(w_dim=1 << 20),
    "huge channel_max": lambda k: k["synthesis_kwargs"].update(channel_max=1 << 20),
    "channels a string": lambda k: k["synthesis_kwargs"].update(channel_max="512"),
    "nan clamp": lambda k: k["synthesis_kwargs"].update(conv_clamp=float("nan")),
    "settings not a mapping": lambda k: k.update(mapping_kwargs=[1, 2, 3]),
    "within bounds but 2048² at 4096 channels": lambda k: (
        k.update(img_resolution=2048, w_dim=4096),
        k["synthesis_kwargs"].update(channel_base=1 << 22, channel_max=4096),
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE_G_SETTINGS))
def test_safetensors_settings_are_bounded_before_building(tmp_path, no_real_builds, name):
    good = tmp_path / "good.safetensors"
    save_model(good, tiny_model(16))
    bad = _with_settings(good, tmp_path / "bad.safetensors", HOSTILE_G_SETTINGS[name])
    no_real_builds()
    with pytest.raises(UserError) as err:
        load_model(bad)
    message = str(err.value)
    assert message.startswith(str(bad)) and "\n" not in message


def test_settings_that_do_not_match_the_stored_shapes_are_refused_before_building(tmp_path, no_real_builds):
    good = tmp_path / "good.safetensors"
    save_model(good, tiny_model(16))
    bad = _with_settings(good, tmp_path / "bad.safetensors", lambda k: k.update(img_resolution=32))
    no_real_builds()
    with pytest.raises(UserError, match="do not fit its recorded settings"):
        load_model(bad)


def test_an_official_pickle_asking_for_a_huge_generator_is_refused(tmp_path, no_real_builds):
    G = copy.deepcopy(tiny_model(16).G_ema)
    G.init_kwargs = {**G.init_kwargs, "img_resolution": 16384}
    path = tmp_path / "network-snapshot-000000.pkl"
    marker = write_official_pickle(path, G=G, G_ema=G)
    no_real_builds()
    with pytest.raises(UserError, match="img_resolution must be a power of two from 4 to 2048"):
        load_model(path)
    assert not marker.exists()  # and nothing of it ran


def test_a_good_file_still_loads(tmp_path):
    good = tmp_path / "good.safetensors"
    model = tiny_model(16)
    save_model(good, model)
    assert load_model(good).model_hash == model.model_hash


def test_a_model_with_non_finite_weights_is_refused(tmp_path):
    model = tiny_model(16)
    with torch.no_grad():
        next(p for n, p in model.G_ema.named_parameters() if n.endswith("affine.weight"))[0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_model(path, model)
    with pytest.raises(UserError, match=r"has non-finite weights in its generator \(.*affine\.weight\)"):
        load_model(path)


@pytest.mark.parametrize("psi", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_psi_is_refused_before_painting(tmp_path, psi):
    from ganscapes.errors import SettingError
    from ganscapes.make.generate import generate_images

    with pytest.raises(SettingError, match="^psi must be a finite number"):
        generate_images(tiny_model(16), [0], psi=psi, out=tmp_path / "out", progress=False)
    assert not list((tmp_path).glob("out/*.png"))
