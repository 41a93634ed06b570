"""generate: seeds → z → w → pictures, with truncation ψ, as NVIDIA's `generate.py` does.

A seed names the same z as the official tool: `RandomState(seed).randn(1, z_dim)` in
float64, cast to float32 only as it enters the network. So a seed gives the same picture
here as there, for the same snapshot (up to floating-point differences between devices).

Each picture is written as `seed{seed:04d}.png`, and one `latents.npz` beside them keeps
what later stages need to come back to a picture without the seed: the seeds, z, and the
truncated ws that were actually fed to the synthesis network.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganscapes.device import DEVICES, resolve_device  # noqa: F401 (re-exported)
from ganscapes.errors import UserError, first_line
from ganscapes.fileio import atomic_path
from ganscapes.gan.device import synthesis_options  # noqa: F401 (re-exported)
from ganscapes.gan.ops import to_uint8  # noqa: F401 (re-exported for callers of generate)
from ganscapes.provenance import write_png

MAX_SEED = 2**32 - 1  # what numpy's RandomState accepts
MAX_SEEDS = 1_000_000  # per run; a typo such as 0-99999999 should not fill the disk
NOISE_MODES = ("const", "random", "none")

PSI_RANGE = (-1.0, 2.0)  # outside it, pictures are usually broken
LATENTS_FILE = "latents.npz"
# Matrix-multiply libraries pick their kernels, and so the order of additions, by the
# number of rows: on CPU a 1-row product (and a 1-image transposed convolution) differs
# from a batched one in the last bits, and a few pixels then round the other way. Every
# network call therefore gets a multiple of ROW_GROUP rows (padded with copies, which are
# thrown away), so that with const noise the pictures do not depend on --batch. Measured
# with MKL and oneDNN on x86 CPUs; GPU libraries give no such promise.
ROW_GROUP = 4


# ---------------------------------------------------------------------------------------
# Seeds, z, pixels


def parse_seeds(text: str) -> list[int]:
    """`"0-99,200,300-310"` → the seeds, in order, ranges inclusive, duplicates dropped."""
    example = "use numbers and inclusive ranges such as 0-99,200"
    if not text or not text.strip():
        raise UserError(f"The seed list is empty; {example}.")
    seeds: dict[int, None] = {}  # an ordered set
    for part in text.split(","):
        token = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", token)
        if m is None:
            if re.fullmatch(r"-\s*\d+(\s*-\s*-?\s*\d+)?|\d+\s*-\s*-\s*\d+", token):
                raise UserError(f"Seeds cannot be negative ({token!r} in {text!r}).")
            raise UserError(f"Cannot read {token!r} in the seed list {text!r}; {example}.")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        for value in (first, last):
            if value > MAX_SEED:
                raise UserError(f"Seeds must be at most {MAX_SEED} (2**32 - 1), not {value}.")
        if last < first:
            raise UserError(f"The seed range {token!r} runs backwards; write {last}-{first}.")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise UserError(f"The seed list {text!r} names more than {MAX_SEEDS:,} seeds; generate in smaller runs.")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent z [1, z_dim] (float64) that NVIDIA's generate.py uses for `seed`."""
    return np.random.RandomState(seed).randn(1, z_dim)


def class_label(c_dim: int, class_idx: int | None, n: int = 1) -> torch.Tensor:
    """The label input [n, c_dim]: one-hot for `class_idx`, or [n, 0] for unconditional models."""
    if c_dim == 0:
        if class_idx is not None:
            raise UserError(f"--class {class_idx} was given, but this model is unconditional (it has no classes).")
        return torch.zeros([n, 0])
    if class_idx is None:
        raise UserError(f"This model is conditional on {c_dim} classes; choose one with --class 0 to {c_dim - 1}.")
    if not 0 <= class_idx < c_dim:
        raise UserError(f"--class {class_idx} is out of range; this model has classes 0 to {c_dim - 1}.")
    c = torch.zeros([n, c_dim])
    c[:, class_idx] = 1
    return c


# ---------------------------------------------------------------------------------------
# generate


@dataclass
class GenerateResult:
    out: Path
    images: list[Path]  # in the order of `seeds`
    latents: Path
    seeds: list[int]
    device: str
    compiled: bool  # whether torch.compile ended up in use
    seconds: float


def generate_images(
    model,
    seeds: Iterable[int] | str,
    psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    class_idx: int | None = None,
    batch: int = 8,
    device: str | torch.device = "cpu",
    *,
    out: str | Path,
    progress: bool = True,
    compile: bool = False,
    log: Callable[[str], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> GenerateResult:
    """Write one picture per seed into `out`, and `latents.npz` beside them.

    `model` is a `checkpoint.Model` (its G_ema is moved to `device`) or the path of a
    model file (ours or an official pickle). ψ and `truncation_cutoff` act as in the official tool (cutoff None: all
    layers). On anything but CUDA the networks run in float32 (`force_fp32`). With
    `noise_mode="const"` the pictures do not depend on `batch`; with "random" the noise is
    drawn from a generator seeded by each batch's first seed, so a run is repeatable for
    the same `batch`.
    """
    from ganscapes.gan.checkpoint import Model, load_model

    start = time.perf_counter()
    log = log or _stderr
    if isinstance(seeds, str):
        seeds = parse_seeds(seeds)
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise UserError("No seeds to generate.")
    for s in seeds:
        if not 0 <= s <= MAX_SEED:
            raise UserError(f"Seeds must be from 0 to {MAX_SEED}, not {s}.")
    if noise_mode not in NOISE_MODES:
        raise UserError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}.")
    if batch < 1:
        raise UserError(f"--batch must be at least 1, not {batch}.")
    psi = float(psi)
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        log(f"ganscapes: warning: psi {psi:g} is outside [{PSI_RANGE[0]:g}, {PSI_RANGE[1]:g}]; expect broken pictures.")

    dev = resolve_device(device)
    if not isinstance(model, Model):
        model = load_model(model, device=dev)
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    if truncation_cutoff is not None and not 0 <= truncation_cutoff <= G.num_ws:
        raise UserError(f"--trunc-cutoff must be from 0 to {G.num_ws} (the model's num_ws), not {truncation_cutoff}.")
    label = class_label(G.c_dim, class_idx).to(dev)
    run_kwargs = synthesis_options(dev)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)

    synthesis = G.synthesis
    compiled = False
    if compile:
        synthesis, compiled = _compile(G.synthesis, log)

    common = generate_recipe(model, psi, truncation_cutoff, noise_mode, class_idx, dev)
    z_all = np.concatenate([seed_to_z(s, G.z_dim) for s in seeds]) if G.z_dim else np.zeros([len(seeds), 0])
    w_all = np.zeros([len(seeds), G.num_ws, G.w_dim], dtype=np.float32)
    paths = [out / f"seed{s:04d}.png" for s in seeds]
    from tqdm import tqdm

    bar = tqdm(total=len(seeds), desc="generating", unit="img", disable=not progress)
    writers = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    pending = []
    try:
        # torch.compile's guards trip over inference-mode tensors (PyTorch 2.x), so a
        # compiled run uses no_grad, which computes the same.
        with torch.no_grad() if compiled else torch.inference_mode():
            for i in range(0, len(seeds), batch):
                j = min(i + batch, len(seeds))
                n = j - i
                # Pad to a multiple of ROW_GROUP rows (compiled: to one fixed shape); see ROW_GROUP.
                rows = _round_up(batch if compiled else n, ROW_GROUP)
                # float64 → float32 on the CPU (as exact as anywhere; MPS has no float64)
                z = _pad_rows(torch.from_numpy(z_all[i:j]), rows).to(torch.float32).to(dev)
                ws = G.mapping(z, label.expand(rows, -1), truncation_psi=psi, truncation_cutoff=truncation_cutoff)
                w_all[i:j] = ws[:n].cpu().numpy()
                try:
                    img = _synthesize(synthesis, ws, noise_mode, run_kwargs, seeds[i], dev)
                except Exception as e:
                    if not compiled:
                        raise
                    log(f"ganscapes: warning: torch.compile failed ({first_line(e)}); running without it.")
                    synthesis, compiled = G.synthesis, False
                    img = _synthesize(synthesis, ws, noise_mode, run_kwargs, seeds[i], dev)
                pixels = to_uint8(img[:n]).permute(0, 2, 3, 1).cpu().numpy()
                for k in range(n):
                    recipe = {**common, "seed": seeds[i + k]}
                    if noise_mode == "random":  # what reproduce needs to draw the same noise
                        recipe.update(noise_seed=seeds[i], batch_rows=rows, row=k)
                    pending.append(writers.submit(write_png, paths[i + k], pixels[k], recipe))
                pending = _reap(pending, bar, keep=max(2 * batch, 16))
                if on_batch is not None:  # (pictures painted so far, all of them), e.g. for a web page's bar
                    on_batch(j, len(seeds))
        pending = _reap(pending, bar, wait=True)
    finally:
        writers.shutdown(wait=True, cancel_futures=True)
        bar.close()

    latents = out / LATENTS_FILE
    save_npz(
        latents,
        seeds=np.asarray(seeds, dtype=np.int64),
        z=z_all.astype(np.float64),
        w=w_all,
        psi=np.float64(psi),
        truncation_cutoff=np.int64(-1 if truncation_cutoff is None else truncation_cutoff),
        noise_mode=np.str_(noise_mode),
        class_idx=np.int64(-1 if class_idx is None else class_idx),
        model_hash=np.str_(model.model_hash),
    )
    return GenerateResult(
        out=out,
        images=paths,
        latents=latents,
        seeds=seeds,
        device=str(dev),
        compiled=compiled,
        seconds=time.perf_counter() - start,
    )


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x with copies of its last row appended up to `rows` rows."""
    if x.shape[0] >= rows:
        return x
    return torch.cat([x, x[-1:].expand(rows - x.shape[0], *x.shape[1:])])


def _synthesize(synthesis, ws, noise_mode: str, run_kwargs: dict, seed: int, dev: torch.device) -> torch.Tensor:
    if noise_mode != "random":
        return synthesis(ws, noise_mode=noise_mode, **run_kwargs)
    # Random noise comes from the global generator; seed it from the batch, without
    # disturbing the caller's random state, so that a run can be repeated.
    if dev.type in ("cpu", "cuda"):
        devices = [] if dev.type == "cpu" else [dev.index if dev.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return synthesis(ws, noise_mode=noise_mode, **run_kwargs)
    torch.manual_seed(seed)
    return synthesis(ws, noise_mode=noise_mode, **run_kwargs)


def _compile(synthesis, log: Callable[[str], None]):
    try:
        return torch.compile(synthesis), True
    except Exception as e:  # compile itself is lazy; failures usually surface on the first call
        log(f"ganscapes: warning: torch.compile is not available ({first_line(e)}); running without it.")
        return synthesis, False


def _reap(pending: list, bar, wait: bool = False, keep: int = 64) -> list:
    """Collect finished PNG writes (re-raising their errors) and return the rest; waits
    for the oldest while more than `keep` are queued, so pictures cannot pile up in memory
    when the network outpaces the PNG encoder."""
    left = []
    for f in pending:
        if wait or f.done():
            f.result()
            bar.update(1)
        else:
            left.append(f)
    while len(left) > keep:
        left.pop(0).result()
        bar.update(1)
    return left


def generate_recipe(model, psi: float, cutoff: int | None, noise_mode: str, class_idx: int | None, dev) -> dict:
    """The recipe fields every picture of a run shares (the seed is added per picture)."""
    return {
        "kind": "generate",
        "model_hash": model.model_hash,
        "psi": psi,
        "truncation_cutoff": cutoff,
        "noise_mode": noise_mode,
        "class_idx": class_idx,
        "device": str(dev),
        "aspect": model.meta.get("aspect"),  # the training data's, for post --aspect auto
    }


def save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _stderr(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)  # print would tear a progress bar
