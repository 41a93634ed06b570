"""Recipes as typed values: what each kind of picture records so that it can be made again.

Every PNG ganscapes writes carries a recipe, JSON in a PNG text entry (`provenance`).
The classes here write that JSON (`to_json`) and read it back (`from_json`), checking
the type and range of every field, so that a damaged or hand-edited recipe is refused
with one sentence that names the field, before any network runs. The field names are
the ones the PNGs have always carried; fields a class does not know (added by another
version or by hand) are kept and written back unchanged. `parse_recipe` picks the
class by the recipe's `kind` from `RECIPE_KINDS`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

import numpy as np

from ganscapes.data.aspect import ASPECT_RANGE
from ganscapes.errors import UserError
from ganscapes.make.paint import MAX_BATCH, NOISE_MODES, ROW_GROUP, round_up
from ganscapes.make.seeds import MAX_SEED
from ganscapes.provenance import decode_array, encode_array

MAX_NUM_WS = 64  # w rows (layers) of a model: 18 at 1024²
MAX_W_DIM = 4096  # 512 in every published configuration
MAX_CLASSES = 1 << 20
MAX_TEXT = 10_000  # characters of a free-text field (a phrase, a file name)
MAX_ITEMS = 10_000  # entries of a list field (phrases, grid headers)
MAX_DEPTH = 32  # a post of a post of …
MAX_ROW = 1 << 53  # a row of a latents file, a catalog number: any whole number JSON keeps exact
MAX_BATCH_ROWS = round_up(MAX_BATCH, ROW_GROUP)  # the largest network call generate makes (reproduce repeats it)
MAX_WIDTH = 16384  # pixels post resizes to
MAX_PICTURE_PIXELS = 1 << 24  # 16 megapixels (4096²): the most a picture ganscapes writes or reads back may have
GUIDE_METHODS = ("adam", "genetic", "rank", "project")  # rank: guide --compare's generate-and-rank


_MISSING = object()


def _show(value: Any) -> str:
    """A value for an error message: its repr, cut to 40 characters."""
    text = "missing" if value is _MISSING else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


class _Fields:
    """The fields of one JSON object of a recipe, read with type and range checks.

    Errors name the field by its path in the recipe ("source.post.width"); the keys not
    read are what `rest` returns, to be kept as they are.
    """

    def __init__(self, data: Any, where: str):
        if not isinstance(data, dict):
            raise UserError(f"The recipe's {where or 'top level'} is not a JSON object, but {_show(data)}.")
        self.data, self.where, self.used = data, where, set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, need: str, value: Any) -> NoReturn:
        raise UserError(f"The recipe's {self.path(key)} must be {need}, not {_show(value)}.")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        self.used.add(key)
        value = self.data.get(key, default)
        if value is _MISSING:
            raise UserError(f"The recipe has no {self.path(key)!r} entry, so it cannot be rebuilt.")
        return value

    def whole(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> int | None:
        value = self.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(key, f"a whole number from {lo} to {hi}", value)
        return value

    def number(self, key: str, lo: float, hi: float, default: Any = _MISSING) -> float | None:
        value = self.get(key, default)
        if value is None and default is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not lo <= value <= hi:
            self.fail(key, f"a number from {lo:g} to {hi:g}", value)
        return value  # as written (2 stays 2), so that a recipe reads back to the same JSON

    def text(self, key: str, default: Any = _MISSING, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.get(key, default)
        if value is None and default is None:
            return None
        if choices is not None and value not in choices:
            self.fail(key, f"one of {', '.join(choices)}", value)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            self.fail(key, f"text of at most {MAX_TEXT:,} characters", value)
        return value

    def texts(self, key: str) -> list[str] | None:
        value = self.get(key, None)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            self.fail(key, f"a list of at most {MAX_ITEMS:,} texts", value)
        for item in value:
            if not isinstance(item, str) or len(item) > MAX_TEXT:
                self.fail(key, f"a list of texts of at most {MAX_TEXT:,} characters", value)
        return list(value)

    def rest(self) -> dict:
        return {k: v for k, v in self.data.items() if k not in self.used}


# ---------------------------------------------------------------------------------------
# Pieces several recipes share


@dataclass
class Noise:
    """How random noise was drawn: the generator seed of the network call, the rows of
    that call and the picture's row in it (other rows do not change a picture)."""

    seed: int = 0
    batch_rows: int = 1
    row: int = 0

    def to_json(self) -> dict:
        return {"noise_seed": self.seed, "batch_rows": self.batch_rows, "row": self.row}

    @classmethod
    def read(cls, f: _Fields) -> Noise | None:
        if not {"noise_seed", "batch_rows", "row"} & set(f.data):
            return None
        rows = f.whole("batch_rows", 1, MAX_BATCH_ROWS, 1)
        return cls(f.whole("noise_seed", 0, MAX_SEED, 0), rows, f.whole("row", 0, rows - 1, 0))


# Edits along semantic directions (`ganscapes directions`): at most MAX_EDITS on one
# picture, each at most EDIT_RANGE σ; a recipe carries the direction itself, so it is
# rebuilt without the directions file.
MAX_EDITS = 16
EDIT_RANGE = (-100.0, 100.0)
MAX_EDIT_NAME = 40


@dataclass(eq=False)
class Edit:
    """A move of the w rows `layers` by amount · σ · direction (a unit vector in W)."""

    index: int
    amount: float  # in σ
    sigma: float
    direction: np.ndarray  # [w_dim] float32
    layers: list[int]
    name: str | None = None
    method: str | None = None
    file: str | None = None  # the directions file it came from, for the record
    extra: dict = field(default_factory=dict)

    def shift(self) -> np.ndarray:
        """What the edit adds to each of its rows: float32, computed the same way everywhere."""
        return (np.float32(self.amount * self.sigma) * np.asarray(self.direction, np.float32)).astype(np.float32)

    def to_json(self) -> dict:
        notes = {"name": self.name, "method": self.method, "file": self.file}
        return {
            "index": self.index,
            "amount": self.amount,
            "sigma": self.sigma,
            "layers": list(self.layers),
            **{k: v for k, v in notes.items() if v is not None},
            **self.extra,
            "direction": encode_array(self.direction),
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> Edit:
        f = _Fields(data, where)
        value = f.get("direction")
        shape = value.get("shape") if isinstance(value, dict) else None
        ok = isinstance(shape, list) and len(shape) == 1 and type(shape[0]) is int and 1 <= shape[0] <= MAX_W_DIM
        if not ok:
            f.fail("direction", f"a vector of 1 to {MAX_W_DIM} numbers", shape)
        try:
            direction = decode_array(value)
        except UserError:
            raise UserError(f"The recipe's {f.path('direction')} is damaged.") from None
        if not np.isfinite(direction).all():
            f.fail("direction", "a vector of finite numbers", "…")
        layers = _layers(f)
        if not layers or len(set(layers)) != len(layers):
            f.fail("layers", "a list of distinct w rows", layers)
        name = f.text("name", None)
        if name is not None and len(name) > MAX_EDIT_NAME:
            f.fail("name", f"a name of at most {MAX_EDIT_NAME} characters", name)
        return cls(
            index=f.whole("index", 0, MAX_W_DIM - 1),
            amount=f.number("amount", *EDIT_RANGE),
            sigma=f.number("sigma", 0, 1e6),
            direction=direction,
            layers=layers,
            name=name,
            method=f.text("method", None),
            file=f.text("file", None),
            extra=f.rest(),
        )


def _edits(f: _Fields) -> list[Edit] | None:
    value = f.get("edits", None)
    if value is None:
        return None
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_EDITS:
        f.fail("edits", f"a list of 1 to {MAX_EDITS} edits", value)
    return [Edit.from_json(item, f"{f.path('edits')}[{k}]") for k, item in enumerate(value)]


@dataclass
class Choice:
    """Why a picture was kept: the prompt it was ranked or searched for, and its score."""

    prompt: list[str] | None = None
    negative: list[str] | None = None
    templates: list[str] | None = None
    score: float | None = None
    rank: int | None = None
    clip_model: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def read(cls, f: _Fields) -> Choice | None:
        if not set(vars(cls())) & set(f.data):
            return None
        return cls(
            prompt=f.texts("prompt"),
            negative=f.texts("negative"),
            templates=f.texts("templates"),
            score=f.number("score", -1e6, 1e6, None),
            rank=f.whole("rank", 1, 1 << 31, None),
            clip_model=f.text("clip_model", None),
        )


@dataclass(eq=False)
class LatentSource:
    """Where a latent came from: a seed mapped with ψ, cutoff and class, or an exact w
    (with, for the record, the file and row or the catalog number it was taken from)."""

    seed: int | None = None
    psi: float = 1.0
    truncation_cutoff: int | None = None
    class_idx: int | None = None
    w: np.ndarray | None = None  # [num_ws, w_dim] float32; when given, the seed is only a note
    file: str | None = None
    row: int | None = None
    catalog: int | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        if self.w is None:
            mapping = {"psi": self.psi, "truncation_cutoff": self.truncation_cutoff, "class_idx": self.class_idx}
            return {"seed": self.seed, **mapping, **self.extra}
        notes = {"file": self.file, "row": self.row, "seed": self.seed, "catalog": self.catalog}
        return {**{k: v for k, v in notes.items() if v is not None}, **self.extra, "w": encode_array(self.w)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> LatentSource:
        f = _Fields(data, where)
        if "w" in data:
            w = _exact_w(f)
            notes = {
                "file": f.text("file", None),
                "row": f.whole("row", 0, MAX_ROW, None),
                "seed": f.whole("seed", 0, MAX_SEED, None),
                "catalog": f.whole("catalog", 0, MAX_ROW, None),
            }
            return cls(w=w, **notes, extra=f.rest())
        if "seed" not in data:
            raise UserError("The recipe holds neither a seed nor a latent vector.")
        return cls(
            seed=f.whole("seed", 0, MAX_SEED),
            psi=f.number("psi", -1e6, 1e6, 1.0),
            truncation_cutoff=f.whole("truncation_cutoff", 0, MAX_NUM_WS, None),
            class_idx=f.whole("class_idx", 0, MAX_CLASSES - 1, None),
            extra=f.rest(),
        )


def _exact_w(f: _Fields) -> np.ndarray:
    value = f.get("w")
    shape = value.get("shape") if isinstance(value, dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        or not (1 <= shape[0] <= MAX_NUM_WS and 1 <= shape[1] <= MAX_W_DIM)
    ):
        f.fail("w", f"an exact latent [num_ws ≤ {MAX_NUM_WS}, w_dim ≤ {MAX_W_DIM}]", shape)
    try:
        return decode_array(value)
    except UserError as e:  # "A latent vector in the recipe is damaged (…)." → name which one
        detail = str(e).removeprefix("A latent vector in the recipe is damaged ").rstrip(".")
        raise UserError(f"The recipe's {f.path('w')} is damaged {detail}.") from None


def _sources(f: _Fields, key: str) -> list[LatentSource]:
    value = f.get(key, [])
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        f.fail(key, f"a list of at most {MAX_ITEMS:,} latents", value)
    return [LatentSource.from_json(item, f"{f.path(key)}[{k}]") for k, item in enumerate(value)]


def _layers(f: _Fields) -> list[int]:
    value = f.get("layers", [])
    ok = isinstance(value, list) and len(value) <= MAX_NUM_WS
    if not ok or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_NUM_WS for i in value):
        f.fail("layers", f"a list of layer numbers from 0 to {MAX_NUM_WS - 1}", value)
    return list(value)


# ---------------------------------------------------------------------------------------
# The recipes


RECIPE_KINDS: dict[str, type[Recipe]] = {}


def register(cls: type[Recipe]) -> type[Recipe]:
    """Make `parse_recipe` read recipes of `cls.kind` with `cls`."""
    RECIPE_KINDS[cls.kind] = cls
    return cls


@dataclass(kw_only=True, eq=False)
class Recipe:
    """What every recipe may hold besides its own fields."""

    kind: ClassVar[str] = ""
    version: str | None = None  # the ganscapes version that wrote it (`png_info` stamps new ones)
    model_hash: str | None = None  # SHA-256 of the model's G_ema tensors
    choice: Choice | None = None  # set by rank on its picks, and by guide
    extra: dict = field(default_factory=dict)  # fields this version does not read, kept as they were

    def to_json(self) -> dict:
        head = {"version": self.version} if self.version is not None else {}
        tail = self.choice.to_json() if self.choice else {}
        return {**head, "kind": self.kind, **self._fields(), **tail, **self.extra}

    def _fields(self) -> dict:
        raise NotImplementedError

    def _hash(self) -> dict:
        return {"model_hash": self.model_hash} if self.model_hash is not None else {}

    def made_by(self) -> str | None:
        """The hash of the model that painted this picture (or the picture it came from)."""
        return self.model_hash

    @classmethod
    def from_json(cls, data: Any, where: str = "", depth: int = 0) -> Recipe:
        f = _Fields(data, where)
        f.used.add("kind")
        common = {
            "version": f.text("version", None),
            "model_hash": f.text("model_hash", None),
            "choice": Choice.read(f),
        }
        own = cls._read(f, depth)
        return cls(**common, **own, extra=f.rest())

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        raise NotImplementedError


@dataclass(kw_only=True, eq=False)
class PaintedRecipe(Recipe):
    """A picture the synthesis network painted: with which noise, on which device."""

    noise_mode: str = "const"
    device: str | None = None
    aspect: float | None = None  # the training data's width / height, for post --aspect auto
    noise: Noise | None = None  # random noise only
    label: str | None = None  # mix's names: F1, S2, F1-S2, …
    edits: list[Edit] | None = None  # moves along semantic directions, after truncation (make.directions)

    def to_json(self) -> dict:
        data = super().to_json()
        if self.edits:
            data["edits"] = [e.to_json() for e in self.edits]
        return data

    def _painting(self) -> dict:
        return {"noise_mode": self.noise_mode, "device": self.device, "aspect": self.aspect}

    def _noise(self) -> dict:
        return self.noise.to_json() if self.noise else {}

    def _label(self) -> dict:
        return {"label": self.label} if self.label is not None else {}

    @classmethod
    def _read_painting(cls, f: _Fields) -> dict:
        return {
            "noise_mode": f.text("noise_mode", "const", NOISE_MODES),
            "device": f.text("device", None),
            "aspect": f.number("aspect", *ASPECT_RANGE, None),
            "noise": Noise.read(f),
            "label": f.text("label", None),
            "edits": _edits(f),
        }


@register
@dataclass(kw_only=True, eq=False)
class GenerateRecipe(PaintedRecipe):
    """generate's pictures (and rank's picks of them): a seed mapped with ψ, cutoff, class."""

    kind: ClassVar[str] = "generate"
    seed: int = 0
    psi: float = 1.0
    truncation_cutoff: int | None = None
    class_idx: int | None = None

    def _fields(self) -> dict:
        return {
            **self._hash(),
            "psi": self.psi,
            "truncation_cutoff": self.truncation_cutoff,
            "noise_mode": self.noise_mode,
            "class_idx": self.class_idx,
            "device": self.device,
            "aspect": self.aspect,
            "seed": self.seed,
            **self._label(),
            **self._noise(),
        }

    def source(self) -> LatentSource:
        return LatentSource(self.seed, self.psi, self.truncation_cutoff, self.class_idx)

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        return {
            "seed": f.whole("seed", 0, MAX_SEED),
            "psi": f.number("psi", -1e6, 1e6, 1.0),
            "truncation_cutoff": f.whole("truncation_cutoff", 0, MAX_NUM_WS, None),
            "class_idx": f.whole("class_idx", 0, MAX_CLASSES - 1, None),
            **cls._read_painting(f),
        }


@register
@dataclass(kw_only=True, eq=False)
class LatentRecipe(PaintedRecipe):
    """A picture of one latent: mix's form and style headers, guide's results."""

    kind: ClassVar[str] = "latent"
    latent: LatentSource = field(default_factory=LatentSource)

    def _fields(self) -> dict:
        return {**self._hash(), **self._painting(), "latent": self.latent.to_json(), **self._label(), **self._noise()}

    @classmethod
    def from_json(cls, data: Any, where: str = "", depth: int = 0) -> Recipe:
        if cls is LatentRecipe and isinstance(data, dict) and "method" in data:
            return GuideRecipe.from_json(data, where, depth)
        return super().from_json(data, where, depth)

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        return {"latent": LatentSource.from_json(f.get("latent"), f.path("latent")), **cls._read_painting(f)}


@dataclass(kw_only=True, eq=False)
class GuideRecipe(LatentRecipe):
    """A result of guided search: its exact w, and the method and settings that found it."""

    method: str = "adam"
    search: dict = field(default_factory=dict)  # the GuideConfig fields that shaped the search

    def _fields(self) -> dict:
        return {
            **self._hash(),
            "latent": self.latent.to_json(),
            **self._painting(),
            "method": self.method,
            "search": dict(self.search),
            **self._label(),
            **self._noise(),
        }

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        search = f.get("search", {})
        flat = (type(None), bool, int, float, str)
        ok = isinstance(search, dict) and len(search) <= 64
        if not ok or not all(isinstance(k, str) and isinstance(v, flat) for k, v in search.items()):
            f.fail("search", "an object of at most 64 plain settings", search)
        return {**super()._read(f, depth), "method": f.text("method", choices=GUIDE_METHODS), "search": dict(search)}


@register
@dataclass(kw_only=True, eq=False)
class MixRecipe(PaintedRecipe):
    """A cell of a style-mixing grid: the form's w with the style's rows on `layers`."""

    kind: ClassVar[str] = "mix"
    form: LatentSource = field(default_factory=LatentSource)
    style: LatentSource = field(default_factory=LatentSource)
    layers: list[int] = field(default_factory=list)

    def _fields(self) -> dict:
        return {
            **self._hash(),
            **self._painting(),
            "form": self.form.to_json(),
            "style": self.style.to_json(),
            "layers": list(self.layers),
            **self._label(),
            **self._noise(),
        }

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        return {
            "form": LatentSource.from_json(f.get("form"), f.path("form")),
            "style": LatentSource.from_json(f.get("style"), f.path("style")),
            "layers": _layers(f),
            **cls._read_painting(f),
        }


@register
@dataclass(kw_only=True, eq=False)
class MixGridRecipe(PaintedRecipe):
    """The whole style-mixing grid: a contact sheet, not one painting, so not rebuilt."""

    kind: ClassVar[str] = "mix-grid"
    forms: list[LatentSource] = field(default_factory=list)
    styles: list[LatentSource] = field(default_factory=list)
    layers: list[int] = field(default_factory=list)

    def _fields(self) -> dict:
        return {
            **self._hash(),
            **self._painting(),
            "forms": [s.to_json() for s in self.forms],
            "styles": [s.to_json() for s in self.styles],
            "layers": list(self.layers),
            **self._label(),
            **self._noise(),
        }

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        return {
            "forms": _sources(f, "forms"),
            "styles": _sources(f, "styles"),
            "layers": _layers(f),
            **cls._read_painting(f),
        }


@register
@dataclass(kw_only=True, eq=False)
class DirectionsSheetRecipe(PaintedRecipe):
    """A preview of semantic directions (`directions --preview`): a contact sheet, not rebuilt;
    its rows are the directions (for each seed), its columns the σ steps."""

    kind: ClassVar[str] = "directions-sheet"
    method: str = "pca"
    layers: list[int] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    psi: float = 1.0
    steps: list[int] = field(default_factory=list)

    def _fields(self) -> dict:
        return {
            **self._hash(),
            **self._painting(),
            "method": self.method,
            "layers": list(self.layers),
            "sigma": list(self.sigma),
            "names": list(self.names),
            "seeds": list(self.seeds),
            "psi": self.psi,
            "steps": list(self.steps),
            **self._label(),
            **self._noise(),
        }

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        sigma, seeds, steps = f.get("sigma", []), f.get("seeds", []), f.get("steps", [])

        def numbers(key: str, value: Any, whole: bool, hi: float) -> list:
            ok = isinstance(value, list) and len(value) <= MAX_ITEMS
            kinds = (int,) if whole else (int, float)
            if not ok or not all(isinstance(v, kinds) and not isinstance(v, bool) and abs(v) <= hi for v in value):
                f.fail(key, f"a list of at most {MAX_ITEMS:,} numbers of at most {hi:g}", value)
            return list(value)

        return {
            "method": f.text("method", "pca", ("pca", "sefa")),
            "layers": _layers(f),
            "sigma": numbers("sigma", sigma, False, 1e6),
            "names": f.texts("names") or [],
            "seeds": numbers("seeds", seeds, True, MAX_SEED),
            "psi": f.number("psi", -1e6, 1e6, 1.0),
            "steps": numbers("steps", steps, True, EDIT_RANGE[1]),
            **cls._read_painting(f),
        }


# A video's bounds (make.video checks them with kinder words before any work; a recipe
# beyond them is refused when read, so that rebuilding one frame cannot be made to walk
# through millions of keyframes).
VIDEO_SPACES = ("z", "w")
VIDEO_EASINGS = ("linear", "smooth")
MAX_KEYFRAMES = 100
MAX_TRANSITION_FRAMES = 1000  # frames from one keyframe to the next
MAX_VIDEO_FRAMES = 10_000
FPS_RANGE = (1, 120)


@register
@dataclass(kw_only=True, eq=False)
class VideoRecipe(PaintedRecipe):
    """A latent walk (`ganscapes video`): keyframes, how the walk goes between them, and
    how its frames were painted; `frame` names one frame (a kept PNG), `digests` are the
    SHA-256 prefixes of every frame's lossless pixels (the video's own recipe)."""

    kind: ClassVar[str] = "video"
    keyframes: list[LatentSource] = field(default_factory=list)
    space: str = "z"
    easing: str = "smooth"
    frames: int = 24  # per transition
    loop: bool = False
    fps: float = 24
    psi: float = 1.0
    truncation_cutoff: int | None = None
    class_idx: int | None = None
    layers: list[int] | None = None  # the w rows that move; None: all of them
    post: PostFields | None = None
    frame: int | None = None
    digests: list[str] | None = None

    def frame_count(self) -> int:
        transitions = len(self.keyframes) - (0 if self.loop else 1)
        return transitions * self.frames + (0 if self.loop else 1)

    def _fields(self) -> dict:
        walk = {
            "space": self.space,
            "easing": self.easing,
            "frames": self.frames,
            "loop": self.loop,
            "fps": self.fps,
            "psi": self.psi,
            "truncation_cutoff": self.truncation_cutoff,
            "class_idx": self.class_idx,
        }
        optional = {
            "layers": None if self.layers is None else list(self.layers),
            "post": None if self.post is None else self.post.to_json(),
            "frame": self.frame,
            "digests": None if self.digests is None else list(self.digests),
        }
        return {
            **self._hash(),
            **self._painting(),
            **walk,
            "keyframes": [k.to_json() for k in self.keyframes],
            **{k: v for k, v in optional.items() if v is not None},
            **self._label(),
            **self._noise(),
        }

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        keys = f.get("keyframes")
        if not isinstance(keys, list) or not 2 <= len(keys) <= MAX_KEYFRAMES:
            f.fail("keyframes", f"a list of 2 to {MAX_KEYFRAMES} latents", keys)
        keyframes = [LatentSource.from_json(k, f"{f.path('keyframes')}[{i}]") for i, k in enumerate(keys)]
        loop = f.get("loop", False)
        if not isinstance(loop, bool):
            f.fail("loop", "true or false", loop)
        own = {
            "keyframes": keyframes,
            "space": f.text("space", "z", VIDEO_SPACES),
            "easing": f.text("easing", "smooth", VIDEO_EASINGS),
            "frames": f.whole("frames", 1, MAX_TRANSITION_FRAMES),
            "loop": loop,
            "fps": f.number("fps", *FPS_RANGE, 24),
            "psi": f.number("psi", -1e6, 1e6, 1.0),
            "truncation_cutoff": f.whole("truncation_cutoff", 0, MAX_NUM_WS, None),
            "class_idx": f.whole("class_idx", 0, MAX_CLASSES - 1, None),
            "layers": _layers(f) if f.data.get("layers") is not None else None,
            **cls._read_painting(f),
        }
        total = cls(**own).frame_count()
        if total > MAX_VIDEO_FRAMES:
            need = f"such that the walk has at most {MAX_VIDEO_FRAMES:,} frames (it has {total:,})"
            f.fail("frames", need, own["frames"])
        own["frame"] = f.whole("frame", 0, total - 1, None)
        own["post"] = _post_fields(f) if f.data.get("post") is not None else None
        digests = f.get("digests", None)
        if digests is not None:
            ok = isinstance(digests, list) and len(digests) == total
            if not ok or not all(isinstance(d, str) and re.fullmatch(r"[0-9a-f]{16,64}", d) for d in digests):
                f.fail("digests", f"a list of {total:,} hexadecimal SHA-256 prefixes, one per frame", digests)
            own["digests"] = list(digests)
        return own


@dataclass
class PostFields:
    """post's settings as applied: percentiles, the aspect it restored, the width."""

    low: float
    high: float
    aspect: float
    width: int | None = None

    def to_json(self) -> dict:
        return {"low": self.low, "high": self.high, "aspect": self.aspect, "width": self.width}


@register
@dataclass(kw_only=True, eq=False)
class PostRecipe(Recipe):
    """A finished picture: its source's own recipe (None for foreign images) and the settings."""

    kind: ClassVar[str] = "post"
    source: Recipe | None = None
    source_file: str | None = None
    post: PostFields = field(default_factory=lambda: PostFields(0.1, 99.9, 1.0))

    def _fields(self) -> dict:
        source = self.source.to_json() if self.source is not None else None
        return {"source": source, "source_file": self.source_file, "post": self.post.to_json(), **self._hash()}

    def made_by(self) -> str | None:
        return self.model_hash or (self.source.made_by() if self.source is not None else None)

    @classmethod
    def _read(cls, f: _Fields, depth: int) -> dict:
        raw = f.get("source", None)
        if raw is not None and depth >= MAX_DEPTH:
            raise UserError(f"The recipe's {f.path('source')} is nested more than {MAX_DEPTH} deep.")
        source = None if raw is None else parse_recipe(raw, f.path("source"), depth + 1)
        return {"source": source, "source_file": f.text("source_file", None), "post": _post_fields(f)}


def _post_fields(f: _Fields) -> PostFields:
    p = _Fields(f.get("post"), f.path("post"))
    low, high = p.number("low", 0, 100), p.number("high", 0, 100)
    if not low < high:
        p.fail("high", f"above post.low ({low:g})", high)
    return PostFields(low, high, p.number("aspect", *ASPECT_RANGE), p.whole("width", 1, MAX_WIDTH, None))


@dataclass(kw_only=True, eq=False)
class OtherRecipe(Recipe):
    """A recipe of a kind this version does not know (or none), kept exactly as read."""

    data: dict = field(default_factory=dict)

    @property
    def kind_name(self) -> Any:
        return self.data.get("kind", "generate" if "seed" in self.data else None)

    def to_json(self) -> dict:
        return dict(self.data)

    def made_by(self) -> str | None:
        value = self.data.get("model_hash")
        return value if isinstance(value, str) and value else None


def parse_recipe(data: Any, where: str = "", depth: int = 0) -> Recipe:
    """The typed recipe of a recipe's JSON; a kind that is not registered gives an OtherRecipe."""
    if not isinstance(data, dict):
        raise UserError(f"The recipe's {where or 'top level'} is not a JSON object, but {_show(data)}.")
    kind = data.get("kind", "generate" if "seed" in data else None)  # recipes before `kind` were generate's
    cls = RECIPE_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        return OtherRecipe(data=dict(data))
    return cls.from_json(data, where, depth)


def kind_of(recipe: Recipe) -> Any:
    """The kind a recipe names (OtherRecipe: whatever its JSON says)."""
    return recipe.kind_name if isinstance(recipe, OtherRecipe) else recipe.kind
