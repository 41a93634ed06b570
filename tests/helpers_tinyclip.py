"""A tiny random CLIP through the real open_clip code path, for search tests.

A random ViT-B-32 encodes about 14 images/s on two cores, far too slow for a search
that scores hundreds of pictures. This registers a small architecture (32² input,
8-pixel patches, two 64-wide layers in each tower) with open_clip under TINY_CLIP, so
that `load_clip(ClipSpec(model=TINY_CLIP, pretrained="random"))` — and the CLI with
`--clip-model ganscapes-test-tiny --clip-pretrained random` — build it with open_clip's
own model factory, preprocessing and tokenizer. The registration lives in open_clip's
module state, so the CLI must run in this process (`run_cli`) to see it.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

TINY_CLIP = "ganscapes-test-tiny"
TINY_CLIP_ARGS = ("--clip-model", TINY_CLIP, "--clip-pretrained", "random")
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@functools.cache
def register_tiny_clip() -> str:
    """Register TINY_CLIP with open_clip (once per process); returns its name."""
    import open_clip

    if TINY_CLIP not in open_clip.list_models():
        folder = Path(tempfile.mkdtemp(prefix="ganscapes-tinyclip-"))
        (folder / f"{TINY_CLIP}.json").write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(folder)
    return TINY_CLIP


def tiny_clip(seed: int = 0, device: str = "cpu"):
    """A freshly loaded tiny CLIP with random weights drawn from `seed` (a ClipEncoder)."""
    from ganscapes.clip.encoder import ClipSpec, load_clip

    return load_clip(ClipSpec(model=register_tiny_clip(), pretrained="random", seed=seed), device=device)
