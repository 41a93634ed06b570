"""Remake the README's pictures from the bundled starter model, after it changes.

    .venv/bin/python scripts/readme_pictures.py [STEP ...]     (default: every step)

Steps: seeds (docs/starter-seeds.png), walk (docs/video-walk.png), directions
(docs/directions-pca.png), project (docs/project-heldout.png and its JSON), notebook
(docs/notebook.png), demo (docs/demo-report.png), studio (docs/studio/*.png). Each step
runs the very commands the README shows beside its picture, in a scratch folder, and
prints what it wrote; look at every picture before committing it (the captions describe
what they show). The screenshots use Playwright with Debian's Chromium, as the browser
tests do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"


def run(*args: str | Path, cwd: Path | None = None, env: dict | None = None) -> None:
    print("$", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=cwd, env={**os.environ, **(env or {})})


def ganscapes(*args: str | Path, cwd: Path | None = None) -> None:
    run(BIN / "ganscapes", *args, cwd=cwd)


def screenshot(html: Path, out: Path, width: int, top_selector: str | None = None, height: int | None = None) -> None:
    """A page as a reader sees it at `width` px: from the element `top_selector` (or the top), `height` px tall."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.goto(html.as_uri())
        page.wait_for_load_state("networkidle")
        full = page.evaluate("document.documentElement.scrollHeight")
        top = 0
        if top_selector is not None:
            top = int(page.locator(top_selector).first.bounding_box()["y"])
        bottom = full if height is None else min(full, top + height)
        page.screenshot(path=str(out), full_page=True, clip={"x": 0, "y": top, "width": width, "height": bottom - top})
        browser.close()
    print("wrote", out, flush=True)


def seeds(work: Path) -> None:
    from ganscapes.models.card import SHEET, save_seed_sheet

    print("wrote", save_seed_sheet(ROOT / SHEET), flush=True)


def walk(work: Path) -> None:
    """Frames 0, 2, …, 12 of a walk, every w row moving (above) and only --layers auto (below)."""
    from PIL import Image

    from ganscapes.data.grid import image_grid

    rows = []
    for name, extra in (("all", ()), ("auto", ("--layers", "auto"))):
        out = work / f"walk-{name}.mp4"
        ganscapes("video", "--model", "starter", "--seeds", "3,17,42", "--frames", "6", "--post", "--keep-frames",
                  *extra, "--out", out)  # fmt: skip
        frames = sorted((work / f"walk-{name}_frames").glob("frame*.png"))
        rows += [Image.open(frames[k]).convert("RGB") for k in range(0, 13, 2)]
    width, height = rows[0].size
    tile = (128, round(128 * height / width))  # the finished frames' aspect, enlarged to 128 px wide
    image_grid(rows, columns=7, tile=tile, fit="contain", gap=2, background=(255, 255, 255)).save(
        DOCS / "video-walk.png"
    )
    print("wrote", DOCS / "video-walk.png", flush=True)


def directions(work: Path) -> None:
    out = work / "autumn.npz"
    ganscapes("directions", "--model", "starter", "--method", "pca", "--layers", "all", "--count", "5",
              "--out", out, "--preview", "--preview-seeds", "3")  # fmt: skip
    shutil.copyfile(out.with_suffix(".png"), DOCS / "directions-pca.png")
    print("wrote", DOCS / "directions-pca.png", flush=True)


def project(work: Path) -> None:
    run(BIN / "python", ROOT / "benchmarks" / "project.py", "--model", "starter", cwd=ROOT)


def notebook(work: Path) -> None:
    """The notebook run as a user runs it on a CPU (a few minutes of training), from its training cell on."""
    import nbclient
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ROOT / "notebooks" / "ganscapes.ipynb", as_version=4)
    where = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    params = f'WORK = {str(work / "notebook")!r}\nMINUTES = 4\nCLIP_PRETRAINED = "random"\nDEVICE = "cpu"\n'
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(params))
    nbclient.NotebookClient(
        nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()
    nb.cells.pop(where + 1)  # the page shows the notebook as shipped
    html = work / "notebook.html"
    html.write_text(HTMLExporter().from_notebook_node(nb)[0])
    screenshot(html, DOCS / "notebook.png", 1040, top_selector="h2:has-text('Training')", height=2240)


def demo(work: Path) -> None:
    out = work / "demo-output"
    ganscapes("demo", "--out", out)
    screenshot(out / "report.html", DOCS / "demo-report.png", 1100, height=1500)


def studio(work: Path) -> None:
    run(BIN / "python", "-m", "pytest", "-q", "tests/studio/test_browser_screenshots.py",
        cwd=ROOT, env={"GANSCAPES_UPDATE_SCREENSHOT": "1"})  # fmt: skip


STEPS = {"seeds": seeds, "walk": walk, "directions": directions, "project": project, "notebook": notebook,
         "demo": demo, "studio": studio}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="*", metavar="STEP", help=", ".join(STEPS))
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (the demo, the notebook's run)")
    args = parser.parse_args()
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}; the steps are {', '.join(STEPS)}")
    with tempfile.TemporaryDirectory(prefix="readme-pictures-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
        for name in args.steps or STEPS:
            print(f"== {name}", flush=True)
            STEPS[name](work)


if __name__ == "__main__":
    main()
