"""report.html: what the demo made, how training went, and the commands to do it again.

The page is plain HTML with relative links to the pictures beside it in the demo folder
(no scripts, no network), so the folder can be zipped and opened anywhere. Training
curves are drawn from the run's `log.jsonl` and `metrics.jsonl` with matplotlib.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from ganscapes import __version__
from ganscapes.demo.state import REPORT, DemoState
from ganscapes.demo.steps import STEPS
from ganscapes.fileio import read_jsonl, write_bytes_atomic

__all__ = ["REPORT", "write_report"]


def write_report(demo: DemoState) -> Path:
    """Write report.html from the demo's record; the pictures stay where the steps put them."""
    out = demo.out
    steps = demo.steps
    train = demo.facts("train")
    run = Path(train["run"]) if train.get("run") else None
    plots = _plots(run, demo.report_plots) if run else []

    def rel(p: Path | str) -> str:
        return html.escape(Path(os.path.relpath(Path(p), out)).as_posix(), quote=True)

    def img(p: Path, alt: str, cls: str = "") -> str:
        return f'<a href="{rel(p)}"><img src="{rel(p)}" alt="{html.escape(alt, quote=True)}" class="{cls}"></a>'

    parts = [_HEAD.format(version=html.escape(__version__))]
    if demo.clip_skipped:
        reason = html.escape(demo.clip_skipped.rstrip("."))
        if "--clip-weights" in demo.clip_skipped:  # the reason says what to do already: say it once
            fix = "Then rerun the demo with a new <code>--out</code>."
        else:
            fix = (
                "To include them, pass <code>--clip-weights PATH</code> (or set <code>GANSCAPES_CLIP_WEIGHTS</code>) "
                "and rerun the demo with a new <code>--out</code>."
            )
        parts.append(f'<p class="note">CLIP steps (curate, rank) were skipped: {reason}. {fix}</p>')
    parts.append("<h2>Key figures</h2>" + _figures_table(steps))
    if train.get("slow_warning"):
        parts.append(f'<p class="note">{html.escape(train["slow_warning"])}</p>')
    sheets = demo.facts("compare").get("sheets") or {}
    if sheets:
        columns = [
            ("reals", "Training images"),
            ("starter", "The starter model, before training"),
            ("trained", "After fine-tuning" if "starter" in sheets else "The trained model"),
        ]
        parts.append(
            "<h2>What training did</h2><p>The same seeds (0–7, ψ 0.7) from each model, beside images it trained on."
            + (" Fine-tuning starts from the starter model, which ganscapes ships." if "starter" in sheets else "")
            + "</p>"
        )
        parts.append(
            '<div class="compare">'
            + "".join(
                f"<figure>{img(Path(sheets[kind]), caption, 'sheet')}<figcaption>{html.escape(caption)}</figcaption>"
                "</figure>"
                for kind, caption in columns
                if kind in sheets
            )
            + "</div>"
        )

    finals = sorted(demo.final.glob("*.png"))
    if finals:
        ranked = demo.facts("post").get("source") == "ranked"
        caption = (
            f"The {len(finals)} paintings CLIP ranked closest to “{html.escape(demo.cfg.prompt)}”"
            if ranked
            else f"The first {len(finals)} generated paintings"
        )
        parts.append(
            f"<h2>Final paintings</h2><p>{caption}, contrast-stretched and back at the dataset's aspect ratio.</p>"
        )
        parts.append('<div class="gallery">' + "".join(img(p, p.name, "final") for p in finals) + "</div>")
    grid = demo.mix_grid
    if grid.is_file():
        layers = demo.facts("mix").get("layers") or []
        span = f"layers {layers[0]}–{layers[-1]}" if layers else "its upper layers"
        parts.append(
            "<h2>Style mixing</h2><p>Forms F1–F7 along the top, styles S1–S3 down the left; each cell has "
            f"its column's composition and its row's {html.escape(span)} (light, palette, texture).</p>"
        )
        parts.append(img(grid, "style mixing grid", "wide"))
    sheets = [(demo.dataset_sheet, "The first training images (center-rect crops)")]
    curation = demo.facts("curate").get("curation")
    if curation:
        sheets += [
            (Path(curation) / "top.png", "CLIP's 24 best-scored training images"),
            (Path(curation) / "bottom.png", "CLIP's 24 worst — the salon des refusés starts here"),
        ]
    parts.append("<h2>The dataset</h2>")
    for path, caption in sheets:
        if path.is_file():
            parts.append(
                f"<figure>{img(path, caption, 'wide')}<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    if run:
        fakes = sorted(run.glob("fakes*.png"), key=_kimg_of)  # by number: "fakes000000.012" < "fakes000001"
        if fakes:
            parts.append(
                "<h2>Training</h2>" + f"<figure>{img(fakes[-1], 'generator samples', 'wide')}"
                f"<figcaption>G_ema's pictures of fixed seeds at the last snapshot ({html.escape(fakes[-1].name)})"
                "</figcaption></figure>"
            )
        for path, caption in plots:
            parts.append(
                f"<figure>{img(path, caption, 'plot')}<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append(
        "<h2>Every command</h2><p>Each step as a command you can run yourself (from the folder the demo ran in):</p>"
    )
    parts.append("<pre>" + "\n".join(html.escape(c) for c in _commands(steps)) + "</pre>")
    parts.append(_next_steps(demo))
    parts.append("</body></html>\n")
    path = demo.report
    write_bytes_atomic(path, "\n".join(parts).encode("utf-8"))
    return path


def _next_steps(demo: DemoState) -> str:
    """Where to go from here: explore this model, train it longer, make a real dataset."""
    snapshot = demo.facts("train").get("snapshot")
    lines = []
    if snapshot:
        lines += [
            ("Explore this model in the web studio:", f"ganscapes studio --model {snapshot}"),
            (
                "Train it longer (the demo resumes its run; the budget counts all runs together):",
                f"ganscapes demo --out {demo.out} --minutes {demo.cfg.minutes * 3:g}",
            ),
        ]
    lines += [
        (
            "Make a real dataset of paintings (see “From WikiArt to 1024² paintings” in the README):",
            "ganscapes gather --help",
        ),
    ]
    items = "".join(f"<li>{html.escape(text)}<pre>{html.escape(cmd)}</pre></li>" for text, cmd in lines)
    return f"<h2>Next steps</h2><ul>{items}</ul>"


def _kimg_of(fakes: Path) -> float:
    """The kimg a `fakesNNNNNN[.NNN].png` name says (0 for a name that says none)."""
    digits = fakes.stem.removeprefix("fakes")
    try:
        return float(digits)
    except ValueError:
        return 0.0


def _commands(steps: dict) -> list[str]:
    """Every recorded command line, in the order of the steps (each session of training's)."""
    lines = []
    for name in (s.name for s in STEPS):
        step = steps.get(name)
        if not step:
            continue
        if name == "train" and step.get("facts", {}).get("commands"):
            lines += step["facts"]["commands"]
        elif step.get("command"):
            lines.append(step["command"])
    return lines


def _figures_table(steps: dict) -> str:
    def fact(step: str, key: str):
        return steps.get(step, {}).get("facts", {}).get(key)

    rows = []
    if fact("sample", "images"):
        rows.append(("procedural paintings", f"{fact('sample', 'images')}"))
    if fact("prepare", "mean_aspect"):
        rows.append(("mean aspect of the sources", f"{fact('prepare', 'mean_aspect'):.3f} : 1"))
        rows.append(("training images", f"{fact('prepare', 'images')} at {fact('prepare', 'res')}²"))
    if fact("curate", "refused") is not None:
        rows.append(("refused by CLIP", f"{fact('curate', 'refused')} of {fact('curate', 'scored')}"))
    if fact("train", "kimg") is not None:
        minutes = fact("train", "train_seconds") / 60
        start = "fine-tuned from the starter model" if fact("train", "from_starter") else "from random weights"
        rows.append(("training", f"{fact('train', 'kimg'):.2f} kimg in {minutes:.1f} min (tiny preset, ADA), {start}"))
        if fact("train", "stopped_by"):
            rows.append(("training stopped by", html.escape(str(fact("train", "stopped_by")))))
        rows.append(("final augmentation p", f"{fact('train', 'augment_p') or 0:.4f}"))
        if fact("train", "swd") is not None:
            rows.append(("SWD ×10³ (average, lower is better)", f"{fact('train', 'swd'):.2f}"))
    if fact("generate", "images"):
        rows.append(
            (
                "generated",
                f"{fact('generate', 'images')} paintings, "
                f"{1 / max(fact('generate', 'seconds_per_image'), 1e-9):.1f} per second",
            )
        )
    picks = fact("rank", "picks")
    if picks:
        rows.append(("best CLIP score", f"{picks[0]['score']:+.4f} ({html.escape(picks[0]['file'])})"))
    total = sum(s.get("seconds", 0) for s in steps.values())
    rows.append(("time in steps (this and earlier runs)", f"{total / 60:.1f} min"))
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _plots(run: Path, folder: Path) -> list[tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_jsonl(run / "log.jsonl")
    metrics = read_jsonl(run / "metrics.jsonl")
    folder.mkdir(parents=True, exist_ok=True)
    made = []

    def plot(name: str, title: str, series: list[tuple[str, list, list]], ylabel: str, marker: str | None = None):
        series = [(label, x, y) for label, x, y in series if y]
        if not series:
            return
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        for label, x, y in series:
            ax.plot(x, y, label=label, marker=marker or ("o" if len(x) < 3 else None))
        ax.set_xlabel("kimg (thousands of training images shown)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, format="png")
        plt.close(fig)
        made.append((path, title))

    def column(key: str) -> tuple[list, list]:
        pts = [(r["kimg"], r[key]) for r in log if key in r and r[key] is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    plot("losses", "Losses", [(k, *column(k)) for k in ("loss/G", "loss/D_real", "loss/D_fake", "loss/r1")], "loss")
    plot(
        "ada",
        "Adaptive augmentation: p and the overfitting heuristic r_t",
        [("p", *column("augment_p")), ("r_t", *column("ada/r_t"))],
        "value",
    )
    swd = [(m["kimg"], m["SWDx1e3_avg"]) for m in metrics if m.get("SWDx1e3_avg") is not None]
    plot(
        "swd",
        "Sliced Wasserstein distance ×10³ at snapshots",
        [("SWD avg", [a for a, _ in swd], [b for _, b in swd])],
        "SWD ×10³",
        marker="o",
    )
    plot("speed", "Seconds per kimg", [("sec/kimg", *column("sec_per_kimg"))], "seconds")
    return made


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>ganscapes demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-weight: 600; }} h2 {{ margin-top: 2em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 0.2em 1em 0.2em 0; }}
th {{ font-weight: 500; color: #555; }}
.gallery {{ display: flex; flex-wrap: wrap; gap: 8px; }} img.final {{ height: 256px; image-rendering: auto; }}
.compare {{ display: flex; flex-wrap: wrap; gap: 16px; }} .compare figure {{ margin: 0; }}
img.sheet {{ width: 340px; max-width: 100%; image-rendering: auto; }}
img.wide {{ width: min(100%, 768px); image-rendering: pixelated; }} img.plot {{ max-width: 100%; }}
figure {{ margin: 1em 0; }} figcaption {{ color: #555; font-size: 0.9em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }}
.note {{ background: #fff6d6; padding: 0.6em 1em; border-left: 4px solid #e0b400; }}
</style></head><body>
<h1>ganscapes demo</h1>
<p>The whole GANscapes pipeline on procedural landscape paintings, made by ganscapes {version}.
Everything here is in this folder; the commands at the end redo any step.</p>
"""
