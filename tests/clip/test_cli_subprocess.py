"""The CLIP commands as a user runs them: a separate process, real weight loading.

The other CLI tests hand the session's model to the command to save seconds; these two
go through `load_clip` for real — a weights file passed with --clip-weights, and an
offline machine with no weights at all.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from ganscapes.clip.embed import ImageRef, embed_images
from ganscapes.clip.prompts import Prompt, prompt_embeddings, scores

pytestmark = pytest.mark.slow  # whole commands in subprocesses


def ganscapes(*args, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8", **(env_extra or {})}
    env.pop("GANSCAPES_CLIP_WEIGHTS", None)
    return subprocess.run(
        [sys.executable, "-m", "ganscapes", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_rank_with_a_weights_file_matches_the_library(tmp_path, make_images, clip_weights_file, random_clip):
    paths = make_images(tmp_path / "pics", 5)
    proc = ganscapes(
        "rank",
        tmp_path / "pics",
        "--prompt",
        "autumn woods",
        "--top",
        "2",
        "--clip-weights",
        clip_weights_file,
        "--clip-pretrained",
        "random",
        "--cache",
        tmp_path / "cache",
        "--workers",
        "0",
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "pics" / "ranked" / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # The same file's weights in this process give the same order and scores.
    emb = embed_images([ImageRef(p) for p in paths], random_clip, progress=False, workers=0)
    pos, neg = prompt_embeddings(random_clip, Prompt(("autumn woods",)))
    expected = scores(emb.embeddings, pos, neg)
    order = np.argsort(-expected, kind="stable")
    assert [r["path"] for r in rows] == [paths[i].name for i in order]
    assert np.allclose([float(r["score"]) for r in rows], expected[order], atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "pics" / "ranked" / "top").iterdir()) == [
        f"001-{paths[order[0]].name}",
        f"002-{paths[order[1]].name}",
    ]


def test_offline_without_weights_is_one_sentence(tmp_path, make_images):
    make_images(tmp_path / "pics", 2)
    proc = ganscapes(
        "rank",
        tmp_path / "pics",
        "--prompt",
        "autumn woods",
        "--top",
        "1",
        "--cache",
        tmp_path / "cache",
        env_extra={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, proc.stderr
    assert lines[0] == "loading CLIP ViT-B-32 (openai) …"
    assert lines[1].startswith("ganscapes: error: The CLIP weights for ViT-B-32 (openai) are not on this machine")
    assert "--clip-weights" in lines[1] and "open_clip_model.safetensors" in lines[1]
    assert not (tmp_path / "pics" / "ranked").exists()
