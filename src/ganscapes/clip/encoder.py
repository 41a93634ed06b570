"""CLIP through open_clip: loading the weights, preprocessing, and L2-normalised embeddings.

GANscapes used OpenAI's ViT-B/32, so that is the default (`ViT-B-32` with the `openai`
tag); any open_clip architecture and pretrained tag can be chosen instead. Weights come
from, in order: a file the user names (`--clip-weights` or `GANSCAPES_CLIP_WEIGHTS`),
open_clip's own download cache, or a download. A machine that is offline and has none of
them gets one sentence naming the file to fetch and the option to pass it — not a minute
of retries followed by a page of stack trace.

Every model gets a `model_id`, the key of the embedding cache: architecture plus tag, or
architecture plus the content hash of a weights file, so that two different files can
never share cached embeddings.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganscapes.errors import UserError, first_line

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
WEIGHTS_ENV = "GANSCAPES_CLIP_WEIGHTS"
RANDOM = "random"  # --clip-pretrained random: real architecture, random weights (tests, benchmarks)


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP to use. `weights` (a local file) wins over the `pretrained` tag."""

    model: str = DEFAULT_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    weights: Path | None = None
    seed: int = 0  # only for pretrained="random"

    @classmethod
    def from_options(cls, model: str, pretrained: str, weights: Path | None) -> ClipSpec:
        """The spec for command-line options, with `GANSCAPES_CLIP_WEIGHTS` as the fallback file."""
        if weights is None and os.environ.get(WEIGHTS_ENV):
            weights = Path(os.environ[WEIGHTS_ENV]).expanduser()
        return cls(model=model, pretrained=pretrained, weights=weights)

    def describe(self) -> str:
        """`ViT-B-32 (openai)`, `ViT-B-32 from FILE`: what a user asked for, in their words."""
        if self.weights is not None:
            return f"{self.model} from {self.weights}"
        return f"{self.model} ({'random weights' if self.pretrained == RANDOM else self.pretrained})"


class ClipEncoder:
    """A loaded CLIP model: images and texts in, unit-length float32 embeddings out."""

    def __init__(self, model: torch.nn.Module, preprocess, tokenizer, model_id: str, device: torch.device):
        self.model = model.eval().requires_grad_(False)
        self.preprocess = preprocess  # PIL image → normalised tensor, the model's own recipe
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.image_calls = 0  # encoder invocations, so callers (and tests) can see cache hits

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The normalisation in the model's preprocessing (for differentiable callers)."""
        for t in getattr(self.preprocess, "transforms", []):
            if hasattr(t, "mean") and hasattr(t, "std"):
                return tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std)
        return (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)

    def encode_images(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed images [N, 3, H, W] → unit embeddings [N, D] (float32, numpy)."""
        self.image_calls += 1
        with torch.inference_mode():
            features = self.model.encode_image(pixels.to(self.device))
        return _unit_rows(features.float().cpu().numpy())

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Texts → unit embeddings [N, D] (float32, numpy)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            features = self.model.encode_text(tokens)
        return _unit_rows(features.float().cpu().numpy())


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def load_clip(spec: ClipSpec = ClipSpec(), device: str | torch.device = "cpu") -> ClipEncoder:
    """Build the model of `spec` with its weights, its preprocessing and its tokenizer."""
    import open_clip

    from ganscapes.device import resolve_device

    dev = resolve_device(device)
    name = spec.model
    if name not in open_clip.list_models():
        known = ", ".join(m for m in ("ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50") if m in open_clip.list_models())
        raise UserError(
            f"open_clip does not know the model {name!r}; try one of {known} "
            f"(python -c 'import open_clip; print(open_clip.list_models())' lists all)."
        )
    tag_cfg = {}
    if spec.weights is None and spec.pretrained != RANDOM:
        tag_cfg = open_clip.get_pretrained_cfg(name, spec.pretrained)
        if not tag_cfg:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
            raise UserError(
                f"open_clip has no pretrained weights {spec.pretrained!r} for {name}; its tags are: {tags}."
            )
    elif spec.weights is not None and spec.pretrained != RANDOM:
        # The tag still says how the file was trained (QuickGELU, preprocessing).
        tag_cfg = open_clip.get_pretrained_cfg(name, spec.pretrained)

    # A weights file is loaded as a path, so the tag's settings (QuickGELU for OpenAI's
    # weights, its own mean/std) are passed explicitly, as a download would apply them.
    kwargs = {"force_quick_gelu": bool(tag_cfg.get("quick_gelu", False)), "device": dev}
    for key in ("mean", "std", "interpolation", "resize_mode"):
        if key in tag_cfg:
            kwargs[f"image_{key}"] = tag_cfg[key]
    if spec.pretrained == RANDOM and spec.weights is None:
        torch.manual_seed(spec.seed)
        model, _, preprocess = _create(open_clip, name, None, kwargs)
        model_id = f"{name}/random-{spec.seed}"
    elif spec.weights is not None:
        path = Path(spec.weights)
        if not path.is_file():
            raise UserError(f"The CLIP weights file {path} does not exist (from --clip-weights or {WEIGHTS_ENV}).")
        model, _, preprocess = _create(open_clip, name, str(path), kwargs, weights_file=path)
        model_id = f"{name}/sha256-{file_digest(path)[:16]}"
    else:
        cached = cached_weights_file(name, spec.pretrained, tag_cfg)
        if cached is None and not _online():
            raise UserError(
                f"The CLIP weights for {name} ({spec.pretrained}) are not on this machine and it is offline: "
                f"download {weights_hint(name, spec.pretrained)} elsewhere and pass it with --clip-weights PATH "
                f"(or set {WEIGHTS_ENV})."
            )
        # A cached file is loaded directly: asking the hub first would wait on the network.
        model, _, preprocess = _create(open_clip, name, str(cached) if cached else spec.pretrained, kwargs)
        model_id = f"{name}/{spec.pretrained}"
    tokenizer = open_clip.get_tokenizer(name)
    return ClipEncoder(model, preprocess, tokenizer, model_id, dev)


def _create(open_clip, name: str, pretrained: str | None, kwargs: dict, weights_file: Path | None = None):
    import logging

    from safetensors import SafetensorError

    root = logging.getLogger()
    level = root.level
    if pretrained is None:  # random weights on purpose: open_clip's warning about it is noise
        root.setLevel(logging.ERROR)
    try:
        return open_clip.create_model_and_transforms(name, pretrained=pretrained, **kwargs)
    except Exception as e:
        if weights_file is not None:
            # The user's file: whatever safetensors or torch.load raise on damaged bytes
            # (SafetensorError, UnpicklingError, IndexError…), it is the file that is wrong.
            raise UserError(
                f"{weights_file} is not a usable set of {name} CLIP weights ({first_line(e, 160)})."
            ) from None
        known = (RuntimeError, ValueError, KeyError, OSError, EOFError, SafetensorError, pickle.UnpicklingError)
        if not isinstance(e, known):
            raise
        raise UserError(f"Could not load the CLIP model {name} ({pretrained}): {first_line(e, 160)}.") from None
    finally:
        root.setLevel(level)


def weights_hint(name: str, pretrained: str) -> str:
    """Where to get the weights for a tag by hand, for offline machines."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/").split("/")
        repo_id = "/".join(repo[:2])
        return f"open_clip_model.safetensors from https://huggingface.co/{repo_id}"
    if cfg.get("url"):
        return cfg["url"]
    return f"the {name} ({pretrained}) weights"


def cached_weights_file(name: str, pretrained: str, tag_cfg: dict | None = None) -> Path | None:
    """The file open_clip's download of (name, pretrained) left in its caches, if any."""
    import open_clip

    cfg = tag_cfg if tag_cfg is not None else open_clip.get_pretrained_cfg(name, pretrained)
    if cfg.get("file"):
        return Path(cfg["file"]) if Path(cfg["file"]).is_file() else None
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        repo_id, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        for fname in [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            hit = try_to_load_from_cache(repo_id=repo_id, filename=fname)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    url = cfg.get("url", "")
    if url:
        path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if path.is_file():
            return path
    return None


def _online(host: str = "huggingface.co") -> bool:
    """A quick DNS check; open_clip's own download retries for about a minute when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def file_digest(path: Path) -> str:
    """sha256 of a file, read in blocks (weights files are hundreds of megabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
