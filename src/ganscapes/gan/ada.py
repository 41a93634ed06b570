"""The adaptive-augmentation controller of ADA: it steers the augment pipe's p.

As in the ADA paper (Karras et al. 2020, §4) and NVIDIA's `training/training_loop.py`
(`ada_target`, `ada_interval`, `ada_kimg`). The overfitting heuristic is
`r_t = E[sign(D(real))]` over every real logit seen since the last update, those of the
R1 (Dreg) rounds included: NVIDIA's `StyleGAN2Loss.accumulate_gradients` reports
`Loss/signs/real` in both D phases. Every `interval` iterations p moves by one fixed step
towards keeping r_t at `target`:

    p ← max(0, p + sign(r_t − target) · batch · interval / (ada_kimg · 1000))

with no upper clamp: p may exceed 1, where every augmentation simply always fires.

Use: give `accumulate` to the loss as its real-logit callback
(`StyleGAN2Loss(..., on_real_logits=ada.accumulate)` or `ada=ada`), then after each
iteration, with the count of finished iterations, call `maybe_update(pipe, batch_idx)`.
`--aug fixed` and `--aug noaug` build no controller; p then stays where it was set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class AdaController:
    """Sums sign(real logits) and their count, and updates `pipe.p` every `interval` iterations.

    `batch_size` is the global batch (all processes). Under torch.distributed pass
    `reduce_fn`, a function that sums a tensor over processes (in place or returning the
    result); it gets the float64 tensor [sign sum, count] at each update, on every process.
    """

    def __init__(
        self,
        target: float = 0.6,
        interval: int = 4,
        ada_kimg: float = 500,
        *,
        batch_size: int,
        reduce_fn: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
    ):
        if interval < 1 or int(interval) != interval:
            raise ValueError(f"interval must be a positive integer, not {interval!r}.")
        if ada_kimg <= 0 or batch_size < 1:
            raise ValueError("ada_kimg and batch_size must be positive.")
        self.target = float(target)
        self.interval = int(interval)
        self.ada_kimg = float(ada_kimg)
        self.batch_size = int(batch_size)
        self.reduce_fn = reduce_fn
        self.sums: torch.Tensor | None = None  # float64 [sign sum, count] since the last update
        self.last_r_t: float | None = None

    @property
    def step(self) -> float:
        """How far p moves per update."""
        return self.batch_size * self.interval / (self.ada_kimg * 1000)

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of these real logits to the pending statistic (no device sync).

        NaN logits are left out (the official code would turn p into NaN for good).
        """
        x = real_logits.detach()
        if x.device.type == "mps":  # no float64 there
            x = x.cpu()
        finite = ~torch.isnan(x)
        signs = torch.where(finite, x.sign(), torch.zeros_like(x))
        add = torch.stack([signs.sum(dtype=torch.float64), finite.sum(dtype=torch.float64)])
        if self.sums is not None and self.sums.device != add.device:  # e.g. just loaded from a state dict
            self.sums = self.sums.to(add.device)
        self.sums = add if self.sums is None else self.sums + add

    def maybe_update(self, pipe, batch_idx: int) -> dict[str, float] | None:
        """After iteration `batch_idx` (counted from 1): update p when `batch_idx % interval == 0`.

        Returns {"ada/p": new p, "ada/r_t": r_t} after an update, None otherwise. With no
        logits seen since the last update p stays and only "ada/p" is returned.
        """
        if batch_idx % self.interval != 0:
            return None
        device = pipe.p.device if pipe.p.device.type != "mps" else torch.device("cpu")
        # on the training device even when nothing was seen, as NCCL's all-reduce needs
        sums = self.sums.to(device) if self.sums is not None else torch.zeros([2], dtype=torch.float64, device=device)
        if self.reduce_fn is not None:
            reduced = self.reduce_fn(sums)
            sums = reduced if reduced is not None else sums
        sign_sum, count = sums.tolist()
        self.sums = None
        p = float(pipe.p)
        if count == 0:
            return {"ada/p": p}
        r_t = sign_sum / count
        new_p = max(0.0, p + float(np.sign(r_t - self.target)) * self.step)
        with torch.no_grad():
            pipe.p.copy_(torch.as_tensor(new_p, dtype=pipe.p.dtype))
        self.last_r_t = r_t
        return {"ada/p": float(pipe.p), "ada/r_t": r_t}

    def state_dict(self) -> dict:
        """Settings, pending sums and the last r_t; p itself lives in the pipe's buffer."""
        return {
            "target": self.target,
            "interval": self.interval,
            "ada_kimg": self.ada_kimg,
            "batch_size": self.batch_size,
            "sums": self.sums.tolist() if self.sums is not None else None,
            "last_r_t": self.last_r_t,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the pending sums and last r_t. The settings stay those of the constructor,
        so a resume may change them (e.g. a different --ada-kimg)."""
        sums = state.get("sums")
        self.sums = torch.tensor(sums, dtype=torch.float64) if sums is not None else None
        self.last_r_t = state.get("last_r_t")
