"""Multi-GPU (and multi-process CPU) training with torch.distributed, as torchrun starts it.

`torchrun --nproc_per_node=N -m ganscapes train ...` sets RANK, WORLD_SIZE and
LOCAL_RANK; each process then trains on its share of every global batch. Instead of
wrapping the networks in DistributedDataParallel (the loss calls G and D in several
ways per phase), gradients are summed explicitly after each phase (see `sum_tensors`).
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def init(device: torch.device, local_rank: int) -> torch.device:
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_module(module: torch.nn.Module) -> None:
    """Make every process start from rank 0's parameters and buffers."""
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def sum_tensors(tensors: list[torch.Tensor]) -> None:
    """All-reduce (sum) the tensors in place, as one flat message instead of hundreds.

    Gradients are summed, not averaged: within a process the rounds of `batch_gpu` are
    summed too, so N processes × 1 round compute what 1 process × N rounds does. (NVIDIA's
    code averages across GPUs; Adam is invariant to that constant factor but for its eps.)
    """
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].reshape(t.shape))
        offset += n


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_true(flag: bool, device: torch.device) -> bool:
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() == 0


def any_stop(reason: str | None, device: torch.device) -> str | None:
    """A stop asked for on any process stops all of them (at the same iteration)."""
    t = torch.tensor([0.0 if reason is None else 1.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return (reason or "SIGTERM") if t.item() > 0 else None
