"""ws → pixels: the one way ganscapes paints, so that any picture can be painted again.

generate, mix, guide, reproduce and the studio all paint through `paint`, which gives
every network call the same row grouping (ROW_GROUP) and seeds random noise the same
way. A w painted here therefore gives the pixels generate wrote for it, and a recipe
rebuilt by reproduce matches its picture bit for bit on the device that made it.

`synthesize` is the single network call underneath, in float and with gradients when
asked: guided search scores and differentiates pictures that are never written.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ganscapes.cpu_heap import keep_freed_memory
from ganscapes.device import synthesis_options
from ganscapes.gan.ops import to_uint8

NOISE_MODES = ("const", "random", "none")
# Matrix-multiply libraries pick their kernels, and so the order of additions, by the
# number of rows: on CPU a 1-row product (and a 1-image transposed convolution) differs
# from a batched one in the last bits, and a few pixels then round the other way. Every
# network call therefore gets a multiple of ROW_GROUP rows (padded with copies, which are
# thrown away), so that with const noise the pictures do not depend on --batch. Measured
# with MKL and oneDNN on x86 CPUs; GPU libraries give no such promise.
ROW_GROUP = 4
# The most pictures one network call paints (generate's --batch). A picture painted with
# random noise can only be rebuilt by redrawing the noise of its whole call, so its recipe
# records the call's rows; bounding them bounds what reproducing a recipe can allocate.
MAX_BATCH = 256


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x with copies of its last row appended up to `rows` rows."""
    if x.shape[0] >= rows:
        return x
    return torch.cat([x, x[-1:].expand(rows - x.shape[0], *x.shape[1:])])


def device_of(G: torch.nn.Module) -> torch.device:
    """The device a generator's tensors are on (where its inputs must go)."""
    for t in itertools.chain(G.parameters(), G.buffers()):
        return t.device
    return torch.device("cpu")


def synthesize(synthesis, ws: torch.Tensor, noise_mode: str = "const", noise_seed: int | None = None) -> torch.Tensor:
    """One call of the synthesis network on ws [N, num_ws, w_dim] (on its device) → float images.

    `synthesis` is `G.synthesis` or a compiled form of it. Random noise comes from torch's
    global generator; with `noise_seed` it is seeded from that number, without disturbing
    the caller's random state (on CPU and CUDA), so that the call can be repeated.
    """
    options = synthesis_options(ws.device)
    if ws.device.type == "cpu":
        keep_freed_memory()  # every call allocates the same large activations: reuse them (cpu_heap.py)
    if noise_mode != "random" or noise_seed is None:
        return synthesis(ws, noise_mode=noise_mode, **options)
    dev = ws.device
    if dev.type in ("cpu", "cuda"):
        devices = [] if dev.type == "cpu" else [dev.index if dev.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(noise_seed)
            return synthesis(ws, noise_mode=noise_mode, **options)
    torch.manual_seed(noise_seed)  # MPS: fork_rng has no MPS support
    return synthesis(ws, noise_mode=noise_mode, **options)


def to_pixels(img: torch.Tensor) -> np.ndarray:
    """Network output [N, C, H, W] → uint8 pixels [N, H, W, C] (the official rounding)."""
    return to_uint8(img.detach()).permute(0, 2, 3, 1).cpu().numpy()


def paint(
    G,
    ws: np.ndarray | torch.Tensor,
    noise_mode: str = "const",
    batch: int = 8,
    *,
    noise_seed: int = 0,
    synthesis=None,
    pad_to: int | None = None,
) -> np.ndarray:
    """Paint ws [N, num_ws, w_dim] with generator G → uint8 pixels [N, H, W, C].

    The ws go through the network `batch` at a time, each call padded with copies of its
    last row to a multiple of ROW_GROUP (or to `pad_to` rows: a compiled network wants one
    fixed shape). With random noise, every call draws its noise from a generator seeded
    with `noise_seed`. `synthesis` replaces G.synthesis (a compiled form of it).
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    dev = device_of(G)
    run = synthesis or G.synthesis
    out = []
    # torch.compile's guards trip over inference-mode tensors (PyTorch 2.x), so a compiled
    # network runs under no_grad, which computes the same.
    with torch.no_grad() if synthesis is not None else torch.inference_mode():
        for i in range(0, len(ws), batch):
            chunk = ws[i : i + batch]
            if isinstance(chunk, torch.Tensor):
                chunk = chunk.detach().to(torch.float32)
            else:
                chunk = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
            rows = pad_to if pad_to is not None else round_up(len(chunk), ROW_GROUP)
            img = synthesize(run, pad_rows(chunk, rows).to(dev), noise_mode, noise_seed)
            out.append(to_pixels(img[: len(chunk)]))
    if out:
        return np.concatenate(out)
    return np.zeros([0, G.img_resolution, G.img_resolution, G.img_channels], np.uint8)
