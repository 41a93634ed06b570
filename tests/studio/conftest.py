"""Fixtures of the studio tests: a tiny 32² model on disk, and one torch thread.

The tiny model (`helpers_models.tiny_model`, 32²: num_ws 8, aspect 1.27 in its metadata)
paints in milliseconds, so every action of the studio runs for real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganscapes.gan.checkpoint import save_model

from helpers_models import tiny_model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: as fast for these tiny networks, and no stalls of OpenMP threads
    waiting for each other when other processes (a studio server, Chromium) share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("studio-model") / "tiny.safetensors"
    save_model(path, tiny_model(res=32, seed=0))
    return path


@pytest.fixture(scope="module")
def server(model_file, tmp_path_factory):
    """`ganscapes studio` in a subprocess over the tiny model (helpers_browser.studio_server), for a browser test."""
    import importlib.util

    from helpers_browser import CHROMIUM, ServerFailed, studio_server

    if importlib.util.find_spec("gradio") is None:
        pytest.skip("Gradio is not installed (pip install 'ganscapes[studio]'), so the studio cannot run")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright is not installed (pip install playwright)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser test")
    try:
        with studio_server(model_file, tmp_path_factory.mktemp("studio-server")) as running:
            yield running
    except ServerFailed as e:
        pytest.fail(str(e))
