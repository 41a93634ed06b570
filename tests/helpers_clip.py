"""Running the CLIP commands in-process, with the session's random-weights CLIP.

Loading ViT-B-32 takes seconds, so the CLI tests call `ganscapes.cli.main` in this process
(as a user's shell would call the console script) and let `load_clip` hand back the
already-loaded `random_clip` fixture, after checking that the command asked for exactly
what `--clip-pretrained random` means. Everything else (option parsing, the embedding
cache, the error path of `main`) is the real code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import ganscapes.clip.encoder as encoder_mod
from ganscapes import cli
from ganscapes.clip.cache import CACHE_ENV
from ganscapes.clip.encoder import RANDOM, WEIGHTS_ENV, ClipSpec

RANDOM_CLIP = ("--clip-pretrained", RANDOM)


def use_random_clip(monkeypatch, random_clip, cache_dir: Path) -> list[ClipSpec]:
    """Make `load_clip` return `random_clip` for `--clip-pretrained random`; returns the specs asked for."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(cache_dir))
    asked: list[ClipSpec] = []

    def load(spec: ClipSpec, device="cpu"):
        asked.append(spec)
        assert spec == ClipSpec(model="ViT-B-32", pretrained=RANDOM, weights=None), spec
        return random_clip

    monkeypatch.setattr(encoder_mod, "load_clip", load)
    return asked


def run_cli(monkeypatch, *args: str) -> int:
    """`ganscapes ARGS…` in this process; returns the exit status."""
    monkeypatch.setattr(sys, "argv", ["ganscapes", *map(str, args)])
    try:
        cli.main()
    except SystemExit as e:
        return 0 if e.code is None else e.code
    return 0


def stderr_lines(err: str) -> list[str]:
    """stderr split into lines, progress-bar redraws (\\r) included, blanks dropped."""
    return [line for line in re.split(r"[\r\n]+", err) if line.strip()]


LOADING_RANDOM_CLIP = "loading CLIP ViT-B-32 (random weights) …"  # what a command says before loading CLIP


def assert_error(err: str, message: str, *, alone: bool = True) -> None:
    """stderr ends with the one-line `ganscapes: error: MESSAGE` and holds no traceback.

    `alone`: nothing else at all was written (the error came before any work started).
    """
    assert "Traceback" not in err, err
    assert err.endswith("\n"), err
    lines = stderr_lines(err)
    assert lines, err
    assert lines[-1] == f"ganscapes: error: {message}", err
    assert sum(line.startswith("ganscapes: error:") for line in lines) == 1, err
    if alone:
        assert len(lines) == 1, err


def go_offline(monkeypatch, root: Path) -> None:
    """What a fresh offline machine sees: no CLIP weights anywhere, no Hugging Face downloads, empty caches."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(root / "hf"))
    monkeypatch.setenv(CACHE_ENV, str(root / "cache"))
