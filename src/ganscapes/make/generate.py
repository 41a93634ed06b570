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
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganscapes.device import DEVICES, resolve_device, synthesis_options  # noqa: F401 (re-exported)
from ganscapes.errors import SettingError, UserError, first_line
from ganscapes.fileio import writable_folder
from ganscapes.gan.checkpoint import Model, load_model
from ganscapes.gan.ops import to_uint8  # noqa: F401 (re-exported for callers of generate)
from ganscapes.make.directions import apply_edits, check_edits
from ganscapes.make.latents import LATENTS_FILE, LatentSet
from ganscapes.make.paint import MAX_BATCH, NOISE_MODES, ROW_GROUP, paint, round_up
from ganscapes.make.recipes import Edit, GenerateRecipe, Noise
from ganscapes.make.seeds import (  # noqa: F401 (PSI_RANGE re-exported)
    MAX_SEED,
    PSI_RANGE,
    check_psi,
    check_truncation_cutoff,
    class_label,
    map_z,
    parse_seeds,
    seeds_to_z,
)
from ganscapes.provenance import write_png

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
    edits: list[Edit] | None = None,
) -> GenerateResult:
    """Write one picture per seed into `out`, and `latents.npz` beside them.

    `model` is a `checkpoint.Model` (its G_ema is moved to `device`) or the path of a
    model file (ours or an official pickle). ψ and `truncation_cutoff` act as in the official tool (cutoff None: all
    layers). On anything but CUDA the networks run in float32 (`force_fp32`). With
    `noise_mode="const"` the pictures do not depend on `batch`; with "random" the noise is
    drawn from a generator seeded by each batch's first seed, so a run is repeatable for
    the same `batch`. `edits` (`make.directions.edits_from`) move every truncated w along
    semantic directions before it is painted, and go into each picture's recipe.
    """

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
        raise SettingError("noise_mode", f"must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}.")
    if batch < 1:
        raise SettingError("batch", f"must be at least 1, not {batch}.")
    if batch > MAX_BATCH:
        raise SettingError("batch", f"must be at most {MAX_BATCH}, not {batch}.")
    psi = check_psi(psi)
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        log(f"ganscapes: warning: psi {psi:g} is outside [{PSI_RANGE[0]:g}, {PSI_RANGE[1]:g}]; expect broken pictures.")

    dev = resolve_device(device)
    if not isinstance(model, Model):
        model = load_model(model, device=dev, generator_only=True)
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    check_truncation_cutoff(truncation_cutoff, G.num_ws)
    class_label(G.c_dim, class_idx)  # refuses a missing or wrong class before anything is written
    check_edits(edits, G)

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingError("out", f"{out} exists and is not a folder.")
    writable_folder(out)

    synthesis = G.synthesis
    compiled = False
    if compile:
        synthesis, compiled = _compile(G.synthesis, log)

    z_all = seeds_to_z(seeds, G.z_dim)
    w_all = np.zeros([len(seeds), G.num_ws, G.w_dim], dtype=np.float32)
    paths = [out / f"seed{s:04d}.png" for s in seeds]

    bar = tqdm(total=len(seeds), desc="generating", unit="img", disable=not progress)
    writers = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    pending = []
    try:
        for i in range(0, len(seeds), batch):
            j = min(i + batch, len(seeds))
            n = j - i
            # Mapping and synthesis calls of the same rows (compiled: one fixed shape); see ROW_GROUP.
            rows = round_up(batch if compiled else n, ROW_GROUP)
            w_all[i:j] = apply_edits(map_z(G, z_all[i:j], psi, truncation_cutoff, class_idx, dev, pad_to=rows), edits)
            # Random noise is seeded by the batch's first seed, so that a run can be repeated.
            how = {"noise_seed": seeds[i], "pad_to": rows}
            try:
                pixels = paint(G, w_all[i:j], noise_mode, n, synthesis=synthesis if compiled else None, **how)
            except Exception as e:
                if not compiled:
                    raise
                log(f"ganscapes: warning: torch.compile failed ({first_line(e)}); running without it.")
                synthesis, compiled = G.synthesis, False
                pixels = paint(G, w_all[i:j], noise_mode, n, **how)
            for k in range(n):
                recipe = GenerateRecipe(
                    model_hash=model.model_hash,
                    seed=seeds[i + k],
                    psi=psi,
                    truncation_cutoff=truncation_cutoff,
                    class_idx=class_idx,
                    noise_mode=noise_mode,
                    device=str(dev),
                    aspect=model.meta.get("aspect"),  # the training data's, for post --aspect auto
                    # what reproduce needs to draw the same noise
                    noise=Noise(seeds[i], rows, k) if noise_mode == "random" else None,
                    edits=edits or None,
                )
                pending.append(writers.submit(write_png, paths[i + k], pixels[k], recipe.to_json()))
            pending = _reap(pending, bar, keep=max(2 * batch, 16))
            if on_batch is not None:  # (pictures painted so far, all of them), e.g. for a web page's bar
                on_batch(j, len(seeds))
        pending = _reap(pending, bar, wait=True)
    finally:
        writers.shutdown(wait=True, cancel_futures=True)
        bar.close()

    settings = {"psi": psi, "truncation_cutoff": truncation_cutoff, "noise_mode": noise_mode, "class_idx": class_idx}
    latents = LatentSet(
        w_all, model_hash=model.model_hash, seeds=np.asarray(seeds, np.int64), z=z_all, settings=settings
    ).save(out / LATENTS_FILE)
    return GenerateResult(
        out=out,
        images=paths,
        latents=latents,
        seeds=seeds,
        device=str(dev),
        compiled=compiled,
        seconds=time.perf_counter() - start,
    )


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


def _stderr(line: str) -> None:

    tqdm.write(line, file=sys.stderr)  # print would tear a progress bar
