"""ganscapes' training loop against NVIDIA's, side by side: lock-step and statistics.

Needs a checkout of NVIDIA's repository (NVlabs/stylegan2-ada-pytorch, commit d72cc7d)
wherever you keep it; nothing of it is copied here. Its `training/training_loop.py` is
read and patched *in memory* so that it runs on a CPU and takes part in the comparison,
then executed as a module; its networks, augmentation, loss and optimizer set-up are
used as they are. Run by hand:

    .venv/bin/python benchmarks/parity_official.py --official ~/src/stylegan2-ada-pytorch
    .venv/bin/python benchmarks/parity_official.py --official PATH --mode stats --seeds 5 --kimg 5

Lock-step (`--mode lockstep`): both loops start from the same weights (ours, copied into
NVIDIA's after it has built its networks), read the same batches of reals (the ones our
loader produced, replayed to NVIDIA's loop), and draw their latents, style-mixing
cutoffs, noise and augmentations from the same seed per (iteration, phase, round)
(`ganscapes.gan.training.round_seed`). After every iteration every tensor of G, D and
G_ema, the augmentation probability p and the path-length mean are compared. The
relative difference of a tensor is ||ours - theirs|| / ||theirs||.

Statistics (`--mode stats`): both loops unmodified (each with its own data order and
random streams), several seeds each; per tick p, r_t, the losses, the R1 and
path-length penalties, then SWD of the final G_ema on `--swd-images` images; a Welch t
per tick says whether the two differ by more than seed-to-seed noise.

Splits (`--mode splits`): ours alone, one process with rounds of --batch-gpu 4 and 2
against two gloo processes with the same rounds, compared the same way.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.fileio import read_jsonl
from ganscapes.gan.augment import AUGPIPE_SPECS
from ganscapes.gan.checkpoint import Model
from ganscapes.gan.metrics import compute_metrics
from ganscapes.gan.networks import build_generator
from ganscapes.gan.rounds import round_seed
from ganscapes.gan.train_config import TrainConfig
from ganscapes.gan.train_state import list_snapshots
from ganscapes.gan.training import Trainer, train

# ---------------------------------------------------------------------------------------
# NVIDIA's loop, patched in memory

# (what the text says, what it becomes, why). Each must occur exactly once.
CPU_PATCHES = [
    ("import psutil\n", "", "psutil is only used for a memory figure"),
    ("from metrics import metric_main\n", "metric_main = None\n", "no metrics are computed (and they need scipy)"),
    ("device = torch.device('cuda', rank)", "device = torch.device('cpu')", "run on the CPU"),
    ("phase.start_event = torch.cuda.Event(enable_timing=True)", "phase.start_event = None", "CUDA timing events"),
    ("phase.end_event = torch.cuda.Event(enable_timing=True)", "phase.end_event = None", "CUDA timing events"),
    (".pin_memory().to(device)", ".to(device)", "pinned memory needs CUDA"),
    ("psutil.Process(os.getpid()).memory_info().rss / 2**30", "0.0", "see psutil"),
    ("torch.cuda.max_memory_allocated(device) / 2**30", "0.0", "CUDA memory statistics"),
    ("        torch.cuda.reset_peak_memory_stats()\n", "", "CUDA memory statistics"),
]
# NVIDIA's loop paints a grid of up to 1,024 pictures before it starts, which takes minutes
# on a CPU and is not timed; the speed benchmark skips it.
NO_INITIAL_FAKES = [
    (
        "        images = torch.cat([G_ema(z=z, c=c, noise_mode='const').cpu() "
        "for z, c in zip(grid_z, grid_c)]).numpy()\n"
        "        save_image_grid(images, os.path.join(run_dir, 'fakes_init.png'), "
        "drange=[-1,1], grid_size=grid_size)\n",
        "",
        "the initial grid of fakes",
    )
]
LOCKSTEP_PATCHES = [
    # Our reals instead of NVIDIA's loader (the same images in the same order).
    (
        "training_set_iterator = iter(torch.utils.data.DataLoader(dataset=training_set, sampler=training_set_sampler, "
        "batch_size=batch_size//num_gpus, **data_loader_kwargs))",
        "training_set_iterator = _parity_batches()",
        "replay our batches",
    ),
    # The same seed per (iteration, phase, round) as ours, and latents drawn after it.
    (
        "for phase, phase_gen_z, phase_gen_c in zip(phases, all_gen_z, all_gen_c):",
        "for phase_idx, (phase, phase_gen_z, phase_gen_c) in enumerate(zip(phases, all_gen_z, all_gen_c)):",
        "number the phases",
    ),
    (
        "                loss.accumulate_gradients(phase=phase.name,",
        "                gen_z, gen_c = _parity_round(batch_idx, phase_idx, round_idx, gen_z, gen_c)\n"
        "                loss.accumulate_gradients(phase=phase.name,",
        "seed each round as ours does",
    ),
]


def load_official_loop(official: Path, lockstep_hooks: dict | None, device: str = "cpu", extra_patches=()):
    """NVIDIA's `training_loop` module, patched for the CPU (and for lock-step when hooks are given).

    On CUDA only what needs psutil or scipy-based metrics is patched out."""
    official = official.resolve()
    if not (official / "training" / "training_loop.py").is_file():
        sys.exit(f"{official} is not a checkout of NVlabs/stylegan2-ada-pytorch (no training/training_loop.py).")
    if str(official) not in sys.path:
        sys.path.insert(0, str(official))
    source = (official / "training" / "training_loop.py").read_text(encoding="utf-8-sig")  # it starts with a BOM
    patches = CPU_PATCHES if device == "cpu" else [p for p in CPU_PATCHES if "psutil" in p[0] or "metric" in p[0]]
    for old, new, why in patches + (LOCKSTEP_PATCHES if lockstep_hooks is not None else []) + list(extra_patches):
        if source.count(old) != 1:
            sys.exit(f"Cannot patch NVIDIA's training_loop.py ({why}): expected one {old!r}; is it commit d72cc7d?")
        source = source.replace(old, new)
    _accept_old_sampler_init()
    if device != "cpu":
        from official import run_on_current_torch  # benchmarks/official.py

        run_on_current_torch()
    module = types.ModuleType("official_training_loop")
    module.__file__ = str(official / "training" / "training_loop.py")
    module.__dict__.update(lockstep_hooks or {})
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _accept_old_sampler_init() -> None:
    """NVIDIA's InfiniteSampler calls `Sampler.__init__(dataset)`, which torch 2.2 dropped."""
    if "__init__" not in vars(torch.utils.data.Sampler):
        torch.utils.data.Sampler.__init__ = lambda self, data_source=None: None


def official_kwargs(cfg: dict, data: Path, run_dir: Path, seed: int, device: str = "cpu") -> dict:
    """train.py's arguments for `training_loop` from our resolved configuration.

    On the CPU ours computes every block in float32 (keeping the clamps); NVIDIA's code
    would run the top `num_fp16_res` blocks in float16 there, a different computation that
    oneDNN runs with its slow reference kernels (minutes per backward pass). So on the CPU
    NVIDIA's networks get `num_fp16_res` 0 and the same `conv_clamp`: the computation ours does.
    """
    common = ("c_dim", "img_resolution", "img_channels")  # training_loop adds these from the dataset
    G_kwargs = {k: v for k, v in cfg["G_kwargs"].items() if k not in common}
    D_kwargs = {k: v for k, v in cfg["D_kwargs"].items() if k not in common}
    if device == "cpu":
        G_kwargs["synthesis_kwargs"] = {**G_kwargs["synthesis_kwargs"], "num_fp16_res": 0}
        D_kwargs["num_fp16_res"] = 0
    opt = dict(class_name="torch.optim.Adam", lr=cfg["lr"], betas=[0, 0.99], eps=1e-8)
    return dict(
        run_dir=str(run_dir),
        training_set_kwargs=dict(
            class_name="training.dataset.ImageFolderDataset",
            path=str(data),
            use_labels=False,
            max_size=None,
            xflip=False,
            resolution=cfg["resolution"],
        ),
        data_loader_kwargs=dict(pin_memory=False, num_workers=0),
        G_kwargs=dict(class_name="training.networks.Generator", **G_kwargs),
        D_kwargs=dict(class_name="training.networks.Discriminator", **D_kwargs),
        G_opt_kwargs=dict(opt),
        D_opt_kwargs=dict(opt),
        augment_kwargs=(
            dict(class_name="training.augment.AugmentPipe", **AUGPIPE_SPECS[cfg["augpipe"]])
            if cfg["aug"] != "noaug"
            else None
        ),
        loss_kwargs=dict(
            class_name="training.loss.StyleGAN2Loss",
            r1_gamma=cfg["r1_gamma"],
            style_mixing_prob=cfg["style_mixing_prob"],
            pl_weight=cfg["pl_weight"],
        ),
        metrics=[],
        random_seed=seed,
        num_gpus=1,
        rank=0,
        batch_size=cfg["batch"],
        batch_gpu=cfg["batch_gpu"],
        ema_kimg=cfg["ema_kimg"],
        ema_rampup=cfg["ema_rampup"],
        augment_p=cfg["p"],
        ada_target=cfg["target"] if cfg["aug"] == "ada" else None,
        ada_kimg=cfg["ada_kimg"],
        total_kimg=cfg["kimg"],
        kimg_per_tick=cfg["kimg_per_tick"],
        image_snapshot_ticks=None,
        network_snapshot_ticks=None,
        cudnn_benchmark=False,
    )


# ---------------------------------------------------------------------------------------
# Watching a loop from its data iterator


class _Enough(Exception):
    """Raised by a watcher to end a loop after the iterations it needs."""


def _optimizers(frame_locals: dict) -> dict:
    """{"G": Adam, "D": Adam} of either loop (ours keeps `opts`, NVIDIA's its `phases`)."""
    if "opts" in frame_locals:
        return frame_locals["opts"]
    return {phase.name[0]: phase.opt for phase in frame_locals["phases"] if phase.name.endswith(("main", "both"))}


def _state(frame_locals: dict, pipe_name: str) -> dict:
    """Copies of what the comparison needs, from a training loop's local variables:
    every tensor of G, D and G_ema, Adam's moments by parameter name, p and pl_mean."""
    out: dict = {"adam": {}}
    for net in ("G", "D", "G_ema"):
        for k, v in frame_locals[net].state_dict().items():
            out[f"{net}.{k}"] = v.detach().clone()
    for net, opt in _optimizers(frame_locals).items():
        for name, param in frame_locals[net].named_parameters():
            if param in opt.state:
                s = opt.state[param]
                out["adam"][f"{net}.{name}"] = (float(s["step"]), s["exp_avg"].clone(), s["exp_avg_sq"].clone())
    pipe = frame_locals.get(pipe_name)
    out["p"] = float(pipe.p) if pipe is not None else 0.0
    out["pl_mean"] = float(frame_locals["loss"].pl_mean)
    return out


def _load(frame_locals: dict, state: dict, pipe_name: str, perturb: float = 0.0) -> None:
    """Put a recorded state into a loop's objects (optionally with every weight scaled by
    1 + perturb·N(0, 1), to measure how fast a loop drifts from itself)."""
    noise = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        for net in ("G", "D", "G_ema"):
            for k, v in frame_locals[net].state_dict().items():
                value = state[f"{net}.{k}"]
                if perturb and v.is_floating_point():
                    value = value * (1 + perturb * torch.randn(value.shape, generator=noise).to(value.device))
                v.copy_(value)
        for net, opt in _optimizers(frame_locals).items():
            for name, param in frame_locals[net].named_parameters():
                if f"{net}.{name}" in state["adam"]:
                    step, m, v = state["adam"][f"{net}.{name}"]
                    opt.state[param] = {"step": torch.tensor(step), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
                else:
                    opt.state.pop(param, None)
        pipe = frame_locals.get(pipe_name)
        if pipe is not None:
            pipe.p.copy_(torch.as_tensor(state["p"]))
        frame_locals["loss"].pl_mean.copy_(torch.as_tensor(state["pl_mean"]))


class _Watch:
    """An iterator over batches that records the loop's state each time it is asked for one.

    The k-th request comes after iteration k - 1 finished (EMA and ADA included), so the
    states recorded are: the start, then after every iteration. `before(k, frame_locals)`
    runs after recording and before iteration k, to copy a state in.
    """

    def __init__(self, batches, iterations: int, pipe_name: str, before=None):
        self.batches, self.iterations, self.pipe_name, self.before = batches, iterations, pipe_name, before
        self.states: list[dict] = []
        self.served: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __iter__(self):
        return self

    def __next__(self):
        frame_locals = sys._getframe(1).f_locals
        self.states.append(_state(frame_locals, self.pipe_name))
        if len(self.states) > self.iterations:
            raise _Enough
        if self.before is not None:
            self.before(len(self.states) - 1, frame_locals)
        batch = next(self.batches)
        self.served.append((batch[0].clone(), batch[1].clone()))
        return batch


class _Recorded:
    """The batches a data iterator hands out, kept for NVIDIA's loop to read the same."""

    def __init__(self, batches):
        self.batches, self.served = batches, []

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.batches)
        self.served.append((batch[0].clone(), batch[1].clone()))
        return batch


def run_ours_watched(config: TrainConfig, iterations: int) -> tuple[types.SimpleNamespace, dict]:
    """Our loop for `iterations` iterations, driven step by step: its states and the batches it read."""
    trainer = Trainer(config, log=lambda _: None, progress=False)
    recorded = _Recorded(trainer.data_iter)
    trainer.data_iter = recorded

    def view() -> dict:
        return {
            "G": trainer.G,
            "D": trainer.D,
            "G_ema": trainer.G_ema,
            "opts": trainer.opts,
            "loss": trainer.loss,
            "pipe": trainer.pipe,
        }

    states = []
    for _ in range(iterations):
        states.append(_state(view(), "pipe"))
        trainer.step()
    states.append(_state(view(), "pipe"))
    trainer.close()
    cfg = trainer.cfg.to_dict()
    return types.SimpleNamespace(states=states, served=recorded.served), cfg


# ---------------------------------------------------------------------------------------
# Lock-step


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """||ours - theirs|| / ||theirs|| of one tensor. Misleading for tensors near zero (the
    scalar noise strengths start at 0 and cross it): `compare` also reports it per network."""
    ours, theirs = ours.double(), theirs.double()
    scale = theirs.norm().item()
    diff = (ours - theirs).norm().item()
    return diff / scale if scale > 0 else diff


def compare(a: dict, b: dict) -> dict:
    tensors = [k for k in a if isinstance(a[k], torch.Tensor)]
    diffs = {k: relative_difference(a[k], b[k]) for k in tensors}
    worst = max(diffs, key=diffs.get)
    per_net = {}
    for net in ("G", "D", "G_ema"):
        keys = [k for k in tensors if k.split(".", 1)[0] == net]
        diff_sq = sum(float((a[k].double() - b[k].double()).square().sum()) for k in keys)
        norm_sq = sum(float(b[k].double().square().sum()) for k in keys)
        per_net[net] = math.sqrt(diff_sq / norm_sq)
    return {
        "max_rel": diffs[worst],
        "worst": worst,
        "global_rel": max(per_net.values()),
        "per_network": per_net,
        "p_ours": a["p"],
        "p_theirs": b["p"],
        "p_equal": a["p"] == b["p"],
        "pl_mean_rel": abs(a["pl_mean"] - b["pl_mean"]) / max(abs(b["pl_mean"]), 1e-30),
    }


def run_theirs(args, cfg: dict, data: Path, run_dir: Path, ours, mode: str) -> _Watch:
    """NVIDIA's loop on our batches and round seeds. `mode`: "free" starts from our initial
    state and runs on its own; "perturbed" the same with weights scaled by 1 + 1e-7·N(0, 1)
    (about one float32 rounding); "forced" is put into our state before every iteration
    (one-iteration errors only), "forced-perturbed" likewise, perturbed each time."""

    def before(k: int, frame_locals: dict) -> None:
        if k == 0 or mode.startswith("forced"):
            _load(frame_locals, ours.states[k], "augment_pipe", perturb=1e-7 if mode.endswith("perturbed") else 0.0)

    def round_latents(batch_idx, phase_idx, round_idx, gen_z, gen_c):
        torch.manual_seed(round_seed(args.seed, batch_idx, phase_idx, round_idx))
        return torch.randn(gen_z.shape, device=gen_z.device), torch.zeros(gen_c.shape, device=gen_c.device)

    theirs = _Watch(iter(ours.served), args.iters, "augment_pipe", before=before)
    hooks = {"_parity_batches": lambda: theirs, "_parity_round": round_latents}
    loop = load_official_loop(Path(args.official), hooks, args.device)
    run_dir.mkdir(parents=True)
    try:
        loop.training_loop(**official_kwargs(cfg, data, run_dir, args.seed, args.device))
    except _Enough:
        pass
    return theirs


def _summary(rows: list[dict]) -> dict:
    return {
        "rows": rows,
        "max_rel_first_16": max(r["max_rel"] for r in rows[:16]),
        "max_rel_all": max(r["max_rel"] for r in rows),
        "final_rel": rows[-1]["max_rel"],
        "global_rel_first_16": max(r["global_rel"] for r in rows[:16]),
        "global_rel_all": max(r["global_rel"] for r in rows),
        "p_equal_all": all(r["p_equal"] for r in rows),
        "final_p": rows[-1]["p_ours"],
        "max_pl_mean_rel": max(r["pl_mean_rel"] for r in rows),
    }


def lockstep(args, root: Path, data: Path) -> dict:
    config = TrainConfig(
        data=str(data),
        outdir=str(root / "ours"),
        cfg="tiny",
        batch=args.batch,
        batch_gpu=args.batch_gpu,
        kimg=1000,
        kimg_per_tick=1000,
        snap=10**6,
        metrics=[],
        workers=0,
        device=args.device,
        seed=args.seed,
        aug=args.aug,
        p=args.p,
    )
    t0 = time.time()
    ours, cfg = run_ours_watched(config, args.iters)
    seconds = {"ours": time.time() - t0}
    runs = {}
    for mode in ("free", "perturbed", "forced", "forced-perturbed"):
        t0 = time.time()
        runs[mode] = run_theirs(args, cfg, data, root / mode, ours, mode)
        seconds[mode] = time.time() - t0
    free, perturbed, forced, forced_perturbed = (runs[m] for m in ("free", "perturbed", "forced", "forced-perturbed"))
    report = {
        "seconds": seconds,
        # Ours and NVIDIA's, each on its own after the same start.
        "free": _summary(
            [{"iteration": i, **compare(a, b)} for i, (a, b) in enumerate(zip(ours.states[1:], free.states[1:]))]
        ),
        # NVIDIA's against itself, started 1e-7 apart: how fast any two runs drift apart.
        "nvidia_vs_itself": _summary(
            [{"iteration": i, **compare(a, b)} for i, (a, b) in enumerate(zip(perturbed.states[1:], free.states[1:]))]
        ),
        # One iteration of each from the same state, every iteration.
        "one_iteration": _summary(
            [{"iteration": i, **compare(a, b)} for i, (a, b) in enumerate(zip(ours.states[1:], forced.states[1:]))]
        ),
        # One iteration of NVIDIA's from the same state and from that state 1e-7 apart.
        "one_iteration_nvidia_vs_itself": _summary(
            [
                {"iteration": i, **compare(a, b)}
                for i, (a, b) in enumerate(zip(forced_perturbed.states[1:], forced.states[1:]))
            ]
        ),
    }
    one = report["one_iteration"]
    # Met when one iteration of ours and of NVIDIA's, from the same state, agree to 1e-5
    # (per network, relative) at every iteration with the same p. Free-running runs drift
    # apart like any two runs 1e-7 apart (`nvidia_vs_itself`): training is chaotic, and
    # no implementation can promise more than that envelope.
    report["targets_met"] = one["global_rel_all"] <= 1e-5 and one["p_equal_all"]
    return report


# ---------------------------------------------------------------------------------------
# Statistics over seeds


OUR_KEYS = {
    "p": "augment_p",
    "r_t": "ada/r_t",
    "loss_G": "loss/G",
    "loss_D": "loss/D",
    "r1_penalty": "r1_penalty",
    "pl_penalty": "pl_penalty",
}
THEIR_KEYS = {
    "p": "Progress/augment",
    "r_t": "Loss/signs/real",
    "loss_G": "Loss/G/loss",
    "loss_D": "Loss/D/loss",
    "r1_penalty": "Loss/r1_penalty",
    "pl_penalty": "Loss/pl_penalty",
}


def _swd(G_state: dict, cfg: dict, data: Path, images: int) -> float:
    G = build_generator(cfg["G_kwargs"]).eval()
    G.load_state_dict(G_state)
    return compute_metrics(Model(G_ema=G), str(data), metrics=("swd",), num_images=images, seed=0)["SWDx1e3_avg"]


def stats(args, root: Path, data: Path, save=lambda runs: None) -> dict:
    """Both loops unmodified, seed after seed; `save` gets the runs so far after each seed (an hour-long run
    interrupted keeps what it measured)."""
    runs = {"ours": [], "theirs": []}
    if args.resume is not None:  # the seeds an interrupted run finished on both sides
        saved = json.loads(args.resume.read_text()).get("stats", {}).get("runs", {})
        done = {r["seed"] for r in saved.get("ours", [])} & {r["seed"] for r in saved.get("theirs", [])}
        runs = {side: [r for r in saved.get(side, []) if r["seed"] in done] for side in ("ours", "theirs")}
        print(f"resuming: seeds {sorted(done)} are done", flush=True)
    tick_kimg = args.kimg / args.ticks
    for seed in range(args.seeds):
        if any(r["seed"] == seed for r in runs["theirs"]):
            continue
        config = TrainConfig(
            data=str(data),
            outdir=str(root / f"ours{seed}"),
            cfg="tiny",
            batch=args.batch,
            batch_gpu=args.batch_gpu,
            kimg=args.kimg,
            kimg_per_tick=tick_kimg,
            snap=10**6,
            metrics=[],
            workers=0,
            device=args.device,
            seed=seed,
            aug="ada",
        )
        t0 = time.time()
        result = train(config, log=lambda _: None, progress=False)
        seconds = time.time() - t0
        cfg = json.loads((result.run_dir / "config.json").read_text())
        ticks = [{k: row.get(v) for k, v in OUR_KEYS.items()} for row in read_jsonl(result.run_dir / "log.jsonl")]
        from safetensors.torch import load_file

        final = load_file(str(list_snapshots(result.run_dir)[-1][1]))
        G_state = {k[len("G_ema.") :]: v for k, v in final.items() if k.startswith("G_ema.")}
        runs["ours"].append(
            {"seed": seed, "ticks": ticks, "seconds": seconds, "swd": _swd(G_state, cfg, data, args.swd_images)}
        )
        print(f"ours seed {seed}: {seconds:.0f} s, SWD {runs['ours'][-1]['swd']:.1f}", flush=True)

        captured: dict = {}
        loop = load_official_loop(Path(args.official), None, args.device)
        run_dir = root / f"theirs{seed}"
        run_dir.mkdir()
        kwargs = official_kwargs(cfg, data, run_dir, seed, args.device)
        kwargs["progress_fn"] = None
        t0 = time.time()
        _run_official_capturing(loop, kwargs, captured)
        seconds = time.time() - t0
        ticks = [{k: _stat(row, v) for k, v in THEIR_KEYS.items()} for row in read_jsonl(run_dir / "stats.jsonl")]
        G_state = {k: v.detach().clone() for k, v in captured["G_ema"].state_dict().items()}
        runs["theirs"].append(
            {"seed": seed, "ticks": ticks, "seconds": seconds, "swd": _swd(G_state, cfg, data, args.swd_images)}
        )
        print(f"theirs seed {seed}: {seconds:.0f} s, SWD {runs['theirs'][-1]['swd']:.1f}", flush=True)
        save(runs)
    return {"runs": runs, "table": _welch_table(runs)}


def _stat(row: dict, key: str):
    value = row.get(key)
    return value.get("mean") if isinstance(value, dict) else value


def _run_official_capturing(loop, kwargs: dict, captured: dict) -> None:
    """Run NVIDIA's loop to its end and keep its final G_ema (through `copy.deepcopy`, which it calls once)."""
    real_deepcopy = copy.deepcopy

    def deepcopy_and_keep(obj, *a, **k):
        out = real_deepcopy(obj, *a, **k)
        if isinstance(obj, torch.nn.Module) and "G_ema" not in captured:
            captured["G_ema"] = out  # `G_ema = copy.deepcopy(G).eval()` is the loop's first module copy
        return out

    loop.copy.deepcopy = deepcopy_and_keep
    try:
        loop.training_loop(**kwargs)
    finally:
        loop.copy.deepcopy = real_deepcopy


def _welch_table(runs: dict) -> list[dict]:
    """Per tick and statistic: mean ± sd over seeds for each loop, and Welch's t."""
    table = []
    n_ticks = min(min(len(r["ticks"]) for r in runs[side]) for side in runs)
    pairs = [(key, key) for key in ("p", "r_t", "loss_G", "loss_D", "r1_penalty", "pl_penalty")]
    for tick in range(n_ticks):
        for ours_key, their_key in pairs:
            a = [r["ticks"][tick][ours_key] for r in runs["ours"] if r["ticks"][tick][ours_key] is not None]
            b = [r["ticks"][tick][their_key] for r in runs["theirs"] if r["ticks"][tick][their_key] is not None]
            if len(a) < 2 or len(b) < 2:
                continue
            table.append({"tick": tick, "stat": ours_key, **_welch(a, b)})
    a = [r["swd"] for r in runs["ours"]]
    b = [r["swd"] for r in runs["theirs"]]
    table.append({"tick": "final", "stat": "SWDx1e3_avg", **_welch(a, b)})
    return table


def markdown_table(table: list[dict], ticks: tuple = (1, 3, 5, 7, 9, "final")) -> str:
    """The statistical run as the README shows it: mean ± sd per side and Welch's t, at a few ticks."""
    lines = ["| tick | statistic | ours (mean ± sd) | NVIDIA's (mean ± sd) | Welch t |", "|---|---|---|---|---|"]
    for row in table:
        if row["tick"] in ticks:
            lines.append(
                f"| {row['tick']} | {row['stat']} | {row['ours']:.4g} ± {row['ours_sd']:.2g} | "
                f"{row['theirs']:.4g} ± {row['theirs_sd']:.2g} | {row['welch_t']:+.2f} |"
            )
    return "\n".join(lines)


def _welch(a: list[float], b: list[float]) -> dict:
    ma, mb = float(np.mean(a)), float(np.mean(b))
    va, vb = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    se = math.sqrt(va / len(a) + vb / len(b))
    t = (ma - mb) / se if se > 0 else (0.0 if ma == mb else math.inf)
    return {"ours": ma, "ours_sd": math.sqrt(va), "theirs": mb, "theirs_sd": math.sqrt(vb), "welch_t": t}


# ---------------------------------------------------------------------------------------
# Splits over rounds and processes (ours only)


def splits(args, root: Path, data: Path) -> dict:
    def run(name: str, batch_gpu: int, processes: int) -> dict:
        from safetensors.torch import load_file

        outdir = root / name
        cmd = [
            "-m",
            "ganscapes",
            "train",
            "--data",
            str(data),
            "--outdir",
            str(outdir),
            "--cfg",
            "tiny",
            "--batch",
            str(args.batch),
            "--batch-gpu",
            str(batch_gpu),
            "--kimg",
            str(args.iters * args.batch / 1000),
            "--metrics",
            "",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--snap",
            "1000000",
            "--seed",
            str(args.seed),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
        if processes > 1:
            cmd = [
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={processes}",
                "--master_addr=127.0.0.1",
                "--master_port=29533",
                *cmd,
            ]
        subprocess.run([sys.executable, *cmd], env=env, check=True, capture_output=True)
        return load_file(str(list_snapshots(next(outdir.iterdir()))[-1][1]))

    out = {}
    for batch_gpu in (args.batch // 2, 2):
        one, two = run(f"one{batch_gpu}", batch_gpu, 1), run(f"two{batch_gpu}", batch_gpu, 2)
        out[f"batch-gpu {batch_gpu}: 1 process vs 2"] = max(relative_difference(one[k], two[k]) for k in one)
    eight, two = run("one8", args.batch, 1), run("one2", 2, 1)
    out[f"batch-gpu {args.batch} vs 2 (different training, see README)"] = max(
        relative_difference(eight[k], two[k]) for k in eight
    )
    return out


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", help="checkout of NVlabs/stylegan2-ada-pytorch (commit d72cc7d)")
    parser.add_argument("--markdown", type=Path, help="print a results file's statistical table as Markdown and exit")
    parser.add_argument("--mode", default="lockstep", choices=["lockstep", "stats", "splits", "all"])
    parser.add_argument("--iters", type=int, default=64, help="lock-step iterations")
    parser.add_argument("--res", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-gpu", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--aug", default="ada", choices=["ada", "fixed", "noaug"])
    parser.add_argument("--p", type=float, default=0.0, help="starting augmentation probability")
    parser.add_argument("--seeds", type=int, default=5, help="statistical run: seeds per loop")
    parser.add_argument("--kimg", type=float, default=5, help="statistical run: kimg per seed")
    parser.add_argument("--ticks", type=int, default=10, help="statistical run: ticks per run")
    parser.add_argument("--swd-images", type=int, default=2000)
    parser.add_argument("--images", type=int, default=2000, help="procedural paintings in the dataset")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--resume", type=Path, default=None, help="statistical run: keep the seeds this file has")
    parser.add_argument("--out", type=Path, default=Path("parity-results.json"))
    args = parser.parse_args()
    if args.markdown is not None:
        runs = json.loads(args.markdown.read_text())["stats"]["runs"]
        print(markdown_table(_welch_table(runs)))
        return
    if args.official is None:
        parser.error("--official is required (a checkout of NVlabs/stylegan2-ada-pytorch)")
    warnings.filterwarnings("ignore", message="grid_sample_gradfix not supported")  # NVIDIA's fallback, as intended
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "paintings.zip"
        make_samples(root / "raw", n=args.images, seed=1, min_side=args.res, max_side=2 * args.res, progress=False)
        prepare_dataset(root / "raw", data, PrepareConfig(res=args.res, workers=1), log=lambda _: None, progress=False)
        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        if args.mode in ("lockstep", "all"):
            rep = lockstep(args, root / "lockstep", data)
            results["lockstep"] = rep
            for name in ("one_iteration", "one_iteration_nvidia_vs_itself", "free", "nvidia_vs_itself"):
                r = rep[name]
                print(
                    f"{name}: max rel diff first 16 {r['max_rel_first_16']:.2e}, all {r['max_rel_all']:.2e}, "
                    f"global first 16 {r['global_rel_first_16']:.2e}, all {r['global_rel_all']:.2e}, "
                    f"final {r['final_rel']:.2e}; p equal throughout: {r['p_equal_all']} (final {r['final_p']:.6f}); "
                    f"pl_mean max rel {r['max_pl_mean_rel']:.1e}"
                )
            print(f"targets met: {rep['targets_met']}; seconds {rep['seconds']}")
            checkpoints = {0, 1, 3, 7, 15, 31, 47, args.iters - 1}
            names = ("one_iteration", "one_iteration_nvidia_vs_itself", "free", "nvidia_vs_itself")
            for a, n, b, c in zip(*(rep[name]["rows"] for name in names)):
                if a["iteration"] in checkpoints:
                    print(
                        f"  iter {a['iteration']:3d}  per network, one iteration: ours {a['global_rel']:.1e} "
                        f"NVIDIA-1e-7 {n['global_rel']:.1e}; free: ours {b['global_rel']:.1e} "
                        f"NVIDIA-1e-7 {c['global_rel']:.1e}; p {b['p_ours']:.6f}/{b['p_theirs']:.6f}"
                    )
        if args.mode in ("splits", "all"):
            results["splits"] = splits(args, root / "splits", data)
            for name, value in results["splits"].items():
                print(f"splits: {name}: max rel diff {value:.2e}")
        if args.mode in ("stats", "all"):

            def save_partial(runs: dict) -> None:
                args.out.write_text(json.dumps({**results, "stats": {"runs": runs, "partial": True}}, indent=1))

            results["stats"] = stats(args, root / "stats", data, save=save_partial)
            for row in results["stats"]["table"]:
                print(
                    f"  tick {row['tick']!s:>5} {row['stat']:<12} ours {row['ours']:.4g} ± {row['ours_sd']:.2g}  "
                    f"theirs {row['theirs']:.4g} ± {row['theirs_sd']:.2g}  Welch t {row['welch_t']:+.2f}"
                )
        args.out.write_text(json.dumps(results, indent=1, default=str))
        print(f"results in {args.out}")


if __name__ == "__main__":
    main()
