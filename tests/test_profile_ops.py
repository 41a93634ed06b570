"""benchmarks/profile_ops.py counts each convolution's arithmetic from the profiler's shapes.

The per-shape table is what says which convolutions run below this CPU's peak, so its FLOP
counts must agree with PyTorch's own counter, double backward (R1, path length) included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import profile_ops  # noqa: E402

LAYERS = {
    "3×3": lambda x, w: F.conv2d(x, w, padding=1),
    "3×3 stride 2": lambda x, w: F.conv2d(x, w, stride=2),
    "3×3 transposed stride 2": lambda x, w: F.conv_transpose2d(x, w, stride=2),
}


@pytest.mark.parametrize("double_backward", [False, True])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_conv_flops_from_shapes_match_pytorchs_counter(layer, double_backward):
    x = torch.randn(2, 8, 12, 12).to(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(8, 8, 3, 3).to(memory_format=torch.channels_last).requires_grad_()

    def step():
        y = LAYERS[layer](x, w)
        if double_backward:
            (g,) = torch.autograd.grad(y.square().sum(), [x], create_graph=True)
            g.square().sum().backward()
        else:
            y.backward(torch.ones_like(y))

    with FlopCounterMode(display=False) as counter:
        step()
    expected = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "conv" in str(k)) / 1e9
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
    total, *rows = profile_ops.conv_calls(prof, units=1)
    assert expected > 0 and total["gflop"] == pytest.approx(expected, rel=1e-3)
    assert rows and all(r["seconds"] >= 0 and r["calls"] >= 1 for r in rows)
    assert any(r["call"].startswith("backward 3×3") for r in rows)
