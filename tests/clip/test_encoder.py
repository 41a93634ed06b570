"""Loading CLIP: weights files, offline machines, wrong names — one sentence each, no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from ganscapes.clip import encoder as enc
from ganscapes.clip.encoder import (
    WEIGHTS_ENV,
    ClipSpec,
    cached_weights_file,
    load_clip,
    weights_hint,
)
from ganscapes.errors import UserError

from helpers_images import file_sha256, noise, write

NO_QUICK_GELU_TAG = "laion2b_s34b_b79k"  # a ViT-B-32 tag trained without QuickGELU


def test_the_no_quick_gelu_tag_is_one():
    cfg = open_clip.get_pretrained_cfg("ViT-B-32", NO_QUICK_GELU_TAG)
    assert cfg and not cfg.get("quick_gelu", False)
    assert open_clip.get_pretrained_cfg("ViT-B-32", "openai").get("quick_gelu") is True


def test_a_spec_describes_itself_as_the_options_said_it():
    """The words of the CLI's "loading CLIP … " note."""
    assert ClipSpec().describe() == "ViT-B-32 (openai)"
    assert ClipSpec(pretrained="random").describe() == "ViT-B-32 (random weights)"
    assert ClipSpec(model="ViT-L-14", weights=Path("w.safetensors")).describe() == "ViT-L-14 from w.safetensors"


def test_random_model(random_clip):
    assert random_clip.model_id == "ViT-B-32/random-0"
    assert random_clip.image_size == 224 and random_clip.encode_texts(["a"]).shape[1] == 512
    mean, std = random_clip.mean_std
    assert np.allclose(mean, (0.48145466, 0.4578275, 0.40821073)) and np.allclose(
        std, (0.26862954, 0.26130258, 0.27577711)
    )
    before = random_clip.image_calls
    out = random_clip.encode_images(torch.stack([random_clip.preprocess(noise(32, 32, seed=s)) for s in range(3)]))
    assert random_clip.image_calls == before + 1
    assert out.dtype == np.float32 and out.shape == (3, 512)
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert np.abs(out[0] - out[1]).max() > 1e-3  # different images, different embeddings


def test_random_model_is_reproducible(random_clip, clip_weights_file):
    """model_id 'random-0' keys the cache, so seed 0 must give the same weights every time."""
    from safetensors.torch import load_file

    again = load_clip(ClipSpec(pretrained="random", seed=0))
    saved = load_file(str(clip_weights_file))
    state = again.model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)


# ---------------------------------------------------------------------------------------
# Weights files


@pytest.fixture(scope="module")
def probe(random_clip):
    pixels = torch.stack([random_clip.preprocess(noise(40, 40, seed=s)) for s in range(4)])
    texts = ["impressionist landscape painting", "a cat"]
    return pixels, texts


@pytest.mark.slow
@pytest.mark.parametrize("tag", [NO_QUICK_GELU_TAG, "random"])
def test_weights_file_reproduces_the_model(tag, random_clip, clip_weights_file, probe):
    loaded = load_clip(ClipSpec(pretrained=tag, weights=clip_weights_file))
    assert loaded.model_id == f"ViT-B-32/sha256-{file_sha256(clip_weights_file)[:16]}"
    pixels, texts = probe
    assert np.allclose(loaded.encode_images(pixels), random_clip.encode_images(pixels), atol=1e-6)
    assert np.allclose(loaded.encode_texts(texts), random_clip.encode_texts(texts), atol=1e-6)


def test_weights_file_with_openai_tag_uses_quick_gelu(random_clip, clip_weights_file, probe):
    """The tag says how the file was trained: OpenAI's weights need QuickGELU."""
    loaded = load_clip(ClipSpec(pretrained="openai", weights=clip_weights_file))
    assert type(loaded.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert type(random_clip.model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "GELU"
    pixels, _texts = probe
    a, b = loaded.encode_images(pixels), random_clip.encode_images(pixels)
    assert 1e-5 < np.abs(a - b).max() < 0.1  # same weights, slightly different activation
    assert loaded.model_id.startswith("ViT-B-32/sha256-")


def test_file_digest_reads_in_blocks(tmp_path):
    """The weights-file key is the sha256 of the whole content, however many blocks it spans."""
    data = np.random.default_rng(0).integers(0, 256, (5 << 20) // 2 + 7, dtype=np.uint8).tobytes()
    a = write(tmp_path / "a.safetensors", data)
    b = write(tmp_path / "moved" / "b.bin", data)
    assert enc.file_digest(a) == enc.file_digest(b) == file_sha256(a)
    c = write(tmp_path / "c.bin", data[:-1] + bytes([data[-1] ^ 1]))  # the last byte differs
    assert enc.file_digest(c) != enc.file_digest(a)


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec(weights=path))
    assert str(info.value) == f"The CLIP weights file {path} does not exist (from --clip-weights or {WEIGHTS_ENV})."


@pytest.mark.parametrize(
    "name, content",
    [
        ("garbage.safetensors", b"this is not a weights file" * 40),
        ("garbage.pt", b"this is not a weights file" * 40),
    ],
)
def test_garbage_weights_file(name, content, tmp_path):
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec(pretrained=NO_QUICK_GELU_TAG, weights=path))
    message = str(info.value)
    assert message.startswith(f"{path} is not a usable set of ViT-B-32 CLIP weights (")
    assert "\n" not in message and message.endswith(").")


def test_weights_of_another_model(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({"visual.proj": torch.zeros(3, 3)}, str(path))
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec(pretrained="random", weights=path))
    assert str(info.value).startswith(f"{path} is not a usable set of ViT-B-32 CLIP weights")


# ---------------------------------------------------------------------------------------
# Names and offline machines


def test_unknown_model():
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec(model="ViT-Nope-7"))
    message = str(info.value)
    assert message.startswith("open_clip does not know the model 'ViT-Nope-7'; try one of ViT-B-32")
    assert "open_clip.list_models()" in message


def test_unknown_pretrained_tag():
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec(pretrained="nope2024"))
    message = str(info.value)
    assert message.startswith("open_clip has no pretrained weights 'nope2024' for ViT-B-32; its tags are: ")
    assert "openai" in message and NO_QUICK_GELU_TAG in message


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(enc, "_online", lambda host="huggingface.co": False)
    monkeypatch.setattr(enc, "cached_weights_file", lambda *a, **k: None)


def test_offline_without_weights_says_what_to_download(offline):
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec())
    message = str(info.value)
    assert "ViT-B-32 (openai)" in message and "offline" in message
    assert "open_clip_model.safetensors from https://huggingface.co/timm/vit_base_patch32_clip_224.openai" in message
    assert "--clip-weights PATH" in message and WEIGHTS_ENV in message
    assert "\n" not in message


def test_hf_hub_offline_means_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert enc._online() is False


def test_weights_hint():
    assert weights_hint("ViT-B-32", NO_QUICK_GELU_TAG) == (
        "open_clip_model.safetensors from https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    )


def test_cached_weights_file_by_url_and_file(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = {"url": "https://example.com/models/ViT-B-32.pt"}
    assert cached_weights_file("ViT-B-32", "openai", cfg) is None
    path = write(tmp_path / ".cache" / "clip" / "ViT-B-32.pt", b"weights")
    assert cached_weights_file("ViT-B-32", "openai", cfg) == path
    local = write(tmp_path / "w.bin", b"weights")
    assert cached_weights_file("ViT-B-32", "x", {"file": str(local)}) == local
    assert cached_weights_file("ViT-B-32", "x", {"file": str(tmp_path / "none.bin")}) is None


# ---------------------------------------------------------------------------------------
# ClipSpec.from_options


def test_spec_from_options_uses_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert ClipSpec.from_options("ViT-B-32", "openai", None) == ClipSpec()
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "env.safetensors"))
    assert ClipSpec.from_options("ViT-B-32", "openai", None).weights == tmp_path / "env.safetensors"
    given = Path("given.safetensors")
    assert ClipSpec.from_options("ViT-B-16", "x", given) == ClipSpec("ViT-B-16", "x", given)  # the option wins
    monkeypatch.setenv(WEIGHTS_ENV, "~/clip/w.safetensors")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ClipSpec.from_options("ViT-B-32", "openai", None).weights == tmp_path / "clip" / "w.safetensors"
    monkeypatch.setenv(WEIGHTS_ENV, "")
    assert ClipSpec.from_options("ViT-B-32", "openai", None).weights is None


def test_env_weights_reach_load_clip(monkeypatch, tmp_path):
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "from-env.safetensors"))
    with pytest.raises(UserError) as info:
        load_clip(ClipSpec.from_options("ViT-B-32", "openai", None))
    assert f"{tmp_path / 'from-env.safetensors'} does not exist" in str(info.value)
