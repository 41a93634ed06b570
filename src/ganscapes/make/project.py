"""project: find the latent whose picture is your painting or photo.

Once a painting is a latent it can be mixed (`mix --forms-from`), edited (`--edit`) and
walked (`video`) like any generated picture. Two phases:

1. **W**, NVIDIA's projector (`projector.py`, `project`, after StyleGAN2 §5): one w for
   every layer, starting at the mean of 10,000 mapped latents; Adam at lr 0.1 with a
   linear warm-up over the first 5 % of the steps and a cosine ramp-down over the last
   25 %; Gaussian noise added to w, of 0.05 × the spread of w, fading out (quadratically)
   over the first 75 %; the synthesis network's per-layer noise maps optimised too, kept
   at unit variance and pulled towards white noise by a penalty on their
   autocorrelation at every scale (weight 1e5).
2. **W+** (Image2StyleGAN, Abdal et al. 2019, §5: one w per layer, Adam at lr 0.01), from
   the W result, with the model's own constant noise maps — the noise every other
   command paints with — so that what is optimised is exactly the picture the latents
   file and recipe give back.

The distance is pixels + a Laplacian pyramid by default (Bojanowski et al. 2018, §3.2
"Lap1": the mean absolute difference of every pyramid level, down to 8², levels weighted
equally), or LPIPS when its weights are given (NVIDIA's choice; `make.lpips`), plus,
when CLIP is loaded, the cosine distance between CLIP's embeddings of the two pictures.

The target is made square the way `prepare` makes a painting square (center-rect at the
model's training aspect by default), so a painting meets the model in the form the
model learnt.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ganscapes.data.aspect import Format, apply_format, is_aspect
from ganscapes.data.grid import image_grid
from ganscapes.data.images import BadImage, load_rgb, open_image, oriented_size
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import atomic_path
from ganscapes.make.guide import projector_lr
from ganscapes.make.latents import LATENTS_FILE, LatentSet
from ganscapes.make.paint import paint, synthesize
from ganscapes.make.recipes import MAX_PICTURE_PIXELS, GuideRecipe, LatentSource
from ganscapes.make.seeds import class_label
from ganscapes.provenance import write_png

DEFAULT_ASPECT = 1.27  # the article's mean aspect of impressionist landscapes, when the model records none
LPIPS_SIZE = 256  # NVIDIA's projector shrinks larger pictures to 256² before LPIPS
PYRAMID_MIN = 8  # the smallest Laplacian pyramid level
MAX_STEPS = 100_000
MAX_W_SAMPLES = 1_000_000


@dataclass(frozen=True)
class ProjectConfig:
    """Defaults: NVIDIA's projector for phase W; Image2StyleGAN's learning rate for W+."""

    steps_w: int = 1000  # num_steps
    steps_wplus: int = 500
    lr: float = 0.1  # initial_learning_rate
    lr_wplus: float = 0.01
    noise_factor: float = 0.05  # initial_noise_factor: w noise, in units of w's spread
    noise_ramp: float = 0.75  # noise_ramp_length
    lr_rampdown: float = 0.25  # lr_rampdown_length
    lr_rampup: float = 0.05  # lr_rampup_length
    noise_reg: float = 1e5  # regularize_noise_weight
    optimize_noise: bool = True  # phase W optimises the noise maps, as NVIDIA's projector does
    w_avg_samples: int = 10_000
    pixel_weight: float | None = None  # None: 1 with the default distance, 0 with LPIPS
    laplacian_weight: float | None = None  # None: 1 with the default distance, 0 with LPIPS
    lpips_weight: float = 1.0  # used when LPIPS weights are given
    clip_weight: float = 0.1  # used when CLIP is loaded
    seed: int = 0  # the w_avg samples and the starting noise maps
    class_idx: int | None = None
    frames: int = 48  # pictures kept for the progress strip and the video

    def __post_init__(self) -> None:
        for name in ("steps_w", "steps_wplus"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_STEPS:
                raise SettingError(name, f"must be from 0 to {MAX_STEPS:,}, not {value}.")
        if self.steps_w + self.steps_wplus == 0:
            raise UserError("steps_w and steps_wplus are both 0: there is nothing to optimise.")
        for name in ("lr", "lr_wplus"):
            if not getattr(self, name) > 0:
                raise SettingError(name, f"must be positive, not {getattr(self, name):g}.")
        for name in ("noise_factor", "noise_reg", "lpips_weight", "clip_weight", "pixel_weight", "laplacian_weight"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise SettingError(name, f"must be 0 or more, not {value:g}.")
        for name in ("noise_ramp", "lr_rampdown", "lr_rampup"):
            if not 0 < getattr(self, name) <= 1:
                raise SettingError(name, f"must be in (0, 1], not {getattr(self, name):g}.")
        if not 1 <= self.w_avg_samples <= MAX_W_SAMPLES:
            raise SettingError("w_avg_samples", f"must be from 1 to {MAX_W_SAMPLES:,}, not {self.w_avg_samples}.")
        if not 2 <= self.frames <= 1000:
            raise SettingError("frames", f"must be from 2 to 1000, not {self.frames}.")

    def weights(self, lpips: bool) -> dict[str, float]:
        """The weight of each term of the loss, given whether LPIPS is at hand."""
        default = 0.0 if lpips else 1.0
        return {
            "pixels": default if self.pixel_weight is None else self.pixel_weight,
            "laplacian": default if self.laplacian_weight is None else self.laplacian_weight,
            "lpips": self.lpips_weight if lpips else 0.0,
            "clip": self.clip_weight,
        }


# ---------------------------------------------------------------------------------------
# The target


@dataclass
class Target:
    pixels: np.ndarray  # [res, res, C] uint8, as the model sees it
    name: str  # the file's name
    sha256: str  # of the file's bytes
    fmt: str
    aspect: float | None


def model_aspect(model) -> float:
    value = model.meta.get("aspect") if model is not None else None
    return float(value) if is_aspect(value) else DEFAULT_ASPECT


def load_target(path: Path, res: int, channels: int, fmt: str = "center-rect", aspect: float | None = None) -> Target:
    """The picture at `path`, made square at `res` as `prepare` makes paintings square."""
    fmt = Format(fmt).value
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The target picture {path} does not exist.")
    if channels not in (1, 3):
        raise UserError(f"project works with RGB or greyscale models; this one paints {channels} channels.")
    try:
        data = path.read_bytes()
        img = open_image(data, max_pixels=MAX_PICTURE_PIXELS)
        oriented_size(img)
        rgb = load_rgb(img)
    except BadImage as e:
        raise UserError(f"Cannot use {path} as the target: {e}.") from None
    except OSError as e:
        raise UserError(f"Cannot read {path}: {e.strerror or e}.") from None
    if fmt == Format.CENTER_RECT.value and aspect is None:
        raise SettingError("aspect", "is needed for center-rect.")
    square = apply_format(rgb, Format(fmt), res, aspect if fmt == Format.CENTER_RECT.value else None)
    if channels == 1:
        square = square.convert("L")
    pixels = np.asarray(square, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    used = aspect if fmt == Format.CENTER_RECT.value else None
    return Target(pixels, path.name, hashlib.sha256(data).hexdigest(), fmt, used)


def to_network(pixels: np.ndarray, dev) -> torch.Tensor:
    """uint8 [H, W, C] → float [1, C, H, W] in [-1, 1], the generator's range."""
    x = torch.from_numpy(np.array(pixels, copy=True)).permute(2, 0, 1)[None].float()
    return (x / 127.5 - 1).to(dev)


# ---------------------------------------------------------------------------------------
# The distance


def laplacian_pyramid(x: torch.Tensor, smallest: int = PYRAMID_MIN) -> list[torch.Tensor]:
    """Band-pass levels, finest first, and the low-pass residual last (2×2 averaging, nearest
    up-sampling: exact to invert, so nothing in the picture is left out)."""
    levels = []
    while min(x.shape[-2:]) > smallest and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0:
        low = F.avg_pool2d(x, 2)
        levels.append(x - F.interpolate(low, scale_factor=2, mode="nearest"))
        x = low
    levels.append(x)
    return levels


def laplacian_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum over pyramid levels of the mean absolute difference → [N]."""
    total = 0
    for la, lb in zip(laplacian_pyramid(a), laplacian_pyramid(b)):
        total = total + (la - lb).abs().mean(dim=(1, 2, 3))
    return total


def noise_regularisation(maps: list[torch.Tensor]) -> torch.Tensor:
    """NVIDIA's projector: squared autocorrelation (one pixel apart, both ways) of every noise
    map at every scale down to 8², which white noise has near zero."""
    reg = 0.0
    for v in maps:
        v = v[None, None, :, :]
        while True:
            reg = reg + (v * torch.roll(v, shifts=1, dims=3)).mean() ** 2
            reg = reg + (v * torch.roll(v, shifts=1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


def lpips_input(x: torch.Tensor) -> torch.Tensor:
    """Pictures as LPIPS sees them: at most 256² (area-averaged, as NVIDIA's projector shrinks them), RGB."""
    if x.shape[-1] > LPIPS_SIZE:
        x = F.interpolate(x, size=(LPIPS_SIZE, LPIPS_SIZE), mode="area")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x


class Distance:
    """The loss between generated pictures and the target, term by term."""

    def __init__(self, target: torch.Tensor, weights: dict[str, float], lpips=None, clip=None):
        self.target = target
        self.weights = weights
        self.lpips = lpips if weights["lpips"] > 0 else None
        self.clip = clip if weights["clip"] > 0 else None
        with torch.no_grad():
            self.target_small = lpips_input(target) if self.lpips is not None else None
            self.target_clip = self.clip.embed(target) if self.clip is not None else None

    def terms(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each used term [N], unweighted."""
        t = self.target.expand(len(images), -1, -1, -1)
        out = {}
        if self.weights["pixels"] > 0:
            out["pixels"] = (images - t).pow(2).mean(dim=(1, 2, 3))
        if self.weights["laplacian"] > 0:
            out["laplacian"] = laplacian_distance(images, t)
        if self.lpips is not None:
            out["lpips"] = self.lpips(lpips_input(images), self.target_small.expand(len(images), -1, -1, -1))
        if self.clip is not None:
            out["clip"] = 1 - (self.clip.embed(images) * self.target_clip).sum(dim=1)
        return out

    def loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.weights[k] * v for k, v in terms.items())


# ---------------------------------------------------------------------------------------
# The optimisation


@dataclass
class Projection:
    w: np.ndarray  # [num_ws, w_dim]: the result (W+ when that phase ran)
    w_only: np.ndarray  # [num_ws, w_dim]: the result of phase W (one w repeated)
    pixels: np.ndarray  # [H, W, C] uint8: the result painted with the model's constant noise
    history: list[dict] = field(default_factory=list)  # step, phase, lr, loss and its terms
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (step, picture) along the way
    weights: dict[str, float] = field(default_factory=dict)


def w_statistics(G, samples: int, seed: int, dev, class_idx: int | None = None) -> tuple[torch.Tensor, float]:
    """The mean w of `samples` random latents, and their spread (the root mean squared
    distance from it): where the search starts and the unit of its noise."""
    gen = torch.Generator().manual_seed(seed)
    ws = []
    with torch.no_grad():
        for start in range(0, samples, 4096):
            n = min(4096, samples - start)
            z = torch.randn([n, G.z_dim], generator=gen).to(dev)
            ws.append(G.mapping(z, class_label(G.c_dim, class_idx, n).to(dev))[:, :1].double())
    ws = torch.cat(ws)
    mean = ws.mean(dim=0, keepdim=True)
    spread = float(((ws - mean).square().sum() / samples).sqrt())
    return mean.float(), spread


def _noise_maps(synthesis) -> list[torch.Tensor]:
    return [buf for name, buf in synthesis.named_buffers() if name.endswith("noise_const")]


def project(G, target: np.ndarray, cfg: ProjectConfig, dev, *, lpips=None, clip=None, progress=None) -> Projection:
    """Optimise a latent so that G paints `target` ([res, res, C] uint8)."""
    if target.shape != (G.img_resolution, G.img_resolution, G.img_channels):
        raise UserError(
            f"The target is {target.shape[1]}x{target.shape[0]}x{target.shape[2]}; this model paints "
            f"{G.img_resolution}x{G.img_resolution}x{G.img_channels}."
        )
    weights = cfg.weights(lpips is not None)
    if clip is None:
        weights["clip"] = 0.0
    if not any(weights.values()):
        raise UserError("Every term of the distance weighs 0: there would be nothing to optimise.")
    goal = to_network(target, dev)
    distance = Distance(goal, weights, lpips, clip)
    w_mean, w_spread = w_statistics(G, cfg.w_avg_samples, cfg.seed, dev, cfg.class_idx)
    total = cfg.steps_w + cfg.steps_wplus
    every = max(1, math.ceil(total / (cfg.frames - 1)))
    history: list[dict] = []
    frames: list[tuple[int, np.ndarray]] = []

    def record(step: int, phase: str, lr: float, terms: dict[str, torch.Tensor], loss: float, ws: torch.Tensor):
        row = {
            "step": step,
            "phase": phase,
            "lr": lr,
            "loss": loss,
            **{k: float(v[0].detach()) for k, v in terms.items()},
        }
        history.append(row)
        if step % every == 0:
            frames.append((step, paint(G, ws.detach())[0]))
        if progress:
            progress(row)

    # Phase W: on a copy of the synthesis network, whose noise maps are optimised and thrown away.
    w = w_mean.clone().to(dev)
    if cfg.steps_w:
        synthesis = copy.deepcopy(G.synthesis).eval().requires_grad_(False)
        maps = _noise_maps(synthesis) if cfg.optimize_noise else []
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        for buf in maps:
            buf.copy_(torch.randn(buf.shape, generator=gen))
            buf.requires_grad_(True)
        w_opt = w.clone().requires_grad_(True)
        opt = torch.optim.Adam([w_opt, *maps], betas=(0.9, 0.999), lr=cfg.lr)
        for step in range(cfg.steps_w):
            t = step / cfg.steps_w
            noise_scale = w_spread * cfg.noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
            lr = projector_lr(t, cfg.lr, cfg.lr_rampdown, cfg.lr_rampup)
            for group in opt.param_groups:
                group["lr"] = lr
            w_noise = torch.randn(w_opt.shape, generator=gen).to(dev) * noise_scale
            ws = (w_opt + w_noise).expand(-1, G.num_ws, -1)
            terms = distance.terms(synthesize(synthesis, ws, "const"))
            loss = distance.loss(terms)[0]
            if maps:
                loss = loss + cfg.noise_reg * noise_regularisation(maps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():  # NVIDIA normalises the noise maps after every step
                for buf in maps:
                    buf -= buf.mean()
                    buf *= buf.square().mean().rsqrt()
            record(step, "w", lr, terms, float(loss.detach()), w_opt.expand(-1, G.num_ws, -1))
        w = w_opt.detach()
    w_only = w.expand(-1, G.num_ws, -1).clone()

    # Phase W+: the model's own noise, so the loss is the distance of the picture we keep.
    best = w_only.clone()
    if cfg.steps_wplus:
        ws_opt = w_only.clone().requires_grad_(True)
        opt = torch.optim.Adam([ws_opt], betas=(0.9, 0.999), lr=cfg.lr_wplus)
        best_loss = math.inf
        for k in range(cfg.steps_wplus + 1):
            terms = distance.terms(synthesize(G.synthesis, ws_opt, "const"))
            loss = distance.loss(terms)[0]
            if float(loss.detach()) < best_loss:  # the loss of the latent as it is before this step
                best_loss, best = float(loss.detach()), ws_opt.detach().clone()
            if k == cfg.steps_wplus:
                break
            lr = projector_lr(k / cfg.steps_wplus, cfg.lr_wplus, cfg.lr_rampdown, cfg.lr_rampup)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            record(cfg.steps_w + k, "wplus", lr, terms, float(loss.detach()), ws_opt)
    pixels = paint(G, best)[0]
    frames.append((total, pixels))
    return Projection(best[0].cpu().numpy(), w_only[0].cpu().numpy(), pixels, history, frames, weights)


# ---------------------------------------------------------------------------------------
# How close it came


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pictures, in dB (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def reconstruction_errors(result: np.ndarray, target: np.ndarray, lpips=None) -> dict[str, float]:
    """The reconstruction errors reported: PSNR, mean absolute error in 8-bit levels, and
    LPIPS when it is at hand."""
    out = {
        "psnr_db": round(psnr(result, target), 3),
        "mae_levels": round(float(np.mean(np.abs(result.astype(np.int16) - target.astype(np.int16)))), 3),
    }
    if lpips is not None:
        dev = next(lpips.buffers()).device
        with torch.no_grad():
            a, b = (lpips_input(to_network(x, dev)) for x in (result, target))
            out["lpips"] = round(float(lpips(a, b)[0]), 5)
    return out


# ---------------------------------------------------------------------------------------
# Writing the results

PICTURE = "projected.png"
TARGET = "target.png"
STRIP = "strip.png"
HISTORY = "history.csv"
VIDEO = "projection.mp4"


def save_projection(
    result: Projection,
    target: Target,
    model,
    cfg: ProjectConfig,
    out: Path,
    dev,
    *,
    lpips=None,
    clip_model=None,
    video: bool = True,
    fps: int = 12,
) -> dict:
    """projected.png (with its recipe), target.png, latents.npz (row 0: the result, row 1:
    phase W's), history.csv, strip.png and projection.mp4. Returns the errors reached."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reached = reconstruction_errors(result.pixels, target.pixels, lpips)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("frames", "pixel_weight", "laplacian_weight")}
    settings.update({f"weight_{k}": v for k, v in result.weights.items()})
    settings.update(
        {
            "target": target.name[:200],
            "target_sha256": target.sha256,
            "target_format": target.fmt,
            "target_aspect": target.aspect,
            "clip_model": clip_model,
            **reached,
        }
    )
    recipe = GuideRecipe(
        model_hash=model.model_hash,
        latent=LatentSource(w=result.w.astype(np.float32)),
        noise_mode="const",
        device=str(dev),
        aspect=model.meta.get("aspect") if is_aspect(model.meta.get("aspect")) else None,
        method="project",
        search={k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in settings.items()},
    )
    write_png(out / PICTURE, result.pixels, recipe.to_json())
    with atomic_path(out / TARGET) as tmp:
        _image(target.pixels).save(tmp, format="PNG")
    LatentSet(np.stack([result.w, result.w_only]), model_hash=model.model_hash).save(out / LATENTS_FILE)
    _write_history(out / HISTORY, result.history)
    _write_strip(out / STRIP, target.pixels, result.frames)
    if video:
        _write_video(out / VIDEO, target.pixels, result.frames, fps)
    return reached


def _image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def _write_history(path: Path, rows: list[dict]) -> None:
    names = ["step", "phase", "lr", "loss"]
    for row in rows:
        names += [k for k in row if k not in names]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _zoom(size: int, at_least: int) -> int:
    """The whole-number zoom that makes `size` pixels at least `at_least` wide."""
    return max(1, math.ceil(at_least / size))


def _write_strip(path: Path, target: np.ndarray, frames: list[tuple[int, np.ndarray]], count: int = 8) -> None:
    """The target, then the picture at evenly spaced moments of the search, the result last."""
    picks = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, min(count, len(frames)))]
    zoom = _zoom(target.shape[0], 128)
    size = target.shape[0] * zoom
    pictures = [_image(target)] + [_image(px) for _, px in picks]
    labels = ["target"] + [f"step {step}" for step, _ in picks[:-1]] + ["result"]
    strip = image_grid(
        [p.convert("RGB").resize((size, size), Image.Resampling.NEAREST) for p in pictures],
        len(pictures),
        size,
        background=(255, 255, 255),
        labels=labels,
        label_band=16,
        label_at=(3, size + 2),
        label_colour=(0, 0, 0),
    )
    with atomic_path(path) as tmp:
        strip.save(tmp, format="PNG")


def _write_video(path: Path, target: np.ndarray, frames: list[tuple[int, np.ndarray]], fps: int) -> None:
    """Target and search side by side, each picture zoomed by a whole number to ≥ 256 pixels."""
    from ganscapes.make.video import Mp4Writer

    zoom = _zoom(target.shape[0], 256)

    def big(px: np.ndarray) -> np.ndarray:
        rgb = np.repeat(px, 3, axis=2) if px.shape[2] == 1 else px
        return rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)

    left = big(target)
    with atomic_path(path) as tmp:
        writer = Mp4Writer(Path(tmp), fps=fps, crf=18)
        try:
            for _, px in frames + [frames[-1]] * fps:  # the result stays a second
                writer.add(np.concatenate([left, big(px)], axis=1))
            writer.close()
        except BaseException:
            writer.abort()
            raise
