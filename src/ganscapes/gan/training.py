"""The StyleGAN2-ADA training loop of NVIDIA's training/training_loop.py, resumable exactly
and runnable under torchrun.

One iteration: a global batch of reals is split over the processes and then into rounds
of `batch_gpu`; the phases Gmain, Greg (every 4), Dmain, Dreg (every 16) each draw
their own latents and labels, accumulate gradients over the rounds and processes (summed, as the
official code does over rounds), and step their Adam optimizer. Then
G_ema follows G, the ADA controller nudges p, and every `kimg_per_tick` thousand images
a tick is logged and, every `snap` ticks, a snapshot is written.

These choices make runs repeatable to the bit on a CPU, and independent of how the
batch is split into processes and rounds (NVIDIA's results depend on the GPU count):
- every round seeds the global RNG from (seed, iteration, phase, global round index),
  so latents, style-mixing cutoffs, augmentations and noise do not depend on the split
  nor on what happened before a resume;
- round gradients are summed in float64 (`_RoundSums`), and the path-length mean and
  w_avg move per round in one global order of rounds (`_global_pl_means`, `_replay_w_avg`);
- the data order comes from a sampler whose state is saved at each snapshot.
A resume from our own snapshot therefore continues as if never interrupted: same p,
same image counter, same optimizer moments (train N, then resume for M, equals train
N + M). A resume from another model (transfer learning) loads the networks only.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganscapes import __version__
from ganscapes.device import resolve_device
from ganscapes.errors import UserError
from ganscapes.fileio import (
    append_jsonl,
    atomic_path,
    read_jsonl,
    remove_stale_temporaries,
    write_bytes_atomic,
    write_json_atomic,
)
from ganscapes.gan import distributed as dist_utils
from ganscapes.gan.checkpoint import Model, load_model, save_model
from ganscapes.gan.networks import build_discriminator, build_generator
from ganscapes.gan.ops import to_uint8
from ganscapes.gan.train_config import (
    TrainConfig,
    latest_run,
    new_run_dir,
    resolve,
    run_description,
)
from ganscapes.gan.train_state import (
    SNAPSHOT_RE,
    list_snapshots,
    load_state,
    prune_snapshots,
    rng_states,
    save_state,
    set_rng_states,
    snapshot_paths,
    snapshot_tag,
)
from ganscapes.gan.training_data import ImageDataset, InfiniteSampler

SMALL_DATASET = 1000
MAX_BAD_STEPS = 10  # consecutive non-finite steps before the run stops


@dataclass
class TrainResult:
    run_dir: Path
    kimg: float
    snapshot: Path | None
    augment_p: float
    stopped_by: str  # "done", "signal", "max-hours", "non-finite"


# ---------------------------------------------------------------------------------------
# Setting up


def round_seed(seed: int, batch_idx: int, phase_idx: int, round_idx: int) -> int:
    """The global RNG seed of one round; `benchmarks/parity_official.py` gives NVIDIA's loop the same."""
    return int(np.random.SeedSequence([seed, batch_idx, phase_idx, round_idx]).generate_state(1)[0])


def _phases(G, D, cfg: dict) -> tuple[list[dict], dict[str, torch.optim.Optimizer]]:
    """Gmain, Greg, Dmain, Dreg (in that order) and one Adam per network, as in `training/training_loop.py`."""
    from ganscapes.gan.loss import training_phases

    settings = training_phases(cfg["G_reg_interval"], cfg["D_reg_interval"], lr_G=cfg["lr"], lr_D=cfg["lr"])
    phases, opts = [], {}
    for name, module in (("G", G), ("D", D)):
        opts[name] = settings[name].adam(module.parameters())
        for phase in settings[name].phases:
            phases.append({"name": phase.name, "module": module, "opt": opts[name], "interval": phase.interval})
    return phases, opts


class _Stop:
    """SIGINT/SIGTERM set a flag; the loop writes a snapshot at the next iteration and exits."""

    def __init__(self):
        self.reason: str | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. under some test runners)
                pass
        return self

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _load_resume(
    config: TrainConfig, fingerprint: Callable[[dict], str]
) -> tuple[Path | None, dict | None, Path | None]:
    """(run folder to continue, its training state, or a model file for transfer learning).

    A snapshot is continued exactly when its data is the data at hand, seen the way that
    run saw it (`fingerprint(run_config)`: its subset and seed); otherwise its networks
    start a new run (transfer learning).
    """
    if config.resume is None:
        return None, None, None
    if config.resume == "latest":
        run = latest_run(Path(config.outdir))
        snaps = list_snapshots(run) if run else []
        if not snaps:
            raise UserError(f"--resume latest found no snapshot under {config.outdir}; start without --resume.")
        _, model_path, state_path = snaps[-1]
    else:
        model_path = Path(config.resume)
        if not model_path.exists():
            raise UserError(f"--resume {model_path} does not exist.")
        m = SNAPSHOT_RE.match(model_path.name)
        state_path = model_path.with_name(f"training-state-{m.group(1)}.pt") if m else None
    if state_path is not None and state_path.exists():
        state = load_state(state_path)
        if state.get("dataset_fingerprint") == fingerprint(state.get("config") or {}):
            return model_path.parent, state, model_path
    return None, None, model_path


# ---------------------------------------------------------------------------------------
# The loop


def train(
    config: TrainConfig, log: Callable[[str], None] = print, progress: bool = True, dry_run: bool = False
) -> TrainResult | dict:
    """Train (or, with `dry_run`, only resolve and return the configuration)."""
    world, rank, local_rank = dist_utils.world_info()
    device = resolve_device(config.device)
    if world > 1:
        device = dist_utils.init(device, local_rank)
    is_main = rank == 0
    say = log if is_main else (lambda _m: None)

    dataset = ImageDataset(
        config.data, use_labels=config.cond, xflip=config.mirror, max_size=config.subset, seed=config.seed
    )
    fingerprint = dataset.fingerprint()

    def run_fingerprint(run_cfg: dict) -> str:
        if (run_cfg.get("subset"), run_cfg.get("seed", config.seed)) == (config.subset, config.seed):
            return fingerprint
        return ImageDataset(config.data, max_size=run_cfg.get("subset"), seed=run_cfg.get("seed", 0)).fingerprint()

    resume_dir, state, resume_model = _load_resume(config, run_fingerprint)
    if state is not None:
        cfg = dict(state["config"])
        # What may change on a resume: how long, how often, where it runs.
        cfg.update(
            {
                k: v
                for k, v in {
                    "kimg": config.kimg if config.kimg is not None else cfg["kimg"],
                    "max_hours": config.max_hours,
                    "snap_minutes": config.snap_minutes,
                    "workers": config.workers,
                    "device": config.device,
                }.items()
            }
        )
        if cfg["world_size"] != world:
            raise UserError(f"This run was trained on {cfg['world_size']} process(es); resume it with the same number.")
        run_view = (cfg["mirror"], cfg["cond"], cfg.get("subset"), cfg["seed"])
        if run_view != (config.mirror, config.cond, config.subset, config.seed):  # the run's own data view wins
            dataset = ImageDataset(
                config.data, use_labels=cfg["cond"], xflip=cfg["mirror"], max_size=cfg.get("subset"), seed=cfg["seed"]
            )
            fingerprint = dataset.fingerprint()
    else:
        cfg = resolve(config, dataset.resolution, dataset.num_channels, dataset.label_dim, world)
    if dry_run:
        return cfg

    if dataset.num_images < SMALL_DATASET:
        say(
            f"warning: {dataset.name} has only {dataset.num_images} images; GANs need thousands. Consider transfer "
            "learning (--resume a model trained on more data) and Freeze-D (--freezed 4)."
        )

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False  # as NVIDIA's train.py: TF32 would blur the p = 0 identity
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(cfg["seed"])  # initial weights: the same for the same seed (rank 0's are broadcast)
    np.random.seed(cfg["seed"])
    G = build_generator(cfg["G_kwargs"]).train().requires_grad_(False).to(device)
    D = build_discriminator(cfg["D_kwargs"]).train().requires_grad_(False).to(device)
    G_ema = copy.deepcopy(G).eval()

    pipe = None
    if cfg["aug"] != "noaug":
        from ganscapes.gan.augment import make_augment_pipe

        pipe = make_augment_pipe(cfg["augpipe"]).train().requires_grad_(False).to(device)
        pipe.p.copy_(torch.as_tensor(cfg["p"]))
    ada = None
    if cfg["aug"] == "ada":
        from ganscapes.gan.ada import AdaController

        ada = AdaController(
            target=cfg["target"],
            interval=4,
            ada_kimg=cfg["ada_kimg"],
            batch_size=cfg["batch"],
            reduce_fn=dist_utils.all_reduce_sum if world > 1 else None,
        )

    from ganscapes.gan.loss import StyleGAN2Loss

    loss = StyleGAN2Loss(
        G,
        D,
        augment_pipe=pipe,
        r1_gamma=cfg["r1_gamma"],
        style_mixing_prob=cfg["style_mixing_prob"],
        pl_weight=cfg["pl_weight"],
        ada=ada,
    )
    phases, opts = _phases(G, D, cfg)

    cur_nimg, cur_tick, batch_idx, train_seconds = 0, 0, 0, 0.0
    sampler = InfiniteSampler(dataset, seed=cfg["seed"])
    if state is not None:
        run_dir = resume_dir
        _restore_networks(resume_model, G, D, G_ema)
        for name, opt_state in state["optimizers"].items():
            opts[name].load_state_dict(opt_state)
        if pipe is not None and state.get("augment_p") is not None:
            pipe.p.copy_(torch.as_tensor(state["augment_p"]))
        if ada is not None and state.get("ada") is not None:
            ada.load_state_dict(state["ada"])
        loss.load_state_dict(state["loss"])
        sampler.load_state_dict(state["sampler"])
        set_rng_states(state["rng"])
        cur_nimg, cur_tick, batch_idx = state["cur_nimg"], state["cur_tick"], state["batch_idx"]
        train_seconds = state["train_seconds"]
        say(f"Resuming {run_dir} at {cur_nimg / 1000:.1f} kimg with augment p = {_p(pipe):.4f}.")
        if is_main:
            _tidy_interrupted_run(run_dir, cur_nimg, say)
    else:
        run_dir = new_run_dir(Path(config.outdir), run_description(config, dataset.name))
        if resume_model is not None:
            _transfer(resume_model, G, D, G_ema, dataset.resolution, say)
    if world > 1:
        dist_utils.broadcast_module(G)
        dist_utils.broadcast_module(D)
        dist_utils.broadcast_module(G_ema)

    tensorboard = None
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", cfg)
        _save_reals_grid(dataset, run_dir / "reals.png")
        tensorboard = _tensorboard(run_dir)
    grid_z = torch.from_numpy(np.random.RandomState(123).randn(_grid_count(dataset.resolution), G.z_dim)).float()
    grid_c = dataset.sample_labels(grid_z.shape[0], seed=123).to(device)

    batch, batch_gpu = cfg["batch"], cfg["batch_gpu"]
    rounds_per_rank = batch // world // batch_gpu
    loader_sampler = InfiniteSampler(dataset, seed=cfg["seed"])
    loader_sampler.load_state_dict(sampler.state_dict())
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=_RankBatches(loader_sampler, batch, rank, world),
        num_workers=cfg["workers"],
        pin_memory=device.type == "cuda",
        persistent_workers=cfg["workers"] > 0,
    )
    data_iter = iter(loader)
    total_nimg = int(cfg["kimg"] * 1000)
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    last_snapshot_time = time.time()
    start_time = time.time()
    tick_stats: dict[str, list[float]] = {}
    bad_steps = 0
    stopped_by = "done"
    last_snapshot = None
    best = _read_best(run_dir, say) if is_main else {}
    bar = tqdm(
        total=total_nimg / 1000,
        initial=cur_nimg / 1000,
        unit="kimg",
        disable=not (progress and is_main),
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} kimg [{elapsed}<{remaining}]",
    )

    with _Stop() as stop:
        while cur_nimg < total_nimg:
            iter_start = time.time()
            real_img, real_c = next(data_iter)
            sampler.advance(batch)  # the saved data position: what the loader has handed out
            real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(batch_gpu)
            real_c = real_c.to(device).split(batch_gpu)
            step_ok = True
            for phase_idx, phase in enumerate(phases):
                if batch_idx % phase["interval"] != 0:
                    continue
                module, opt = phase["module"], phase["opt"]
                opt.zero_grad(set_to_none=True)
                module.requires_grad_(True)
                phase_ok = True

                def round_latents(
                    r: int, batch_idx=batch_idx, phase_idx=phase_idx
                ) -> tuple[torch.Tensor, torch.Tensor]:
                    torch.manual_seed(round_seed(cfg["seed"], batch_idx, phase_idx, rank * rounds_per_rank + r))
                    return torch.randn([batch_gpu, G.z_dim], device=device), dataset.sample_labels(batch_gpu).to(device)

                w_avg_start = _record_w_avg(G) if world > 1 else None
                round_sums = _RoundSums(module, active=world > 1 or rounds_per_rank > 1)
                pl_means = None
                if world > 1 and phase["name"] == "Greg" and cfg["pl_weight"] != 0:
                    pl_means = _global_pl_means(loss, round_latents, rounds_per_rank, rank, world, device)
                for r in range(rounds_per_rank):
                    gen_z, gen_c = round_latents(r)
                    if pl_means is not None:
                        loss.pl_mean.copy_(pl_means[rank * rounds_per_rank + r])
                    stats = loss.accumulate_gradients(
                        phase["name"], real_img[r], real_c[r], gen_z, gen_c, gain=phase["interval"]
                    )
                    round_sums.add_round()
                    for k, v in stats.items():
                        tick_stats.setdefault(k, []).append(v)
                        if not math.isfinite(v):
                            phase_ok = False
                if pl_means is not None:
                    loss.pl_mean.copy_(pl_means[-1])
                if w_avg_start is not None:
                    _replay_w_avg(G, w_avg_start, rank, world)
                module.requires_grad_(False)
                round_sums.finish(world)
                params = [p for p in module.parameters() if p.grad is not None]
                if world > 1:
                    phase_ok = dist_utils.all_true(phase_ok, device)
                if phase_ok:
                    for p in params:
                        torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
                    opt.step()
                else:
                    step_ok = False
            if step_ok:
                bad_steps = 0
            else:
                bad_steps += 1
                say(f"warning: non-finite loss at {cur_nimg / 1000:.2f} kimg; that step was skipped.")
                if bad_steps >= MAX_BAD_STEPS:
                    stopped_by = "non-finite"
                    say(
                        f"Stopping: {MAX_BAD_STEPS} steps in a row had non-finite losses; the last good snapshot "
                        f"is kept in {run_dir}. Try a lower learning rate or a larger --gamma."
                    )
                    break

            _update_ema(G, G_ema, cfg, cur_nimg, batch)
            cur_nimg += batch
            batch_idx += 1
            if ada is not None:
                ada_stats = ada.maybe_update(pipe, batch_idx)
                if ada_stats:
                    for k, v in ada_stats.items():
                        tick_stats.setdefault(k, []).append(v)
            bar.update(max(0.0, min(cur_nimg, total_nimg) / 1000 - bar.n))  # the last batch may overshoot
            train_seconds += time.time() - iter_start

            done = cur_nimg >= total_nimg
            if not done and cur_tick != 0 and cur_nimg < tick_start_nimg + cfg["kimg_per_tick"] * 1000:
                if stop.reason is None:
                    continue
            # ---- end of tick
            now = time.time()
            tick_kimg = (cur_nimg - tick_start_nimg) / 1000
            row = {
                "tick": cur_tick,
                "kimg": cur_nimg / 1000,
                "sec_per_tick": now - tick_start_time,
                "sec_per_kimg": (now - tick_start_time) / max(tick_kimg, 1e-9),
                "sec_per_iter": (now - tick_start_time) / max(tick_kimg * 1000 / batch, 1e-9),
                "augment_p": _p(pipe),
                "lr/G": opts["G"].param_groups[0]["lr"],
                "lr/D": opts["D"].param_groups[0]["lr"],
                "peak_mem_mb": _peak_memory_mb(device),
                "time": now,
                **{k: float(np.mean(v)) for k, v in tick_stats.items()},
            }
            tick_stats = {}
            reason = stop.reason
            if world > 1:
                reason = dist_utils.any_stop(reason, device)
            if cfg["max_hours"] is not None and (now - start_time + row["sec_per_tick"]) > cfg["max_hours"] * 3600:
                reason = reason or "max-hours"
            want_snapshot = (
                done
                or cur_tick % cfg["snap"] == 0
                or reason is not None
                or (cfg["snap_minutes"] and now - last_snapshot_time > cfg["snap_minutes"] * 60)
            )
            unfinished = None
            if want_snapshot and is_main:
                last_snapshot, metrics, unfinished = _snapshot(
                    run_dir,
                    cfg,
                    G,
                    D,
                    G_ema,
                    pipe,
                    ada,
                    loss,
                    opts,
                    sampler,
                    dataset,
                    fingerprint,
                    cur_nimg,
                    cur_tick + 1,
                    batch_idx,
                    train_seconds,
                    grid_z,
                    grid_c,
                    device,
                    best,
                )
                row.update(metrics)
            if is_main:
                append_jsonl(run_dir / "log.jsonl", row)
                if unfinished is not None:
                    _finish_snapshot(run_dir, *unfinished, keep=cfg["keep"], best=best)
                if tensorboard is not None:
                    for key, value in row.items():
                        if key not in ("tick", "kimg", "time"):
                            tensorboard.add_scalar(key, value, global_step=int(cur_nimg / 1000))
                    tensorboard.flush()
                bar.set_postfix_str(
                    f"p={row['augment_p']:.3f} "
                    + " ".join(f"{k.split('/')[-1]}={row[k]:.3g}" for k in ("loss/G", "loss/D_real") if k in row)
                )
            if want_snapshot:
                last_snapshot_time = time.time()
                if world > 1:
                    dist_utils.barrier()
            cur_tick += 1
            tick_start_nimg, tick_start_time = cur_nimg, time.time()
            if reason is not None:
                stopped_by = "signal" if reason.startswith("SIG") else reason
                say(
                    f"\nStopped ({reason}) at {cur_nimg / 1000:.1f} kimg; snapshot in {run_dir}. "
                    "Continue with the same command and --resume latest."
                )
                break
    bar.close()
    if tensorboard is not None:
        tensorboard.close()
    if world > 1:
        dist_utils.shutdown()
    return TrainResult(run_dir, cur_nimg / 1000, last_snapshot, _p(pipe), stopped_by)


# ---------------------------------------------------------------------------------------
# Pieces of the loop


def _global_pl_means(loss, round_latents, rounds_per_rank: int, rank: int, world: int, device) -> list[torch.Tensor]:
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


class _RoundSums:
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


def _record_w_avg(G) -> torch.Tensor | None:
    """Start recording G's w_avg updates for this phase; returns w_avg as it is now."""
    mapping = G.mapping
    if getattr(mapping, "w_avg", None) is None:
        return None
    mapping.w_avg_updates = []
    return mapping.w_avg.clone()


def _replay_w_avg(G, start: torch.Tensor, rank: int, world: int) -> None:
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


class _RankBatches:
    """Global batches from the sampler; each process takes its contiguous share."""

    def __init__(self, sampler, batch: int, rank: int, world: int):
        self.sampler, self.batch, self.rank, self.world = sampler, batch, rank, world

    def __iter__(self):
        it = iter(self.sampler)
        share = self.batch // self.world
        while True:
            indices = [next(it) for _ in range(self.batch)]
            yield indices[self.rank * share : (self.rank + 1) * share]


def _tensorboard(run_dir: Path):
    """A TensorBoard writer when the optional `tensorboard` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir))


def _update_ema(G, G_ema, cfg, cur_nimg: int, batch: int) -> None:
    ema_nimg = cfg["ema_kimg"] * 1000
    if cfg["ema_rampup"] is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg["ema_rampup"])
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def _p(pipe) -> float:
    return float(pipe.p.item()) if pipe is not None else 0.0


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _restore_networks(model_path: Path, G, D, G_ema) -> None:
    model = load_model(model_path)
    for target, source in [(G, model.G), (D, model.D), (G_ema, model.G_ema)]:
        if source is None:
            raise UserError(f"{model_path} lacks G or D, so training cannot continue from it exactly.")
        target.load_state_dict(source.state_dict())


def _transfer(model_path: Path, G, D, G_ema, resolution: int, say) -> None:
    """Networks only, from another dataset or an official pickle; counters start fresh."""
    model = load_model(model_path)
    if model.resolution != resolution:
        raise UserError(
            f"{model_path} makes {model.resolution}x{model.resolution} images but the dataset is "
            f"{resolution}x{resolution}; prepare the data at {model.resolution} or pick another model."
        )
    for target, source, name in [(G, model.G or model.G_ema, "G"), (G_ema, model.G_ema, "G_ema"), (D, model.D, "D")]:
        if source is None:
            say(f"note: {model_path} has no {name}; it starts from random weights.")
            continue
        own = target.state_dict()
        for key, value in source.state_dict().items():
            if key in own:
                if own[key].shape != value.shape:
                    raise UserError(
                        f"{model_path} does not fit these networks ({name}.{key} has shape "
                        f"{tuple(value.shape)}, expected {tuple(own[key].shape)}); use the same --cfg."
                    )
                own[key].copy_(value)
    say(f"Transfer learning from {model_path}: networks loaded; kimg, optimizer and augment p start fresh.")


def _grid_count(resolution: int) -> int:
    return 32 if resolution <= 256 else 16


def _save_grid(images_uint8: torch.Tensor, path: Path, cols: int = 8) -> None:
    from PIL import Image

    n, c, h, w = images_uint8.shape
    rows = math.ceil(n / cols)
    grid = torch.zeros([c, rows * h, cols * w], dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = images_uint8[i]
    arr = grid.permute(1, 2, 0).numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(arr[..., 0] if c == 1 else arr, "L" if c == 1 else "RGB").save(tmp, format="PNG")


def _save_reals_grid(dataset, path: Path) -> None:
    n = min(_grid_count(dataset.resolution), len(dataset))
    imgs = torch.stack([torch.as_tensor(dataset[i][0]) for i in range(n)])
    _save_grid(imgs, path)


def _fakes(G_ema, z, c, device) -> torch.Tensor:
    with torch.no_grad():
        imgs = [
            G_ema(zz.to(device), cc, noise_mode="const", force_fp32=device.type != "cuda")
            for zz, cc in zip(z.split(8), c.split(8))
        ]
    return to_uint8(torch.cat(imgs)).cpu()


def _read_best(run_dir: Path, say: Callable[[str], None]) -> dict:
    """The snapshot with the lowest SWD so far, which pruning must keep.

    metrics.jsonl is the record and best.json a summary of it, so a best.json that a kill
    left empty or half-written (or that is missing) is rebuilt from the record instead of
    stopping every later resume.
    """
    path = run_dir / "best.json"
    rows = [
        r
        for r in read_jsonl(run_dir / "metrics.jsonl")
        if isinstance(r.get("snapshot"), str) and _finite(r.get("SWDx1e3_avg")) and _finite(r.get("kimg"))
    ]
    rebuilt = {}
    if rows:
        top = min(rows, key=lambda r: r["SWDx1e3_avg"])
        rebuilt = {
            "kimg": top["kimg"],
            "score": top["SWDx1e3_avg"],
            "metric": "SWDx1e3_avg",
            "snapshot": top["snapshot"],
        }
    stored = None
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            stored = None
        if not (isinstance(stored, dict) and _finite(stored.get("kimg")) and _finite(stored.get("score"))):
            say(
                f"warning: {path} was damaged (an interrupted write?); "
                + ("rebuilt it from metrics.jsonl." if rebuilt else "starting a new one.")
            )
            stored = None
    if stored != rebuilt and (rebuilt or path.exists()):
        if rebuilt:
            write_json_atomic(path, rebuilt, indent=1)
        else:
            path.unlink()
    return rebuilt


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tidy_interrupted_run(run_dir: Path, cur_nimg: int, say: Callable[[str], None]) -> None:
    """Undo what a killed run left behind, so the resumed folder reads like an uninterrupted one.

    Temporary files of unfinished atomic writes are deleted, and the log rows written after
    the snapshot being resumed (ticks that will now be trained again) are dropped.
    """
    removed = remove_stale_temporaries(run_dir)
    if removed:
        say(f"Removed {len(removed)} unfinished file(s) left by an interrupted run.")
    for name in ("log.jsonl", "metrics.jsonl"):
        path = run_dir / name
        if not path.exists():
            continue
        rows = read_jsonl(path)
        kept = [r for r in rows if _finite(r.get("kimg")) and r["kimg"] <= cur_nimg / 1000 + 1e-9]
        if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
            write_bytes_atomic(path, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))


def _snapshot(
    run_dir,
    cfg,
    G,
    D,
    G_ema,
    pipe,
    ada,
    loss,
    opts,
    sampler,
    dataset,
    fingerprint,
    cur_nimg,
    tick,
    batch_idx,
    train_seconds,
    grid_z,
    grid_c,
    device,
    best,
) -> tuple[Path, dict, tuple[Path, dict]]:
    """Write the networks, the fakes grid and the metrics of a snapshot; return its state to write last.

    The training state is what makes a snapshot resumable, so it is written only after
    everything else of the tick, the log row included (`_finish_snapshot`): a kill at any
    moment before then leaves the previous snapshot as the one `--resume latest` takes.
    """
    model_path, state_path = snapshot_paths(run_dir, cur_nimg)
    meta = {
        "preset": cfg["cfg"],
        "training_set_kwargs": {
            "path": cfg["data"],
            "use_labels": cfg["cond"],
            "xflip": cfg["mirror"],
            "resolution": cfg["resolution"],
        },
        "prepare_format": dataset.prepare_format,
        "aspect": dataset.aspect,
        "source": "ganscapes-train",
        "augment_p": _p(pipe) if pipe is not None else None,
    }
    save_model(model_path, Model(G_ema=G_ema, G=G, D=D, meta=meta))
    state = {
        "ganscapes_version": __version__,
        "config": cfg,
        "dataset_fingerprint": fingerprint,
        "cur_nimg": cur_nimg,
        "cur_tick": tick,
        "batch_idx": batch_idx,
        "train_seconds": train_seconds,
        "optimizers": {name: opt.state_dict() for name, opt in opts.items()},
        "augment_p": _p(pipe) if pipe is not None else None,
        "ada": ada.state_dict() if ada is not None else None,
        "loss": loss.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": rng_states(),
    }
    _save_grid(_fakes(G_ema, grid_z, grid_c, device), run_dir / f"fakes{snapshot_tag(cur_nimg)}.png")
    metrics = {}
    if cfg["metrics"]:
        from ganscapes.gan.metrics import compute_metrics

        results = compute_metrics(
            Model(G_ema=G_ema),
            cfg["data"],
            metrics=tuple(cfg["metrics"]),
            num_images=cfg["metric_images"],
            device=device,
            seed=0,
        )
        metrics = {f"metrics/{k}": v for k, v in results.items()}
        append_jsonl(run_dir / "metrics.jsonl", {"kimg": cur_nimg / 1000, "snapshot": model_path.name, **results})
        score = results.get("SWDx1e3_avg")
        if score is not None and (not best or score < best["score"]):
            best.clear()
            best.update({"kimg": cur_nimg / 1000, "score": score, "metric": "SWDx1e3_avg", "snapshot": model_path.name})
            write_json_atomic(run_dir / "best.json", best, indent=1)
    return model_path, metrics, (state_path, state)


def _finish_snapshot(run_dir: Path, state_path: Path, state: dict, keep: int, best: dict) -> None:
    """Write the state that completes a snapshot, then delete the snapshots beyond `keep` (never the best)."""
    save_state(state_path, state)
    prune_snapshots(run_dir, keep, {best["kimg"]} if best else set())
