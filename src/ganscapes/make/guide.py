"""guide: search latent space for a prompt — gradient ascent or a genetic algorithm.

GANscapes left this as future work: instead of generating a thousand pictures and
keeping CLIP's favourites, go round StyleGAN → CLIP → StyleGAN and steer towards the
prompt. Two ways:

- **adam**: back-propagate the CLIP score through CLIP and the synthesis network and
  climb it with Adam, in W (one w for every layer) or W+ (one per layer). CLIP sees
  random crops of each picture (see `TensorScorer`), and a penalty pulls w towards the
  mapping network's average w_avg, which keeps the pictures on the model's manifold.
  The learning rate ramps up over the first 5 % of the steps and down along a cosine
  over the last 25 %, as in NVIDIA's projector. `population` starts run as one batch.
- **genetic** (after CLIPGLaSS, Galatolo et al., 2021): a population of latents scored
  by CLIP without gradients; tournament selection; crossover by swapping a random
  range of layers between the parents (style mixing; in W, where there are no layers,
  a random blend of the two ws); Gaussian mutation in W whose scale decays linearly;
  the best `elite` carried over unchanged, so the best score never drops.

Both count *generator evaluations* (pictures synthesised), the fair unit for comparing
them with plain generate-and-rank, which `compare` does at the same budget.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ganscapes.data.grid import image_grid
from ganscapes.data.images import to_rgb8
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import atomic_path
from ganscapes.make.latents import LATENTS_FILE, LatentSet
from ganscapes.make.paint import paint, synthesize
from ganscapes.make.recipes import Choice, GuideRecipe, LatentSource
from ganscapes.make.seeds import class_label, map_seeds
from ganscapes.provenance import pixels_to_image, write_png

METHODS = ("adam", "genetic")
SPACES = ("w", "wplus")
DEFAULT_POPULATION = {"adam": 4, "genetic": 16}


@dataclass(frozen=True)
class GuideConfig:
    method: str = "adam"
    space: str = "w"
    steps: int = 100  # adam: optimisation steps; genetic: generations
    population: int | None = None  # adam: parallel starts (4); genetic: population size (16)
    seed: int = 0
    psi: float = 0.7  # truncation of the random starting latents
    class_idx: int | None = None  # for conditional models
    lr: float = 0.05  # adam
    cutouts: int = 8  # adam: random crops CLIP sees per picture and step (0: the whole picture)
    w_penalty: float = 0.01  # adam: weight of mean((w - w_avg)^2)
    elite: int = 2  # genetic
    tournament: int = 3  # genetic
    crossover: float = 0.9  # genetic: probability that a child has two parents
    mutation: float = 0.5  # genetic: initial mutation scale, in units of w's spread
    mutation_final: float = 0.05  # genetic: final mutation scale
    keep: int = 4  # best pictures to save
    strip_every: int | None = None  # steps between frames of the progress strip (None: steps // 8)
    batch: int = 8  # pictures per generator call when scoring without gradients

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingError("method", f"must be one of {', '.join(METHODS)}, not {self.method!r}.")
        if self.space not in SPACES:
            raise SettingError("space", f"must be one of {', '.join(SPACES)}, not {self.space!r}.")
        if self.steps <= 0:
            raise SettingError("steps", f"must be at least 1, not {self.steps}.")
        if self.population is not None and self.population <= 0:
            raise SettingError("population", f"must be at least 1, not {self.population}.")
        if self.method == "genetic" and self.population is not None and self.population < 2:
            raise SettingError("population", f"must be at least 2 for the genetic method, not {self.population}.")
        if self.keep <= 0:
            raise SettingError("keep", f"must be at least 1, not {self.keep}.")
        if self.lr <= 0:
            raise SettingError("lr", f"must be positive, not {self.lr:g}.")
        if self.cutouts < 0:
            raise SettingError("cutouts", f"must be 0 or more, not {self.cutouts}.")
        if self.w_penalty < 0:
            raise SettingError("w_penalty", f"must be 0 or more, not {self.w_penalty:g}.")

    @property
    def size(self) -> int:
        return self.population or DEFAULT_POPULATION[self.method]


@dataclass
class SearchResult:
    method: str
    ws: np.ndarray  # best latents [K, num_ws, w_dim], best first
    scores: np.ndarray  # their plain-view CLIP scores
    history: list[dict] = field(default_factory=list)  # step, evaluations, best, mean
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (step, best picture so far)
    evaluations: int = 0


# ---------------------------------------------------------------------------------------
# Shared pieces


def _random_ws(G, n: int, psi: float, gen: torch.Generator, dev, class_idx: int | None = None) -> torch.Tensor:
    z = torch.randn([n, G.z_dim], generator=gen).to(dev)
    label = class_label(G.c_dim, class_idx, n).to(dev)
    with torch.no_grad():
        return G.mapping(z, label, truncation_psi=psi)


def _w_spread(G, gen: torch.Generator, dev, class_idx: int | None = None, n: int = 256) -> float:
    """The typical distance of w from w_avg per coordinate (the unit of mutation)."""
    ws = _random_ws(G, n, 1.0, gen, dev, class_idx)[:, 0]
    return float((ws - G.mapping.w_avg).std())


def _starting_ws(G, cfg: GuideConfig, init: np.ndarray | None, gen: torch.Generator, dev) -> torch.Tensor:
    n = cfg.size
    if init is None:
        return _random_ws(G, n, cfg.psi, gen, dev, cfg.class_idx)
    if cfg.space == "w" and not np.array_equal(init, np.repeat(init[:, :1], init.shape[1], axis=1)):
        raise SettingError(
            "space",
            "w cannot start from latents with a different w per layer (from a truncation cutoff, mixing or a W+ "
            "search); use wplus, which starts from them exactly.",
        )
    base = torch.from_numpy(np.ascontiguousarray(init, dtype=np.float32)).to(dev)
    ws = base[torch.arange(n) % len(base)].clone()
    if n > len(base):  # copies beyond the given rows start nearby, not on top of each other
        jitter = torch.randn(ws[len(base) :].shape, generator=gen).to(dev) * 0.1 * _w_spread(G, gen, dev, cfg.class_idx)
        ws[len(base) :] += jitter
    return ws


def _score_batched(G, scorer, ws: torch.Tensor, dev, batch: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(ws), batch):
            out.append(scorer.score(synthesize(G.synthesis, ws[i : i + batch])))
    return torch.cat(out)


def projector_lr(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """NVIDIA's projector schedule: linear warm-up, cosine ramp-down at the end."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / rampup if rampup > 0 else 1.0)


def _frame_steps(cfg: GuideConfig) -> set[int]:
    every = cfg.strip_every or max(1, cfg.steps // 8)
    return set(range(0, cfg.steps, every)) | {cfg.steps - 1}


# ---------------------------------------------------------------------------------------
# adam


def adam_search(G, scorer, cfg: GuideConfig, dev, init: np.ndarray | None = None, progress=None) -> SearchResult:
    gen = torch.Generator().manual_seed(cfg.seed)
    start = _starting_ws(G, cfg, init, gen, dev)
    param = (start[:, 0] if cfg.space == "w" else start).clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=cfg.lr, betas=(0.9, 0.999))
    w_avg = G.mapping.w_avg.detach()
    n = len(param)
    best_scores = torch.full([n], -math.inf)
    best_ws = start.detach().clone()
    history, frames, frame_steps = [], [], _frame_steps(cfg)

    def expand(p: torch.Tensor) -> torch.Tensor:
        return p.unsqueeze(1).expand(-1, G.num_ws, -1) if cfg.space == "w" else p

    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = projector_lr(step / cfg.steps, cfg.lr)
        ws = expand(param)
        img = synthesize(G.synthesis, ws)
        guided = scorer.score(img, cutouts=cfg.cutouts, generator=gen)
        penalty = ((ws - w_avg) ** 2).mean(dim=(1, 2))
        loss = (-guided + cfg.w_penalty * penalty).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():  # the plain-view score of the pictures this step painted
            plain = scorer.score(img.detach()).cpu()
            better = plain > best_scores
            best_scores = torch.where(better, plain, best_scores)
            mask = better.to(ws.device)
            best_ws[mask] = ws.detach()[mask]
        opt.step()
        history.append(
            {"step": step, "evaluations": (step + 1) * n, "best": float(best_scores.max()), "mean": float(plain.mean())}
        )
        if step in frame_steps:
            k = int(best_scores.argmax())
            frames.append((step, paint(G, best_ws[k : k + 1])[0]))
        if progress:
            progress(history[-1])
    order = torch.argsort(best_scores, descending=True)[: cfg.keep]
    return SearchResult(
        "adam", best_ws[order].cpu().numpy(), best_scores[order].numpy(), history, frames, cfg.steps * n
    )


# ---------------------------------------------------------------------------------------
# genetic


def crossover(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator, space: str) -> torch.Tensor:
    """A child of two latents [num_ws, w_dim]: W+ swaps a random layer range from b into a;
    W (all layers equal) blends the two ws at a random point between them."""
    if space == "w":
        u = torch.rand((), generator=gen).item()
        return a + u * (b - a)
    num_ws = a.shape[0]
    lo = int(torch.randint(0, num_ws, (), generator=gen))
    hi = int(torch.randint(lo + 1, num_ws + 1, (), generator=gen))
    child = a.clone()
    child[lo:hi] = b[lo:hi]
    return child


def _tournament(scores: torch.Tensor, k: int, gen: torch.Generator) -> int:
    entrants = torch.randint(0, len(scores), (min(k, len(scores)),), generator=gen)
    return int(entrants[scores[entrants].argmax()])


def genetic_search(G, scorer, cfg: GuideConfig, dev, init: np.ndarray | None = None, progress=None) -> SearchResult:
    gen = torch.Generator().manual_seed(cfg.seed)
    n = cfg.size
    elite = min(cfg.elite, n - 1)
    spread = _w_spread(G, gen, dev, cfg.class_idx)
    pop = _starting_ws(G, cfg, init, gen, dev).detach()
    if cfg.space == "w":
        pop = pop[:, :1].expand(-1, G.num_ws, -1).clone()
    scores = _score_batched(G, scorer, pop, dev, cfg.batch).cpu()
    evaluations = n
    history, frames, frame_steps = [], [], _frame_steps(cfg)
    for step in range(cfg.steps):
        order = torch.argsort(scores, descending=True)
        history.append(
            {"step": step, "evaluations": evaluations, "best": float(scores[order[0]]), "mean": float(scores.mean())}
        )
        if step in frame_steps:
            frames.append((step, paint(G, pop[order[:1]])[0]))
        if progress:
            progress(history[-1])
        if step == cfg.steps - 1:
            break
        sigma = (cfg.mutation + (cfg.mutation_final - cfg.mutation) * step / max(1, cfg.steps - 2)) * spread
        children = []
        for _ in range(n - elite):
            a = _tournament(scores, cfg.tournament, gen)
            if torch.rand((), generator=gen).item() < cfg.crossover:
                child = crossover(pop[a], pop[_tournament(scores, cfg.tournament, gen)], gen, cfg.space)
            else:
                child = pop[a].clone()
            noise = torch.randn([1 if cfg.space == "w" else G.num_ws, G.w_dim], generator=gen).to(dev)
            children.append(child + sigma * noise)
        children = torch.stack(children)
        child_scores = _score_batched(G, scorer, children, dev, cfg.batch).cpu()
        evaluations += len(children)
        # Elites keep their latents *and* scores: re-scoring could only add float noise.
        pop = torch.cat([pop[order[:elite]], children])
        scores = torch.cat([scores[order[:elite]], child_scores])
    order = torch.argsort(scores, descending=True)[: cfg.keep]
    return SearchResult("genetic", pop[order].cpu().numpy(), scores[order].numpy(), history, frames, evaluations)


# ---------------------------------------------------------------------------------------
# generate-and-rank at the same budget (for --compare)


def rank_search(G, scorer, budget: int, cfg: GuideConfig, dev) -> SearchResult:
    """The article's method: `budget` random pictures (seeds cfg.seed …), keep the best."""
    seeds = list(range(cfg.seed, cfg.seed + budget))
    ws = torch.from_numpy(map_seeds(G, seeds, cfg.psi, None, cfg.class_idx, dev)).to(dev)
    scores = _score_batched(G, scorer, ws, dev, cfg.batch).cpu()
    order = torch.argsort(scores, descending=True)[: cfg.keep]
    history = [{"step": 0, "evaluations": budget, "best": float(scores.max()), "mean": float(scores.mean())}]
    return SearchResult("rank", ws[order].cpu().numpy(), scores[order].numpy(), history, [], budget)


# ---------------------------------------------------------------------------------------
# Writing the results


def save_search(result: SearchResult, model, scorer, prompt, cfg: GuideConfig, out: Path, dev) -> list[Path]:
    """Best pictures with recipes, latents.npz, history.csv, history.png, strip.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pixels = paint(model.G_ema, result.ws, "const", cfg.batch)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("keep", "strip_every", "batch")}
    paths = []
    for k, (w, s) in enumerate(zip(result.ws, result.scores)):
        recipe = GuideRecipe(
            model_hash=model.model_hash,
            latent=LatentSource(w=w),
            noise_mode="const",
            device=str(dev),
            aspect=model.meta.get("aspect"),
            method=result.method,
            search=settings,
            choice=Choice(
                prompt=list(prompt.positives),
                negative=list(prompt.negatives),
                templates=list(prompt.templates),
                score=round(float(s), 6),
                rank=k + 1,
                clip_model=scorer.encoder.model_id,
            ),
        )
        paths.append(write_png(out / f"best-{k + 1:02d}.png", pixels[k], recipe.to_json()))
    LatentSet(result.ws, model_hash=model.model_hash, score=result.scores).save(out / LATENTS_FILE)
    _write_history(out, result)
    if result.frames:
        _write_strip(out / "strip.png", result.frames)
    return paths


def _write_history(out: Path, result: SearchResult) -> None:

    with atomic_path(out / "history.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "evaluations", "best", "mean"])
        w.writeheader()
        for row in result.history:
            w.writerow({**row, "best": f"{row['best']:.6f}", "mean": f"{row['mean']:.6f}"})
    plot_history(out / "history.png", {result.method: result.history})


def plot_history(path: Path, histories: dict[str, list[dict]]) -> None:
    """Best and mean CLIP score against generator evaluations, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for name, rows in histories.items():
        x = [r["evaluations"] for r in rows]
        (line,) = ax.plot(x, [r["best"] for r in rows], label=f"{name}: best", marker="o" if len(rows) == 1 else None)
        if len(rows) > 1:
            ax.plot(
                x, [r["mean"] for r in rows], linestyle="--", color=line.get_color(), alpha=0.6, label=f"{name}: mean"
            )
    ax.set_xlabel("generator evaluations")
    ax.set_ylabel("CLIP score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _write_strip(path: Path, frames: list[tuple[int, np.ndarray]], size: int = 128) -> None:
    """The best picture so far at each frame's step, left to right, its step beneath."""

    strip = image_grid(
        [to_rgb8(pixels_to_image(px)) for _, px in frames],
        len(frames),
        size,
        fit="stretch",
        background=(255, 255, 255),
        labels=[f"step {step}" for step, _ in frames],
        label_band=16,
        label_at=(3, size + 2),
        label_colour=(0, 0, 0),
    )
    with atomic_path(path) as tmp:
        strip.save(tmp, format="PNG")


# ---------------------------------------------------------------------------------------
# The comparison


@dataclass
class Comparison:
    results: dict[str, SearchResult]
    configs: dict[str, GuideConfig]  # the settings each method really ran with
    seconds: dict[str, float]
    budget: int


def compare_budget(cfg: GuideConfig) -> int:
    """The generator evaluations `compare_methods` spends on each method: adam's steps ×
    population. Checkable before anything is loaded; at least two, the genetic method's
    smallest population."""
    budget = cfg.steps * (cfg.population or DEFAULT_POPULATION["adam"])
    if budget < 2:
        raise UserError(
            f"A comparison needs a budget of at least 2 generator evaluations (steps × population), not {budget}."
        )
    return budget


def compare_methods(G, scorer, cfg: GuideConfig, dev, init: np.ndarray | None = None, progress=None) -> Comparison:
    """generate-and-rank, adam and genetic at (about) the same number of generator
    evaluations: adam's steps × population, which the other two may not exceed."""

    budget = compare_budget(cfg)
    adam_cfg = replace(cfg, method="adam", population=cfg.population or DEFAULT_POPULATION["adam"])
    size = min(DEFAULT_POPULATION["genetic"], budget)
    elite = min(cfg.elite, size - 1)
    generations = max(1, 1 + (budget - size) // max(1, size - elite))
    genetic_cfg = replace(cfg, method="genetic", population=max(2, size), steps=generations)
    results, seconds = {}, {}
    for name, run in (
        ("rank", lambda: rank_search(G, scorer, budget, cfg, dev)),
        ("adam", lambda: adam_search(G, scorer, adam_cfg, dev, init, progress)),
        ("genetic", lambda: genetic_search(G, scorer, genetic_cfg, dev, init, progress)),
    ):
        start = time.perf_counter()
        results[name] = run()
        seconds[name] = time.perf_counter() - start
    configs = {"rank": replace(cfg, steps=1, population=budget), "adam": adam_cfg, "genetic": genetic_cfg}
    return Comparison(results, configs, seconds, budget)
