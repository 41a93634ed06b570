"""What a training run is: options (`TrainConfig`), their resolution against a preset, run folders.

Defaults are those of NVIDIA's `train.py`; a preset fills what the user left unset
(batch, γ, lr, EMA, mapping depth) and `resolve` writes the result down as plain JSON,
which is printed by `--dry-run` and saved as `config.json` in every run folder.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import remove_stale_temporaries, writable_folder
from ganscapes.gan.augment import AUGPIPE_SPECS
from ganscapes.gan.config import PRESET_NAMES, network_kwargs, resolve_preset

AUG_MODES = ("ada", "fixed", "noaug")


@dataclass
class TrainConfig:
    """Options of `ganscapes train`; None means "take it from the preset"."""

    data: str
    outdir: str = "runs"
    cfg: str = "auto"
    kimg: float | None = None
    batch: int | None = None
    batch_gpu: int | None = None
    gamma: float | None = None
    aug: str = "ada"
    p: float = 0.0
    target: float = 0.6
    augpipe: str = "bgc"
    ada_kimg: float | None = None  # 500, or 100 when starting from another model (as train.py's --resume)
    subset: int | None = None  # train on a seeded random subset of this many images (train.py's --subset)
    mirror: bool = False
    cond: bool = False
    freezed: int = 0
    fp32: bool = False
    snap: int = 50  # ticks between snapshots
    snap_minutes: float | None = None  # also snapshot after this much wall-clock time
    kimg_per_tick: float = 4
    keep: int = 5  # snapshots kept (plus the best by metric)
    metrics: list[str] = field(default_factory=lambda: ["swd"])
    metric_images: int = 512  # images per set for the snapshot metric
    seed: int = 0
    max_hours: float | None = None
    workers: int | None = None  # NVIDIA's 3, at most the cores this process may use
    device: str = "auto"
    resume: str | None = None  # "latest" or a model/snapshot path
    desc: str | None = None


def resolve(config: TrainConfig, resolution: int, img_channels: int, label_dim: int, world: int = 1) -> ResolvedConfig:
    """Every setting of a new run, from the options, the preset and the data.

    A bad option raises `SettingError` naming the TrainConfig field (`kimg_per_tick`);
    the command line says it as its option (`--kimg-per-tick`).
    """
    c = config
    _one_of("aug", c.aug, AUG_MODES)
    _one_of("augpipe", c.augpipe, AUGPIPE_SPECS)
    _one_of("cfg", c.cfg, PRESET_NAMES)
    for name, value, low in [
        ("p", c.p, 0),
        ("target", c.target, 0),
        ("snap", c.snap, 1),
        ("keep", c.keep, 1),
        ("freezed", c.freezed, 0),
        ("workers", c.workers, 0),
        ("kimg_per_tick", c.kimg_per_tick, 1e-6),
        ("ada_kimg", c.ada_kimg, 1e-6),
        ("subset", c.subset, 1),
        ("metric_images", c.metric_images, 1),
        ("snap_minutes", c.snap_minutes, 1e-6),
        ("max_hours", c.max_hours, 0),
    ]:
        if value is not None and not (math.isfinite(value) and value >= low):
            raise SettingError(name, f"must be at least {low}, not {value}.")
    if c.target > 1:
        raise SettingError("target", f"must be between 0 and 1, not {c.target}.")
    _check_metrics(c.metrics)
    if c.cond and label_dim == 0:
        raise SettingError("cond", f"needs labels, but {c.data} has none in its dataset.json.")
    preset = resolve_preset(c.cfg, resolution, gpus=world)
    # As NVIDIA's train.py: a preset runs `mb // ref_gpus` images per device per round
    # (paper256 on one GPU: 8 rounds of 8); `--batch B` runs B // gpus in one round.
    if c.batch is not None:
        batch, default_batch_gpu = c.batch, max(c.batch // world, 1)
    else:
        batch, default_batch_gpu = preset.mb, min(preset.batch_gpu, max(preset.mb // world, 1))
    batch_gpu = c.batch_gpu if c.batch_gpu is not None else default_batch_gpu
    for name, value in (("batch", batch), ("batch_gpu", batch_gpu)):
        if value < 1:
            raise SettingError(name, f"must be at least 1, not {value}.")
    if batch % world != 0 or (batch // world) % batch_gpu != 0:
        raise SettingError(
            "batch",
            f"{batch} must split evenly over {world} device(s) and then into rounds of {batch_gpu} (the batch per "
            "device and round).",
        )
    kimg = c.kimg if c.kimg is not None else preset.kimg
    if not (math.isfinite(kimg) and kimg > 0):
        raise SettingError("kimg", f"must be positive, not {kimg}.")
    # γ and the EMA half-life come from the preset's own batch even when --batch
    # overrides it (train.py computes the `auto` heuristics before reading --batch).
    gamma = c.gamma if c.gamma is not None else preset.gamma
    if not (math.isfinite(gamma) and gamma >= 0):
        raise SettingError("gamma", f"must be 0 or more, not {gamma}.")
    G_kwargs, D_kwargs = network_kwargs(preset, resolution, img_channels, label_dim if c.cond else 0, fp32=c.fp32)
    D_kwargs["block_kwargs"] = {"freeze_layers": c.freezed}
    # Transfer learning (a run started from another model): train.py's --resume makes ADA
    # react 5x faster and drops the EMA ramp-up, so G_ema starts as the source's G_ema.
    transfer = c.resume is not None
    ada_kimg = c.ada_kimg if c.ada_kimg is not None else (100 if transfer else 500)
    ema_rampup = None if transfer else preset.ramp
    return ResolvedConfig(
        data=str(c.data),
        preset=c.cfg,
        resolution=resolution,
        world_size=world,
        batch=batch,
        batch_gpu=batch_gpu,
        kimg=kimg,
        kimg_per_tick=c.kimg_per_tick,
        r1_gamma=gamma,
        lr=preset.lrate,
        ema_kimg=preset.ema,
        ema_rampup=ema_rampup,
        pl_weight=preset.pl_weight,
        style_mixing_prob=preset.style_mixing,
        aug=c.aug,
        p=c.p,
        target=c.target,
        augpipe=c.augpipe if c.aug != "noaug" else None,
        ada_kimg=ada_kimg,
        transfer=transfer,
        subset=c.subset,
        mirror=c.mirror,
        cond=c.cond,
        freezed=c.freezed,
        fp32=c.fp32,
        G_kwargs=G_kwargs,
        D_kwargs=D_kwargs,
        snap=c.snap,
        snap_minutes=c.snap_minutes,
        keep=c.keep,
        metrics=list(c.metrics),
        metric_images=c.metric_images,
        seed=c.seed,
        max_hours=c.max_hours,
        workers=default_workers(c.workers),
        device=c.device,
    )


@dataclass(frozen=True)
class ResolvedConfig:
    """Every setting a run trains with, resolved once and saved as the run's config.json.

    A resume continues with the run's own settings; only how long, how often it
    snapshots and where it runs may change (`for_resume`).
    """

    data: str
    preset: str  # --cfg
    resolution: int
    world_size: int  # processes
    batch: int  # images per iteration, all processes together
    batch_gpu: int  # images per process per round
    kimg: float
    kimg_per_tick: float
    r1_gamma: float
    lr: float
    ema_kimg: float
    ema_rampup: float | None
    pl_weight: float
    style_mixing_prob: float
    aug: str
    p: float  # starting augmentation probability
    target: float  # ADA target for r_t
    augpipe: str | None
    ada_kimg: float
    transfer: bool  # started from another model
    subset: int | None
    mirror: bool
    cond: bool
    freezed: int
    fp32: bool
    G_kwargs: dict
    D_kwargs: dict
    snap: int
    snap_minutes: float | None
    keep: int
    metrics: list
    metric_images: int
    seed: int
    max_hours: float | None
    workers: int
    device: str
    G_reg_interval: int = 4
    D_reg_interval: int = 16

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ResolvedConfig:
        """Read a saved configuration, including those of runs from earlier versions."""
        data = dict(data)
        if "cfg" in data and "preset" not in data:  # before 0.2 the preset was saved as "cfg"
            data["preset"] = data.pop("cfg")
        data.setdefault("transfer", False)
        data.setdefault("subset", None)
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as e:
            missing = sorted(
                f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING
            )
            raise UserError(
                f"The saved training configuration lacks {', '.join(missing) or e}; it cannot be resumed."
            ) from None

    def for_resume(self, config: TrainConfig) -> ResolvedConfig:
        """This run's settings with what a resume may change: length, snapshots in time, workers, device."""
        return dataclasses.replace(
            self,
            kimg=config.kimg if config.kimg is not None else self.kimg,
            max_hours=config.max_hours,
            snap_minutes=config.snap_minutes,
            workers=default_workers(config.workers),
            device=config.device,
        )


def default_workers(workers: int | None) -> int:
    """`workers`, or NVIDIA's default of 3 data-loading processes capped at the usable cores.

    PyTorch's DataLoader warns when it gets more workers than the process may run on,
    and on a 2-core laptop three extra processes slow training down rather than feed it.
    """
    if workers is not None:
        return workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(3, cores)


def _check_metrics(names) -> None:
    """Metric names, and the Inception file FID and KID need, checked now rather than at the first snapshot."""
    from ganscapes.gan.metrics import METRICS, inception_path

    for name in names:
        _one_of("metrics", name, METRICS)
    if any(name in ("fid50k_full", "kid50k_full") for name in names):
        inception_path()  # a UserError that says which file to get and where to put it


def _one_of(setting: str, value, choices) -> None:
    if value not in choices:
        raise SettingError(setting, f"must be one of {', '.join(choices)}, not {value!r}.")


def run_description(config: TrainConfig, dataset_name: str) -> str:
    """`landscapes-auto-ada` style: what the run is, for its folder name."""
    parts = [config.desc or dataset_name, config.cfg, config.aug]
    if config.mirror:
        parts.append("mirror")
    if config.freezed:
        parts.append(f"freezed{config.freezed}")
    text = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


RUN_PATTERN = re.compile(r"^(\d{5})-")


def existing_runs(outdir: Path) -> list[Path]:
    if not outdir.is_dir():
        return []
    return sorted((p for p in outdir.iterdir() if p.is_dir() and RUN_PATTERN.match(p.name)), key=lambda p: p.name)


def new_run_dir(outdir: Path, description: str) -> Path:
    """The next numbered folder, `00003-landscapes-auto-ada`.

    `outdir` must be writable (checked now, not at the first snapshot), and the
    temporary files that killed runs left in its run folders are deleted on the way
    (`.training-state-….pt.PID.tmp` and the like: only those whose process is gone).
    """
    writable_folder(outdir)
    runs = existing_runs(outdir)
    for run in runs:
        remove_stale_temporaries(run)
    next_id = max((int(RUN_PATTERN.match(p.name).group(1)) for p in runs), default=-1) + 1
    return outdir / f"{next_id:05d}-{description}"


def latest_run(outdir: Path) -> Path | None:
    runs = existing_runs(outdir)
    return runs[-1] if runs else None


def train_command(config: TrainConfig) -> list[str]:
    """`ganscapes train …` that builds this very config: only what differs from the defaults.

    Whoever shows a user how to redo a run (the demo's report) renders it from the
    config the run used, so the command line cannot drift from what was trained.
    Every option is `--` and the field's name with dashes, as the CLI declares them;
    ValueError for a field the CLI has no option for.
    """
    args = ["ganscapes", "train", "--data", str(config.data)]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name == "data" or value == default:
            continue
        if f.name in ("ada_kimg", "desc"):
            raise ValueError(f"ganscapes train has no option for {f.name} ({value!r}).")
        option = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else f"--no-{option[2:]}")
        elif isinstance(value, list):
            args += [option, ",".join(value)]
        elif isinstance(value, float):  # the shortest text that reads back as the same number
            args += [option, str(int(value)) if value.is_integer() else repr(value)]
        else:
            args += [option, str(value)]
    return args
