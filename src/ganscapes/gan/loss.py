"""The StyleGAN2-ADA loss (`training/loss.py`): non-saturating logistic loss, R1, path length, style mixing.

`StyleGAN2Loss.accumulate_gradients(phase, ...)` runs one *round* (one slice of the batch)
of one *phase* and backpropagates `mean(loss) · gain` into the phase's network. Phases:

| phase | what | network trained |
|---|---|---|
| Gmain | `softplus(−D(A(G(z))))` | G |
| Greg  | path length `(L − a)² · pl_weight` on `batch // pl_batch_shrink` samples | G |
| Dmain | `softplus(D(A(G(z)))) + softplus(−D(A(x)))`, fakes without a graph to G | D |
| Dreg  | R1 `Σ(∂ΣD(A(x))/∂x)² · γ/2` on the un-augmented reals | D |
| Gboth / Dboth | main + reg in one pass, used when lazy regularisation is off | G / D |

A is the augment pipe (optional). **Gain**: the loop passes `gain = interval` for the
lazy-regularisation phases (Greg every 4 iterations → gain 4, Dreg every 16 → gain 16)
and 1 for main and "both" phases; the loss does not scale anything itself. With
`training_phases` below every phase's `interval` is exactly the gain to pass.

During a phase only that phase's network requires grad (the other is frozen and restored
afterwards), so Gmain leaves D's gradients alone and Dmain G's. G still runs in its own
mode in D phases, so in training mode `w_avg` moves there too, as in NVIDIA's
`StyleGAN2Loss.run_G`.

Real logits seen in Dmain and Dreg both go to `on_real_logits` (the ADA statistic, which
NVIDIA's `training/loss.py` reports as `Loss/signs/real` in both). Non-finite losses are
returned as they are, never raised: the loop decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PHASES = ("Gmain", "Greg", "Gboth", "Dmain", "Dreg", "Dboth")


# ---------------------------------------------------------------------------------------
# Pieces usable on their own


def mixed_ws(G: nn.Module, z: torch.Tensor, c: torch.Tensor, prob: float) -> tuple[torch.Tensor, int | None]:
    """`G.mapping(z, c)` with style mixing: (ws [N, num_ws, w_dim], cutoff or None).

    With probability `prob`, ws[:, cutoff:] come from a second latent `randn_like(z)`
    (same labels), mapped with `skip_w_avg_update=True` so w_avg moves once per call. The
    cutoff is one for the whole batch, uniform in [1, num_ws − 1], and is None when this
    call does not mix. The draws are NVIDIA's (`StyleGAN2Loss.run_G` in training/loss.py),
    in their order from the global torch RNG: the cutoff, the coin, and the second latent
    even when the coin says no, so the random stream after this call is the official
    one whether or not it mixed. Only the mapping of that latent is skipped then.
    """
    ws = G.mapping(z, c)
    if prob <= 0:
        return ws, None
    num_ws = ws.shape[1]
    cutoff = int(torch.empty([], dtype=torch.int64, device=z.device).random_(1, num_ws))
    mix = float(torch.rand([], device=z.device)) < prob
    z2 = torch.randn_like(z)
    if not mix:
        return ws, None
    ws2 = G.mapping(z2, c, skip_w_avg_update=True)
    return torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1), cutoff


def _r1_from_logits(logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    (grads,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[real], create_graph=True)
    return grads.square().sum(dim=[1, 2, 3])


def r1_penalty(
    D: Callable, real_img: torch.Tensor, real_c: torch.Tensor, augment_pipe: Callable | None = None, **D_kwargs
) -> torch.Tensor:
    """Per-sample R1 penalty `Σ_CHW (∂ΣD(A(x))/∂x)²`, shape [N], not yet weighted by γ/2.

    The gradient is taken w.r.t. the un-augmented images through the (differentiable)
    pipe, with `create_graph=True` so the result can itself be backpropagated.
    """
    real = real_img.detach().requires_grad_(True)
    img = augment_pipe(real) if augment_pipe is not None else real
    return _r1_from_logits(D(img, real_c, **D_kwargs), real)


@contextmanager
def _only_trainable(train: nn.Module, frozen: nn.Module):
    """`train` requires grad and `frozen` does not, for the duration; flags restored after."""
    saved = [(p, p.requires_grad) for p in (*train.parameters(), *frozen.parameters())]
    train.requires_grad_(True)
    frozen.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


# ---------------------------------------------------------------------------------------
# The loss


class StyleGAN2Loss:
    """Loss and gradient accumulation of StyleGAN2-ADA for one G/D pair.

    `on_real_logits(logits)` is called with the detached real logits of every Dmain,
    Dreg and Dboth round; the ADA controller's `accumulate` is the intended callback.
    `ada=controller` is shorthand for `on_real_logits=controller.accumulate`.
    `force_fp32=None` means fp32 off CUDA and the networks' own fp16 layers on CUDA.
    """

    def __init__(
        self,
        G,
        D,
        augment_pipe=None,
        r1_gamma=10.0,
        style_mixing_prob=0.9,
        pl_weight=2.0,
        pl_batch_shrink=2,
        pl_decay=0.01,
        force_fp32=None,
        on_real_logits=None,
        ada=None,
    ):
        if on_real_logits is not None and ada is not None:
            raise ValueError("Give on_real_logits or ada, not both.")
        self.G, self.D = G, D
        self.augment_pipe = augment_pipe
        self.r1_gamma = float(r1_gamma)
        self.style_mixing_prob = float(style_mixing_prob)
        self.pl_weight = float(pl_weight)
        self.pl_batch_shrink = int(pl_batch_shrink)
        self.pl_decay = float(pl_decay)
        self.force_fp32 = force_fp32
        self.on_real_logits = ada.accumulate if ada is not None else on_real_logits
        self.pl_mean = torch.zeros([], device=_device_of(G))  # running mean path length; see state_dict

    # -- helpers

    def _fp32(self, device: torch.device) -> bool:
        return self.force_fp32 if self.force_fp32 is not None else device.type != "cuda"

    def _run_G(self, z, c, fp32: bool):
        ws, _ = mixed_ws(self.G, z, c, self.style_mixing_prob)
        return self.G.synthesis(ws, force_fp32=fp32), ws

    def _run_D(self, img, c, fp32: bool):
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c, force_fp32=fp32)

    # -- the phases

    def accumulate_gradients(self, phase: str, real_img, real_c, gen_z, gen_c, gain: float = 1.0) -> dict[str, float]:
        """Compute one round of `phase`, backpropagate `mean(loss) · gain`, return statistics.

        Statistics are plain floats of the unscaled (gain-free) means: `loss/G`,
        `scores/fake` (Gmain, Dmain); `loss/pl`, `pl_penalty`, `pl_length`, `pl_mean` (Greg);
        `loss/D_fake`, `loss/D_real`, `loss/D` (Dmain); `loss/r1`, `r1_penalty` (Dreg);
        `scores/real`, `signs/real` (Dmain, Dreg). "both" phases give the union. A phase
        with nothing to do (Greg with pl_weight 0, Dreg with r1_gamma 0) returns {}.
        """
        if phase not in PHASES:
            raise ValueError(f"Unknown phase {phase!r}; expected one of {', '.join(PHASES)}.")
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight != 0
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma != 0
        fp32 = self._fp32(gen_z.device)
        stats: dict[str, torch.Tensor] = {}
        train, frozen = (self.G, self.D) if phase.startswith("G") else (self.D, self.G)

        with _only_trainable(train, frozen):
            if do_Gmain:
                img, _ = self._run_G(gen_z, gen_c, fp32)
                logits = self._run_D(img, gen_c, fp32)
                loss_G = F.softplus(-logits)
                loss_G.mean().mul(gain).backward()
                stats["loss/G"] = loss_G.mean()
                stats["scores/fake"] = logits.mean()

            if do_Gpl:
                stats.update(self._path_length(gen_z, gen_c, gain, fp32))

            if do_Dmain:
                with torch.no_grad():  # no graph to G; w_avg still updates when G is in train mode
                    img, _ = self._run_G(gen_z, gen_c, fp32)
                logits = self._run_D(img, gen_c, fp32)
                loss_fake = F.softplus(logits)
                loss_fake.mean().mul(gain).backward()
                stats["loss/D_fake"] = loss_fake.mean()
                stats["scores/fake"] = logits.mean()

            if do_Dmain or do_Dr1:
                real = real_img.detach().requires_grad_(do_Dr1)
                logits = self._run_D(real, real_c, fp32)
                if self.on_real_logits is not None:
                    self.on_real_logits(logits.detach())
                stats["scores/real"] = logits.detach().mean()
                stats["signs/real"] = logits.detach().sign().mean()
                # `logits * 0`, as NVIDIA's loss does: every parameter that produced the
                # logits gets a gradient (zero for D's last bias in Dreg, which R1 does
                # not reach), so Adam steps it and its moments decay as in the official run.
                total = logits * 0
                if do_Dmain:
                    loss_real = F.softplus(-logits)
                    total = total + loss_real
                    stats["loss/D_real"] = loss_real.mean()
                    stats["loss/D"] = stats["loss/D_real"] + stats["loss/D_fake"]
                if do_Dr1:
                    penalty = _r1_from_logits(logits, real)
                    loss_r1 = penalty * (self.r1_gamma / 2)
                    total = total + loss_r1
                    stats["r1_penalty"] = penalty.mean()
                    stats["loss/r1"] = loss_r1.mean()
                total.mean().mul(gain).backward()

        if not stats:
            return {}
        values = torch.stack([v.detach().float().reshape([]) for v in stats.values()]).tolist()  # one sync
        return dict(zip(stats.keys(), values))

    def _path_length(self, gen_z, gen_c, gain, fp32) -> dict[str, torch.Tensor]:
        img, lengths = self._lengths(gen_z, gen_c, fp32, create_graph=True)
        # NVIDIA's order (training/loss.py, Gpl): the running mean moves once per round,
        # and this round's target `a` keeps its graph to this round's lengths; only the
        # stored copy is detached. A non-finite round leaves the stored copy alone, so one
        # bad step does not poison every later one.
        a = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
        self.pl_mean.copy_(torch.where(torch.isfinite(a), a.detach(), self.pl_mean))
        penalty = (lengths - a).square()
        loss_pl = penalty * self.pl_weight
        # `img[:, 0, 0, 0] * 0` as in NVIDIA's loss: the toRGB biases, which the path
        # length does not depend on, get a zero gradient instead of none, so Adam steps them.
        (img[:, 0, 0, 0] * 0 + loss_pl).mean().mul(gain).backward()
        return {
            "loss/pl": loss_pl.mean(),
            "pl_penalty": penalty.detach().mean(),
            "pl_length": lengths.mean(),
            "pl_mean": a.detach(),
        }

    def _lengths(self, gen_z, gen_c, fp32: bool, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, per-sample path lengths) of the path-length batch: the first
        `batch // pl_batch_shrink` latents of the round, with style mixing."""
        n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
        img, ws = self._run_G(gen_z[:n], gen_c[:n], fp32)
        noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad(outputs=[(img * noise).sum()], inputs=[ws], create_graph=create_graph)
        lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
        if self.pl_mean.device != lengths.device:
            self.pl_mean = self.pl_mean.to(lengths.device)
        return img, lengths

    # -- the path-length mean over processes

    def mean_path_length(self, gen_z, gen_c) -> torch.Tensor:
        """The mean path length a Greg round with these latents will measure, and nothing else.

        The same draws as `accumulate_gradients("Greg", ...)` after the same seeding, but
        no gradient reaches the networks and w_avg is left as it was. With several
        processes, every process measures its rounds first so that all of them can chain
        the running mean over the rounds in one global order (`chain_pl_mean`).
        """
        mapping = self.G.mapping
        w_avg = getattr(mapping, "w_avg", None)
        saved = w_avg.clone() if w_avg is not None else None
        updates = getattr(mapping, "w_avg_updates", None)
        recorded = len(updates) if updates is not None else 0
        _, lengths = self._lengths(gen_z, gen_c, self._fp32(gen_z.device), create_graph=False)
        if saved is not None:
            w_avg.copy_(saved)
        if updates is not None:
            del updates[recorded:]
        return lengths.mean().detach()

    def chain_pl_mean(self, round_means: torch.Tensor) -> list[torch.Tensor]:
        """The running mean before each round of `round_means` (in order), then after the last.

        The arithmetic is `_path_length`'s, so setting `pl_mean` to entry g before round
        g reproduces, bit for bit, what one process running every round in turn computes.
        """
        pl = self.pl_mean.clone()
        out = []
        for m in round_means.to(pl.device, pl.dtype):
            out.append(pl.clone())
            a = pl.lerp(m, self.pl_decay)
            pl = torch.where(torch.isfinite(a), a, pl)
        out.append(pl)
        return out

    # -- resuming

    def state_dict(self) -> dict:
        """The running path-length mean, for an exact resume (the official code drops it)."""
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        value = torch.as_tensor(state["pl_mean"], dtype=torch.float32).reshape([])
        self.pl_mean = value.to(self.pl_mean.device).clone()


def _device_of(module) -> torch.device:
    for t in module.parameters():
        return t.device
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------
# Phases and optimizer settings with lazy regularisation


@dataclass(frozen=True)
class Phase:
    """A phase runs when `batch_idx % interval == 0`; `interval` is also the gain to pass."""

    name: str
    interval: int


@dataclass(frozen=True)
class NetworkPhases:
    """The phases of one network ("G" or "D") and the Adam settings they share."""

    network: str
    phases: tuple[Phase, ...]
    reg_interval: int | None
    mb_ratio: float
    lr: float
    betas: tuple[float, float]
    eps: float

    def adam(self, params) -> torch.optim.Adam:
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps)


def training_phases(
    G_reg_interval: int | None = 4,
    D_reg_interval: int | None = 16,
    *,
    lr_G: float,
    lr_D: float,
    betas: tuple[float, float] = (0.0, 0.99),
    eps: float = 1e-8,
) -> dict[str, NetworkPhases]:
    """{"G": ..., "D": ...}, in the official order Gmain, Greg, Dmain, Dreg.

    Lazy regularisation (StyleGAN2 paper §3.1; the phase setup of NVIDIA's
    `training/training_loop.py`): with interval I the regulariser runs every I iterations
    with gain I, and Adam gets `mb_ratio = I/(I+1)`: lr·mb_ratio and betas**mb_ratio
    (β1 = 0 stays 0). With interval None (or 0) there is a single "both"
    phase every iteration and the settings are used as given.
    """
    out = {}
    for name, interval, lr in (("G", G_reg_interval, lr_G), ("D", D_reg_interval, lr_D)):
        if interval:
            if int(interval) != interval or interval < 1:
                raise ValueError(f"{name}_reg_interval must be a positive integer or None, not {interval!r}.")
            interval = int(interval)
            ratio = interval / (interval + 1)
            phases = (Phase(f"{name}main", 1), Phase(f"{name}reg", interval))
            out[name] = NetworkPhases(
                name, phases, interval, ratio, lr * ratio, (betas[0] ** ratio, betas[1] ** ratio), eps
            )
        else:
            out[name] = NetworkPhases(name, (Phase(f"{name}both", 1),), None, 1.0, lr, tuple(betas), eps)
    return out
