"""Latents in and pictures out, exactly as `generate` makes them.

Style mixing, reproduce and guided search all start from ws — mapped from seeds, or
read from a `latents.npz` that generate or rank wrote — and paint them. They go through
the same padding to multiples of ROW_GROUP rows as generate, so a w painted here gives
the same pixels as the picture generate wrote for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganscapes.errors import UserError
from ganscapes.gan.device import synthesis_options
from ganscapes.gan.ops import to_uint8
from ganscapes.make.generate import ROW_GROUP, _pad_rows, _round_up, _synthesize, class_label, seed_to_z


def map_seeds(G, seeds: list[int], psi: float, cutoff: int | None, class_idx: int | None, dev) -> np.ndarray:
    """ws [N, num_ws, w_dim] (float32) of seeds, truncated as generate truncates them."""
    if not seeds:
        return np.zeros([0, G.num_ws, G.w_dim], np.float32)
    z = np.concatenate([seed_to_z(s, G.z_dim) for s in seeds]) if G.z_dim else np.zeros([len(seeds), 0])
    rows = _round_up(len(seeds), ROW_GROUP)
    label = class_label(G.c_dim, class_idx).to(dev)
    with torch.inference_mode():
        zt = _pad_rows(torch.from_numpy(z), rows).to(torch.float32).to(dev)
        ws = G.mapping(zt, label.expand(rows, -1), truncation_psi=psi, truncation_cutoff=cutoff)
    return ws[: len(seeds)].cpu().numpy().astype(np.float32)


def render_ws(G, ws: np.ndarray, noise_mode: str, dev, noise_seed: int = 0, batch: int = 8) -> np.ndarray:
    """Paint ws [N, num_ws, w_dim] → uint8 pixels [N, H, W, C].

    With random noise, each call of `batch` rows draws its noise from a generator seeded
    with `noise_seed` (as generate seeds each batch with its first seed).
    """
    out = []
    run_kwargs = synthesis_options(dev)
    with torch.inference_mode():
        for i in range(0, len(ws), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(ws[i : i + batch], dtype=np.float32))
            rows = _round_up(len(chunk), ROW_GROUP)
            img = _synthesize(G.synthesis, _pad_rows(chunk, rows).to(dev), noise_mode, run_kwargs, noise_seed, dev)
            out.append(to_uint8(img[: len(chunk)]).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros([0, G.img_resolution, G.img_resolution, G.img_channels], np.uint8)


@dataclass
class LatentRows:
    """Rows of a latents file: their ws and where each came from (for recipes)."""

    ws: np.ndarray  # [K, num_ws, w_dim]
    sources: list[dict]  # {"file": ..., "row": ..., "seed": ...}


def parse_latent_spec(spec: str) -> tuple[Path, list[int] | None]:
    """`FILE.npz:0,1,5-7` → (path, rows); `FILE.npz` alone → every row."""
    m = re.fullmatch(r"(.+?\.npz)(?::([\d,\s-]*))?", spec.strip())
    if m is None:
        raise UserError(f"Cannot read the latent selection {spec!r}; write FILE.npz:0,1,2 (row numbers) or FILE.npz.")
    path = Path(m.group(1))
    if m.group(2) is None:
        return path, None
    rows: list[int] = []
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        r = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if r is None:
            raise UserError(f"Cannot read the row {part!r} in {spec!r}; rows are numbers and ranges such as 0-3.")
        first, last = int(r.group(1)), int(r.group(2) or r.group(1))
        if last < first:
            raise UserError(f"The row range {part!r} in {spec!r} runs backwards.")
        rows.extend(range(first, last + 1))
    if not rows:
        raise UserError(f"No rows named in {spec!r}; write FILE.npz:0,1,2 or FILE.npz for all rows.")
    return path, rows


def load_latent_rows(spec: str, model) -> LatentRows:
    """The ws named by `spec` from a latents.npz, checked against `model`."""
    path, rows = parse_latent_spec(spec)
    if not path.is_file():
        raise UserError(f"The latents file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{path} is not a readable latents .npz file ({e}).") from None
    w = arrays.get("w")
    G = model.G_ema
    if w is None or w.ndim != 3:
        raise UserError(f"{path} holds no w array [N, num_ws, w_dim]; use a latents.npz written by generate.")
    if tuple(w.shape[1:]) != (G.num_ws, G.w_dim):
        raise UserError(
            f"The latents in {path} are [{w.shape[1]}, {w.shape[2]}] per image, but this model needs "
            f"[{G.num_ws}, {G.w_dim}] (num_ws, w_dim): they come from another model."
        )
    file_hash = str(arrays["model_hash"]) if "model_hash" in arrays else None
    if file_hash and file_hash != model.model_hash:
        raise UserError(
            f"The latents in {path} were made by model {file_hash[:12]}, not by this one ({model.model_hash[:12]}); "
            "their pictures would not be the ones you picked."
        )
    rows = list(range(len(w))) if rows is None else rows
    for r in rows:
        if not 0 <= r < len(w):
            raise UserError(f"Row {r} is not in {path}, which has rows 0 to {len(w) - 1}.")
    seeds = arrays.get("seeds")
    sources = [
        {"file": path.name, "row": r, **({"seed": int(seeds[r])} if seeds is not None and len(seeds) == len(w) else {})}
        for r in rows
    ]
    return LatentRows(ws=w[rows].astype(np.float32), sources=sources)
