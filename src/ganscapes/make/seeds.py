"""Seeds → z → w, as NVIDIA's `generate.py` maps them.

A seed names the same z as the official tool: `RandomState(seed).randn(1, z_dim)` in
float64, cast to float32 only as it enters the network. The mapping network turns z
into w, and truncation pulls w towards the average: `w_avg + psi·(w − w_avg)`. The rows
of every mapping call are padded like the synthesis calls of `paint` (ROW_GROUP), so a
seed maps to the same w whether it is mapped alone or among others.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from ganscapes.errors import SettingError, UserError
from ganscapes.make.paint import ROW_GROUP, pad_rows, round_up

MAX_SEED = 2**32 - 1  # what numpy's RandomState accepts
MAX_SEEDS = 1_000_000  # per run; a typo such as 0-99999999 should not fill the disk
PSI_RANGE = (-1.0, 2.0)  # truncation ψ outside it usually gives broken pictures


def check_psi(psi: float) -> float:
    """ψ as a float; NaN or infinity would paint black pictures and write a recipe that is not JSON."""
    psi = float(psi)
    if not math.isfinite(psi):
        raise SettingError("psi", f"must be a finite number, not {psi}.")
    return psi


MAX_DIGITS = 20  # a number longer than this is far beyond every limit (and int() refuses 4,300 digits)


def quoted(text: str, limit: int = 60) -> str:
    """`repr(text)` for an error message, cut to `limit` characters: a typed list can be megabytes."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 2] + "…" + shown[-1]


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
                raise UserError(f"Seeds cannot be negative ({quoted(token)} in {quoted(text)}).")
            raise UserError(f"Cannot read {quoted(token)} in the seed list {quoted(text)}; {example}.")
        for digits in m.groups():
            if digits is not None and len(digits) > MAX_DIGITS:
                raise UserError(f"Seeds must be at most {MAX_SEED} (2**32 - 1), not {quoted(digits)}.")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        for value in (first, last):
            if value > MAX_SEED:
                raise UserError(f"Seeds must be at most {MAX_SEED} (2**32 - 1), not {value}.")
        if last < first:
            raise UserError(f"The seed range {quoted(token)} runs backwards; write {last}-{first}.")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise UserError(
                f"The seed list {quoted(text)} names more than {MAX_SEEDS:,} seeds; generate in smaller runs."
            )
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent z [1, z_dim] (float64) that NVIDIA's generate.py uses for `seed`."""
    return np.random.RandomState(seed).randn(1, z_dim)


def seeds_to_z(seeds: list[int], z_dim: int) -> np.ndarray:
    """z [N, z_dim] (float64) of seeds, one row each."""
    if not seeds or not z_dim:
        return np.zeros([len(seeds), z_dim])
    return np.concatenate([seed_to_z(s, z_dim) for s in seeds])


def class_label(c_dim: int, class_idx: int | None, n: int = 1) -> torch.Tensor:
    """The label input [n, c_dim]: one-hot for `class_idx`, or [n, 0] for unconditional models."""
    if c_dim == 0:
        if class_idx is not None:
            raise SettingError(
                "class_idx", f"{class_idx} was given, but this model is unconditional (it has no classes)."
            )
        return torch.zeros([n, 0])
    if class_idx is None:
        raise SettingError(
            "class_idx", f"is needed: this model is conditional on {c_dim} classes; choose one from 0 to {c_dim - 1}."
        )
    if not 0 <= class_idx < c_dim:
        raise SettingError("class_idx", f"{class_idx} is out of range; this model has classes 0 to {c_dim - 1}.")
    c = torch.zeros([n, c_dim])
    c[:, class_idx] = 1
    return c


def check_truncation_cutoff(cutoff: int | None, num_ws: int) -> None:
    """Refuse a truncation cutoff the model cannot have, before any work.

    The mapping network would take any number silently (a cutoff past num_ws truncates
    every layer, a negative one counts from the end), so a typo would go unnoticed.
    """
    if cutoff is not None and not 0 <= cutoff <= num_ws:
        raise SettingError("truncation_cutoff", f"must be from 0 to {num_ws} (the model's num_ws), not {cutoff}.")


def map_z(
    G, z: np.ndarray, psi: float, cutoff: int | None, class_idx: int | None, dev, *, pad_to: int | None = None
) -> np.ndarray:
    """ws [N, num_ws, w_dim] (float32) of z [N, z_dim] (float64), truncated with ψ and the cutoff.

    One mapping call, padded to a multiple of ROW_GROUP rows (or to `pad_to`, the rows of
    the synthesis call the ws are for).
    """
    psi = check_psi(psi)
    n = len(z)
    if n == 0:
        return np.zeros([0, G.num_ws, G.w_dim], np.float32)
    rows = pad_to if pad_to is not None else round_up(n, ROW_GROUP)
    label = class_label(G.c_dim, class_idx).to(dev)
    with torch.inference_mode():
        # float64 → float32 on the CPU (as exact as anywhere; MPS has no float64)
        zt = pad_rows(torch.from_numpy(z), rows).to(torch.float32).to(dev)
        ws = G.mapping(zt, label.expand(rows, -1), truncation_psi=psi, truncation_cutoff=cutoff)
    return ws[:n].cpu().numpy().astype(np.float32)


def map_seeds(
    G, seeds: list[int], psi: float, cutoff: int | None, class_idx: int | None, dev, *, pad_to: int | None = None
) -> np.ndarray:
    """ws [N, num_ws, w_dim] (float32) of seeds, truncated as generate truncates them."""
    return map_z(G, seeds_to_z(list(seeds), G.z_dim), psi, cutoff, class_idx, dev, pad_to=pad_to)
