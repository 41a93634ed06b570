"""Fixtures of the CLIP tests: a real ViT-B-32 with random weights, and that model on disk.

No test may download weights, so every test uses `--clip-pretrained random`: the real
architecture, preprocessing and tokenizer, with weights drawn from a fixed seed. Its
embeddings mean nothing, but they are different for different images and texts, which
is all that the plumbing (cache, scores, ranking) needs. Loading takes a few seconds and
encoding about 14 images/s on two cores, so the model is loaded once per session and
the images are small and few.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ganscapes.clip.encoder import ClipEncoder, ClipSpec, load_clip

from helpers_images import noise, png_bytes, write


@pytest.fixture(scope="session")
def random_clip() -> ClipEncoder:
    """ViT-B-32 with random weights (seed 0), model_id 'ViT-B-32/random-0'.

    Shared by the whole session: tests must read `image_calls` as a difference, never
    as an absolute count.
    """
    return load_clip(ClipSpec(pretrained="random"))


@pytest.fixture(scope="session")
def clip_weights_file(random_clip, tmp_path_factory) -> Path:
    """The random model's state dict as a safetensors file, for `--clip-weights FILE`.

    Loaded with `--clip-pretrained random` (or any tag without QuickGELU, such as
    laion2b_s34b_b79k) it gives exactly `random_clip`'s embeddings. With the default tag
    `openai` it loads too (same parameter names) but runs with QuickGELU, so its
    embeddings differ slightly from `random_clip`'s.
    """
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("clip_weights") / "random_vit_b_32.safetensors"
    state = {k: v.detach().contiguous().cpu() for k, v in random_clip.model.state_dict().items()}
    save_file(state, str(path))
    return path


@pytest.fixture
def make_images():
    """make_images(folder, count, size=48, start=0) → paths of distinct small noise PNGs."""

    def make(folder: Path, count: int, size: int = 48, start: int = 0) -> list[Path]:
        return [
            write(Path(folder) / f"img_{i:03d}.png", png_bytes(noise(size, size, seed=i)))
            for i in range(start, start + count)
        ]

    return make
