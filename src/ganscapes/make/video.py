"""video: latent walks — a film that travels from keyframe to keyframe through latent space.

Keyframes are seeds or rows of latents files, in the order given. Between two of them
the walk either follows the great circle between their z (spherical interpolation,
"slerp", Shoemake 1985; White, "Sampling Generative Networks", 2016, which argues that
a Gaussian z is better walked along a sphere than along a chord, whose middle is
shorter than any sample) and maps every step through the mapping network, or goes
straight from one w to the next (linear interpolation, as NVIDIA's StyleGAN3
`gen_video.py` does in W). Easing `smooth` slows down near each keyframe
((1 − cos πt) / 2), so that the film rests a moment on every painting.

`layers` restricts the walk to some rows of w: the others keep the first keyframe's,
so with `fine` the composition stays and only colour and brushwork travel (see
`make.mix` for which rows do what). Noise is `const` by default: random noise would
change every frame and make the film boil.

Frames are painted `batch` at a time and streamed to an H.264 encoder (PyAV, which
brings its own ffmpeg); none but the frames of one batch (and small previews) is held.
The MP4's pixels are lossy; the recipe is exact. It is stored in the MP4's `comment`
tag and beside it as VIDEO.json, with a SHA-256 prefix of every frame's lossless
pixels, so `ganscapes reproduce VIDEO.mp4 --frame N` rebuilds frame N and checks it
bit for bit without any lossless copy. `keep_frames` also writes every frame as a PNG
with its own recipe.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ganscapes import __version__
from ganscapes.device import resolve_device
from ganscapes.errors import SettingError, UserError, first_line
from ganscapes.fileio import atomic_path, writable_folder, write_json_atomic
from ganscapes.make.directions import apply_edits, check_edits
from ganscapes.make.latents import load_latent_rows, parse_latent_spec
from ganscapes.make.npz import NpzError, NpzReader
from ganscapes.make.paint import MAX_BATCH, NOISE_MODES, ROW_GROUP, paint, round_up
from ganscapes.make.post import PostSettings, check_picture_size, post_pixels
from ganscapes.make.recipes import (
    FPS_RANGE,
    MAX_KEYFRAMES,
    MAX_TRANSITION_FRAMES,
    MAX_VIDEO_FRAMES,
    VIDEO_EASINGS,
    VIDEO_SPACES,
    Edit,
    LatentSource,
    Noise,
    PostFields,
    VideoRecipe,
    parse_recipe,
)
from ganscapes.make.seeds import (
    MAX_SEED,
    check_psi,
    check_truncation_cutoff,
    class_label,
    map_seeds,
    map_z,
    seeds_to_z,
)
from ganscapes.provenance import json_depth, write_png

# Frames × pixels per frame: 4,096 frames at 1024², 65,536 at 256². Painting is the cost,
# and a typo in --frames should not start a day of work.
MAX_VIDEO_PIXELS = 1 << 32
MAX_PREVIEW_FRAMES = 200  # a GIF or WebP preview takes every k-th frame, at most this many, all in memory
PREVIEW_SIZE = 256  # the longer side of a preview frame
MAX_RECIPE_BYTES = 64 << 20  # a video recipe read from an MP4 tag or a JSON file
METADATA_KEY = "comment"  # MP4 tag (©cmt) that carries the recipe
DIGEST_CHARS = 16  # hexadecimal characters of each frame's SHA-256 kept in the recipe
CRF_RANGE = (0, 51)  # x264's constant rate factor: 0 lossless (in YUV), 18 visually lossless, 51 worst


# ---------------------------------------------------------------------------------------
# the walk


def ease(t: np.ndarray | float, easing: str) -> np.ndarray:
    """Progress t in [0, 1] → eased progress in [0, 1]: `linear`, or `smooth` = (1 − cos πt) / 2.

    Both keep 0 and 1 exact, so a transition starts and ends on its keyframes."""
    t = np.asarray(t, dtype=np.float64)
    if easing == "linear":
        return t
    if easing == "smooth":
        eased = (1.0 - np.cos(np.pi * t)) / 2.0
        return np.where(t == 0, 0.0, np.where(t == 1, 1.0, eased))
    raise SettingError("easing", f"must be one of {', '.join(VIDEO_EASINGS)}, not {easing!r}.")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t = 0, exactly) to b (t = 1, exactly), in float64.

    The angle is measured between the directions; the vectors keep their own lengths, so
    two z of the same norm give steps of that norm all the way (a chord would shrink it).
    Nearly parallel vectors (no angle to walk) fall back to the straight line."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return lerp(a64, b64, t)
    dot = float(np.clip(np.dot(a64.ravel() / na, b64.ravel() / nb), -1.0, 1.0))
    omega = math.acos(dot)
    if math.sin(omega) < 1e-6:
        return lerp(a64, b64, t)
    s = math.sin(omega)
    return (math.sin((1.0 - t) * omega) / s) * a64 + (math.sin(t * omega) / s) * b64


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """(1 − t)·a + t·b in float64: a at t = 0 and b at t = 1, exactly."""
    return (1.0 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)


def frame_count(keyframes: int, frames: int, loop: bool) -> int:
    """Frames of a walk: `frames` per transition, plus the last keyframe unless it loops back."""
    return (keyframes - (0 if loop else 1)) * frames + (0 if loop else 1)


def position(index: int, keyframes: int, frames: int, loop: bool) -> tuple[int, int, float]:
    """(from keyframe, to keyframe, progress t in [0, 1)) of frame `index`."""
    i, step = divmod(index, frames)
    if not loop and i == keyframes - 1:  # the closing frame: the last keyframe itself
        return i, i, 0.0
    return i, (i + 1) % keyframes, step / frames


class Walk:
    """The ws of a recipe's frames, computed from its keyframes (the same code paints the
    video and rebuilds one of its frames, so both give the same ws)."""

    def __init__(self, recipe: VideoRecipe, G, dev):
        self.recipe, self.G, self.dev = recipe, G, dev
        keys = recipe.keyframes
        if recipe.space == "z":
            for k, key in enumerate(keys):
                if key.seed is None or key.w is not None:
                    raise UserError(f"The walk is in z, but keyframe {k} is an exact w without its z.")
            self.z = seeds_to_z([key.seed for key in keys], G.z_dim)
            self.keys_w = self._map(self.z)
        else:
            self.keys_w = np.stack([self._key_w(k, key) for k, key in enumerate(keys)])
        self.fixed = None
        if recipe.layers is not None:
            for i in recipe.layers:
                if not 0 <= i < G.num_ws:
                    raise UserError(f"Layer {i} does not exist: this model has layers 0 to {G.num_ws - 1}.")
            self.fixed = [i for i in range(G.num_ws) if i not in set(recipe.layers)]
        check_edits(recipe.edits, G)

    def _map(self, z: np.ndarray) -> np.ndarray:
        r = self.recipe
        return map_z(self.G, z, r.psi, r.truncation_cutoff, r.class_idx, self.dev)

    def _key_w(self, k: int, key: LatentSource) -> np.ndarray:
        G = self.G
        if key.w is not None:
            if key.w.shape != (G.num_ws, G.w_dim):
                raise UserError(
                    f"Keyframe {k} is a w of {list(key.w.shape)}, but this model needs [{G.num_ws}, {G.w_dim}]."
                )
            return key.w
        return map_seeds(G, [key.seed], key.psi, key.truncation_cutoff, key.class_idx, self.dev)[0]

    def ws(self, indices: list[int]) -> np.ndarray:
        """ws [len(indices), num_ws, w_dim] float32 of these frames."""
        r = self.recipe
        n = len(r.keyframes)
        places = [position(f, n, r.frames, r.loop) for f in indices]
        ts = ease(np.array([t for _, _, t in places]), r.easing)
        if r.space == "z":
            z = np.stack([slerp(self.z[a], self.z[b], float(t)) for (a, b, _), t in zip(places, ts)])
            w = self._map(z)
        else:
            w = np.stack([lerp(self.keys_w[a], self.keys_w[b], float(t)) for (a, b, _), t in zip(places, ts)])
            w = w.astype(np.float32)
        if self.fixed is not None:
            w[:, self.fixed] = self.keys_w[0][self.fixed]
        return apply_edits(w, r.edits)  # every frame moved along the same directions


# ---------------------------------------------------------------------------------------
# making the video


@dataclass
class VideoResult:
    video: Path
    recipe: Path  # VIDEO.json
    frames: int
    size: tuple[int, int]  # width, height of a frame (the MP4's is rounded up to even numbers)
    previews: list[Path]
    frame_files: list[Path]
    seconds: float


def keyframe_sources(
    keys: list[int | str], model, space: str, psi: float, cutoff: int | None, class_idx: int | None
) -> list[LatentSource]:
    """Each key — a seed (int) or `FILE.npz:ROWS` (str) — as the keyframes it names, in order.

    In z a file's rows need their seeds (generate's and rank's files have them): the walk
    goes through their z, mapped with this walk's ψ. In w a row is its exact w."""
    sources: list[LatentSource] = []
    for key in keys:
        if isinstance(key, str):
            path, rows = parse_latent_spec(key)
            count = len(rows) if rows is not None else _row_count(path)
            if len(sources) + count > MAX_KEYFRAMES:  # before reading ws: FILE.npz alone may hold 100,000 rows
                raise UserError(f"A walk has at most {MAX_KEYFRAMES} keyframes; {key} names {count:,} more.")
            found = load_latent_rows(key, model)
            for k, src in enumerate(found.sources):
                if space == "w":
                    sources.append(LatentSource(w=found.w[k], file=path.name, row=src["row"], seed=src.get("seed")))
                elif found.seeds is None:
                    raise UserError(f"{path} holds no seeds, so its rows have no z to walk through; use --space w.")
                else:
                    mapping = {"psi": psi, "truncation_cutoff": cutoff, "class_idx": class_idx}
                    note = {"file": path.name, "row": src["row"]}
                    sources.append(LatentSource(seed=int(found.seeds[k]), **mapping, extra=note))
        else:
            if not 0 <= int(key) <= MAX_SEED:
                raise UserError(f"Seeds must be from 0 to {MAX_SEED}, not {key}.")
            sources.append(LatentSource(int(key), psi, cutoff, class_idx))
        if len(sources) > MAX_KEYFRAMES:
            raise UserError(f"A walk has at most {MAX_KEYFRAMES} keyframes, not {len(sources)}.")
    if len(sources) < 2:
        raise UserError(f"A walk needs at least 2 keyframes (seeds or latents rows), not {len(sources)}.")
    return sources


def _row_count(path: Path) -> int:
    """Rows of a latents file, from its header (0 when it cannot tell: loading it then says why)."""
    try:
        with NpzReader(path) as npz:
            if "w" in npz and len(npz.shape("w")) == 3:
                return npz.shape("w")[0]
            if "cells" in npz and len(npz.shape("cells")) == 4:
                return npz.shape("cells")[0] * npz.shape("cells")[1]
    except (NpzError, OSError):
        pass
    return 0


def check_walk(frames: int, keyframes: int, loop: bool, frame_size: tuple[int, int]) -> int:
    """Refuse, before any work, a walk beyond the bounds; return its number of frames."""
    if not 1 <= frames <= MAX_TRANSITION_FRAMES:
        raise SettingError("frames", f"must be from 1 to {MAX_TRANSITION_FRAMES} per transition, not {frames}.")
    total = frame_count(keyframes, frames, loop)
    if total > MAX_VIDEO_FRAMES:
        raise SettingError(
            "frames",
            f"{frames} per transition between {keyframes} keyframes make {total:,} frames, more than "
            f"{MAX_VIDEO_FRAMES:,}; use fewer frames or keyframes.",
        )
    width, height = frame_size
    if total * width * height > MAX_VIDEO_PIXELS:
        raise SettingError(
            "frames",
            f"{frames} per transition make {total:,} frames of {width} x {height} pixels, more than "
            f"{MAX_VIDEO_PIXELS:,} pixels in all; use fewer frames or keyframes.",
        )
    return total


def latent_walk(
    model,
    keys: list[int | str],
    out: str | Path,
    *,
    frames: int = 24,
    space: str = "z",
    easing: str = "smooth",
    loop: bool = False,
    psi: float = 1.0,
    truncation_cutoff: int | None = None,
    class_idx: int | None = None,
    noise_mode: str = "const",
    layers: list[int] | None = None,
    fps: float = 24,
    post: bool = False,
    gif: bool = False,
    webp: bool = False,
    keep_frames: bool = False,
    crf: int = 18,
    batch: int = 8,
    device="cpu",
    progress: bool = True,
    edits: list[Edit] | None = None,
) -> VideoResult:
    """Paint the walk through `keys` (seeds and `FILE.npz:ROWS`) into the MP4 `out`.

    Beside it: OUT.json (the recipe), OUT.gif / OUT.webp previews when asked, and with
    `keep_frames` an OUT_frames/ folder of lossless PNG frames carrying their recipes.
    `model` is a loaded `checkpoint.Model`. Every setting is checked before painting.
    """
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise SettingError("out", f"must be an .mp4 file, not {out.name}.")
    if out.is_dir():
        raise SettingError("out", f"{out} is a folder; name the .mp4 file to write.")
    if space not in VIDEO_SPACES:
        raise SettingError("space", f"must be one of {', '.join(VIDEO_SPACES)}, not {space!r}.")
    if easing not in VIDEO_EASINGS:
        raise SettingError("easing", f"must be one of {', '.join(VIDEO_EASINGS)}, not {easing!r}.")
    if noise_mode not in NOISE_MODES:
        raise SettingError("noise_mode", f"must be one of {', '.join(NOISE_MODES)}, not {noise_mode!r}.")
    if not 1 <= batch <= MAX_BATCH:
        raise SettingError("batch", f"must be from 1 to {MAX_BATCH}, not {batch}.")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        raise SettingError("fps", f"must be from {FPS_RANGE[0]} to {FPS_RANGE[1]}, not {fps}.")
    if not CRF_RANGE[0] <= crf <= CRF_RANGE[1]:
        raise SettingError("crf", f"must be from {CRF_RANGE[0]} to {CRF_RANGE[1]}, not {crf}.")
    if not 1 <= frames <= MAX_TRANSITION_FRAMES:  # again in check_walk; here before any file is read
        raise SettingError("frames", f"must be from 1 to {MAX_TRANSITION_FRAMES} per transition, not {frames}.")
    psi = check_psi(psi)
    if layers is not None and not len(layers):
        raise SettingError("layers", "names no layer, so nothing would move; leave it out to move every w row.")
    if len(keys) > MAX_KEYFRAMES:
        raise UserError(f"A walk has at most {MAX_KEYFRAMES} keyframes, not {len(keys)}.")

    dev = resolve_device(device)
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    check_truncation_cutoff(truncation_cutoff, G.num_ws)
    class_label(G.c_dim, class_idx)
    sources = keyframe_sources(keys, model, space, psi, truncation_cutoff, class_idx)
    aspect = model.meta.get("aspect")
    post_fields = None
    size = (G.img_resolution, G.img_resolution)
    if post:
        finish = PostSettings(aspect=_aspect(aspect))
        post_fields = PostFields(finish.low, finish.high, finish.aspect, None)
        size = (G.img_resolution, max(1, int(round(G.img_resolution / finish.aspect))))
        check_picture_size(*size)
    total = check_walk(frames, len(sources), loop, size)
    recipe = VideoRecipe(
        model_hash=model.model_hash,
        noise_mode=noise_mode,
        device=str(dev),
        aspect=aspect,
        keyframes=sources,
        space=space,
        easing=easing,
        frames=frames,
        loop=loop,
        fps=fps,
        psi=psi,
        truncation_cutoff=truncation_cutoff,
        class_idx=class_idx,
        layers=None if layers is None else sorted(set(int(i) for i in layers)),
        post=post_fields,
        edits=edits or None,
    )
    walk = Walk(recipe, G, dev)  # checks the layers and keyframe shapes

    writable_folder(out.parent if str(out.parent) else Path("."))
    frame_dir = out.with_name(out.stem + "_frames")
    if keep_frames:
        writable_folder(frame_dir)
        for old in frame_dir.glob("frame*.png"):  # ours alone: no frame of a longer earlier walk stays
            old.unlink()
    part = out.with_name(f".{out.name}.part.mp4")
    digests: list[str] = []
    previews: list[Image.Image] = []
    step = -(-total // MAX_PREVIEW_FRAMES)
    frame_files: list[Path] = []
    encoder = Mp4Writer(part, fps, crf)
    bar = tqdm(total=total, desc="painting frames", unit="frame", disable=not progress)
    try:
        for i in range(0, total, batch):
            indices = list(range(i, min(i + batch, total)))
            ws = walk.ws(indices)
            pixels = paint(G, ws, noise_mode, batch, noise_seed=i)
            rows = round_up(len(indices), ROW_GROUP)
            for k, index in enumerate(indices):
                frame = finish_frame(pixels[k], recipe)
                digests.append(frame_digest(frame))
                encoder.add(frame)
                if (gif or webp) and index % step == 0:
                    previews.append(_thumbnail(frame))
                if keep_frames:
                    noise = Noise(i, rows, k) if noise_mode == "random" else None
                    one = replace(recipe, frame=index, noise=noise)
                    frame_files.append(write_png(frame_dir / f"frame{index:05d}.png", frame, one.to_json()))
                bar.update(1)
        encoder.close()
        recipe.digests = digests
        text = recipe_text(recipe)
        with atomic_path(out) as tmp:
            _remux(part, tmp, text)
    finally:
        encoder.abort()
        bar.close()
        part.unlink(missing_ok=True)
    json_path = out.with_suffix(".json")
    write_json_atomic(json_path, json.loads(text))
    preview_paths = []
    for wanted, suffix in ((gif, ".gif"), (webp, ".webp")):
        if wanted:
            preview_paths.append(_save_preview(previews, out.with_suffix(suffix), 1000 * step / fps))
    return VideoResult(out, json_path, total, size, preview_paths, frame_files, time.perf_counter() - start)


def _aspect(value) -> float:
    from ganscapes.data.aspect import is_aspect

    return float(value) if is_aspect(value) else 1.0


def finish_frame(pixels: np.ndarray, recipe: VideoRecipe) -> np.ndarray:
    """A painted frame as the video shows it: RGB, finished by post when the recipe says so."""
    rgb = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
    if recipe.post is None:
        return np.ascontiguousarray(rgb)
    p = recipe.post
    return post_pixels(rgb, PostSettings(low=p.low, high=p.high, width=p.width, aspect=p.aspect), p.aspect)


def frame_digest(pixels: np.ndarray) -> str:
    """SHA-256 prefix of a frame's shape and bytes: what `reproduce --frame` checks the rebuild against."""
    h = hashlib.sha256("x".join(map(str, pixels.shape)).encode() + b"\0")
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return h.hexdigest()[:DIGEST_CHARS]


def recipe_text(recipe: VideoRecipe) -> str:
    return json.dumps({"version": __version__, **recipe.to_json()})


class Mp4Writer:
    """H.264 in MP4 through PyAV, frames streamed as they come.

    x264 with 4:2:0 chroma needs even sides: an odd row or column is padded by repeating
    the edge (the recipe's digests are of the frames themselves, before padding)."""

    def __init__(self, path: Path, fps: float, crf: int):
        from fractions import Fraction

        import av  # imported here: only this command needs it

        self.av = av
        self.path = path
        try:
            self.container = av.open(str(path), mode="w", format="mp4")
        except OSError as e:
            raise UserError(f"Cannot write {path}: {first_line(e)}.") from None
        rate = Fraction(fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "medium"})
        self.stream.pix_fmt = "yuv420p"
        self.opened = False

    def add(self, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if not self.opened:
            self.stream.height, self.stream.width = rgb.shape[:2]
            self.opened = True
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # already failing; the partial file is removed by the caller
                pass
            self.container = None


def _remux(source: Path, dest: Path, recipe: str) -> None:
    """Copy the encoded stream into `dest` with the recipe as its comment tag.

    The recipe holds every frame's digest, known only once all are painted, and the MP4
    muxer takes its tags before the first packet; so the packets are copied, not re-encoded."""
    import av

    with av.open(str(source)) as src, av.open(str(dest), mode="w", format="mp4") as dst:
        dst.metadata[METADATA_KEY] = recipe
        stream_in = src.streams.video[0]
        stream_out = dst.add_stream_from_template(stream_in)
        for packet in src.demux(stream_in):
            if packet.dts is None:  # the flushing packet
                continue
            packet.stream = stream_out
            dst.mux(packet)


def _thumbnail(frame: np.ndarray) -> Image.Image:
    image = Image.fromarray(frame)
    image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS)
    return image


def _save_preview(images: list[Image.Image], path: Path, duration_ms: float) -> Path:
    kind = "GIF" if path.suffix == ".gif" else "WEBP"
    extra = {"lossless": False, "quality": 80} if kind == "WEBP" else {}
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format=kind,
            save_all=True,
            append_images=images[1:],
            duration=max(20, int(round(duration_ms))),
            loop=0,
            **extra,
        )
    return path


# ---------------------------------------------------------------------------------------
# reading a video's recipe back, rebuilding one frame


def read_video_recipe(path: Path) -> dict:
    """The recipe of a video: its MP4's comment tag, or the JSON beside it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist.")
    if path.stat().st_size > MAX_RECIPE_BYTES and path.suffix.lower() == ".json":
        raise UserError(f"{path} is larger than {MAX_RECIPE_BYTES >> 20} MiB; a video recipe is far smaller.")
    if path.suffix.lower() == ".json":
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        import av

        try:
            with av.open(str(path)) as container:
                text = container.metadata.get(METADATA_KEY)
        except (av.FFmpegError, OSError) as e:
            raise UserError(f"{path} is not a readable video ({first_line(e)}).") from None
        if not text:
            raise UserError(f"{path} carries no ganscapes recipe; only videos written by ganscapes video have one.")
        if len(text) > MAX_RECIPE_BYTES:
            raise UserError(f"The recipe in {path} is larger than {MAX_RECIPE_BYTES >> 20} MiB.")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"The recipe in {path} is not valid JSON.") from None
    if not isinstance(raw, dict) or json_depth(raw) > 32:
        raise UserError(f"The recipe in {path} is not a JSON object of a video recipe.")
    if raw.get("kind") != VideoRecipe.kind:
        raise UserError(f"The recipe in {path} is of kind {str(raw.get('kind'))[:40]!r}, not a video's.")
    return raw


def rebuild_frame(recipe: VideoRecipe, index: int, model, dev) -> np.ndarray:
    """Frame `index` of the walk, painted and finished as the video painted it."""
    total = recipe.frame_count()
    if not 0 <= index < total:
        raise SettingError("frame", f"must be from 0 to {total - 1} (the video has {total} frames), not {index}.")
    G = model.G_ema.to(dev).eval().requires_grad_(False)
    w = Walk(recipe, G, dev).ws([index])
    if recipe.noise_mode == "random":
        noise = recipe.noise or Noise()
        pixels = paint(G, np.repeat(w, noise.batch_rows, axis=0), "random", noise.batch_rows, noise_seed=noise.seed)
        pixels = pixels[noise.row : noise.row + 1]
    else:
        pixels = paint(G, w, recipe.noise_mode)
    return finish_frame(pixels[0], recipe)


@dataclass
class FrameReproduction:
    pixels: np.ndarray
    recipe: dict  # the frame's own recipe (the video's, with `frame`, without the digests)
    digest: str
    expected: str | None  # the digest the video recorded for this frame

    @property
    def identical(self) -> bool:
        return self.expected is not None and self.digest == self.expected[: len(self.digest)]


def reproduce_frame(path: Path, index: int, model, device="cpu", force: bool = False) -> FrameReproduction:
    """Rebuild frame `index` of the video at `path` (MP4 or its JSON) and check it against
    the digest the video recorded. With random noise, a frame's noise depends on its
    batch, which the video recipe does not keep: such frames are rebuilt from the kept PNGs."""
    raw = read_video_recipe(path)
    recipe = parse_recipe(raw)
    assert isinstance(recipe, VideoRecipe)
    if recipe.model_hash and recipe.model_hash != model.model_hash and not force:
        raise SettingError(
            "force",
            f"is needed to rebuild {path.name} anyway: it was made by model {recipe.model_hash[:12]}, "
            f"but {model.path or 'this model'} is {model.model_hash[:12]}.",
        )
    if recipe.noise_mode == "random":
        raise UserError(
            f"{path.name} was painted with random noise, which depends on each frame's batch; "
            "reproduce the PNG frames that video --keep-frames wrote instead."
        )
    total = recipe.frame_count()
    if not 0 <= index < total:
        raise SettingError("frame", f"must be from 0 to {total - 1} (the video has {total} frames), not {index}.")
    pixels = rebuild_frame(recipe, index, model, resolve_device(device))
    expected = recipe.digests[index] if recipe.digests else None
    one = replace(recipe, frame=index, digests=None).to_json()
    return FrameReproduction(pixels, {k: v for k, v in one.items() if k != "version"}, frame_digest(pixels), expected)
