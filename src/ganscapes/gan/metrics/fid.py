"""FID and KID: Inception-v3 features, then statistics of two feature sets.

As NVIDIA's `metrics/frechet_inception_distance.py` `compute_fid` and
`metrics/kernel_inception_distance.py` `compute_kid`.

The feature extractor is NVIDIA's TorchScript port of TensorFlow's Inception-v3
(`inception-2015-12-05.pt`, 2048-d pool3 features from uint8 images of any size). Its
weights cannot be shipped or downloaded here, so the user gives the file: `--inception
PATH` or the environment variable `GANSCAPES_INCEPTION`.

Trust: the file is loaded with `torch.jit.load`, which runs the TorchScript program it
contains (not arbitrary Python, as unpickling would, but still code from the file). Give
it only a file you obtained from NVIDIA. Pickled detectors (`.pkl`, StyleGAN3's wrapper)
are refused: nothing here unpickles.

The arithmetic works on any features, so it is tested without the weights:

- `fid_from_features`: float64 means and **biased** covariances (divide by N), then
  `‖μ_f − μ_r‖² + Tr(Σ_f + Σ_r − 2·sqrtm(Σ_f Σ_r))`, real part. With SciPy installed the
  matrix square root is `scipy.linalg.sqrtm`, as in the official code; without it the
  trace of the root comes from two symmetric eigen-decompositions,
  `Tr sqrtm(Σ_f Σ_r) = Σ √λ(Σ_r^½ Σ_f Σ_r^½)`, exact for covariance matrices.
- `kid_from_features`: the unbiased MMD² with the cubic polynomial kernel
  `(a·b / D + 1)³`, averaged over 100 random subsets of up to 1000 features.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from ganscapes.errors import UserError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_ENV = "GANSCAPES_INCEPTION"

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------
# The Inception network


def _how_to_get() -> str:
    return f"download {INCEPTION_FILE} from {INCEPTION_URL} and pass its path with --inception PATH or {INCEPTION_ENV}"


def missing_inception_message() -> str:
    return f"FID and KID need NVIDIA's Inception-v3 weights (the TorchScript file {INCEPTION_FILE}): {_how_to_get()}."


def inception_path(path: str | Path | None = None) -> Path:
    """The Inception file: `path`, else $GANSCAPES_INCEPTION; a UserError when neither names a file."""
    given = path if path not in (None, "") else os.environ.get(INCEPTION_ENV) or None
    if given is None:
        raise UserError(missing_inception_message())
    p = Path(given).expanduser()
    if not p.is_file():
        raise UserError(f"The Inception weights file {p} does not exist; {_how_to_get()}.")
    if p.suffix.lower() == ".pkl":
        raise UserError(
            f"{p} is a pickle, which ganscapes does not load; use the TorchScript file {INCEPTION_FILE} "
            f"from {INCEPTION_URL}."
        )
    return p


def load_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> FeatureFn:
    """A feature function (uint8 [N, C, H, W] → float32 [N, 2048]) from NVIDIA's TorchScript
    Inception. Loading runs the file's TorchScript: give only a file from NVIDIA."""
    p = inception_path(path)
    device = torch.device(device)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, str(device))
    if key in _LOADED:  # the same function again, so callers can cache features by it
        return _LOADED[key]
    try:
        net = torch.jit.load(str(p), map_location=device).eval()
    except Exception as e:
        why = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{p} is not a readable TorchScript Inception file ({why}); {_how_to_get()}.") from None

    def features(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # grayscale is tiled to RGB
        with torch.no_grad():
            return net(x, return_features=True)

    _LOADED.clear()
    _LOADED[key] = features
    return features


_LOADED: dict[tuple, FeatureFn] = {}


# ---------------------------------------------------------------------------------------
# Features


def extract_features(
    images: torch.Tensor | Iterable[torch.Tensor], feature_fn: FeatureFn, batch: int = 64
) -> torch.Tensor:
    """Features [N, D] (float64, CPU) of uint8 images, given as one tensor [N, C, H, W] or
    as an iterable of such batches, computed `batch` images at a time."""
    batches = images.split(batch) if isinstance(images, torch.Tensor) else images
    out = []
    for b in batches:
        if b.dtype != torch.uint8:
            raise ValueError(f"feature extraction takes uint8 images, not {b.dtype}")
        for part in b.split(batch):
            f = feature_fn(part)
            out.append(torch.as_tensor(f).detach().reshape(part.shape[0], -1).to("cpu", torch.float64))
    if not out:
        raise ValueError("no images to extract features from")
    return torch.cat(out)


def _as_float64(x) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    a = a.astype(np.float64, copy=False)
    if a.ndim != 2:
        raise ValueError(f"features must be a matrix [N, D], not of shape {a.shape}")
    return a


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], biased covariance [D, D]) in float64."""
    x = _as_float64(features)
    if x.shape[0] < 1:
        raise ValueError("no features")
    mu = x.mean(axis=0)
    centred = x - mu
    return mu, centred.T @ centred / x.shape[0]


# ---------------------------------------------------------------------------------------
# FID


def _have_scipy() -> bool:
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        return False
    return True


def trace_sqrt_product(sigma_a: np.ndarray, sigma_b: np.ndarray, method: str = "auto") -> float:
    """Tr(sqrtm(Σa Σb)) (real part) for covariance matrices.

    method "scipy": `scipy.linalg.sqrtm` of the product (the official computation);
    "eigh": Σ √λ of Σb^½ Σa Σb^½ from symmetric eigen-decompositions (no SciPy needed,
    and stable for singular covariances); "auto": SciPy when installed.
    """
    if method == "auto":
        method = "scipy" if _have_scipy() else "eigh"
    if method == "scipy":
        import scipy.linalg

        root = scipy.linalg.sqrtm(sigma_a @ sigma_b)
        root = root[0] if isinstance(root, tuple) else root
        return float(np.real(np.trace(root)))
    if method != "eigh":
        raise ValueError(f"method must be auto, scipy or eigh, not {method!r}")
    w, v = np.linalg.eigh((sigma_b + sigma_b.T) / 2)
    root_b = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root_b @ sigma_a @ root_b
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(lam, 0, None)).sum())


def fid_from_stats(mu_real, sigma_real, mu_fake, sigma_fake, method: str = "auto") -> float:
    mu_real, mu_fake = np.asarray(mu_real, np.float64), np.asarray(mu_fake, np.float64)
    sigma_real, sigma_fake = np.asarray(sigma_real, np.float64), np.asarray(sigma_fake, np.float64)
    m = float(np.square(mu_fake - mu_real).sum())
    s = trace_sqrt_product(sigma_fake, sigma_real, method)
    return float(m + np.trace(sigma_fake) + np.trace(sigma_real) - 2 * s)


def fid_from_features(real_feats, fake_feats, method: str = "auto") -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] (any N each)."""
    mu_r, sigma_r = feature_stats(real_feats)
    mu_f, sigma_f = feature_stats(fake_feats)
    if mu_r.shape != mu_f.shape:
        raise ValueError(f"feature sizes differ: {mu_r.shape[0]} and {mu_f.shape[0]}")
    return fid_from_stats(mu_r, sigma_r, mu_f, sigma_f, method)


# ---------------------------------------------------------------------------------------
# KID


def kid_from_features(
    real_feats, fake_feats, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> float:
    """Kernel Inception Distance: unbiased MMD² with kernel (a·b/D + 1)³, averaged over
    `num_subsets` subsets of m = min(n_real, n_fake, max_subset_size) drawn without
    replacement (from `RandomState(seed)`)."""
    real, fake = _as_float64(real_feats), _as_float64(fake_feats)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} and {fake.shape[1]}")
    d = real.shape[1]
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 features in each set")
    rng = np.random.RandomState(seed)
    t = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
        t += within / (m - 1) - 2 * kxy.sum() / m
    return float(t / num_subsets / m)
