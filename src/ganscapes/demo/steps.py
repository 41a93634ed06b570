"""The steps of the demo, in order: each a library call plus the command line that does the same.

`STEPS` is the demo: the pipeline runs it top to bottom, numbers each step by its place
("4/8 train: …") and, when a step says what it made has changed, redoes every later
step; the report lists the commands in the same order.
"""

from __future__ import annotations

import io
import shlex
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ganscapes.clip import encoder as clip_encoder
from ganscapes.clip.cache import EmbeddingCache
from ganscapes.clip.curate import RefuseRule, curate_dataset, curation_dir_for
from ganscapes.clip.embed import ImageRef
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import rank_images, write_ranking
from ganscapes.data.contact_sheet import save_contact_sheet
from ganscapes.data.dataset import Dataset
from ganscapes.data.grid import image_grid
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.demo.config import STARTER, DemoConfig
from ganscapes.demo.state import DemoState, StepRecord
from ganscapes.device import resolve_device
from ganscapes.errors import UserError
from ganscapes.fileio import read_jsonl
from ganscapes.gan.checkpoint import load_model
from ganscapes.gan.train_config import TrainConfig, latest_run, train_command
from ganscapes.gan.train_state import list_snapshots
from ganscapes.gan.training import RESUME_HINT
from ganscapes.gan.training import train as train_loop
from ganscapes.make.generate import generate_images
from ganscapes.make.mix import DEFAULT_LAYERS, layer_range, seed_latents, style_mix
from ganscapes.make.pick import save_top_latents
from ganscapes.make.post import PostSettings, post_files
from ganscapes.models import bundled_model

CURATE_PHRASE = "impressionist landscape painting"
SHEET_COUNT = 24
PSI = 0.7
MIN_TRAIN_SECONDS = 20  # less budget left than this (or a quarter of a short budget): training is done
# The tiny preset at 64², batch 8, on a quiet 2-core laptop CPU (the default demo on the
# development machine: 45-48 s/kimg): what the demo's plan and its slow-machine warning assume.
EXPECTED_SEC_PER_KIMG_64 = 50.0
TICK_SECONDS = 30  # a tick (a point on the report's curves) about every half minute
SLOW_FACTOR = 2.0  # slower than this many times the expectation: say so
SPEED_TICK = 2  # tick 0 is the first iteration alone (start-up); tick 2 is the first of steady speed
COMPARE_SEEDS = range(8)
COMPARE_TILE = 128  # pixels per picture on the comparison sheets: 64² pictures shown twice as large
# How training's stop message ends (gan/training.py, `Trainer.run`). The demo drops it:
# rerunning the demo is what resumes, not `ganscapes train --resume latest`.
TRAIN_RESUME_HINT = RESUME_HINT  # training's hint, which the demo drops: it resumes by itself

Clip = tuple  # (encoder, embedding cache), or None where CLIP could not be loaded


@dataclass
class StepRun:
    """One step's turn: the demo's state, CLIP if it loaded, and the step's name and place."""

    name: str
    number: int
    total: int
    demo: DemoState
    clip: Clip | None

    def announce(self, text: str) -> None:
        """Say that the step runs, numbered by its place in `STEPS` ("2/8 prepare: …")."""
        self.demo.log(f"{self.number}/{self.total} {self.name}: {text}")

    def done(self, **expect) -> dict | None:
        return self.demo.done(self.name, **expect)

    def facts(self) -> dict:
        return self.demo.facts(self.name)

    def timed(self, line: str | None, work: Callable[[], dict | None]) -> StepRecord:
        """Do `work`, then record its facts, its time and `line`, the command that does the same."""
        step = StepRecord(self.name, line)
        start = time.perf_counter()
        step.facts.update(work() or {})
        step.seconds = round(time.perf_counter() - start, 2)
        self.demo.record(step)
        return step

    def skip(self, why: str) -> None:
        self.demo.record(StepRecord(self.name, skipped=why))

    def forget(self) -> None:
        self.demo.forget(self.name)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[StepRun], bool | None]  # True: what it made changed, so every later step is redone


def command(*args) -> str:
    """The command line, quoted for a POSIX shell, that runs `ganscapes ARGS`."""
    return shlex.join(["ganscapes", *(str(a) for a in args)])


def clip_args(cfg: DemoConfig) -> list[str]:
    """The CLIP options that differ from the commands' defaults."""
    args = []
    if cfg.clip_model != "ViT-B-32":
        args += ["--clip-model", cfg.clip_model]
    if cfg.clip_pretrained != "openai":
        args += ["--clip-pretrained", cfg.clip_pretrained]
    if cfg.clip_weights:
        args += ["--clip-weights", str(cfg.clip_weights)]
    return args


def clip_or_none(demo: DemoState) -> Clip | None:
    """(encoder, cache) when CLIP can be loaded, else None after saying once why and how to fix it."""

    c = demo.cfg
    try:  # offline without weights, load_clip refuses at once, naming the file to fetch
        encoder = clip_encoder.load_clip(
            clip_encoder.ClipSpec.from_options(c.clip_model, c.clip_pretrained, c.clip_weights), device=c.device
        )
    except UserError as e:
        demo.log(f"note: CLIP steps (curate, rank) are skipped: {e}")
        demo.clip_skipped = str(e)
        return None
    demo.clip_skipped = None
    return encoder, EmbeddingCache(None, encoder.model_id)


def without_resume_hint(log: Callable[[str], None]) -> Callable[[str], None]:
    """`log` for training's messages, less the hint to resume with `ganscapes train`."""
    return lambda line: log(line.removesuffix(TRAIN_RESUME_HINT))


# ---------------------------------------------------------------------------------------


def sample(run: StepRun) -> None:

    demo = run.demo
    n = demo.cfg.images
    if run.done(images=n) and demo.raw.is_dir():
        return
    run.announce(f"painting {n} procedural landscapes into {demo.raw}")
    run.timed(
        command("sample", "--out", demo.raw, "-n", n, "--seed", demo.cfg.seed, "--max-side", 384),
        lambda: {"images": len(make_samples(demo.raw, n=n, seed=demo.cfg.seed, max_side=384))},
    )


def prepare(run: StepRun) -> None:

    demo = run.demo
    res = demo.cfg.res
    if run.done(res=res) and demo.dataset.is_file():
        return
    run.announce(f"center-rect crops at {res}x{res} into {demo.dataset}")

    def work():
        result = prepare_dataset(demo.raw, demo.dataset, PrepareConfig(res=res), log=demo.log)  # says the mean aspect
        with Dataset(demo.dataset) as ds:
            items = [(ImageRef(demo.dataset, n).read_bytes, n.split("/")[-1]) for n in ds.image_names[:SHEET_COUNT]]
        save_contact_sheet(demo.dataset_sheet, items, thumb=96)
        return {
            "res": res,
            "images": result.images,
            "mean_aspect": result.mean_aspect,
            "aspect": result.aspect,
            "skipped": len(result.skipped),
        }

    run.timed(command("prepare", demo.raw, "--out", demo.dataset, "--res", res), work)


def curate(run: StepRun) -> None:

    demo = run.demo
    if run.done():
        return
    if run.clip is None:  # not recorded: a rerun with weights curates (before training starts)
        run.announce("skipped: CLIP is not available (see the note above)")
        return
    if demo.done("train") or (curation_dir_for(demo.dataset) / "curation.json").exists():
        run.skip("training had already started on the uncurated dataset")
        return
    encoder, cache = run.clip
    frac = demo.cfg.refuse_fraction
    run.announce(f"scoring the dataset against {CURATE_PHRASE!r}, refusing the lowest {frac:.0%}")

    def work():
        result = curate_dataset(demo.dataset, Prompt((CURATE_PHRASE,)), RefuseRule(fraction=frac), encoder, cache)
        return {"scored": len(result.ranking), "refused": len(result.refused), "curation": str(result.curation)}

    run.timed(command("curate", demo.dataset, "--refuse-fraction", frac, *clip_args(demo.cfg)), work)


def expected_sec_per_kimg(res: int) -> float:
    """The demo's expected training speed at `res` (the cost grows about with the pixels)."""
    return EXPECTED_SEC_PER_KIMG_64 * (res / 64) ** 2


def tick_kimg(res: int) -> float:
    """kimg per tick for a tick about every `TICK_SECONDS` at the expected speed (whole iterations of 8)."""
    return max(0.008, round(TICK_SECONDS / expected_sec_per_kimg(res) * 125) / 125)


def train_config(demo: DemoState, seconds: float, resume: str | None) -> TrainConfig:
    """What the demo trains with for `seconds` more: the one config both the run and its command line come from.

    `resume`: "latest" to continue the demo's run, the starter model's name to fine-tune
    it (NVIDIA's transfer-learning settings follow), or None to start from random weights.
    """

    c = demo.cfg
    return TrainConfig(
        data=str(demo.dataset),
        outdir=str(demo.runs),
        cfg="tiny",
        kimg=10000,
        max_hours=round(seconds / 3600, 6),  # to 3.6 ms: a short number on the command line
        snap=1000,
        kimg_per_tick=tick_kimg(c.res),
        metric_images=c.metric_images,
        workers=1,
        device=c.device,
        seed=c.seed,
        resume=resume,
    )


def speed_warning(sec_per_kimg: float, seconds: float, res: int, from_starter: bool, done: bool = False) -> str | None:
    """What a slow machine means for the pictures, or None when training runs about as fast as expected.

    `seconds`: the training time left (`done`: the time the session took)."""
    expected = expected_sec_per_kimg(res)
    if sec_per_kimg <= SLOW_FACTOR * expected:
        return None
    planned, likely = seconds / expected, seconds / sec_per_kimg
    will, stay, are, has = (
        ("trained", "are close to", "are", "had") if done else ("will train", "will stay close to", "will be", "has")
    )
    consequence = (
        f"the pictures {stay} the starter model's: fine-tuning {has} barely begun"
        if from_starter
        else f"the pictures {are} soft colour fields, not landscapes"
    )
    return (
        f"This machine trains at {sec_per_kimg:.0f} s/kimg, {sec_per_kimg / expected:.1f}x slower than a quiet "
        f"2-core laptop ({expected:.0f} s/kimg; other programs are probably busy): the demo {will} about "
        f"{likely:.1f} kimg instead of {planned:.1f}, so {consequence}. Rerun the demo later to train on "
        "within a larger --minutes budget."
    )


class SpeedWatch:
    """One judgement of a training session's speed: an early notice, then the verdict.

    Early (at tick `SPEED_TICK`, from the median of the steady ticks so far) the user is told
    what a slow machine means while there is time to stop; a machine is often busy only for
    a while (another program starting), so the verdict the report keeps is made at the end,
    over the whole session. When the early notice proves wrong, the log says so.
    """

    def __init__(self, seconds: float, res: int, from_starter: bool, log: Callable[[str], None]):
        self.seconds, self.res, self.from_starter, self.log = seconds, res, from_starter, log
        self.first_tick: int | None = None
        self.steady: list[float] = []  # s/kimg of the ticks after the first (start-up) one
        self.notice: str | None = None

    def tick(self, row: dict, elapsed: float) -> None:
        if self.first_tick is None:
            self.first_tick = row["tick"]
            return
        self.steady.append(row["sec_per_kimg"])
        if row["tick"] - self.first_tick == SPEED_TICK:
            rate = statistics.median(self.steady)
            self.notice = speed_warning(rate, self.seconds - elapsed, self.res, self.from_starter)
            if self.notice:
                self.log(f"warning: {self.notice}")

    def verdict(self, elapsed: float, trained_kimg: float) -> str | None:
        """The session judged as a whole (`trained_kimg` in `elapsed` seconds): the report's note, or None."""
        if elapsed <= 0:
            return None
        rate = elapsed / max(trained_kimg, 1e-3)
        message = speed_warning(rate, elapsed, self.res, self.from_starter, done=True)
        if message:
            self.log(f"warning: {message}")
        elif self.notice:
            self.log(
                f"The machine caught up: the session trained {trained_kimg:.1f} kimg in {elapsed / 60:.1f} minutes "
                f"({rate:.0f} s/kimg), so the slow-machine warning above no longer holds."
            )
        return message


def train(run: StepRun) -> bool:
    """Train (or continue) within the budget; True when the model changed."""

    demo, c = run.demo, run.demo.cfg
    previous = run.facts()
    spent = float(previous.get("train_seconds", 0.0))
    left = c.minutes * 60 - spent
    last = latest_run(demo.runs)
    snaps = list_snapshots(last) if last else []
    if snaps and left < min(MIN_TRAIN_SECONDS, 0.25 * c.minutes * 60):
        return False
    from_starter = not c.from_scratch
    if snaps:
        resume, what = "latest", "continuing"
    elif from_starter:
        resume, what = STARTER, "fine-tuning the starter model"
    else:
        resume, what = None, "training from random weights"
    run.announce(f"{what} (tiny preset, ADA) for {left / 60:.1f} more minute(s) ({c.device})")
    config = train_config(demo, left, resume=resume)
    train_line = shlex.join(train_command(config))
    watch = SpeedWatch(left, c.res, from_starter, demo.log)
    start = [0.0]

    def work():

        start[0] = time.time()
        result = train_loop(
            config, log=without_resume_hint(demo.log), on_tick=lambda row: watch.tick(row, time.time() - start[0])
        )
        elapsed = time.time() - start[0]
        trained = result.kimg - (float(previous.get("kimg", 0.0)) if snaps else 0.0)
        slow_warning = watch.verdict(elapsed, trained)
        model = load_model(result.snapshot)
        return {
            "run": str(result.run_dir),
            "snapshot": str(result.snapshot),
            "kimg": result.kimg,
            "augment_p": result.augment_p,
            "stopped_by": "time budget" if result.stopped_by == "max-hours" else result.stopped_by,
            "from_starter": previous.get("from_starter", from_starter and not snaps),
            "slow_warning": slow_warning,  # this session's verdict: the pictures the report shows come from it
            "model_hash": model.model_hash,
            "swd": _last_swd(result.run_dir),
            "train_seconds": spent + (time.time() - start[0]),
            "commands": previous.get("commands", []) + [train_line],  # one per session of training
        }

    run.timed(train_line, work)
    return True


def _last_swd(run_dir: Path) -> float | None:
    rows = read_jsonl(Path(run_dir) / "metrics.jsonl")
    return rows[-1].get("SWDx1e3_avg") if rows else None


def _model(demo: DemoState):

    facts = demo.facts("train")
    return load_model(facts["snapshot"]), facts


def generate(run: StepRun) -> None:

    demo = run.demo
    model, facts = _model(demo)
    out = demo.generated
    if run.done(model_hash=model.model_hash) and out.is_dir():
        return
    n = demo.cfg.generate
    run.announce(f"{n} paintings with psi {PSI}")
    line = command(
        "generate",
        "--model",
        facts["snapshot"],
        "--seeds",
        f"0-{n - 1}",
        "--psi",
        PSI,
        "--out",
        out,
        "--device",
        demo.cfg.device,
    )

    def work():
        result = generate_images(model, range(n), psi=PSI, device=demo.cfg.device, out=out, progress=False)
        return {"model_hash": model.model_hash, "images": len(result.images), "seconds_per_image": result.seconds / n}

    run.timed(line, work)


def compare(run: StepRun) -> None:
    """The same seeds from the starter model and from the trained one, beside training images: what training did."""

    demo = run.demo
    model, facts = _model(demo)
    if run.done(model_hash=model.model_hash) and demo.compare_sheet("trained").is_file():
        return
    seeds = list(COMPARE_SEEDS)
    from_starter = bool(facts.get("from_starter"))
    run.announce(
        f"seeds {seeds[0]}-{seeds[-1]} "
        + ("from the starter model and from the fine-tuned one" if from_starter else "from the trained model")
        + ", beside training images"
    )

    def sheet(pictures, kind: str) -> str:
        path = demo.compare_sheet(kind)
        image_grid(pictures, columns=4, tile=COMPARE_TILE, fit="contain", gap=2).save(path)
        return str(path)

    def work():
        with Dataset(demo.dataset) as ds:
            names = ds.image_names[: len(seeds)]
        reals = [Image.open(io.BytesIO(ImageRef(demo.dataset, n).read_bytes())).convert("RGB") for n in names]
        sheets = {"reals": sheet(reals, "reals")}
        trained = [Image.open(demo.generated / f"seed{s:04d}.png").convert("RGB") for s in seeds]
        sheets["trained"] = sheet(trained, "trained")
        if from_starter:
            starter = bundled_model(STARTER)
            result = generate_images(
                starter, seeds, psi=PSI, device=demo.cfg.device, out=demo.starter_pictures, progress=False
            )
            sheets["starter"] = sheet([Image.open(p).convert("RGB") for p in result.images], "starter")
        return {"model_hash": model.model_hash, "sheets": sheets}

    line = None
    if from_starter:
        line = command(
            "generate", "--model", STARTER, "--seeds", f"{seeds[0]}-{seeds[-1]}", "--psi", PSI,
            "--out", demo.starter_pictures, "--device", demo.cfg.device,
        )  # fmt: skip
    run.timed(line, work)


def rank(run: StepRun) -> None:

    demo = run.demo
    model, _ = _model(demo)
    if run.clip is None:
        run.forget()
        run.announce("skipped: CLIP is not available (see the note above); post takes the first pictures instead")
        return
    if run.done(model_hash=model.model_hash):
        return
    encoder, cache = run.clip
    folder = demo.generated
    top = demo.cfg.top
    run.announce(f"the {top} paintings closest to {demo.cfg.prompt!r}")

    def work():
        refs = [ImageRef(p) for p in sorted(folder.glob("seed*.png"))]
        ranking = rank_images(refs, encoder, Prompt((demo.cfg.prompt,)), cache, progress=False)
        outputs = write_ranking(ranking, demo.ranked, top, root=folder)
        save_top_latents(folder, ranking, top, outputs.top_dir)
        picks = [{"file": p.name, "score": round(float(s), 4)} for p, s in zip(outputs.top, ranking.scores)]
        return {"model_hash": model.model_hash, "picks": picks}

    run.timed(command("rank", folder, "--prompt", demo.cfg.prompt, "--top", top, *clip_args(demo.cfg)), work)


def mix(run: StepRun) -> None:

    demo = run.demo
    model, facts = _model(demo)
    if run.done(model_hash=model.model_hash) and demo.mix_grid.is_file():
        return
    run.announce(f"7 forms x 3 styles, the styles' {DEFAULT_LAYERS} layers on the forms' composition")
    out = demo.mix
    line = command(
        "mix",
        "--model",
        facts["snapshot"],
        "--forms",
        "0-6",
        "--styles",
        "7-9",
        "--psi",
        PSI,
        "--out",
        out,
        "--device",
        demo.cfg.device,
    )

    def work():

        dev = resolve_device(demo.cfg.device)
        G = model.G_ema.to(dev)
        layers = layer_range(DEFAULT_LAYERS, G.num_ws)
        forms = seed_latents(G, list(range(7)), PSI, None, None, dev)
        styles = seed_latents(G, [7, 8, 9], PSI, None, None, dev)
        result = style_mix(model, forms, styles, layers, out, device=dev)
        return {"model_hash": model.model_hash, "layers": layers, "grid": str(result.grid)}

    run.timed(line, work)


def post(run: StepRun) -> None:

    demo = run.demo
    model, _ = _model(demo)
    ranked = demo.done("rank", model_hash=model.model_hash)
    source = "ranked" if ranked else "generated"
    out = demo.final
    if run.done(model_hash=model.model_hash, source=source) and out.is_dir():
        return
    if ranked:
        picks = sorted(demo.ranked_top.glob("*.png"))
    else:
        picks = sorted(demo.generated.glob("seed*.png"))[: demo.cfg.top]
    run.announce(f"contrast stretch and the {'top picks' if ranked else 'first pictures'} back to the dataset's aspect")

    def work():

        shutil.rmtree(out, ignore_errors=True)  # ours: only this run's finals
        result = post_files(picks, out, PostSettings(), model_aspect=model.meta.get("aspect"))
        return {
            "model_hash": model.model_hash,
            "source": source,
            "images": [p.name for p in result.outputs],
            "aspect": result.aspects[0][0],
        }

    run.timed(command("post", *picks, "--out", out), work)


STEPS: tuple[Step, ...] = (
    Step("sample", sample),
    Step("prepare", prepare),
    Step("curate", curate),
    Step("train", train),
    Step("generate", generate),
    Step("compare", compare),
    Step("rank", rank),
    Step("mix", mix),
    Step("post", post),
)
