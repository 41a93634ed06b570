"""The StyleGAN2-ADA training loop of NVIDIA's training/training_loop.py, resumable exactly
and runnable under torchrun.

One iteration (`Trainer.step`): a global batch of reals is split over the processes and
then into rounds of `batch_gpu`; the phases Gmain, Greg (every 4), Dmain, Dreg (every 16)
each draw their own latents and labels, accumulate gradients over the rounds and
processes, and step their Adam optimizer. Then G_ema follows G and the ADA controller
nudges p. Every `kimg_per_tick` thousand images a tick ends (`Trainer.end_tick`): a row
of log.jsonl and, every `snap` ticks, a snapshot (`Trainer.snapshot`).

Runs are repeatable to the bit on a CPU and do not depend on how the batch is split into
processes and rounds (see `ganscapes.gan.rounds`); the data order comes from a sampler
whose state is saved at each snapshot. A resume from our own snapshot therefore
continues as if never interrupted: same p, same image counter, same optimizer moments
(train N, then resume for M, equals train N + M). A resume from another model
(transfer learning) loads the networks only.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganscapes import __version__
from ganscapes.cpu_heap import keep_freed_memory
from ganscapes.device import resolve_device
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import append_jsonl, write_json_atomic
from ganscapes.gan import distributed as dist_utils
from ganscapes.gan import rounds, run_folder
from ganscapes.gan.ada import AdaController
from ganscapes.gan.augment import make_augment_pipe
from ganscapes.gan.checkpoint import Model, load_model, save_model
from ganscapes.gan.loss import StyleGAN2Loss, training_phases
from ganscapes.gan.model_ref import resolve_model
from ganscapes.gan.networks import build_discriminator, build_generator
from ganscapes.gan.progress import TrainingBar, format_duration, tick_line
from ganscapes.gan.train_config import (
    ResolvedConfig,
    TrainConfig,
    existing_runs,
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
from ganscapes.gan.training_data import ImageDataset, InfiniteSampler, TrainingBatches, TrainingImages

SMALL_DATASET = 1000
# Said when a run stops early; a front end that resumes by itself (the demo) drops it.
RESUME_HINT = " Continue with the same command and --resume latest."
MAX_BAD_STEPS = 10  # consecutive non-finite steps before the run stops


@dataclass
class TrainResult:
    run_dir: Path
    kimg: float
    snapshot: Path | None
    augment_p: float
    stopped_by: str  # "done", "signal", "max-hours", "non-finite"


# ---------------------------------------------------------------------------------------
# What a run starts from


@dataclass
class _Start:
    """The data and settings a run trains with, and what it continues from."""

    dataset: ImageDataset
    fingerprint: str
    cfg: ResolvedConfig
    run_dir: Path | None  # the run continued exactly, or None for a new run
    state: dict | None  # its training state
    model: Model | Path | None  # the model continued from (or its file), or the file started from (transfer)


def _start(config: TrainConfig, world: int) -> _Start:
    dataset = ImageDataset(
        config.data, use_labels=config.cond, xflip=config.mirror, max_size=config.subset, seed=config.seed
    )
    if config.subset is not None and config.subset > dataset.num_images:  # as train.py refuses it
        raise SettingError(
            "subset", f"must be at most the {dataset.num_images} images of {config.data}, not {config.subset}."
        )
    fingerprint = dataset.fingerprint()

    def run_fingerprint(saved: dict) -> str:
        if (saved.get("subset"), saved.get("seed", config.seed)) == (config.subset, config.seed):
            return fingerprint
        return ImageDataset(config.data, max_size=saved.get("subset"), seed=saved.get("seed", 0)).fingerprint()

    run_dir, state, model = _find_resume(config, run_fingerprint)
    if state is None:
        cfg = resolve(config, dataset.resolution, dataset.num_channels, dataset.label_dim, world)
        return _Start(dataset, fingerprint, cfg, None, None, model)
    cfg = ResolvedConfig.from_dict(state["config"]).for_resume(config)
    if cfg.world_size != world:
        raise UserError(f"This run was trained on {cfg.world_size} process(es); resume it with the same number.")
    if (cfg.mirror, cfg.cond, cfg.subset, cfg.seed) != (config.mirror, config.cond, config.subset, config.seed):
        # The run's own view of the data wins over today's options.
        dataset = ImageDataset(config.data, use_labels=cfg.cond, xflip=cfg.mirror, max_size=cfg.subset, seed=cfg.seed)
        fingerprint = dataset.fingerprint()
    return _Start(dataset, fingerprint, cfg, run_dir, state, model)


def _find_resume(
    config: TrainConfig, fingerprint: Callable[[dict], str]
) -> tuple[Path | None, dict | None, Path | None]:
    """(run folder to continue, its training state, or a model file for transfer learning).

    A snapshot is continued exactly when its data is the data at hand, seen the way that
    run saw it (`fingerprint(saved_config)`: its subset and seed); otherwise its networks
    start a new run (transfer learning).
    """
    if config.resume is None:
        return None, None, None
    if config.resume == "latest":
        # The newest run that has a snapshot: a newer folder left by a start that failed
        # before its first snapshot does not hide the run to continue.
        snaps = next((s for run in reversed(existing_runs(Path(config.outdir))) if (s := list_snapshots(run))), None)
        if not snaps:
            raise SettingError("resume", f"latest found no snapshot under {config.outdir}; start without it.")
        _, model_path, state_path = snaps[-1]
        try:  # both verify their hashes: flipped bytes are found here, not later
            state, model = load_state(state_path), load_model(model_path)
        except UserError as e:
            fallback = (
                f"continue from the one before with --resume {snaps[-2][1]}"
                if len(snaps) > 1
                else "there is no earlier snapshot to continue from"
            )
            raise UserError(f"The newest snapshot is damaged: {e} To go on, {fallback}.") from None
        if state.get("dataset_fingerprint") == fingerprint(state.get("config") or {}):
            return model_path.parent, state, model  # loaded once, used by Trainer.resume
        return None, None, model_path
    else:
        model_path = resolve_model(config.resume).path  # a model file, a run folder's best snapshot, or a name
        if not model_path.exists():
            raise SettingError("resume", f"{model_path} does not exist.")
        m = SNAPSHOT_RE.match(model_path.name)
        state_path = model_path.with_name(f"training-state-{m.group(1)}.pt") if m else None
    if state_path is not None and state_path.exists():
        state = load_state(state_path)
        if state.get("dataset_fingerprint") == fingerprint(state.get("config") or {}):
            return model_path.parent, state, model_path
    return None, None, model_path


def resolve_training(config: TrainConfig) -> ResolvedConfig:
    """The settings `train(config)` would use (what `--dry-run` prints): a new run's, or the resumed run's."""
    world, _, _ = dist_utils.world_info()
    return _start(config, world).cfg


# ---------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """One training run: networks, optimizers, augmentation, counters and the run folder.

    `Trainer(config)` sets everything up (resuming or starting from a model as
    `config.resume` says); `run()` trains to the end. The pieces of the loop are methods
    so that a caller can drive it iteration by iteration (`step`) — the parity benchmark
    against NVIDIA's loop does.
    """

    def __init__(
        self,
        config: TrainConfig,
        log: Callable[[str], None] = print,
        progress: bool = True,
        on_tick: Callable[[dict], None] | None = None,
    ):
        self.world, self.rank, local_rank = dist_utils.world_info()
        self.device = resolve_device(config.device)
        if self.world > 1:
            self.device = dist_utils.init(self.device, local_rank)
        self.is_main = self.rank == 0
        self._log, self.on_tick, self.bar = log, on_tick, None
        start = _start(config, self.world)
        self.dataset, self.fingerprint, self.cfg = start.dataset, start.fingerprint, start.cfg
        cfg, device = self.cfg, self.device
        if self.dataset.num_images < SMALL_DATASET:
            advice = (
                "Freeze-D (--freezed 4) may help"
                if start.model is not None
                else "Consider transfer learning (--resume a model trained on more data) and Freeze-D (--freezed 4)"
            )
            self.say(
                f"warning: {self.dataset.name} has only {self.dataset.num_images} images; GANs need thousands. "
                f"{advice}."
            )

        # No cuDNN autotuning, unlike NVIDIA's train.py: our augmentation filters through cuDNN
        # convolutions (NVIDIA's through its own upfirdn2d kernel), and their shapes follow the
        # batch's random geometric margins, so nearly every iteration brought new shapes to tune.
        # On an H200 at 128² an iteration without new network shapes took 0.48 s with autotuning
        # and 0.20 s without, and autotuning's trials raised the first iteration's peak from
        # 1.4 to 5.8 GB.
        torch.backends.cudnn.benchmark = False
        if device.type == "cpu":
            keep_freed_memory()  # the same activations every iteration: reuse their memory (cpu_heap.py)
        torch.backends.cuda.matmul.allow_tf32 = False  # as NVIDIA's train.py: TF32 would blur the p = 0 identity
        torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(cfg.seed)  # initial weights: the same for the same seed (rank 0's are broadcast)
        np.random.seed(cfg.seed)
        self.G = build_generator(cfg.G_kwargs).train().requires_grad_(False).to(device)
        self.D = build_discriminator(cfg.D_kwargs).train().requires_grad_(False).to(device)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.pipe = None
        if cfg.aug != "noaug":
            self.pipe = make_augment_pipe(cfg.augpipe).train().requires_grad_(False).to(device)
            self.pipe.p.copy_(torch.as_tensor(cfg.p))
        self.ada = None
        if cfg.aug == "ada":
            self.ada = AdaController(
                target=cfg.target,
                interval=4,
                ada_kimg=cfg.ada_kimg,
                batch_size=cfg.batch,
                reduce_fn=dist_utils.all_reduce_sum if self.world > 1 else None,
            )
        self.loss = StyleGAN2Loss(
            self.G,
            self.D,
            augment_pipe=self.pipe,
            r1_gamma=cfg.r1_gamma,
            style_mixing_prob=cfg.style_mixing_prob,
            pl_weight=cfg.pl_weight,
            ada=self.ada,
        )
        self.phases, self.opts = self._phases()

        self.cur_nimg, self.cur_tick, self.batch_idx, self.train_seconds = 0, 0, 0, 0.0
        self.sampler = InfiniteSampler(self.dataset, seed=cfg.seed)
        if start.state is not None:
            self.run_dir = start.run_dir
            self.resume(start.state, start.model)
        else:
            self.run_dir = new_run_dir(Path(config.outdir), run_description(config, self.dataset.name))
            if start.model is not None:
                _transfer(start.model, self.G, self.D, self.G_ema, self.dataset.resolution, self.say)
        if self.world > 1:
            for module in (self.G, self.D, self.G_ema):
                dist_utils.broadcast_module(module)

        self.tensorboard = None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.run_dir / "config.json", cfg.to_dict())
            run_folder.save_reals_grid(self.dataset, self.run_dir / "reals.png")
            self.tensorboard = run_folder.tensorboard_writer(self.run_dir)
        n_grid = run_folder.grid_count(self.dataset.resolution)
        self.grid_z = torch.from_numpy(np.random.RandomState(123).randn(n_grid, self.G.z_dim)).float()
        self.grid_c = self.dataset.sample_labels(n_grid, seed=123).to(device)

        self.rounds_per_rank = cfg.batch // self.world // cfg.batch_gpu
        loader_sampler = InfiniteSampler(self.dataset, seed=cfg.seed)
        loader_sampler.load_state_dict(self.sampler.state_dict())
        loader = torch.utils.data.DataLoader(
            TrainingImages(self.dataset),  # a damaged image is replaced and reported, not fatal
            batch_sampler=rounds.RankBatches(loader_sampler, cfg.batch, self.rank, self.world),
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.workers > 0,
        )
        self.data_iter = TrainingBatches(iter(loader), self.dataset, self.say)
        self.total_nimg = int(cfg.kimg * 1000)
        self.tick_start_nimg, self.tick_start_time = self.cur_nimg, time.time()
        self.last_snapshot_time = self.start_time = time.time()
        self.tick_stats: dict[str, list[float]] = {}
        self.bad_steps = 0
        self.stopped_by = "done"
        self.last_snapshot: Path | None = None
        self.best = run_folder.read_best(self.run_dir, self.say) if self.is_main else {}
        budget = cfg.max_hours * 3600 if cfg.max_hours is not None else None
        self.bar = TrainingBar(self.cur_nimg / 1000, self.total_nimg / 1000, budget, progress and self.is_main)

    def say(self, line: str) -> None:
        """Tell the user (the main process only), without tearing the progress bar."""
        if not self.is_main:
            return
        if self.bar is None:
            self._log(line)
        else:
            self.bar.write(self._log, line)

    def _phases(self) -> tuple[list[dict], dict[str, torch.optim.Optimizer]]:
        """Gmain, Greg, Dmain, Dreg (in that order) and one Adam per network, as in `training/training_loop.py`."""
        cfg = self.cfg
        settings = training_phases(cfg.G_reg_interval, cfg.D_reg_interval, lr_G=cfg.lr, lr_D=cfg.lr)
        phases, opts = [], {}
        for name, module in (("G", self.G), ("D", self.D)):
            opts[name] = settings[name].adam(module.parameters())
            for phase in settings[name].phases:
                phases.append({"name": phase.name, "module": module, "opt": opts[name], "interval": phase.interval})
        return phases, opts

    @property
    def augment_p(self) -> float:
        return float(self.pipe.p.item()) if self.pipe is not None else 0.0

    # -- resuming

    def resume(self, state: dict, model_path: Model | Path) -> None:
        """Continue exactly where a snapshot left off: networks, Adam, p, ADA, pl_mean, data order, RNG."""
        _restore_networks(model_path, self.G, self.D, self.G_ema)
        for name, opt_state in state["optimizers"].items():
            self.opts[name].load_state_dict(opt_state)
        if self.pipe is not None and state.get("augment_p") is not None:
            self.pipe.p.copy_(torch.as_tensor(state["augment_p"]))
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])
        self.loss.load_state_dict(state["loss"])
        self.sampler.load_state_dict(state["sampler"])
        set_rng_states(state["rng"])
        self.cur_nimg, self.cur_tick, self.batch_idx = state["cur_nimg"], state["cur_tick"], state["batch_idx"]
        self.train_seconds = state["train_seconds"]
        self.say(f"Resuming {self.run_dir} at {self.cur_nimg / 1000:.1f} kimg with augment p = {self.augment_p:.4f}.")
        if self.is_main:
            run_folder.tidy_interrupted_run(self.run_dir, self.cur_nimg, self.say)

    # -- one iteration

    def step(self) -> bool:
        """Train one iteration: every phase due, then G_ema and ADA. False when the run must stop."""
        cfg, device, G = self.cfg, self.device, self.G
        iter_start = time.time()
        real_img, real_c = next(self.data_iter)
        self.sampler.advance(cfg.batch)  # the saved data position: what the loader has handed out
        real_img = (real_img.to(device).to(torch.float32) / 127.5 - 1).split(cfg.batch_gpu)
        real_c = real_c.to(device).split(cfg.batch_gpu)
        step_ok = True
        for phase_idx, phase in enumerate(self.phases):
            if self.batch_idx % phase["interval"] == 0:
                step_ok &= self._run_phase(phase_idx, phase, real_img, real_c)
        if step_ok:
            self.bad_steps = 0
        else:
            self.bad_steps += 1
            self.say(f"warning: non-finite loss at {self.cur_nimg / 1000:.2f} kimg; that step was skipped.")
            if self.bad_steps >= MAX_BAD_STEPS:
                self.stopped_by = "non-finite"
                self.say(
                    f"Stopping: {MAX_BAD_STEPS} steps in a row had non-finite losses; the last good snapshot "
                    f"is kept in {self.run_dir}. Try a lower learning rate or a larger --gamma."
                )
                return False

        _update_ema(G, self.G_ema, cfg, self.cur_nimg)
        self.cur_nimg += cfg.batch
        self.batch_idx += 1
        if self.ada is not None:
            for k, v in (self.ada.maybe_update(self.pipe, self.batch_idx) or {}).items():
                self.tick_stats.setdefault(k, []).append(v)
        self.bar.update(min(self.cur_nimg, self.total_nimg) / 1000)  # the last iteration may overshoot
        self.train_seconds += time.time() - iter_start
        return True

    def _run_phase(self, phase_idx: int, phase: dict, real_img, real_c) -> bool:
        """Accumulate one phase over every round of this process and step its optimizer; False if non-finite."""
        cfg, device, G, world, rank = self.cfg, self.device, self.G, self.world, self.rank
        per_rank, batch_idx = self.rounds_per_rank, self.batch_idx
        module, opt = phase["module"], phase["opt"]
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)

        def round_latents(r: int) -> tuple[torch.Tensor, torch.Tensor]:
            torch.manual_seed(rounds.round_seed(cfg.seed, batch_idx, phase_idx, rank * per_rank + r))
            return torch.randn([cfg.batch_gpu, G.z_dim], device=device), self.dataset.sample_labels(cfg.batch_gpu).to(
                device
            )

        w_avg_start = rounds.record_w_avg(G) if world > 1 else None
        round_sums = rounds.RoundSums(module, active=world > 1 or per_rank > 1)
        pl_means = None
        if world > 1 and phase["name"] == "Greg" and cfg.pl_weight != 0:
            pl_means = rounds.global_pl_means(self.loss, round_latents, per_rank, rank, world, device)
        phase_ok = True
        for r in range(per_rank):
            gen_z, gen_c = round_latents(r)
            if pl_means is not None:
                self.loss.pl_mean.copy_(pl_means[rank * per_rank + r])
            stats = self.loss.accumulate_gradients(
                phase["name"], real_img[r], real_c[r], gen_z, gen_c, gain=phase["interval"]
            )
            round_sums.add_round()
            for k, v in stats.items():
                self.tick_stats.setdefault(k, []).append(v)
                phase_ok &= math.isfinite(v)
        if pl_means is not None:
            self.loss.pl_mean.copy_(pl_means[-1])
        if w_avg_start is not None:
            rounds.replay_w_avg(G, w_avg_start, rank, world)
        module.requires_grad_(False)
        round_sums.finish(world)
        params = [p for p in module.parameters() if p.grad is not None]
        if world > 1:
            phase_ok = dist_utils.all_true(phase_ok, device)
        if not phase_ok:
            return False
        for p in params:
            torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        opt.step()
        return True

    # -- ticks and snapshots

    def tick_due(self) -> bool:
        """Whether this iteration ends a tick (the first iteration always does, as in NVIDIA's loop)."""
        done = self.cur_nimg >= self.total_nimg
        return done or self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + self.cfg.kimg_per_tick * 1000

    def end_tick(self, reason: str | None) -> str | None:
        """Log the tick, snapshot when due, and say why the run stops now (None: it goes on)."""
        cfg, now = self.cfg, time.time()
        tick_kimg = (self.cur_nimg - self.tick_start_nimg) / 1000
        row = {
            "tick": self.cur_tick,
            "kimg": self.cur_nimg / 1000,
            "sec_per_tick": now - self.tick_start_time,
            "sec_per_kimg": (now - self.tick_start_time) / max(tick_kimg, 1e-9),
            "sec_per_iter": (now - self.tick_start_time) / max(tick_kimg * 1000 / cfg.batch, 1e-9),
            "augment_p": self.augment_p,
            "lr/G": self.opts["G"].param_groups[0]["lr"],
            "lr/D": self.opts["D"].param_groups[0]["lr"],
            "peak_mem_mb": _peak_memory_mb(self.device),
            "time": now,
            **{k: float(np.mean(v)) for k, v in self.tick_stats.items()},
        }
        self.tick_stats = {}
        if self.world > 1:
            reason = dist_utils.any_stop(reason, self.device)
        if cfg.max_hours is not None and (now - self.start_time + row["sec_per_tick"]) > cfg.max_hours * 3600:
            reason = reason or "max-hours"
        want_snapshot = (
            self.cur_nimg >= self.total_nimg
            or self.cur_tick % cfg.snap == 0
            or reason is not None
            or (cfg.snap_minutes and now - self.last_snapshot_time > cfg.snap_minutes * 60)
        )
        unfinished = None
        if want_snapshot and self.is_main:
            _reset_peak_memory(self.device)
            metrics, unfinished = self.snapshot()
            row.update(metrics)
            if self.device.type == "cuda":  # the fakes grid and the metrics, apart from training's own peak
                row["snapshot_peak_mem_mb"] = _peak_memory_mb(self.device)
        if self.is_main:
            append_jsonl(self.run_dir / "log.jsonl", row)
            if unfinished is not None:
                self._finish_snapshot(*unfinished)
            if self.tensorboard is not None:
                for key, value in row.items():
                    if key not in ("tick", "kimg", "time"):
                        self.tensorboard.add_scalar(key, value, global_step=int(self.cur_nimg / 1000))
                self.tensorboard.flush()
            memory = "gpumem" if self.device.type == "cuda" else "cpumem"
            self.say(tick_line(row, now - self.start_time, memory))
            if self.on_tick is not None:
                self.on_tick(row)
        if want_snapshot:
            self.last_snapshot_time = time.time()
            if self.world > 1:
                dist_utils.barrier()
        self.cur_tick += 1
        _reset_peak_memory(self.device)  # the next tick's peak, like its time, counts its iterations only
        self.tick_start_nimg, self.tick_start_time = self.cur_nimg, time.time()
        return reason

    def snapshot(self) -> tuple[dict, tuple[Path, dict]]:
        """Write the networks, the fakes grid and the metrics; return the metrics and the state to write last.

        The training state is what makes a snapshot resumable, so it is written only after
        everything else of the tick, the log row included (`_finish_snapshot`): a kill at any
        moment before then leaves the previous snapshot as the one `--resume latest` takes.
        """
        cfg, ds = self.cfg, self.dataset
        model_path, state_path = snapshot_paths(self.run_dir, self.cur_nimg)
        meta = {
            "preset": cfg.preset,
            "training_set_kwargs": {
                "path": cfg.data,
                "use_labels": cfg.cond,
                "xflip": cfg.mirror,
                "resolution": cfg.resolution,
            },
            "prepare_format": ds.prepare_format,
            "aspect": ds.aspect,
            "source": "ganscapes-train",
            "augment_p": self.augment_p if self.pipe is not None else None,
        }
        save_model(model_path, Model(G_ema=self.G_ema, G=self.G, D=self.D, meta=meta))
        self.last_snapshot = model_path
        state = {
            "ganscapes_version": __version__,
            "config": cfg.to_dict(),
            "dataset_fingerprint": self.fingerprint,
            "cur_nimg": self.cur_nimg,
            "cur_tick": self.cur_tick + 1,
            "batch_idx": self.batch_idx,
            "train_seconds": self.train_seconds,
            "optimizers": {name: opt.state_dict() for name, opt in self.opts.items()},
            "augment_p": self.augment_p if self.pipe is not None else None,
            "ada": self.ada.state_dict() if self.ada is not None else None,
            "loss": self.loss.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_states(),
        }
        fakes = run_folder.fakes(self.G_ema, self.grid_z, self.grid_c, self.device)
        run_folder.save_grid(fakes, self.run_dir / f"fakes{snapshot_tag(self.cur_nimg, self.run_dir)}.png")
        metrics = {}
        if cfg.metrics:
            from ganscapes.gan.metrics import compute_metrics

            results = compute_metrics(
                Model(G_ema=self.G_ema),
                cfg.data,
                metrics=tuple(cfg.metrics),
                num_images=cfg.metric_images,
                device=self.device,
                seed=0,
            )
            metrics = {f"metrics/{k}": v for k, v in results.items()}
            run_folder.record_metrics(self.run_dir, self.cur_nimg / 1000, model_path.name, results, self.best)
        return metrics, (state_path, state)

    def _finish_snapshot(self, state_path: Path, state: dict) -> None:
        """Write the state that completes a snapshot, then delete those beyond `keep` (never the best)."""
        save_state(state_path, state)
        prune_snapshots(self.run_dir, self.cfg.keep, {self.best["snapshot"]} if self.best else set())

    # -- the whole run

    def run(self) -> TrainResult:
        """Train until `kimg`, a signal, `max_hours` or too many non-finite steps; always end with a snapshot."""
        try:
            with _Stop() as stop:
                while self.cur_nimg < self.total_nimg:
                    if not self.step():
                        break
                    if not self.tick_due() and stop.reason is None:
                        continue
                    reason = self.end_tick(stop.reason)
                    if reason is not None:
                        self.stopped_by = "signal" if reason.startswith("SIG") else reason
                        self.say(
                            f"Stopped ({_stop_words(reason, self.cfg)}) at {self.cur_nimg / 1000:.1f} kimg; "
                            f"snapshot in {self.run_dir}." + RESUME_HINT
                        )
                        break
        finally:
            self.close()
        return TrainResult(self.run_dir, self.cur_nimg / 1000, self.last_snapshot, self.augment_p, self.stopped_by)

    def close(self) -> None:
        self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        if self.world > 1:
            dist_utils.shutdown()


def train(
    config: TrainConfig,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_tick: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train as `config` says (see `Trainer`); `on_tick` sees each tick's log row as it is written."""
    return Trainer(config, log=log, progress=progress, on_tick=on_tick).run()


def _stop_words(reason: str, cfg: ResolvedConfig) -> str:
    """Why a run stopped, as the user would say it: the time budget rather than an option's name."""
    if reason == "max-hours" and cfg.max_hours is not None:
        return f"its time budget of {format_duration(cfg.max_hours * 3600)} is spent"
    return reason


# ---------------------------------------------------------------------------------------
# Pieces


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


def _update_ema(G, G_ema, cfg: ResolvedConfig, cur_nimg: int) -> None:
    """G_ema ← G + β(G_ema − G), β = 0.5^(batch / half-life), with NVIDIA's ramp-up of the half-life."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            torch.lerp(p, p_ema, beta, out=p_ema)  # NVIDIA's p.lerp(p_ema, beta), written in place
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def _reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak. NVIDIA's training_loop.py resets after printing each tick, so its
    next tick also holds that tick's snapshot; ours keeps the two apart, because a snapshot can
    peak far above training (36 GB against 1.9 GB for training at 128² on an H200: the fakes
    grid's networks in generation mode, with cuDNN autotuning new convolutions)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mb(device: torch.device) -> float:
    """CUDA: the most memory allocated since the last reset: a tick's iterations, or a
    snapshot. CPU: the process's resident maximum so far (the OS keeps no per-tick figure)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _restore_networks(model: Model | Path, G, D, G_ema) -> None:
    """Copy G, D and G_ema from a snapshot (loaded already, or its file)."""
    if not isinstance(model, Model):
        model = load_model(model)
    for target, source in [(G, model.G), (D, model.D), (G_ema, model.G_ema)]:
        if source is None:
            raise UserError(f"{model.path} lacks G or D, so training cannot continue from it exactly.")
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
                        f"{model_path} does not fit these networks ({name}.{key} has shape {tuple(value.shape)}, "
                        f"expected {tuple(own[key].shape)}); train with the preset it was made with."
                    )
                own[key].copy_(value)
    say(f"Transfer learning from {model_path}: networks loaded; kimg, optimizer and augment p start fresh.")
