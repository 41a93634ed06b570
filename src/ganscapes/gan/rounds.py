"""Rounds and processes: how one iteration's batch is split, and how the pieces add up.

A global batch is split over the torchrun processes and then into rounds of
`batch_gpu`. NVIDIA's `training/training_loop.py` accumulates each process's rounds in
float32, keeps a path-length mean and a w_avg per process and averages gradients over
GPUs, so its result depends on the GPU count. Here the split changes nothing: every
round is seeded from its global index (`round_seed`), gradients are summed in float64
(`RoundSums`), and the path-length mean and w_avg move once per round in one global
order (`global_pl_means`, `record_w_avg` / `replay_w_avg`).
"""

from __future__ import annotations

import numpy as np
import torch

from ganscapes.gan import distributed as dist_utils


def round_seed(seed: int, batch_idx: int, phase_idx: int, round_idx: int) -> int:
    """The global RNG seed of one round; `benchmarks/parity_official.py` gives NVIDIA's loop the same."""
    return int(np.random.SeedSequence([seed, batch_idx, phase_idx, round_idx]).generate_state(1)[0])


def global_pl_means(loss, round_latents, rounds_per_rank: int, rank: int, world: int, device) -> list[torch.Tensor]:
    """The path-length running mean before each global round of a Greg phase, and after the last.

    NVIDIA's code moves the mean once per round, separately in every process, so its
    result depends on the number of GPUs. Here every process first measures the mean
    length of its own rounds (the same draws, no gradients), the measurements are
    shared, and every process chains them in the global order of rounds: 2 processes of
    R rounds compute exactly what 1 process of 2R rounds does.
    """
    means = torch.zeros([world * rounds_per_rank], dtype=loss.pl_mean.dtype, device=device)
    for r in range(rounds_per_rank):
        means[rank * rounds_per_rank + r] = loss.mean_path_length(*round_latents(r))
    means = dist_utils.all_reduce_sum(means)  # each entry is set by one process, 0 elsewhere: exact
    return loss.chain_pl_mean(means)


class RoundSums:
    """The sum of a phase's round gradients over all rounds and processes, in float64.

    A float32 running sum depends on how rounds are grouped: one process with rounds
    g0..g3 adds ((g0 + g1) + g2) + g3, two processes add (g0 + g1) + (g2 + g3). A
    float64 sum of a few float32 values is exact (unless they span more than 2^29 in
    magnitude), so every grouping rounds to the same float32 gradient. (NVIDIA's code
    accumulates in float32 and so depends on the GPU count; with one round on one
    process there is nothing to sum and this does nothing.)
    """

    def __init__(self, module, active: bool):
        self.params = list(module.parameters()) if active else []
        self.sums: dict[torch.nn.Parameter, torch.Tensor] = {}

    def add_round(self) -> None:
        for p in self.params:
            if p.grad is not None:
                if p in self.sums:
                    self.sums[p] += p.grad
                else:
                    self.sums[p] = p.grad.double()
                p.grad = None

    def finish(self, world: int) -> None:
        if not self.params:
            return
        params = [p for p in self.params if p in self.sums]
        if world > 1:
            dist_utils.sum_tensors([self.sums[p] for p in params])
        for p in params:
            p.grad = self.sums[p].to(p.dtype)
        self.sums = {}


def record_w_avg(G) -> torch.Tensor | None:
    """Start recording G's w_avg updates for this phase; returns w_avg as it is now."""
    mapping = G.mapping
    if getattr(mapping, "w_avg", None) is None:
        return None
    mapping.w_avg_updates = []
    return mapping.w_avg.clone()


def replay_w_avg(G, start: torch.Tensor, rank: int, world: int) -> None:
    """Set w_avg to what one process running every round of the phase in turn would hold.

    Each process saw only its own rounds' batches (NVIDIA's DDP does not broadcast
    buffers, so its w_avg depends on the GPU count). Every process contributes the batch
    means it recorded, and all replay the updates in the global order of rounds.
    """
    mapping = G.mapping
    local, mapping.w_avg_updates = mapping.w_avg_updates, None
    count = len(local)  # the same on every process: the phase's rounds make the same calls
    if count == 0:
        return
    shared = torch.zeros([world, count, start.numel()], dtype=start.dtype, device=start.device)
    shared[rank] = torch.stack(local)
    shared = dist_utils.all_reduce_sum(shared)  # each row set by one process, zeros elsewhere: exact
    w_avg = start
    for batch_mean in shared.reshape(-1, start.numel()):
        w_avg = batch_mean.lerp(w_avg, mapping.w_avg_beta)
    mapping.w_avg.copy_(w_avg)


class RankBatches:
    """Global batches from the sampler; each process takes its contiguous share."""

    def __init__(self, sampler, batch: int, rank: int, world: int):
        self.sampler, self.batch, self.rank, self.world = sampler, batch, rank, world

    def __iter__(self):
        it = iter(self.sampler)
        share = self.batch // self.world
        while True:
            indices = [next(it) for _ in range(self.batch)]
            yield indices[self.rank * share : (self.rank + 1) * share]
