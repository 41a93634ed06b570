"""What the studio can do, as plain functions over the library — no second implementation.

Each action writes into a new request folder under the studio's output folder, records
its pictures in the catalog and returns catalog entries. Every path that comes from a
request (a catalog entry's file, a latents file) is resolved inside the output folder or
refused, and every request is bounded (pictures per request, steps per search, the size of a
finished picture, every number and text), so a web page cannot read arbitrary files or
exhaust the machine. Values arrive as a browser or any HTTP client sent them (the page skips
Gradio's own checks, whose refusals are not sentences on the page): a number may be text,
NaN or huge, a text field may hold a list, and each is refused here with the field's label.
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import random
import shlex
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganscapes.clip import encoder as clip_encoder
from ganscapes.clip.cache import EmbeddingCache
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.tensor_scorer import TensorScorer
from ganscapes.device import resolve_device
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import load_model
from ganscapes.make import project as projector
from ganscapes.make.directions import Directions, apply_edits, find_directions
from ganscapes.make.generate import generate_images
from ganscapes.make.guide import GuideConfig, adam_search, genetic_search, save_search
from ganscapes.make.latents import LATENTS_FILE, LatentSet
from ganscapes.make.mix import LAYER_PRESETS, layer_range, seed_latents, style_mix
from ganscapes.make.paint import paint
from ganscapes.make.pick import rank_generated
from ganscapes.make.post import PostSettings, post_files, resolve_aspect
from ganscapes.make.recipes import LatentRecipe, LatentSource
from ganscapes.make.seeds import MAX_SEED, PSI_RANGE
from ganscapes.make.summary import MODEL, summarize
from ganscapes.make.video import latent_walk
from ganscapes.provenance import encode_array, read_recipe, write_png
from ganscapes.studio.catalog import Catalog, Entry

MAX_IMAGES = {"cpu": 400, "gpu": 2000}  # pictures one prompt request may generate
DEFAULT_IMAGES = {"cpu": 200, "gpu": 1000}
MAX_TOP = 24
MAX_GRID = 8  # forms or styles per mix
SEED_GRID = 9  # pictures in the Explore tab's grid: 3 × 3
MAX_SEED_GRID = 16
MAX_GUIDE_STEPS = 300
# A finished picture: post's own limit (16,384 pixels wide) at its narrowest aspect (0.1) would be 8 GB of
# pixels; post stretches the contrast in float64, so a 4,096² picture already takes about 0.8 GB while it works.
MAX_FINISH_WIDTH = 4096
MAX_FINISH_PIXELS = 4096 * 4096
MAX_CATALOG_NUMBER = 2**63 - 1  # SQLite's largest integer
MAX_LIST_CHARS = 1000  # forms, styles, a search
MAX_LAYER_CHARS = 100
MAX_NUMBER_CHARS = 40  # a number sent as text
MAX_WALK_KEYS = 12  # keyframes of a walk
MAX_WALK_FRAMES = 48  # frames from one keyframe to the next: 2 s at 24 frames a second
SLIDERS = 6  # semantic directions shown as sliders
SLIDER_SIGMA = 3.0  # a slider moves from -3σ to +3σ: large but still typical changes (make.directions)
DIRECTION_SAMPLES = 10_000  # ws sampled for the PCA directions and for W's spread
MAX_NEIGHBOURS = 16
MAX_DISTANCE = 2.0  # of a neighbour, in units of W's spread
# An uploaded painting: a phone's photo is a few MB and 12-50 megapixels; the guard refuses larger uploads
# before they are stored, and `project_upload` checks the stored file again before decoding it.
MAX_UPLOAD_BYTES = 20 << 20
MAX_UPLOAD_PIXELS = 50_000_000
UPLOAD_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_PROJECT_STEPS = 2000  # per phase; the command line's defaults are 1000 and 500
PROJECT_STEPS = (300, 200)  # the studio's defaults: a minute or two for a 256² model on a GPU
MAX_PATH_CHARS = 4096
# The page offers mix's presets that make a mixed picture: "all" would repeat the styles, "none" the forms.
STUDIO_LAYER_CHOICES = tuple(p for p in LAYER_PRESETS if p not in ("all", "none"))

# The label of the page's field (see app.py) for each setting that takes a value from the page, by the name
# of the library's parameter: PostSettings(low, high, aspect, width), GuideConfig(method, steps),
# generate_images(seeds, psi), rank_generated(prompt, top), style_mix(layers); and of the studio's own:
# paint_prompt(n), mix(forms, styles, preset: the `layers` argument), find(query).
FIELD_LABELS = {
    "aspect": "Aspect",
    "distance": "Distance",
    "forms": "Forms (columns)",
    "frames": "Frames per transition",
    "keyframes": "Keyframes",
    "high": "High percentile",
    "layers": "Custom layer range",
    "low": "Low percentile",
    "method": "Method",
    "n": "Pictures to generate",
    "neighbours": "Neighbours",
    "preset": "Layers taken from the style",
    "prompt": "Prompt",
    "psi": "ψ",
    "query": "Search prompts",
    "seeds": "Seed",
    "steps": "Steps",
    "steps_w": "Steps in W",
    "steps_wplus": "Steps in W+",
    "styles": "Styles (rows)",
    "top": "Keep the best",
    "width": "Width",
}


@dataclass
class PictureFacts:
    entry: Entry
    parents: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # the recipe in words
    commands: list[tuple[str, str]] = field(default_factory=list)  # (what it does, command line)
    why_not: str | None = None  # why no command rebuilds it
    score: float | None = None
    prompt: str | None = None
    score_note: str | None = None  # why there is no score


def _parents(e: Entry) -> str:
    """Where a picture came from, in words, naming catalog numbers a user can select."""
    if e.kind == "mix" and e.note:
        return f"form × style: {e.note}"
    if e.kind == "guide" and e.note:
        return f"guided {e.note}" + (f" toward “{e.prompt}”" if e.prompt else "")
    if e.kind == "post" and e.note:
        return e.note
    if e.kind == "prompt":
        return f"seed {e.seed}, ranked for “{e.prompt}”"
    if e.kind == "seed":
        return f"seed {e.seed}" + (f" at ψ {e.psi:g}" if e.psi is not None else "")
    return e.note or "none recorded"


class StudioError(UserError):
    """A request the studio refuses; the message is shown on the page."""


def in_page_words(action):
    """`action`, a library `SettingError` from it said with the page's label for the setting.

    A setting the page does not show (a batch size, a folder) is the studio's own choice,
    so its error keeps the library's words.
    """

    @functools.wraps(action)
    def worded(*args, **kwargs):
        try:
            return action(*args, **kwargs)
        except SettingError as e:
            if e.setting not in FIELD_LABELS:
                raise
            raise StudioError(e.worded(FIELD_LABELS[e.setting])) from None

    return worded


@dataclass
class StudioConfig:
    model: Path
    out: Path = Path("studio-output")
    catalog: Path | None = None  # default: OUT/catalog.sqlite
    device: str = "auto"
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_weights: Path | None = None


class Studio:
    def __init__(self, cfg: StudioConfig):

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        # G_ema alone: the studio only paints. A missing or corrupt file stops start-up here.
        self.model = load_model(cfg.model, device=self.device, generator_only=True)
        self.out = Path(cfg.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(cfg.catalog or self.out / "catalog.sqlite")
        self.kind = "gpu" if self.device.type == "cuda" else "cpu"
        self._clip = None
        self._clip_error: str | None = None
        self._clip_lock = threading.Lock()
        self._counter = itertools.count()
        self._directions: tuple[Directions, Path] | None = None
        self._spread: float | None = None
        self._directions_lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------

    @property
    def default_images(self) -> int:
        return DEFAULT_IMAGES[self.kind]

    @property
    def max_images(self) -> int:
        return MAX_IMAGES[self.kind]

    def _request_dir(self, kind: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        while True:  # the counter restarts with the studio: skip names an earlier run took this second
            folder = self.out / "requests" / f"{stamp}-{next(self._counter):04d}-{kind}"
            try:
                folder.mkdir(parents=True, exist_ok=False)
                return folder
            except FileExistsError:
                continue

    def confined(self, rel: str | Path) -> Path:
        """`rel` inside the output folder, or a StudioError: no request leaves it."""
        path = (self.out / rel).resolve()
        try:
            path.relative_to(self.out)
        except ValueError:
            raise StudioError(f"{rel} is outside the studio's folder.") from None
        return path

    def rel(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.out).as_posix()

    def entry(self, entry_id) -> Entry:
        key = None
        if isinstance(entry_id, numbers.Integral) and not isinstance(entry_id, bool):
            key = int(entry_id)
        elif isinstance(entry_id, str) and len(entry_id) <= MAX_NUMBER_CHARS:
            try:
                key = int(entry_id.strip().lstrip("#"))
            except ValueError:
                pass
        if key is None:
            raise StudioError(f"{_shown(entry_id)} is not a catalog number such as 12 or #12.")
        found = self.catalog.get(key) if 1 <= key <= MAX_CATALOG_NUMBER else None
        if found is None:
            raise StudioError(f"There is no picture #{_number_text(key)} in the catalog.")
        return found

    def path_of(self, entry: Entry) -> Path:
        path = self.confined(entry.file)
        if not path.is_file():
            raise StudioError(f"The file of picture #{entry.id} is gone from the studio's folder.")
        return path

    def w_of(self, entry: Entry) -> np.ndarray:
        """The latent [num_ws, w_dim] of a catalog picture: its row of a latents file
        (latents.npz of generate, rank or guide; mix.npz, or cells.npz of earlier studios)."""

        if entry.latents is None or entry.row is None:
            raise StudioError(f"Picture #{entry.id} ({entry.kind}) has no latent to start from.")
        path = self.confined(entry.latents)
        return LatentSet.load(path, [entry.row], self.model).w[0]

    # -- CLIP ------------------------------------------------------------------------

    def clip(self):
        """The CLIP encoder, loaded on first use; a StudioError saying what is missing otherwise.

        The embedding cache is opened by each request instead: its SQLite
        connection belongs to the thread that opened it, and Gradio runs jobs in worker threads.
        """

        with self._clip_lock:
            if self._clip is not None:
                return self._clip
            if self._clip_error is None:
                c = self.cfg
                try:  # offline without weights, load_clip refuses at once, naming the file to fetch
                    self._clip = clip_encoder.load_clip(
                        clip_encoder.ClipSpec.from_options(c.clip_model, c.clip_pretrained, c.clip_weights),
                        device=self.device,
                    )
                    return self._clip
                except UserError as e:
                    self._clip_error = f"{str(e).rstrip('.')}; pictures by seed work without it."
            raise StudioError(self._clip_error)

    def clip_status(self) -> str | None:
        """None when CLIP works, else the sentence that says why not."""
        try:
            self.clip()
            return None
        except StudioError as e:
            return str(e)

    # -- actions ---------------------------------------------------------------------

    @in_page_words
    def paint_seed(self, seed: int, psi: float) -> Entry:

        seed = _within(_whole(seed, "a seed"), "seeds", 0, MAX_SEED)
        psi = _psi(psi)  # before the request folder, so a refused request leaves nothing behind
        # The same seed and ψ paint the same picture: a repaint (a click, a slider moved back) is the one cataloged.
        for earlier in self.catalog.painted(seed, psi, self.model.model_hash):
            if self._present(earlier):
                return earlier
        folder = self._request_dir("seed")
        result = generate_images(self.model, [seed], psi=psi, device=self.device, out=folder, progress=False)
        return self.catalog.add(
            self.rel(result.images[0]),
            "seed",
            self.model.model_hash,
            seed=seed,
            latents=self.rel(result.latents),
            row=0,
            psi=psi,
        )

    @in_page_words
    def paint_seeds(self, seeds, psi: float) -> list[Entry]:
        """A seed grid: each seed at `psi` (`paint_seed`, so a picture painted before is not painted again)."""
        if not isinstance(seeds, list | tuple) or not 1 <= len(seeds) <= MAX_SEED_GRID:
            raise StudioError(f"A seed grid has 1 to {MAX_SEED_GRID} seeds.")
        checked = [_within(_whole(s, "a seed"), "seeds", 0, MAX_SEED) for s in seeds]
        psi = _psi(psi)
        return [self.paint_seed(s, psi) for s in checked]

    def random_seed(self) -> int:
        return random.SystemRandom().randrange(0, 2**31)

    @in_page_words
    def paint_prompt(
        self, prompt: str, n: int, psi: float, top: int, progress: Callable[[float, str], None] | None = None
    ) -> list[Entry]:
        """Generate n, rank by the prompt, catalog the top k (best first)."""

        the_prompt = Prompt((_text(prompt, "prompt"),))
        n, top = _whole(n, "how many pictures to generate"), _whole(top, "how many to keep")
        n = _within(n, "n", 1, self.max_images, f" on this {self.kind.upper()}")
        top = _within(top, "top", 1, min(n, MAX_TOP))
        psi = _psi(psi)
        encoder = self.clip()
        folder = self._request_dir("prompt")
        base = self.random_seed()
        say = progress or (lambda f, d: None)
        result = generate_images(
            self.model,
            range(base, base + n),
            psi=psi,
            device=self.device,
            out=folder,
            progress=False,
            on_batch=lambda done, total: say(0.7 * done / total, f"generated {done} of {total}"),
        )
        say(0.75, "ranking with CLIP")
        with EmbeddingCache(self.out / "cache", encoder.model_id) as cache:
            ranking, outputs = rank_generated(result, encoder, the_prompt, top, cache, progress=False, workers=0)
        latents = self.rel(outputs.top_dir / LATENTS_FILE)  # the picks' rows, in rank order
        say(1.0, "done")
        return [
            self.catalog.add(
                self.rel(path),
                "prompt",
                self.model.model_hash,
                prompt=prompt,
                seed=int(ranking.refs[k].path.stem.removeprefix("seed")),
                latents=latents,
                row=k,
                score=float(ranking.scores[k]),
                psi=psi,
            )
            for k, path in enumerate(outputs.top)
        ]

    def _latents(self, text, what: str, psi, limit: int, per: str) -> tuple[LatentSet, list[str]]:
        """The latents of a list of catalog numbers (#12) and seeds (s7) typed in the field `what`s, and each
        item as captions name it (#12, s7); a seed is mapped at ψ `psi`."""
        G = self.model.G_ema
        setting = what + "s"
        items = [t.strip() for t in _text(text, setting, MAX_LIST_CHARS).replace(";", ",").split(",") if t.strip()]
        if not items:
            raise StudioError(f"Choose at least one {what}: catalog numbers such as 12, or seeds such as s7.")
        if len(items) > limit:
            raise StudioError(f"At most {limit} {what}s {per}, not {len(items)}.")
        ws, sources, names = [], [], []
        for item in items:
            if item.lower().startswith("s"):
                seed = _seed_item(item, setting)
                lat = seed_latents(G, [seed], _psi(psi), None, None, self.device)
                ws.append(lat.w[0])
                sources.append(lat.sources[0])
                names.append(f"s{seed}")
            else:
                e = self.entry(item)
                w = self.w_of(e)
                ws.append(w)
                sources.append({"catalog": e.id, "w": encode_array(w)})
                names.append(f"#{e.id}")
        return LatentSet(np.stack(ws), sources), names

    @in_page_words
    def mix(self, forms: str, styles: str, layers: str, custom: str = "", psi: float = 1.0) -> tuple[Path, list[Entry]]:
        """Forms × styles from catalog numbers (#12) or seeds (s12)."""

        G = self.model.G_ema
        layers = _text(layers, "preset", MAX_LAYER_CHARS)
        spec = _text(custom, "layers", MAX_LAYER_CHARS) if layers == "custom" else layers
        if layers not in (*STUDIO_LAYER_CHOICES, "custom"):
            raise StudioError(f"Layers must be one of {', '.join(STUDIO_LAYER_CHOICES)} or custom, not {layers!r}.")
        chosen = layer_range(spec, G.num_ws)
        if not chosen:  # e.g. "middle" on a 32² model: the cells would just be the forms
            raise StudioError(
                f"The layer range {spec or 'custom'!r} names no layer of this model (layers 0 to "
                f"{G.num_ws - 1}); choose another."
            )

        form_lat, form_names = self._latents(forms, "form", psi, MAX_GRID, "per grid")
        style_lat, style_names = self._latents(styles, "style", psi, MAX_GRID, "per grid")
        folder = self._request_dir("mix")
        result = style_mix(self.model, form_lat, style_lat, chosen, folder, device=self.device)
        # mix.npz's rows are the cells in this order (F1-S1, F2-S1, …), so row k is cell k.
        cells = [
            (p, f"{form_names[f]} × {style_names[s]}") for s, row in enumerate(result.cells) for f, p in enumerate(row)
        ]
        entries = [
            self.catalog.add(
                self.rel(p), "mix", self.model.model_hash, latents=self.rel(result.latents), row=k, note=note
            )
            for k, (p, note) in enumerate(cells)
        ]
        return result.grid, entries

    @in_page_words
    def guide(
        self, entry_id, prompt: str, method: str, steps: int, progress: Callable[[float, str], None] | None = None
    ) -> tuple[Entry, Path]:
        """A CLIP-guided search from a catalog picture; returns the best and the history plot."""

        steps = _within(_whole(steps, "the number of steps"), "steps", 1, MAX_GUIDE_STEPS)
        method = _text(method, "method")
        the_prompt = Prompt((_text(prompt, "prompt"),))
        start = self.entry(entry_id)
        w = self.w_of(start)
        space = "w" if np.array_equal(w, np.repeat(w[:1], len(w), axis=0)) else "wplus"
        cfg = GuideConfig(
            method=method, space=space, steps=steps, keep=1, population=None if method == "genetic" else 2
        )
        encoder = self.clip()
        scorer = TensorScorer(encoder, the_prompt)
        G = self.model.G_ema.to(self.device).eval().requires_grad_(False)
        say = progress or (lambda f, d: None)
        search = adam_search if method == "adam" else genetic_search
        result = search(
            G,
            scorer,
            cfg,
            self.device,
            init=w[None],
            progress=lambda row: say((row["step"] + 1) / steps, f"step {row['step'] + 1}: {row['best']:+.4f}"),
        )
        folder = self._request_dir("guide")
        paths = save_search(result, self.model, scorer, the_prompt, cfg, folder, self.device)
        entry = self.catalog.add(
            self.rel(paths[0]),
            "guide",
            self.model.model_hash,
            prompt=prompt,
            latents=self.rel(folder / LATENTS_FILE),
            row=0,
            score=float(result.scores[0]),
            note=f"from #{start.id}",
        )
        return entry, folder / "history.png"

    @in_page_words
    def finish(self, entry_id, low: float, high: float, aspect: str, width: int | None) -> Entry:

        e = self.entry(entry_id)
        source = self.path_of(e)
        aspect = _text(aspect, "aspect", MAX_NUMBER_CHARS)
        value = None if aspect.strip().lower() in ("", "auto") else _ratio(aspect, "aspect")
        if low is None or high is None:
            raise StudioError("Enter both percentiles, e.g. 0.1 and 99.9.")
        low = float(_within(_real(low, "the low percentile"), "low", 0, 100))
        high = float(_within(_real(high, "the high percentile"), "high", 0, 100))
        if width is None or width == "":
            width = None
        elif (width := _whole(width, "a width")) == 0:  # the page's 0: keep the picture's width
            width = None
        else:
            width = _within(width, "width", 1, MAX_FINISH_WIDTH, " pixels (0: keep)")
        settings = PostSettings(low=low, high=high, aspect=value, width=width)
        self._check_finished_size(e, source, settings)
        folder = self._request_dir("post")
        # "-finished" in the name, so a download is not mistaken for the raw picture
        result = post_files([source], folder, settings, model_aspect=self.model.meta.get("aspect"), suffix="-finished")
        return self.catalog.add(
            self.rel(result.outputs[0]),
            "post",
            self.model.model_hash,
            prompt=e.prompt,
            seed=e.seed,
            latents=e.latents,
            row=e.row,
            score=e.score,
            psi=e.psi,
            note=f"finish of #{e.id}",
        )

    def _check_finished_size(self, e: Entry, source: Path, settings: PostSettings) -> None:
        """Refuse a finish whose picture would be larger than MAX_FINISH_PIXELS, before post allocates it.

        The size is post's (`restore_aspect`): the width kept or set, the height width / aspect,
        the aspect set, or from the picture's recipe, the model or 1.
        """
        try:
            with Image.open(source) as image:  # reads the header only
                source_width = image.width
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            raise StudioError(f"The file of picture #{e.id} is not a readable picture.") from None
        aspect, _ = resolve_aspect(settings, read_recipe(source, required=False), self.model.meta.get("aspect"))
        width = settings.width or source_width
        height = max(1, round(width / aspect)) if math.isfinite(width / aspect) else math.inf
        if width * height > MAX_FINISH_PIXELS:
            raise StudioError(
                f"The finished picture would be {width} × {_number_text(height)} pixels; the studio makes at most "
                f"{MAX_FINISH_PIXELS:,} pixels ({MAX_FINISH_WIDTH} × {MAX_FINISH_WIDTH}): choose a smaller "
                f"{FIELD_LABELS['width']} or a larger {FIELD_LABELS['aspect']}."
            )

    # -- walks, edits, neighbours, projections --------------------------------------

    @in_page_words
    def walk(self, keys, frames, loop, psi: float = 0.7) -> tuple[Path, int]:
        """A latent walk through catalog pictures (#12) and seeds (s7), in that order: `make.video.latent_walk`
        in W, from each picture's exact w (written to a small latents file first) to the next. The MP4 carries
        its recipe, so `ganscapes reproduce WALK.mp4 --frame N` rebuilds any frame. Returns it and its frames."""
        frames = _within(_whole(frames, "the frames per transition"), "frames", 1, MAX_WALK_FRAMES)
        if not isinstance(loop, bool):
            raise StudioError(f"Loop back to the first must be yes or no, not {_shown(loop)}.")
        keyframes, names = self._latents(keys, "keyframe", psi, MAX_WALK_KEYS, "per walk")
        if len(keyframes) < 2:
            raise StudioError("A walk needs at least 2 keyframes: pictures added with “Add to walk”, or seeds (s7).")
        folder = self._request_dir("walk")
        latents = LatentSet(keyframes.w, model_hash=self.model.model_hash).save(folder / "keyframes.npz")
        keys = [f"{latents}:0-{len(keyframes) - 1}"]
        out = folder / "walk.mp4"
        result = latent_walk(
            self.model, keys, out, frames=frames, space="w", loop=loop, device=self.device, progress=False
        )
        (folder / "keyframes.txt").write_text(", ".join(names) + "\n", encoding="utf-8")
        return result.video, result.frames

    def directions(self) -> tuple[Directions, Path]:
        """The semantic directions the Edit tab's sliders move, and their file.

        OUT/directions-HASH.npz (HASH: the model's) when it is there: `ganscapes directions` may have
        written or named it (`ganscapes directions name FILE 0 sky`); otherwise GANSpace's PCA directions of
        every w row (`make.directions.find_directions`), computed once and saved there.
        """
        with self._directions_lock:
            if self._directions is None:
                path = self.out / f"directions-{self.model.model_hash[:12]}.npz"
                if path.is_file():
                    found = Directions.load(path, self.model)
                else:
                    G = self.model.G_ema
                    count = min(SLIDERS, G.w_dim)
                    found = find_directions(
                        self.model, "pca", list(range(G.num_ws)), count, DIRECTION_SAMPLES, device=self.device
                    )
                    found.save(path)
                self._directions = (found, path)
            return self._directions

    def slider_names(self) -> list[str]:
        """The sliders' labels: each direction's name from its file, else "direction N"."""
        found, _ = self.directions()
        return [found.names[k] or f"direction {k}" for k in range(min(SLIDERS, len(found)))]

    @in_page_words
    def edit(self, entry_id, amounts) -> Entry:
        """The picture moved along the semantic directions by `amounts` (σ, one per slider): a new picture whose
        recipe holds the picture's exact w and the edits (`ganscapes reproduce` applies them), cataloged once
        for the same picture and amounts (a slider moved back and forth paints nothing twice)."""
        found, path = self.directions()
        names = self.slider_names()
        if not isinstance(amounts, list | tuple) or len(amounts) != len(names):
            raise StudioError(f"An edit takes {len(names)} amounts, one per slider.")
        checked = []
        for name, amount in zip(names, amounts, strict=True):
            value = float(_real(amount, f"the amount of {name}"))
            if not -SLIDER_SIGMA <= value <= SLIDER_SIGMA:
                raise StudioError(f"{name} must be between {-SLIDER_SIGMA:g} and {SLIDER_SIGMA:g} σ, not {value:g}.")
            checked.append(value)
        e = self.entry(entry_id)
        w = self.w_of(e)
        moves = [(k, a) for k, a in enumerate(checked) if a != 0]
        if not moves:
            return e  # every slider at 0: the picture itself
        note = f"#{e.id} edited: " + ", ".join(f"{names[k]} {a:+g}" for k, a in moves)
        for earlier in self.catalog.made("edit", note, self.model.model_hash):
            if self._present(earlier):
                return earlier
        edits = [found.edit(k, a, file=path.name) for k, a in moves]
        source = LatentSource(w=w, seed=e.seed if e.kind == "seed" else None, catalog=e.id)
        folder = self._request_dir("edit")
        (entry,) = self._paint_exact(folder, [source], [note], "edit", edits)
        return entry

    @in_page_words
    def more_like(self, entry_id, distance, count) -> list[Entry]:
        """Neighbours of a picture: its w moved `distance` × W's spread along random unit directions
        (the same move on every w row), each cataloged with its exact w, which `ganscapes reproduce` paints."""
        distance = float(_within(_real(distance, "a distance"), "distance", 0, MAX_DISTANCE, " (of W's spread)"))
        count = _within(_whole(count, "how many neighbours"), "neighbours", 1, MAX_NEIGHBOURS)
        e = self.entry(entry_id)
        w = self.w_of(e)
        rng = np.random.default_rng(random.SystemRandom().randrange(2**63))
        steps = rng.standard_normal((count, w.shape[1]))
        steps /= np.linalg.norm(steps, axis=1, keepdims=True)
        moved = (w[None] + (distance * self.w_spread() * steps)[:, None, :]).astype(np.float32)
        folder = self._request_dir("near")
        sources = [LatentSource(w=m, catalog=e.id) for m in moved]
        notes = [f"near #{e.id} ({distance:g})"] * count
        return self._paint_exact(folder, sources, notes, "near")

    def w_spread(self) -> float:
        """W's spread: the root mean squared distance of sampled ws from their mean (`make.project`'s unit
        for its noise), the unit of a neighbour's distance."""
        with self._directions_lock:
            if self._spread is None:
                G = self.model.G_ema.to(self.device).eval().requires_grad_(False)
                self._spread = projector.w_statistics(G, DIRECTION_SAMPLES, 0, self.device)[1]
            return self._spread

    def _paint_exact(self, folder: Path, sources: list[LatentSource], notes: list[str], kind: str, edits=None):
        """Paint exact ws (edited by `edits`) into `folder` as `kind`-NN.png, each with a `latent` recipe that
        `ganscapes reproduce` rebuilds, their painted ws in latents.npz, and catalog them."""
        G = self.model.G_ema.to(self.device).eval().requires_grad_(False)
        ws = apply_edits(np.stack([s.w for s in sources]), edits)
        pixels = paint(G, ws, "const")
        latents = self.rel(LatentSet(ws, model_hash=self.model.model_hash).save(folder / LATENTS_FILE))
        aspect = self.model.meta.get("aspect")
        entries = []
        for k, (source, note) in enumerate(zip(sources, notes, strict=True)):
            recipe = LatentRecipe(
                model_hash=self.model.model_hash,
                noise_mode="const",
                device=str(self.device),
                aspect=aspect,
                latent=source,
                edits=edits or None,
            )
            path = write_png(folder / f"{kind}-{k + 1:02d}.png", pixels[k], recipe.to_json())
            entries.append(
                self.catalog.add(self.rel(path), kind, self.model.model_hash, latents=latents, row=k, note=note)
            )
        return entries

    @in_page_words
    def project_upload(
        self, upload, steps_w, steps_wplus, inbox: Path, progress: Callable[[float, str], None] | None = None
    ) -> tuple[Entry, Path, float]:
        """Project an uploaded painting (`make.project`: a w, then W+), cataloged like any picture; returns it,
        the target as the model saw it (made square as `prepare` makes paintings square) and the PSNR reached.

        `upload` is the path Gradio stored the upload at; it must lie in `inbox`, Gradio's upload folder,
        so a request cannot name another file. Its size and pixel count are checked before it is decoded.
        """
        steps_w = _within(_whole(steps_w, "the steps in W"), "steps_w", 0, MAX_PROJECT_STEPS)
        steps_wplus = _within(_whole(steps_wplus, "the steps in W+"), "steps_wplus", 0, MAX_PROJECT_STEPS)
        if steps_w + steps_wplus == 0:
            raise StudioError("Give some steps in W or in W+: with none there is nothing to fit.")
        path = self._uploaded(upload, inbox)
        G = self.model.G_ema.to(self.device).eval().requires_grad_(False)
        target = projector.load_target(
            path, G.img_resolution, G.img_channels, "center-rect", projector.model_aspect(self.model)
        )
        cfg = projector.ProjectConfig(steps_w=steps_w, steps_wplus=steps_wplus)
        say = progress or (lambda f, d: None)
        total = steps_w + steps_wplus
        result = projector.project(
            G,
            target.pixels,
            cfg,
            self.device,
            progress=lambda row: say(row["step"] / total, f"step {row['step']} of {total} ({row['phase']})"),
        )
        folder = self._request_dir("project")
        reached = projector.save_projection(result, target, self.model, cfg, folder, self.device, video=False)
        entry = self.catalog.add(
            self.rel(folder / projector.PICTURE),
            "project",
            self.model.model_hash,
            latents=self.rel(folder / LATENTS_FILE),
            row=0,
            note=f"projection of {target.name[:60]}",
        )
        say(1.0, "done")
        return entry, folder / projector.TARGET, float(reached["psnr_db"])

    def _uploaded(self, upload, inbox: Path) -> Path:
        """The uploaded picture's path, checked: inside `inbox`, a file of at most MAX_UPLOAD_BYTES, a PNG, JPEG
        or WebP of at most MAX_UPLOAD_PIXELS (read from its header, before any pixel is decoded)."""
        if upload is None or upload == "":
            raise StudioError("Choose a picture of your painting to upload first.")
        if not isinstance(upload, str) or len(upload) > MAX_PATH_CHARS or "\x00" in upload:
            raise StudioError("The upload is not a file the studio received.")
        root = Path(inbox).resolve()
        path = Path(upload).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise StudioError("The upload is not a file the studio received.")
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise StudioError(f"The picture is {size:,} bytes; the studio takes at most {MAX_UPLOAD_BYTES:,}.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:  # the header only
                    kind, (width, height) = image.format, image.size
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise StudioError("The upload is not a PNG, JPEG or WebP picture.") from None
        if kind not in UPLOAD_FORMATS:
            raise StudioError("The upload is not a PNG, JPEG or WebP picture.")
        if width * height > MAX_UPLOAD_PIXELS:
            raise StudioError(
                f"The picture is {width} × {height} pixels; the studio takes at most {MAX_UPLOAD_PIXELS:,} pixels."
            )
        return path

    def about(self, entry_id, prompt=None) -> PictureFacts:
        """What the page's side panel says of a picture: its recipe in words (`summary`, as `ganscapes info`
        prints it), its CLIP score for `prompt` when CLIP works, its parents, and the command line that
        rebuilds it, with this studio's model and the picture's file in place of the placeholders."""

        e = self.entry(entry_id)
        path = self.path_of(e)
        try:
            raw = read_recipe(path, required=False)
            with Image.open(path) as image:
                size = image.size
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError, UserError):
            raw, size = None, None
        facts = PictureFacts(entry=e, parents=_parents(e))
        if raw is None:
            facts.why_not = "its file carries no recipe"
        else:
            summary = summarize(path, raw, size)
            facts.rows = summary.rows
            facts.why_not = summary.why_not
            model = shlex.quote(str(Path(self.cfg.model).resolve()))
            facts.commands = [
                (what, line.replace(f"--model {MODEL}", f"--model {model}")) for what, line in summary.commands
            ]
        text = _text(prompt, "prompt").strip()
        if text:
            try:
                facts.score = self.score(path, text)
                facts.prompt = text
            except StudioError as why:
                facts.score_note = str(why)
        return facts

    def score(self, path: Path, prompt: str) -> float:
        """The CLIP score of the picture at `path` for `prompt`, as the guide scores its pictures."""
        the_prompt = Prompt((prompt,))  # refuses a prompt CLIP cannot take, in words
        encoder = self.clip()
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].to(self.device) / 127.5 - 1
        with torch.no_grad():
            return float(TensorScorer(encoder, the_prompt).score(x)[0])

    @in_page_words
    def find(self, query) -> list[Entry]:
        """Catalog pictures whose prompt contains `query`, newest first, leaving out rows whose file is gone."""

        entries = self.catalog.search(_text(query, "query", MAX_LIST_CHARS), limit=200)
        return [e for e in entries if self._present(e)]

    def _present(self, entry: Entry) -> bool:
        try:
            return self.path_of(entry).is_file()
        except StudioError:  # gone, or pointing outside the folder
            return False


# -- values from the page -----------------------------------------------------------------


def _shown(value) -> str:
    """`value` quoted in a sentence, cut short: a request may send a megabyte where a number belongs."""
    if isinstance(value, str):
        return repr(value if len(value) <= MAX_NUMBER_CHARS else value[: MAX_NUMBER_CHARS - 10] + "…")
    return _number_text(value) if _is_number(value) else type(value).__name__


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number_text(value) -> str:
    """A number as a sentence shows it; one with hundreds of digits by its size (str() refuses past 4,300)."""
    if isinstance(value, numbers.Integral):
        value = int(value)
        return (
            str(value) if abs(value) < 10**30 else f"a {int(abs(value).bit_length() * math.log10(2)) + 1}-digit number"
        )
    return f"{value:g}"


def _text(value, setting: str, limit: int | None = None) -> str:
    """A text field's value: text of at most `limit` characters; None is empty."""
    if value is None:
        return ""
    label = FIELD_LABELS.get(setting, setting)
    if not isinstance(value, str):
        raise StudioError(f"{label} must be text, not {_shown(value)}.")
    if limit is not None and len(value) > limit:
        raise StudioError(f"{label} must be at most {limit:,} characters long, not {len(value):,}.")
    return value


def _real(value, what: str, kind: str = "a number") -> int | float:
    """A number from the page: an int, a finite float, or text of either; `what` names it in "Enter …"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise StudioError(f"Enter {what} ({kind}).")
    if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS:
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                pass
    if not _is_number(value) or (not isinstance(value, numbers.Integral) and not math.isfinite(value)):
        raise StudioError(f"Enter {what} as {kind}, not {_shown(value)}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _whole(value, what: str) -> int:
    number = _real(value, what, "a whole number")
    if number != int(number):
        raise StudioError(f"Enter {what} as a whole number, not {_shown(number)}.")
    return int(number)


def _within(value, setting: str, low, high, unit: str = ""):
    """`value` if low <= value <= high, else a SettingError that the page says with the field's label."""
    if not low <= value <= high:
        low, high, value = _number_text(low), _number_text(high), _number_text(value)
        raise SettingError(setting, f"must be between {low} and {high}{unit}, not {value}.")
    return value


def _psi(psi) -> float:
    if psi is None:
        raise StudioError("Enter ψ, e.g. 0.7.")
    low, high = PSI_RANGE  # generate's usual range: beyond it pictures break (the page allows no more)
    return float(_within(_real(psi, "ψ"), "psi", low, high))


def _seed_item(item: str, setting: str) -> int:
    """The seed of a forms or styles item such as s7."""
    try:
        seed = int(item[1:]) if len(item) <= MAX_NUMBER_CHARS else None
    except ValueError:
        seed = None
    if seed is None:
        raise StudioError(f"{_shown(item)} is neither a catalog number such as 12 nor a seed such as s7.")
    if not 0 <= seed <= MAX_SEED:
        raise StudioError(f"{FIELD_LABELS[setting]}: seeds run from s0 to s{MAX_SEED}, not {item}.")
    return seed


def _ratio(text: str, what: str) -> float:
    """A number such as 1.27 or a ratio such as 4:3, finite (PostSettings bounds it)."""
    try:
        parts = [float(part) for part in text.split(":")]
        value = parts[0] / parts[1] if len(parts) == 2 else parts[0] if len(parts) == 1 else math.nan
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not math.isfinite(value):
        raise StudioError(f"The {what} must be auto, a number such as 1.27 or a ratio such as 4:3, not {text!r}.")
    return value
