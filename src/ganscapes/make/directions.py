"""Semantic directions in W: sliders that need no labels and no pretrained weights.

Two unsupervised ways to find directions in a generator's W space along which pictures
change in a meaningful way (the horizon, the light, the season, the brushwork):

- **PCA** (Härkönen et al. 2020, "GANSpace: Discovering Interpretable GAN Controls"):
  map many random z to w and take the principal components of those ws. The first
  components are the directions in which the mapping network spreads its outputs most.
- **SeFa** (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"):
  no sampling at all. Each synthesis layer reads w through an affine layer A (w → style);
  the directions n that A stretches most, the top eigenvectors of AᵀA (the affine weights
  of the chosen layers stacked), change the styles, and so the picture, most.

An edit moves the w rows of the direction's layer range by `amount · σ · n`, where σ is
the standard deviation of sampled ws along n: amounts are then in units of the natural
spread of W, so ±3σ is a large but still typical change for either method.

A directions file (`.npz`, written atomically) holds the unit directions [K, w_dim], σ
[K], the w rows they apply to, the method, the model's hash and the directions' names.
Reading checks every member's header against the bounds below before reading data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganscapes.data.grid import image_grid
from ganscapes.errors import SettingError, UserError
from ganscapes.make.npz import NpzError, NpzReader, save_npz
from ganscapes.make.recipes import EDIT_RANGE, MAX_EDITS, MAX_NUM_WS, MAX_W_DIM, DirectionsSheetRecipe, Edit
from ganscapes.make.seeds import map_z

METHODS = ("pca", "sefa")
MAX_DIRECTIONS = 512  # K: far more than anyone can look at (w_dim is 512 in every published model)
MAX_SAMPLES = 1_000_000  # z sampled for PCA or σ; GANSpace used 10⁶ for its largest models
MIN_SAMPLES = 2
DEFAULT_SAMPLES = 10_000
SAMPLE_BATCH = 1024  # z per mapping call
MAX_NAME = 40  # characters of a direction's name
PREVIEW_STEPS = (-3, -2, -1, 0, 1, 2, 3)  # σ, the columns of a preview sheet
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]*"  # not a number: INDEX=AMOUNT and NAME=AMOUNT must differ


@dataclass(eq=False)
class Directions:
    """K unit directions in W, their σ, the w rows they move, and what made them."""

    vectors: np.ndarray  # [K, w_dim] float32, orthonormal rows
    sigma: np.ndarray  # [K] float32
    layers: list[int]  # the w rows an edit moves
    method: str
    model_hash: str
    names: list[str] = field(default_factory=list)  # "" for an unnamed direction
    samples: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.sigma = np.asarray(self.sigma, dtype=np.float32)
        if not self.names:
            self.names = [""] * len(self.vectors)

    def __len__(self) -> int:
        return len(self.vectors)

    def label(self, k: int) -> str:
        return f"{k} {self.names[k]}" if self.names[k] else str(k)

    def index_of(self, key: str, where: str = "--edit") -> int:
        """The direction an edit names: its index, or its name."""
        key = key.strip()
        if re.fullmatch(r"\d+", key):
            k = int(key) if len(key) < 10 else len(self)
            if k >= len(self):
                raise UserError(f"{where}: there is no direction {key}; the file has directions 0 to {len(self) - 1}.")
            return k
        if key in self.names and key:
            return self.names.index(key)
        known = ", ".join(n for n in self.names if n) or "none yet"
        raise UserError(f"{where}: no direction is named {key[:40]!r} (names: {known[:200]}).")

    def edit(self, k: int, amount: float, file: str | None = None) -> Edit:
        """The edit `amount` σ along direction k, complete enough to be replayed from a recipe."""
        return Edit(
            index=k,
            name=self.names[k] or None,
            amount=check_amount(amount),
            sigma=float(self.sigma[k]),
            direction=self.vectors[k].copy(),
            layers=list(self.layers),
            method=self.method,
            file=file,
        )

    def rename(self, k: int, name: str) -> None:
        name = check_name(name)
        if not 0 <= k < len(self):
            raise UserError(f"There is no direction {k}; the file has directions 0 to {len(self) - 1}.")
        if name in self.names and self.names.index(name) != k:
            raise UserError(f"The name {name!r} is already direction {self.names.index(name)}'s.")
        self.names[k] = name

    # -- files -----------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        longest = max([len(n) for n in self.names] + [1])
        save_npz(
            Path(path),
            directions=self.vectors,
            sigma=self.sigma,
            layers=np.asarray(self.layers, dtype=np.int64),
            method=np.str_(self.method),
            model_hash=np.str_(self.model_hash),
            names=np.asarray(self.names, dtype=f"<U{longest}"),
            samples=np.int64(self.samples),
            seed=np.int64(self.seed),
        )
        return Path(path)

    @classmethod
    def load(cls, path: Path, model=None) -> Directions:
        """The directions in `path`; with `model`, a file made for another model is refused.

        Every size is read from the members' headers and checked before their data.
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The directions file {path} does not exist.")
        try:
            with NpzReader(path) as npz:
                found = _read(npz, path)
        except NpzError as e:
            raise UserError(f"{path} is not a readable directions .npz file ({e}).") from None
        if model is not None:
            G = model.G_ema
            if found.model_hash != model.model_hash:
                raise UserError(
                    f"{path.name} holds directions of model {found.model_hash[:12]}, "
                    f"not of this model ({model.model_hash[:12]}); compute them with ganscapes directions."
                )
            if found.vectors.shape[1] != G.w_dim or any(i >= G.num_ws for i in found.layers):
                raise UserError(f"{path.name} does not fit this model's W ({G.num_ws} rows of {G.w_dim}).")
        return found


def _read(npz: NpzReader, path: Path) -> Directions:
    def bad(what: str) -> UserError:
        return UserError(f"{path} is not a directions file: {what}.")

    for key in ("directions", "sigma", "layers", "method", "model_hash"):
        if key not in npz:
            raise bad(f"it has no {key!r} entry")
    shape = npz.shape("directions")
    if len(shape) != 2 or npz.dtype("directions").kind != "f":
        raise bad("its directions are not a [K, w_dim] array of numbers")
    k, w_dim = shape
    if not 1 <= k <= MAX_DIRECTIONS or not 1 <= w_dim <= MAX_W_DIM:
        raise bad(f"it claims {k:,} directions of {w_dim:,} numbers (at most {MAX_DIRECTIONS} of {MAX_W_DIM})")
    if npz.shape("sigma") != (k,) or npz.dtype("sigma").kind != "f":
        raise bad(f"its sigma is not {k} numbers")
    layers_shape = npz.shape("layers")
    if len(layers_shape) != 1 or not 1 <= layers_shape[0] <= MAX_NUM_WS or npz.dtype("layers").kind not in "iu":
        raise bad(f"its layers are not a list of 1 to {MAX_NUM_WS} w rows")
    texts = {}
    for key in ("method", "model_hash"):
        if npz.shape(key) != () or npz.dtype(key).kind != "U" or npz.dtype(key).itemsize > 4 * 256:
            raise bad(f"its {key} is not a short text")
        texts[key] = str(npz.read(key)[()])
    if texts["method"] not in METHODS:
        raise bad(f"its method {texts['method'][:20]!r} is not {' or '.join(METHODS)}")
    names = [""] * k
    if "names" in npz:
        if npz.shape("names") != (k,) or npz.dtype("names").kind != "U" or npz.dtype("names").itemsize > 4 * MAX_NAME:
            raise bad(f"its names are not {k} texts of at most {MAX_NAME} characters")
        names = [str(n) for n in npz.read("names")]
    vectors = npz.read("directions").astype(np.float32)
    sigma = npz.read("sigma").astype(np.float32)
    layers = [int(i) for i in npz.read("layers")]
    if not np.isfinite(vectors).all() or not np.isfinite(sigma).all() or (sigma < 0).any():
        raise bad("its directions or sigma hold numbers that are not finite")
    if any(not 0 <= i < MAX_NUM_WS for i in layers) or len(set(layers)) != len(layers):
        raise bad(f"its layers are not distinct w rows from 0 to {MAX_NUM_WS - 1}")
    extra = {key: _whole(npz, key) for key in ("samples", "seed")}
    return Directions(vectors, sigma, layers, texts["method"], texts["model_hash"], names, **extra)


def _whole(npz: NpzReader, key: str) -> int:
    if key not in npz or npz.shape(key) != () or npz.dtype(key).kind not in "iu":
        return 0
    return int(npz.read(key)[()])


def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME or not re.fullmatch(NAME_PATTERN, name):
        raise UserError(
            f"A direction's name is a word of at most {MAX_NAME} letters, digits, _ . or - that starts with "
            f"a letter (so it cannot be taken for an index), not {name[:50]!r}."
        )
    return name


def check_amount(amount: float) -> float:
    amount = float(amount)
    if not np.isfinite(amount) or not EDIT_RANGE[0] <= amount <= EDIT_RANGE[1]:
        raise UserError(f"An edit's amount is in σ, from {EDIT_RANGE[0]:g} to {EDIT_RANGE[1]:g}, not {amount:g}.")
    return amount


# ---------------------------------------------------------------------------------------
# Finding directions


def sample_batches(G, samples: int, seed: int, dev, class_idx: int | None = None):
    """w [n, w_dim] float64, SAMPLE_BATCH at a time, of `samples` z drawn from one seeded
    generator and mapped with ψ = 1 (the mapping network gives every row the same w)."""
    rng = np.random.RandomState(seed)
    for i in range(0, samples, SAMPLE_BATCH):
        z = rng.randn(min(SAMPLE_BATCH, samples - i), G.z_dim)
        yield map_z(G, z, 1.0, None, class_idx, dev)[:, 0].astype(np.float64)


def sample_ws(G, samples: int, seed: int, dev, class_idx: int | None = None) -> np.ndarray:
    """All the sampled ws [samples, w_dim] at once (for tests and small runs)."""
    return np.concatenate(list(sample_batches(G, samples, seed, dev, class_idx)))


def w_covariance(G, samples: int, seed: int, dev, class_idx: int | None = None) -> np.ndarray:
    """The covariance [w_dim, w_dim] of the sampled ws, accumulated batch by batch.

    A million samples of a 512-wide W would take 4 GB at once; the sums take w_dim² numbers.
    They are taken around the first batch's mean, which keeps the one-pass formula exact
    enough in float64 (the spread of W is of the order of its mean).
    """
    shift = total = outer = None
    n = 0
    for ws in sample_batches(G, samples, seed, dev, class_idx):
        if shift is None:
            shift = ws.mean(axis=0)
            total, outer = np.zeros_like(shift), np.zeros([len(shift), len(shift)])
        d = ws - shift
        total += d.sum(axis=0)
        outer += d.T @ d
        n += len(ws)
    mean = total / n
    return (outer - n * np.outer(mean, mean)) / max(n - 1, 1)


def pca_directions(cov: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The top `count` principal axes of the ws' covariance and their σ, largest first.

    GANSpace §2.2: PCA of sampled ws (centred); σ of a component is the square root of
    its eigenvalue, the spread of the samples along it.
    """
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][:count]
    axes = _signed(vectors[:, order].T)
    return axes, np.sqrt(np.clip(values[order], 0, None))


def style_affines(G) -> list[tuple[int, torch.Tensor]]:
    """(w row, effective weight [style channels, w_dim]) of every affine layer of the synthesis network.

    Block by block, its convolutions read one row each and its toRGB layer reads the row
    after them (the next block's first), as `SynthesisNetwork.forward` hands them out.
    """
    found = []
    row = 0
    for block in G.synthesis.blocks():
        convs = [block.conv1] if block.in_channels == 0 else [block.conv0, block.conv1]
        for k, conv in enumerate(convs):
            found.append((row + k, conv.affine))
        if hasattr(block, "torgb"):
            found.append((row + len(convs), block.torgb.affine))
        row += block.num_conv
    return [(r, a.weight.detach().double().cpu() * a.weight_gain) for r, a in found]


def sefa_matrix(G, layers: list[int]) -> np.ndarray:
    """AᵀA [w_dim, w_dim] for A the affine weights of the layers reading the rows `layers`, stacked."""
    chosen = [w for row, w in style_affines(G) if row in set(layers)]
    if not chosen:
        raise UserError(f"No style layer reads the w rows {layers}.")
    A = torch.cat(chosen).numpy()
    return A.T @ A


def sefa_directions(G, layers: list[int], count: int) -> np.ndarray:
    """SeFa (Shen & Zhou 2021, eq. 5): the top `count` eigenvectors of AᵀA, as unit rows."""
    values, vectors = np.linalg.eigh(sefa_matrix(G, layers))
    order = np.argsort(values)[::-1][:count]
    return _signed(vectors[:, order].T)


def _signed(axes: np.ndarray) -> np.ndarray:
    """Axes with a fixed sign (largest entry positive): eigensolvers may flip them at will."""
    flip = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return axes * flip[:, None]


def find_directions(
    model,
    method: str,
    layers: list[int],
    count: int,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    device="cpu",
    class_idx: int | None = None,
) -> Directions:
    """K directions by PCA or SeFa for the w rows `layers`, with σ from `samples` sampled ws."""
    if method not in METHODS:
        raise SettingError("method", f"must be one of {', '.join(METHODS)}, not {method!r}.")
    G = model.G_ema.to(device).eval().requires_grad_(False)
    if not layers:
        raise SettingError("layers", "name no w row; use all, coarse, middle, fine or 0-3.")
    if any(not 0 <= i < G.num_ws for i in layers):
        raise SettingError("layers", f"must be w rows from 0 to {G.num_ws - 1}.")
    if not 1 <= count <= min(MAX_DIRECTIONS, G.w_dim):
        raise SettingError("count", f"must be from 1 to {min(MAX_DIRECTIONS, G.w_dim)} (w_dim), not {count}.")
    if not MIN_SAMPLES <= samples <= MAX_SAMPLES:
        raise SettingError("samples", f"must be from {MIN_SAMPLES} to {MAX_SAMPLES:,}, not {samples}.")
    if not 0 <= seed < 2**32:
        raise SettingError("seed", f"must be from 0 to {2**32 - 1}, not {seed}.")
    cov = w_covariance(G, samples, seed, device, class_idx)
    if method == "pca":
        vectors, sigma = pca_directions(cov, count)
    else:
        vectors = sefa_directions(G, layers, count)
        # the standard deviation of the samples' projections: sqrt(nᵀ C n) for each direction n
        sigma = np.sqrt(np.clip(np.einsum("kd,de,ke->k", vectors, cov, vectors), 0, None))
    return Directions(vectors, sigma, list(layers), method, model.model_hash, samples=samples, seed=seed)


# ---------------------------------------------------------------------------------------
# Edits


def parse_edit(text: str) -> tuple[str, float]:
    """`NAME=AMOUNT` or `INDEX=AMOUNT` → (name or index, amount in σ)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--edit takes NAME=AMOUNT or INDEX=AMOUNT (amount in σ, e.g. sky=1.5), not {text[:50]!r}.")
    try:
        amount = float(value)
    except ValueError:
        raise UserError(f"--edit {text[:50]!r}: the amount must be a number of σ, such as 1.5 or -2.") from None
    return key.strip(), check_amount(amount)


def edits_from(texts: list[str], path: Path | None, model) -> list[Edit]:
    """The edits `--edit` names in the directions file `path`, checked against `model`."""
    if not texts:
        if path is not None:
            raise UserError("--directions was given without --edit NAME=AMOUNT; say which direction to move.")
        return []
    if path is None:
        raise UserError("--edit needs --directions FILE.npz, the directions file made by ganscapes directions.")
    if len(texts) > MAX_EDITS:
        raise UserError(f"At most {MAX_EDITS} edits at once, not {len(texts)}.")
    parsed = [parse_edit(t) for t in texts]
    found = Directions.load(path, model)
    return [found.edit(found.index_of(key), amount, file=Path(path).name) for key, amount in parsed]


def check_edits(edits: list[Edit] | None, G) -> None:
    """Refuse edits that do not fit G's W (a recipe from another model, or a damaged one)."""
    for e in edits or ():
        if e.direction.shape != (G.w_dim,) or any(not 0 <= i < G.num_ws for i in e.layers):
            raise UserError(
                f"The edit along direction {e.index} is for rows {e.layers} of a {e.direction.shape[0]}-wide W, "
                f"but this model has {G.num_ws} rows of {G.w_dim}."
            )


def apply_edits(ws: np.ndarray, edits: list[Edit] | None) -> np.ndarray:
    """ws [..., num_ws, w_dim] with each edit's rows moved by amount · σ · direction, in order.

    The same float32 arithmetic wherever a picture is painted or rebuilt, so that a
    rebuilt picture matches bit for bit.
    """
    if not edits:
        return ws
    out = np.array(ws, dtype=np.float32, copy=True)
    for e in edits:
        out[..., e.layers, :] += e.shift()
    return out


# ---------------------------------------------------------------------------------------
# Preview sheet


def preview_sheet(
    model,
    found: Directions,
    seeds: list[int],
    psi: float = 1.0,
    device="cpu",
    cell_size: int | None = None,
    batch: int = 8,
    noise_mode: str = "const",
) -> tuple[Image.Image, DirectionsSheetRecipe]:
    """Rows: each direction (for each seed); columns: −3σ … +3σ. With its recipe."""
    from ganscapes.make.paint import paint
    from ganscapes.make.seeds import map_seeds

    G = model.G_ema.to(device).eval().requires_grad_(False)
    check_edits([found.edit(0, 0.0)], G)
    base = map_seeds(G, seeds, psi, None, None, device)
    ws = []
    for k in range(len(found)):
        for s in range(len(seeds)):
            for a in PREVIEW_STEPS:
                ws.append(apply_edits(base[s], [found.edit(k, float(a))]))
    pixels = paint(G, np.stack(ws), noise_mode, batch)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    size = cell_size or min(G.img_resolution, 128)
    labels: list[str | None] = []
    for k in range(len(found)):
        for s, seed in enumerate(seeds):
            for c, a in enumerate(PREVIEW_STEPS):
                parts = []
                if c == 0:
                    parts.append(found.label(k) + (f" s{seed}" if len(seeds) > 1 else ""))
                if k == 0 and s == 0:  # the column's step in σ (the label font has no σ)
                    parts.append(f"{a:+d}" if a else "0")
                labels.append(" ".join(parts) or None)
    sheet = image_grid(
        [Image.fromarray(p[..., :3]) for p in pixels],
        len(PREVIEW_STEPS),
        size,
        fit="stretch",
        background=(255, 255, 255),
        labels=labels,
        label_at=(3, 2),
        label_box="fit",
    )
    recipe = DirectionsSheetRecipe(
        model_hash=model.model_hash,
        noise_mode=noise_mode,
        device=str(device),
        method=found.method,
        layers=list(found.layers),
        sigma=[float(s) for s in found.sigma],
        names=list(found.names),
        seeds=list(seeds),
        psi=psi,
        steps=list(PREVIEW_STEPS),
    )
    return sheet, recipe
