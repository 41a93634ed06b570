"""The steps of the demo, each a library call plus the command line that does the same."""

from __future__ import annotations

import time
from pathlib import Path

from ganscapes.demo.pipeline import MIN_TRAIN_SECONDS, Demo, Step
from ganscapes.errors import UserError
from ganscapes.fileio import read_jsonl

CURATE_PHRASE = "impressionist landscape painting"
SHEET_COUNT = 24
PSI = 0.7


def clip_or_none(demo: Demo):
    """(encoder, cache) when CLIP can be loaded, else None after saying once why and how to fix it."""
    from ganscapes.clip.cache import EmbeddingCache
    from ganscapes.clip.encoder import ClipSpec, load_clip

    c = demo.cfg
    try:  # offline without weights, load_clip refuses at once, naming the file to fetch
        encoder = load_clip(ClipSpec.from_options(c.clip_model, c.clip_pretrained, c.clip_weights), device=c.device)
    except UserError as e:
        demo.log(f"note: CLIP steps (curate, rank) are skipped: {e}")
        demo.state["clip_skipped"] = str(e)
        return None
    return encoder, EmbeddingCache(None, encoder.model_id)


def _timed(demo: Demo, step: Step, work) -> Step:
    start = time.perf_counter()
    step.facts.update(work() or {})
    step.seconds = round(time.perf_counter() - start, 2)
    demo.record(step)
    return step


# ---------------------------------------------------------------------------------------


def sample(demo: Demo) -> None:
    from ganscapes.data.sample import make_samples

    n = demo.cfg.images
    if demo.done("sample", images=n) and demo.raw.is_dir():
        return
    demo.log(f"1/8 sample: painting {n} procedural landscapes into {demo.raw}")
    step = Step("sample", demo.cmd("sample", "--out", demo.raw, "-n", n, "--seed", demo.cfg.seed, "--max-side", 384))
    _timed(demo, step, lambda: {"images": len(make_samples(demo.raw, n=n, seed=demo.cfg.seed, max_side=384))})


def prepare(demo: Demo) -> None:
    from ganscapes.clip.embed import ImageRef
    from ganscapes.data.contact_sheet import save_contact_sheet
    from ganscapes.data.dataset import Dataset
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset

    res = demo.cfg.res
    if demo.done("prepare", res=res) and demo.dataset.is_file():
        return
    demo.log(f"2/8 prepare: center-rect crops at {res}x{res} into {demo.dataset}")

    def work():
        result = prepare_dataset(demo.raw, demo.dataset, PrepareConfig(res=res), log=demo.log)  # says the mean aspect
        with Dataset(demo.dataset) as ds:
            items = [(ImageRef(demo.dataset, n).read_bytes, n.split("/")[-1]) for n in ds.image_names[:SHEET_COUNT]]
        save_contact_sheet(demo.out / "dataset-sheet.png", items, thumb=96)
        return {
            "res": res,
            "images": result.images,
            "mean_aspect": result.mean_aspect,
            "aspect": result.aspect,
            "skipped": len(result.skipped),
        }

    _timed(demo, Step("prepare", demo.cmd("prepare", demo.raw, "--out", demo.dataset, "--res", res)), work)


def curate(demo: Demo, clip) -> None:
    from ganscapes.clip.curate import RefuseRule, curate_dataset, curation_dir_for
    from ganscapes.clip.prompts import Prompt

    if demo.done("curate"):
        return
    if clip is None:  # not recorded: a rerun with weights curates (before training starts)
        return
    if demo.done("train") or (curation_dir_for(demo.dataset) / "curation.json").exists():
        demo.record(Step("curate", skipped="training had already started on the uncurated dataset"))
        return
    encoder, cache = clip
    frac = demo.cfg.refuse_fraction
    demo.log(f"3/8 curate: scoring the dataset against {CURATE_PHRASE!r}, refusing the lowest {frac:.0%}")
    command = demo.cmd("curate", demo.dataset, "--refuse-fraction", frac, *demo.clip_args())

    def work():
        result = curate_dataset(demo.dataset, Prompt((CURATE_PHRASE,)), RefuseRule(fraction=frac), encoder, cache)
        return {"scored": len(result.ranking), "refused": len(result.refused), "curation": str(result.curation)}

    _timed(demo, Step("curate", command), work)


def train(demo: Demo) -> bool:
    """Train (or continue) within the budget; True when the model changed."""
    from ganscapes.gan.train_config import TrainConfig, latest_run
    from ganscapes.gan.train_state import list_snapshots
    from ganscapes.gan.training import train as train_loop

    c = demo.cfg
    previous = demo.state["steps"].get("train", {}).get("facts", {})
    spent = float(previous.get("train_seconds", 0.0))
    left = c.minutes * 60 - spent
    run = latest_run(demo.runs)
    snaps = list_snapshots(run) if run else []
    if snaps and left < min(MIN_TRAIN_SECONDS, 0.25 * c.minutes * 60):
        return False
    resume = "latest" if snaps else None
    kimg_per_tick = 0.1 if c.minutes < 2 else 0.25
    demo.log(f"4/8 train: the tiny preset with ADA for {left / 60:.1f} more minute(s) ({c.device})")
    args = [
        "train",
        "--data",
        demo.dataset,
        "--outdir",
        demo.runs,
        "--cfg",
        "tiny",
        "--kimg",
        10000,
        "--max-hours",
        f"{left / 3600:.4f}",
        "--snap",
        1000,
        "--kimg-per-tick",
        kimg_per_tick,
        "--metric-images",
        c.metric_images,
        "--workers",
        1,
        "--device",
        c.device,
        "--seed",
        c.seed,
    ]
    config = TrainConfig(
        data=str(demo.dataset),
        outdir=str(demo.runs),
        cfg="tiny",
        kimg=10000,
        max_hours=left / 3600,
        snap=1000,
        kimg_per_tick=kimg_per_tick,
        metric_images=c.metric_images,
        workers=1,
        device=c.device,
        seed=c.seed,
        resume=resume,
    )
    if resume:
        args += ["--resume", "latest"]

    step = Step("train", demo.cmd(*args))

    def work():
        start = time.time()
        # train's own "continue with --resume latest" hint does not apply: rerunning the demo resumes
        result = train_loop(config, log=lambda line: demo.log(line.split(" Continue with the same command")[0]))
        from ganscapes.gan.checkpoint import load_model

        model = load_model(result.snapshot)
        return {
            "run": str(result.run_dir),
            "snapshot": str(result.snapshot),
            "kimg": result.kimg,
            "augment_p": result.augment_p,
            "stopped_by": result.stopped_by,
            "model_hash": model.model_hash,
            "swd": _last_swd(result.run_dir),
            "train_seconds": spent + (time.time() - start),
            "commands": previous.get("commands", []) + [step.command],  # one per session of training
        }

    _timed(demo, step, work)
    return True


def _last_swd(run_dir: Path) -> float | None:
    rows = read_jsonl(Path(run_dir) / "metrics.jsonl")
    return rows[-1].get("SWDx1e3_avg") if rows else None


def _model(demo: Demo):
    from ganscapes.gan.checkpoint import load_model

    facts = demo.state["steps"]["train"]["facts"]
    return load_model(facts["snapshot"]), facts


def generate(demo: Demo) -> None:
    from ganscapes.make.generate import generate_images

    model, facts = _model(demo)
    if demo.done("generate", model_hash=model.model_hash) and (demo.out / "generated").is_dir():
        return
    n = demo.cfg.generate
    demo.log(f"5/8 generate: {n} paintings with psi {PSI}")
    out = demo.out / "generated"
    command = demo.cmd(
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

    _timed(demo, Step("generate", command), work)


def rank(demo: Demo, clip) -> None:
    from ganscapes.clip.embed import ImageRef
    from ganscapes.clip.prompts import Prompt
    from ganscapes.clip.rank import RANKED_DIR, rank_images, write_ranking
    from ganscapes.make.pick import save_top_latents

    model, _ = _model(demo)
    if clip is None:
        demo.forget("rank")
        return
    if demo.done("rank", model_hash=model.model_hash):
        return
    encoder, cache = clip
    folder = demo.out / "generated"
    top = demo.cfg.top
    demo.log(f"6/8 rank: the {top} paintings closest to {demo.cfg.prompt!r}")
    command = demo.cmd("rank", folder, "--prompt", demo.cfg.prompt, "--top", top, *demo.clip_args())

    def work():
        refs = [ImageRef(p) for p in sorted(folder.glob("seed*.png"))]
        ranking = rank_images(refs, encoder, Prompt((demo.cfg.prompt,)), cache, progress=False)
        outputs = write_ranking(ranking, folder / RANKED_DIR, top, root=folder)
        save_top_latents(folder, ranking, top, outputs.top_dir)
        picks = [{"file": p.name, "score": round(float(s), 4)} for p, s in zip(outputs.top, ranking.scores)]
        return {"model_hash": model.model_hash, "picks": picks}

    _timed(demo, Step("rank", command), work)


def mix(demo: Demo) -> None:
    from ganscapes.make.mix import DEFAULT_LAYERS, layer_range, seed_latents, style_mix

    model, facts = _model(demo)
    if demo.done("mix", model_hash=model.model_hash) and (demo.out / "mix" / "grid.png").is_file():
        return
    demo.log("7/8 mix: 7 forms x 3 styles, the styles' fine layers on the forms' composition")
    out = demo.out / "mix"
    command = demo.cmd(
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
        from ganscapes.device import resolve_device

        dev = resolve_device(demo.cfg.device)
        G = model.G_ema.to(dev)
        layers = layer_range(DEFAULT_LAYERS, G.num_ws)
        forms = seed_latents(G, list(range(7)), PSI, None, None, dev)
        styles = seed_latents(G, [7, 8, 9], PSI, None, None, dev)
        result = style_mix(model, forms, styles, layers, out, device=dev)
        return {"model_hash": model.model_hash, "layers": layers, "grid": str(result.grid)}

    _timed(demo, Step("mix", command), work)


def post(demo: Demo) -> None:
    from ganscapes.make.post import PostSettings, post_files

    model, _ = _model(demo)
    ranked = demo.done("rank", model_hash=model.model_hash)
    source = "ranked" if ranked else "generated"
    if demo.done("post", model_hash=model.model_hash, source=source) and (demo.out / "final").is_dir():
        return
    generated = demo.out / "generated"
    if ranked:
        picks = sorted((generated / "ranked" / "top").glob("*.png"))
    else:
        picks = sorted(generated.glob("seed*.png"))[: demo.cfg.top]
    out = demo.out / "final"
    demo.log(
        f"8/8 post: contrast stretch and the {'top picks' if ranked else 'first pictures'} back to the dataset's aspect"
    )
    command = demo.cmd("post", *picks, "--out", out)

    def work():
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # ours: only this run's finals
        result = post_files(picks, out, PostSettings(), model_aspect=model.meta.get("aspect"))
        return {
            "model_hash": model.model_hash,
            "source": source,
            "images": [p.name for p in result.outputs],
            "aspect": result.aspects[0][0],
        }

    _timed(demo, Step("post", command), work)
