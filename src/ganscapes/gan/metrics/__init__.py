"""Quality metrics of a generator against its training data.

FID and KID as in NVIDIA's `metrics/metric_main.py`; SWD as in ProGAN (Karras et al. 2018).

- `swd`: ProGAN's sliced Wasserstein distance on Laplacian-pyramid patches; no weights
  needed, so training computes it at every snapshot. Keys `SWDx1e3_{res}`, `SWDx1e3_avg`.
- `fid50k_full`, `kid50k_full`: Fréchet and kernel Inception distances against the whole
  dataset; they need NVIDIA's Inception file (see `fid.py`). Keys are the metric names.

Lower is better for all. `compute_metrics` generates the fakes with G_ema as the official
metrics do (ψ = 1, random noise, labels of random dataset images for conditional
models), all from `seed`, so the same model, data and seed give the same numbers on the
same device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganscapes.cpu_heap import keep_freed_memory
from ganscapes.device import resolve_device, synthesis_options
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import Model, load_model
from ganscapes.gan.metrics.fid import (  # noqa: F401 (re-exported)
    INCEPTION_ENV,
    INCEPTION_FILE,
    INCEPTION_URL,
    extract_features,
    feature_stats,
    fid_from_features,
    fid_from_stats,
    inception_path,
    kid_from_features,
    load_inception,
)
from ganscapes.gan.metrics.swd import SWDAccumulator, swd  # noqa: F401 (re-exported)
from ganscapes.gan.ops import to_uint8
from ganscapes.gan.training_data import ImageDataset

METRICS = ("swd", "fid50k_full", "kid50k_full")
# Images per set in each metric's published protocol (reals for FID: the whole dataset;
# KID: at most this many reals).
SWD_IMAGES = 16384
FID_FAKES = 50000
KID_MAX_REALS = 1_000_000


def parse_metrics(metrics: str | Iterable[str]) -> list[str]:
    """Metric names from "swd,fid50k_full" or a list; unknown names are a UserError."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    if not names:
        raise UserError(f"No metric was named; choose from {', '.join(METRICS)}.")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"Unknown metric {unknown[0]!r}; the metrics are {', '.join(METRICS)}.")
    return names


@dataclass
class MetricsRun:
    results: dict[str, float]  # what compute_metrics returns
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # metric → {"reals": n, "fakes": n}
    device: str = "cpu"
    seconds: float = 0.0


def compute_metrics(
    model,
    dataset_path,
    metrics: Sequence[str] | str = ("swd",),
    num_images: int | None = None,
    batch: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    inception: str | Path | None = None,
    **kwargs,
) -> dict[str, float]:
    """The metrics of `model` (a `checkpoint.Model` or a model file) against the dataset at
    `dataset_path`, as `{key: value}`; see `run_metrics`."""
    return run_metrics(
        model,
        dataset_path,
        metrics,
        num_images=num_images,
        batch=batch,
        device=device,
        seed=seed,
        inception=inception,
        **kwargs,
    ).results


def run_metrics(
    model,
    dataset_path,
    metrics: Sequence[str] | str = ("swd",),
    num_images: int | None = None,
    batch: int = 16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    inception: str | Path | None = None,
    feature_fn: Callable | None = None,
    progress: bool = False,
    workers: int = 4,
) -> MetricsRun:
    """Compute `metrics` and say how many images each used.

    `num_images` (None: each metric's protocol) sets the number of fakes; for SWD also the
    number of reals (equal sets; at most the dataset's size; a seeded random subset when
    smaller). FID reads every real image, KID up to 1M. `feature_fn` replaces the
    Inception network (tests); otherwise `inception` or $GANSCAPES_INCEPTION names it.
    Reals are never x-flipped.
    """

    start = time.perf_counter()
    names = parse_metrics(metrics)
    if num_images is not None and num_images < 2:
        raise SettingError("num_images", f"must be at least 2, not {num_images}.")
    if batch < 1:
        raise SettingError("batch", f"must be at least 1, not {batch}.")
    wants_features = any(n in ("fid50k_full", "kid50k_full") for n in names)
    if wants_features and feature_fn is None:
        inception_path(inception)  # a missing file fails before any work
    dev = resolve_device(device)
    if not isinstance(model, Model):
        model = load_model(model, device=dev, generator_only=True)
    G = model.G_ema
    dataset = ImageDataset(dataset_path, use_labels=G.c_dim > 0)
    if dataset.resolution != G.img_resolution or dataset.num_channels != G.img_channels:
        raise UserError(
            f"The model makes {G.img_resolution}x{G.img_resolution} images with {G.img_channels} channel(s), but "
            f"dataset {dataset.path} holds {dataset.resolution}x{dataset.resolution} with {dataset.num_channels}."
        )
    if G.c_dim > 0 and dataset.label_dim != G.c_dim:
        raise UserError(
            f"The model is conditional on {G.c_dim} classes, but dataset {dataset.path} has "
            f"{dataset.label_dim}-dimensional labels."
        )

    if wants_features and feature_fn is None:
        feature_fn = load_inception(inception, dev)

    n_data = dataset.num_images
    counts: dict[str, dict[str, int]] = {}
    swd_acc = None
    swd_reals: np.ndarray = np.zeros([0], np.int64)
    if "swd" in names:
        n_swd = min(num_images or SWD_IMAGES, n_data)
        if n_swd < 2:
            raise UserError(f"SWD needs at least 2 images, and dataset {dataset.path} has {n_data}.")
        swd_reals = _subset(n_data, n_swd, seed)
        swd_acc = SWDAccumulator(
            dataset.resolution, dataset.num_channels, n_swd, seed=seed, device=dev if dev.type == "cuda" else "cpu"
        )
        counts["swd"] = {"reals": n_swd, "fakes": n_swd}
    n_feat_fakes = 0
    feat_reals = np.zeros([0], np.int64)
    if wants_features:
        n_feat_fakes = num_images or FID_FAKES
        n_real = n_data if "fid50k_full" in names else min(n_data, KID_MAX_REALS)
        feat_reals = np.arange(n_real)
        for n in ("fid50k_full", "kid50k_full"):
            if n in names:
                counts[n] = {
                    "reals": n_real if n == "fid50k_full" else min(n_real, KID_MAX_REALS),
                    "fakes": n_feat_fakes,
                }

    # Reals: one pass over the images any metric needs, in index order.
    needed = np.union1d(swd_reals, feat_reals)
    real_feats = _cached_real_features(dataset, feature_fn, len(feat_reals)) if wants_features else None
    read_feats = wants_features and real_feats is None
    if not read_feats:
        needed = swd_reals
    in_swd = np.isin(needed, swd_reals)
    in_feat = np.isin(needed, feat_reals) if read_feats else np.zeros(len(needed), bool)
    feats = []
    bar = tqdm(total=len(needed), desc="reals", unit="img", disable=not progress)
    for pos, images in _read_batches(dataset, needed, batch, workers):
        sel = slice(pos, pos + images.shape[0])
        if swd_acc is not None and in_swd[sel].any():
            swd_acc.add_reals(images[torch.from_numpy(in_swd[sel])])
        if in_feat[sel].any():
            feats.append(extract_features(images[torch.from_numpy(in_feat[sel])], feature_fn, batch))
        bar.update(images.shape[0])
    bar.close()
    if read_feats:
        real_feats = torch.cat(feats)
        _store_real_features(dataset, feature_fn, len(feat_reals), real_feats)

    # Fakes: the first ones serve SWD, all of them the Inception metrics.
    n_swd = len(swd_reals)
    n_fakes = max(n_swd, n_feat_fakes)
    fake_feats = []
    bar = tqdm(total=n_fakes, desc="fakes", unit="img", disable=not progress)

    def use_fakes(pos: int, images: torch.Tensor) -> None:
        if swd_acc is not None and pos < n_swd:
            swd_acc.add_fakes(images[: n_swd - pos])
        if pos < n_feat_fakes:
            fake_feats.append(extract_features(images[: n_feat_fakes - pos], feature_fn, batch))
        bar.update(images.shape[0])

    _generate(model, dataset, n_fakes, batch, dev, seed, use_fakes)
    bar.close()

    results: dict[str, float] = {}
    if swd_acc is not None:
        results.update(swd_acc.result())
    if wants_features:
        fake = torch.cat(fake_feats)
        if "fid50k_full" in names:
            results["fid50k_full"] = fid_from_features(real_feats, fake)
        if "kid50k_full" in names:
            results["kid50k_full"] = kid_from_features(real_feats[:KID_MAX_REALS], fake, seed=seed)
    return MetricsRun(results=results, counts=counts, device=str(dev), seconds=time.perf_counter() - start)


def _subset(n: int, k: int, seed: int) -> np.ndarray:
    """k of range(n), sorted; a seeded random choice when k < n."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, k, replace=False))


def _read_batches(dataset, indices: np.ndarray, batch: int, workers: int) -> Iterator[tuple[int, torch.Tensor]]:
    """(position, uint8 images [b, C, H, W]) for the dataset's images `indices`, decoded
    by a few threads (PNG decoding releases the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for pos in range(0, len(indices), batch):
            part = indices[pos : pos + batch]
            arrays = list(pool.map(dataset.read_raw, (int(i) for i in part)))
            yield pos, torch.from_numpy(np.stack(arrays))


def _generate(
    model, dataset, n: int, batch: int, dev: torch.device, seed: int, consume: Callable[[int, torch.Tensor], None]
) -> None:
    """Hand `consume(position, uint8 fakes)` `n` images from G_ema, `batch` at a time: z
    and labels from a CPU generator seeded with `seed`, random noise from torch's global
    generator seeded with `seed` (its state is restored afterwards on CPU and CUDA)."""

    G = model.G_ema
    run_kwargs = synthesis_options(dev)
    if dev.type == "cpu":
        keep_freed_memory()  # thousands of batches of the same activations (cpu_heap.py)
    gen = torch.Generator().manual_seed(int(seed))
    devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    was_training = G.training
    G.eval()  # in training mode the mapping would move w_avg
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(int(seed))
            for pos in range(0, n, batch):
                b = min(batch, n - pos)
                z = torch.randn([b, G.z_dim], generator=gen)
                c = dataset.sample_labels(b, generator=gen) if G.c_dim > 0 else torch.zeros([b, 0])
                img = G(z.to(dev), c.to(dev), truncation_psi=1, noise_mode="random", **run_kwargs)
                consume(pos, to_uint8(img).cpu())
    finally:
        G.train(was_training)


# Real Inception features of the last dataset seen, so that training's snapshots read and
# embed the reals only once: (path, fingerprint, count) → (extractor, features).
_REAL_CACHE: dict[tuple, tuple[Callable, torch.Tensor]] = {}


def _cache_key(dataset, count: int) -> tuple:
    return (str(Path(dataset.path).resolve()), dataset.fingerprint(), count)


def _cached_real_features(dataset, feature_fn, count: int) -> torch.Tensor | None:
    hit = _REAL_CACHE.get(_cache_key(dataset, count))
    return hit[1] if hit is not None and hit[0] is feature_fn else None


def _store_real_features(dataset, feature_fn, count: int, feats: torch.Tensor) -> None:
    _REAL_CACHE.clear()
    _REAL_CACHE[_cache_key(dataset, count)] = (feature_fn, feats)
