"""LatentSet: rows of ws with what made them, and the one file format every stage shares.

generate, rank, mix and guide (and the studio through them) write their ws as `.npz`
files, readable with `numpy.load` (no pickle), that every `--forms-from`,
`--styles-from` and `--init FILE.npz:ROWS` reads back:

    array                       shape, type                        written by
    w                           [N, num_ws, w_dim] float32         generate, rank, guide
    seeds, z                    [N] int64, [N, z_dim] float64      generate, rank
    score                       [N] float64                        rank, guide
    psi, truncation_cutoff,     scalars; −1: all layers, no class  generate, rank
      noise_mode, class_idx
    forms, styles, cells        [F, …], [S, …], [S, F, …] float32  mix: its rows are the cells,
    layers                      [L] int64                            style by style (F1-S1, F2-S1, …)
    model_hash                  str                                all

Reading checks each member's header — shape, dtype, and the model's num_ws and w_dim
when a model is given — before reading any data, and reads only the rows asked for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ganscapes.errors import UserError
from ganscapes.make.npz import NpzError, NpzReader, save_npz
from ganscapes.make.paint import paint
from ganscapes.make.recipes import MAX_NUM_WS, MAX_W_DIM
from ganscapes.make.seeds import MAX_DIGITS, MAX_SEEDS, map_z, quoted, seeds_to_z
from ganscapes.provenance import encode_array

LATENTS_FILE = "latents.npz"
MIX_FILE = "mix.npz"
MAX_ROWS = MAX_SEEDS  # the most rows a latents file can hold: generate's largest run
MAX_Z_DIM = 4096
MAX_READ = 4 << 30  # bytes of latents one load may read (all rows of a 100,000-picture run at 1024²)
MAX_TEXT = 256  # characters of a text member (the model hash, the noise mode)
SETTINGS = ("psi", "truncation_cutoff", "noise_mode", "class_idx", "layers")


@dataclass(eq=False)
class LatentSet:
    """Rows of ws, and what is known of how each was made.

    `sources` are the rows' entries for recipes (`LatentSource.to_json`): a seed with ψ,
    cutoff and class, or a file and row. `settings` are the run's: psi,
    truncation_cutoff and class_idx (None: all layers, no class), noise_mode, and mix's
    layers. `grid` is mix's (forms, styles); the rows are then the cells, style by style.
    """

    w: np.ndarray  # [N, num_ws, w_dim] float32
    sources: list[dict] = field(default_factory=list)
    model_hash: str | None = None
    seeds: np.ndarray | None = None  # [N] int64
    z: np.ndarray | None = None  # [N, z_dim] float64
    score: np.ndarray | None = None  # [N] float64
    settings: dict = field(default_factory=dict)
    grid: tuple[np.ndarray, np.ndarray] | None = None  # mix: forms [F, …], styles [S, …]

    def __post_init__(self) -> None:
        self.w = np.asarray(self.w, dtype=np.float32)
        if self.w.ndim != 3:
            raise ValueError(f"w must be [N, num_ws, w_dim], not {list(self.w.shape)}")
        n = len(self.w)
        for name in ("seeds", "z", "score"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows, w has {n}")
        if self.sources and len(self.sources) != n:
            raise ValueError(f"{len(self.sources)} sources for {n} rows")
        if self.grid is not None and len(self.grid[0]) * len(self.grid[1]) != n:
            raise ValueError("a grid's rows are its cells: forms × styles of them")
        unknown = set(self.settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")

    def __len__(self) -> int:
        return len(self.w)

    # -- making ----------------------------------------------------------------------

    @classmethod
    def from_seeds(
        cls,
        G,
        seeds: list[int],
        psi: float,
        cutoff: int | None,
        class_idx: int | None,
        dev,
        model_hash: str | None = None,
    ) -> LatentSet:
        """The ws of seeds, mapped and truncated as generate maps them."""
        seeds = [int(s) for s in seeds]
        z = seeds_to_z(seeds, G.z_dim)
        mapping = {"psi": psi, "truncation_cutoff": cutoff, "class_idx": class_idx}
        return cls(
            map_z(G, z, psi, cutoff, class_idx, dev),
            [{"seed": s, **mapping} for s in seeds],
            model_hash,
            seeds=np.asarray(seeds, dtype=np.int64),
            z=z,
            settings=mapping,
        )

    def select(self, rows: list[int]) -> LatentSet:
        """These rows, in this order (no longer a grid)."""

        def pick(a):
            return None if a is None else a[rows]

        sources = [self.sources[r] for r in rows] if self.sources else []
        return replace(
            self,
            w=self.w[rows],
            sources=sources,
            seeds=pick(self.seeds),
            z=pick(self.z),
            score=pick(self.score),
            grid=None,
        )

    def exact(self) -> LatentSet:
        """The same rows, each source carrying its exact w: a recipe then needs no file."""
        sources = [{**src, "w": encode_array(w)} for src, w in zip(self.sources, self.w)]
        return replace(self, sources=sources)

    # -- files -----------------------------------------------------------------------

    def save(self, path: Path) -> Path:
        """Write the set as `.npz` (atomically), in the format the module describes."""
        arrays: dict[str, np.ndarray] = {}
        if self.seeds is not None:
            arrays["seeds"] = np.asarray(self.seeds, dtype=np.int64)
        if self.z is not None:
            arrays["z"] = np.asarray(self.z, dtype=np.float64)
        if self.grid is None:
            arrays["w"] = self.w
        else:
            forms, styles = self.grid
            arrays["forms"] = np.asarray(forms, dtype=np.float32)
            arrays["styles"] = np.asarray(styles, dtype=np.float32)
            arrays["cells"] = self.w.reshape(len(styles), len(forms), *self.w.shape[1:])
        if self.score is not None:
            arrays["score"] = np.asarray(self.score, dtype=np.float64)
        s = self.settings
        if "psi" in s:
            arrays["psi"] = np.float64(s["psi"])
        if "truncation_cutoff" in s:
            arrays["truncation_cutoff"] = np.int64(_or_minus_one(s["truncation_cutoff"]))
        if "noise_mode" in s:
            arrays["noise_mode"] = np.str_(s["noise_mode"])
        if "class_idx" in s:
            arrays["class_idx"] = np.int64(_or_minus_one(s["class_idx"]))
        if "layers" in s:
            arrays["layers"] = np.asarray(s["layers"], dtype=np.int64)
        if self.model_hash is not None:
            arrays["model_hash"] = np.str_(self.model_hash)
        save_npz(Path(path), **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: Path, rows: list[int] | None = None, model=None) -> LatentSet:
        """The set in `path` (its `rows` only, in that order), checked against `model` if given.

        Every refusal is a UserError of one sentence: a missing or unreadable file, no w
        (or mix cells), ws of another shape or model, a row that is not there, sizes
        beyond the limits above.
        """
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The latents file {path} does not exist.")
        try:
            with NpzReader(path) as npz:
                return _read(npz, path, rows, model)
        except NpzError as e:
            raise UserError(f"{path} is not a readable latents .npz file ({e}).") from None


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else int(value)


def _read(npz: NpzReader, path: Path, rows: list[int] | None, model) -> LatentSet:
    if "w" in npz and len(npz.shape("w")) == 3:
        key, shape = "w", npz.shape("w")
        n = shape[0]
    elif "cells" in npz and len(npz.shape("cells")) == 4:
        key, cells = "cells", npz.shape("cells")
        shape, n = (cells[0] * cells[1], *cells[2:]), cells[0] * cells[1]
    else:
        raise UserError(
            f"{path} holds no w array [N, num_ws, w_dim]; use a latents.npz written by generate, rank or guide, "
            "or a mix.npz."
        )
    if npz.dtype(key).kind != "f":
        raise UserError(f"The {key} array in {path} holds {npz.dtype(key)}, not floating-point ws.")
    if n > MAX_ROWS or not (1 <= shape[1] <= MAX_NUM_WS and 1 <= shape[2] <= MAX_W_DIM):
        raise UserError(
            f"The {key} array in {path} is {list(npz.shape(key))}: more than {MAX_ROWS:,} rows or beyond "
            f"{MAX_NUM_WS} layers of {MAX_W_DIM} values."
        )
    model_hash = _text(npz, "model_hash", path)
    if model is not None:
        G = model.G_ema
        if tuple(shape[1:]) != (G.num_ws, G.w_dim):
            raise UserError(
                f"The latents in {path} are [{shape[1]}, {shape[2]}] per image, but this model needs "
                f"[{G.num_ws}, {G.w_dim}] (num_ws, w_dim): they come from another model."
            )
        if model_hash and model_hash != model.model_hash:
            raise UserError(
                f"The latents in {path} were made by model {model_hash[:12]}, not by this one "
                f"({model.model_hash[:12]}); their pictures would not be the ones you picked."
            )
    picked = list(range(n)) if rows is None else list(rows)
    for r in picked:
        if not 0 <= r < n:
            raise UserError(f"Row {r} is not in {path}, which has rows 0 to {n - 1}.")
    # Everything this load reads, counted from the headers before any data: the ws and the
    # per-row columns of the rows picked, and a whole mix file's forms and styles.
    per_row = {"seeds": (1, "iu", 1), "z": (2, "f", MAX_Z_DIM), "score": (1, "f", 1)}
    row_bytes = math.prod(shape[1:]) * npz.dtype(key).itemsize
    row_bytes += sum(_row_bytes(npz, name, n, *fits) for name, fits in per_row.items())
    grid_bytes = _grid_bytes(npz, shape) if key == "cells" and rows is None else 0
    total = len(picked) * row_bytes + grid_bytes
    if total > MAX_READ:
        raise UserError(
            f"Reading {len(picked):,} rows of {path} would take {total / 2**30:.1f} GiB; "
            "name fewer rows (FILE.npz:0-99)."
        )
    w = _rows(npz, key, picked)
    seeds = _per_row(npz, "seeds", n, picked, *per_row["seeds"])
    z = _per_row(npz, "z", n, picked, *per_row["z"])
    score = _per_row(npz, "score", n, picked, *per_row["score"])
    sources = [
        {"file": path.name, "row": r, **({"seed": int(seeds[k])} if seeds is not None else {})}
        for k, r in enumerate(picked)
    ]
    grid = None
    if key == "cells" and rows is None:
        grid = _grid(npz, shape)
    return LatentSet(
        w=w,
        sources=sources,
        model_hash=model_hash,
        seeds=None if seeds is None else seeds.astype(np.int64),
        z=None if z is None else z.astype(np.float64),
        score=None if score is None else score.astype(np.float64),
        settings=_settings(npz, path),
        grid=grid,
    )


def _rows(npz: NpzReader, key: str, picked: list[int]) -> np.ndarray:
    """Rows of w, or of the cells counted style by style, as float32 [K, num_ws, w_dim]."""
    lead = 2 if key == "cells" else 1
    return npz.read(key, picked, max_bytes=MAX_READ, lead=lead).astype(np.float32)


def _fits_rows(npz: NpzReader, key: str, n: int, ndim: int, kind: str, width: int = 1) -> bool:
    """Whether a per-row array is there and has one entry of the expected kind per row."""
    if key not in npz:
        return False
    shape, dtype = npz.shape(key), npz.dtype(key)
    return len(shape) == ndim and shape[0] == n and dtype.kind in kind and not (ndim == 2 and shape[1] > width)


def _row_bytes(npz: NpzReader, key: str, n: int, ndim: int, kind: str, width: int = 1) -> int:
    """Bytes one row of a per-row array takes (0 where it will not be read)."""
    if not _fits_rows(npz, key, n, ndim, kind, width):
        return 0
    return math.prod(npz.shape(key)[1:]) * npz.dtype(key).itemsize


def _per_row(npz: NpzReader, key: str, n: int, picked: list[int], ndim: int, kind: str, width: int = 1):
    """A per-row array's picked rows, or None where it is missing or does not fit the rows."""
    if not _fits_rows(npz, key, n, ndim, kind, width):
        return None  # as before: a seeds array of another length is not the rows' seeds
    return npz.read(key, picked, max_bytes=MAX_READ)


def _grid_bytes(npz: NpzReader, shape: tuple[int, ...]) -> int:
    """Bytes `_grid` will read: mix's forms and styles, where they fit the cells."""
    styles, forms = npz.shape("cells")[:2]
    total = 0
    for key, count in (("forms", forms), ("styles", styles)):
        if key not in npz or npz.shape(key) != (count, *shape[1:]) or npz.dtype(key).kind != "f":
            return 0
        total += math.prod(npz.shape(key)) * npz.dtype(key).itemsize
    return total


def _grid(npz: NpzReader, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """mix's forms and styles, to write the file back whole (None where they do not fit the cells)."""
    styles, forms = npz.shape("cells")[:2]
    parts = []
    for key, count in (("forms", forms), ("styles", styles)):
        if key not in npz or npz.shape(key) != (count, *shape[1:]) or npz.dtype(key).kind != "f":
            return None
        parts.append(npz.read(key, max_bytes=MAX_READ).astype(np.float32))
    return parts[0], parts[1]


def _text(npz: NpzReader, key: str, path: Path) -> str | None:
    if key not in npz:
        return None
    shape, dtype = npz.shape(key), npz.dtype(key)
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_TEXT:
        raise UserError(f"The {key} entry of {path} is not a text of at most {MAX_TEXT} characters.")
    return str(npz.read(key)[()])


def _scalar(npz: NpzReader, key: str, kind: str):
    """A one-number setting, or None where it is missing or not one number (settings are notes)."""
    if key not in npz or npz.shape(key) != () or npz.dtype(key).kind not in kind:
        return None
    return npz.read(key)[()].item()


def _settings(npz: NpzReader, path: Path) -> dict:
    settings: dict = {}
    psi = _scalar(npz, "psi", "fiu")
    if psi is not None:
        settings["psi"] = float(psi)
    for key in ("truncation_cutoff", "class_idx"):
        value = _scalar(npz, key, "iu")
        if value is not None:
            settings[key] = None if value < 0 else int(value)
    if "noise_mode" in npz and npz.shape("noise_mode") == () and npz.dtype("noise_mode").kind == "U":
        settings["noise_mode"] = _text(npz, "noise_mode", path)
    if "layers" in npz:
        shape, dtype = npz.shape("layers"), npz.dtype("layers")
        if len(shape) == 1 and shape[0] <= MAX_NUM_WS and dtype.kind in "iu":
            settings["layers"] = [int(i) for i in npz.read("layers")]
    return settings


# ---------------------------------------------------------------------------------------
# FILE.npz:ROWS


def parse_latent_spec(spec: str) -> tuple[Path, list[int] | None]:
    """`FILE.npz:0,1,5-7` → (path, rows); `FILE.npz` alone → every row."""
    m = re.fullmatch(r"(.+?\.npz)(?::([\d,\s-]*))?", spec.strip())
    if m is None:
        raise UserError(
            f"Cannot read the latent selection {quoted(spec, 240)}; write FILE.npz:0,1,2 (row numbers) or FILE.npz."
        )
    path = Path(m.group(1))
    if m.group(2) is None:
        return path, None
    rows: list[int] = []
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        r = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if r is None:
            raise UserError(
                f"Cannot read the row {quoted(part)} in {quoted(spec)}; rows are numbers and ranges such as 0-3."
            )
        if any(d is not None and len(d) > MAX_DIGITS for d in r.groups()):
            raise UserError(f"{quoted(spec)} names more than {MAX_ROWS:,} rows.")
        first, last = int(r.group(1)), int(r.group(2) or r.group(1))
        if last < first:
            raise UserError(f"The row range {quoted(part)} in {quoted(spec)} runs backwards.")
        if len(rows) + last - first + 1 > MAX_ROWS:
            raise UserError(f"{quoted(spec)} names more than {MAX_ROWS:,} rows.")
        rows.extend(range(first, last + 1))
    if not rows:
        raise UserError(f"No rows named in {quoted(spec)}; write FILE.npz:0,1,2 or FILE.npz for all rows.")
    return path, rows


def load_latent_rows(spec: str, model) -> LatentSet:
    """The rows `FILE.npz:ROWS` names, checked against `model` (its shapes and hash)."""
    path, rows = parse_latent_spec(spec)
    return LatentSet.load(path, rows, model)


def file_seeds(path: Path) -> list[int] | None:
    """The seeds column of a latents file, without reading its ws (None: it has none)."""
    try:
        with NpzReader(Path(path)) as npz:
            if "seeds" not in npz or len(npz.shape("seeds")) != 1 or npz.dtype("seeds").kind not in "iu":
                return None
            if npz.shape("seeds")[0] > MAX_ROWS:
                raise UserError(f"{path} holds more than {MAX_ROWS:,} seeds.")
            return [int(s) for s in npz.read("seeds")]
    except NpzError as e:
        raise UserError(f"{path} is not a readable latents .npz file ({e}).") from None


def render_ws(G, ws: np.ndarray, noise_mode: str, dev=None, noise_seed: int = 0, batch: int = 8) -> np.ndarray:
    """`paint` under its former name and argument order, for callers written against it
    (`dev` is ignored: paint runs where G is)."""
    return paint(G, ws, noise_mode, batch, noise_seed=noise_seed)
