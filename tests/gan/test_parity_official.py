"""Our training loop against NVIDIA's, when a checkout of NVlabs/stylegan2-ada-pytorch is at hand.

Set GANSCAPES_OFFICIAL to the checkout (commit d72cc7d, with scipy installed) to run it;
CI has none and skips. The full comparison is `benchmarks/parity_official.py`.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path

import pytest

OFFICIAL = os.environ.get("GANSCAPES_OFFICIAL")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (OFFICIAL and (Path(OFFICIAL) / "training" / "training_loop.py").is_file()),
        reason="set GANSCAPES_OFFICIAL to a checkout of NVlabs/stylegan2-ada-pytorch to compare with NVIDIA's loop",
    ),
]


def test_one_iteration_from_the_same_state_matches_nvidia(tmp_path):
    pytest.importorskip("scipy", reason="NVIDIA's augment.py imports scipy")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples

    import parity_official

    make_samples(tmp_path / "raw", n=64, seed=1, min_side=32, max_side=64, progress=False)
    data = tmp_path / "data.zip"
    prepare_dataset(tmp_path / "raw", data, PrepareConfig(res=32, workers=1), log=lambda _: None, progress=False)
    args = Namespace(official=OFFICIAL, iters=6, batch=8, batch_gpu=None, seed=0, aug="ada", p=0.0, device="cpu")
    report = parity_official.lockstep(args, tmp_path / "lockstep", data)
    assert report["one_iteration"]["global_rel_all"] <= 1e-5
    assert report["one_iteration"]["p_equal_all"] and report["free"]["p_equal_all"]
    assert report["free"]["global_rel_first_16"] <= 1e-3  # six iterations: before chaos takes over
