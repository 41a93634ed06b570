"""Options and helpers that several commands share."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer


class NoiseMode(str, Enum):
    CONST = "const"
    RANDOM = "random"
    NONE = "none"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


# ---------------------------------------------------------------------------------------
# --model: generate, mix, guide, post, reproduce, metrics, studio

MODEL_HELP = "A model file (ganscapes .safetensors or NVIDIA .pkl), or a training run's folder (its best snapshot)."


def model_file(given: Path) -> Path:
    """The file `--model` stands for (`ganscapes.gan.model_ref`); a run folder's pick is said on stderr."""
    from ganscapes.gan.model_ref import resolve_model

    choice = resolve_model(given)
    if choice.why is not None:
        typer.echo(f"model: {choice.describe()}", err=True)
    return choice.path


# ---------------------------------------------------------------------------------------
# CLIP: curate, rank (and generate --prompt)
#
# The same CLIP options on every command that scores images; OptionInfo objects can be
# shared between commands because Typer only reads them.

DEVICE = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU.")
CLIP_MODEL = typer.Option("ViT-B-32", "--clip-model", help="open_clip architecture.")
CLIP_PRETRAINED = typer.Option(
    "openai", "--clip-pretrained", help="open_clip pretrained tag ('random': random weights, for tests)."
)
CLIP_WEIGHTS = typer.Option(
    None,
    "--clip-weights",
    help="Local CLIP weights file (for offline machines).",
    show_default="$GANSCAPES_CLIP_WEIGHTS",
)
CLIP_CACHE = typer.Option(
    None, "--cache", help="Folder for the embedding cache.", show_default="$GANSCAPES_CACHE or ~/.cache/ganscapes"
)
CLIP_BATCH = typer.Option(32, "--clip-batch", help="Images per CLIP forward pass.")
CLIP_WORKERS = typer.Option(
    None, "--workers", help="Image-decoding processes beside the encoder.", show_default="cores - 1, at most 4"
)
NEGATIVE = typer.Option([], "--negative", help="Phrase to score against (repeat for several).", show_default="none")
TEMPLATE = typer.Option(
    [],
    "--template",
    help="Template such as 'a painting of {}', averaged over (repeat).",
    show_default="phrase as written",
)


def load_clip(model: str, pretrained: str, weights: Path | None, device):
    """The encoder for a command's CLIP options, saying so first: building it takes seconds."""
    from ganscapes.clip import encoder as clip_encoder  # looked up at call time: one seam to replace CLIP

    spec = clip_encoder.ClipSpec.from_options(model, pretrained, weights)
    typer.echo(f"loading CLIP {spec.describe()} …", err=True)
    return clip_encoder.load_clip(spec, device=device)


def clip_tools(model: str, pretrained: str, weights: Path | None, cache: Path | None, device: str):
    """The encoder and its embedding cache for a command's CLIP options."""
    from ganscapes.clip.cache import EmbeddingCache

    encoder = load_clip(model, pretrained, weights, device)
    return encoder, EmbeddingCache(cache, encoder.model_id)


def make_prompt(phrases: list[str], negatives: list[str], templates: list[str]):
    from ganscapes.clip.prompts import Prompt

    return Prompt(tuple(phrases), tuple(negatives), tuple(templates))


def echo_top(ranking, top: int, root: Path) -> None:
    from ganscapes.clip.rank import display_name

    for k in range(top):
        typer.echo(f"{k + 1:4d}  {ranking.scores[k]:+.4f}  {display_name(ranking.refs[k], root)}")


def post_outputs(images: list[Path], out: Path, model_aspect: float | None = None) -> None:
    """`--post` on generate, rank and mix: the default finishing, into `out`."""
    from ganscapes.make.post import PostSettings, post_files

    result = post_files(images, out, PostSettings(), model_aspect=model_aspect)
    aspect, origin = result.aspects[0]
    note = " (no aspect recorded; 1.0)" if origin == "none" else ""
    typer.echo(f"Post-processed {len(result.outputs)} picture(s) into {out} at aspect {aspect:.3f}{note}.")


def print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")
