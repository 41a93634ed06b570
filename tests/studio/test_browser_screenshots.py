"""Every tab of the studio, filled, at a desktop width (1,400 px) and a phone's (390 px), in Chromium.

The studio runs over the bundled starter model (64², trained), so the screenshots show
paintings. Each tab is shown after real work (a prompt ranked, a seed grid, neighbours, a
mix, an edit, a walk, a guided search, a painting projected, a finished picture, the
catalog) and every picture or film on it must be drawn whole at an integer zoom at both
widths. With GANSCAPES_UPDATE_SCREENSHOT=1 the screenshots, as 256-colour PNGs, replace
those in docs/studio/ that the README shows; otherwise they go to the test's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers_browser import (
    CHROMIUM,
    STEP_TIMEOUT,
    ServerFailed,
    assert_whole_at_integer_zoom,
    local,
    studio_server,
    wait_for_images,
)
from PIL import Image

from ganscapes.models import bundled_model

pytestmark = pytest.mark.slow  # a studio server driven by Chromium

SCREENSHOT_ENV = "GANSCAPES_UPDATE_SCREENSHOT"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "studio"
# "My painting" for the Project tab: a held-out painting, the first target of the projection benchmark's sheet
PAINTING = (DOCS.parent / "project-heldout.png", (0, 0, 128, 128))
WIDTHS = {"wide": (1400, 900), "phone": (390, 844)}
TABS = {  # file name: the tab's label, and the pictures on it
    "prompt": ("Paint from a prompt", "#prompt-gallery img"),
    "seed": ("Explore by seed", "#seed-gallery img"),
    "near": ("More like this", "#near-gallery img"),
    "mix": ("Mix", "#grid img, #mix-gallery img"),
    "edit": ("Edit", "#edit-gallery img"),
    "walk": ("Walk", "#walk-video video"),
    "guide": ("Guide", "#guide-gallery img, #history img"),
    "project": ("Project", "#project-gallery img"),
    "finish": ("Finish", "#finished img"),
    "catalog": ("Catalog", "#catalog-gallery img"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`ganscapes studio` over the bundled starter model (conftest's `server` serves the tiny random one)."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None or not CHROMIUM.exists():
        pytest.skip("Playwright and Debian's chromium are needed for the screenshots")
    try:
        with studio_server(bundled_model("starter"), tmp_path_factory.mktemp("studio-screenshots")) as running:
            yield running
    except ServerFailed as e:
        pytest.fail(str(e))


def test_every_tab_at_two_widths(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT)
    outside: list[str] = []

    def route(r):
        if local(r.request.url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    painting = tmp_path / "my painting.png"
    with Image.open(PAINTING[0]) as sheet:
        sheet.crop(PAINTING[1]).convert("RGB").save(painting)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--no-proxy-server"])
        try:
            context = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS["wide"], strict=True)))
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(server.url)
            fill_every_tab(page, painting)
            shots = []
            for name, (w, h) in WIDTHS.items():
                page.set_viewport_size({"width": w, "height": h})
                for tab, (label, pictures) in TABS.items():
                    page.get_by_role("tab", name=label).click()
                    if tab == "catalog":
                        expect(page.locator("#catalog-status p")).to_have_text(re.compile(r"^\d+ picture"))
                    page.wait_for_timeout(300)  # the pictures' sizes follow the new width
                    page.wait_for_function(
                        "sel => [...document.querySelectorAll(sel)].every(i => i.tagName === 'VIDEO'"
                        " ? i.readyState >= 2 : i.complete && i.naturalWidth > 0)",
                        arg=pictures,
                    )
                    if tab == "walk":  # the same frame at both widths: the film's first
                        page.eval_on_selector("#walk-video video", "v => { v.pause(); v.currentTime = 0; }")
                    assert_whole_at_integer_zoom(page, pictures)
                    page.mouse.move(0, 0)
                    shot = tmp_path / f"{tab}-{name}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    shots.append(shot)
        finally:
            browser.close()
    assert outside == []
    if os.environ.get(SCREENSHOT_ENV) == "1":
        DOCS.mkdir(exist_ok=True)
        for shot in shots:  # 256 colours: a fifth of the bytes, and the paintings still read as paintings
            with Image.open(shot) as image:
                image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(DOCS / shot.name, optimize=True)


def fill_every_tab(page, painting: Path) -> None:
    from playwright.sync_api import expect

    page.locator("#count input").fill("12")
    page.locator("#top input").fill("6")
    page.get_by_role("button", name="Paint from the prompt").click()
    expect(page.locator("#prompt-status p")).to_have_text(re.compile(r"^The 6 best of 12"))
    wait_for_images(page, "#prompt-gallery img", 6)

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed input").fill("7")
    page.get_by_role("button", name=re.compile(r"^Seed grid")).click()
    expect(page.locator("#seed-status p")).to_have_text(re.compile(r"^Seeds 7–15"))

    page.locator("#seed-gallery .thumbnail-item").nth(4).click()
    expect(page.locator("#selected textarea")).to_have_value(re.compile(r"^#\d+$"))
    page.get_by_role("button", name="More like this").click()
    expect(page.locator("#near-status p")).to_have_text(re.compile(r"^8 pictures near #\d+"))

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed-gallery .thumbnail-item").nth(1).click()
    expect(page.locator("#selected textarea")).to_have_value(re.compile(r"^#\d+$"))
    page.get_by_role("button", name="Edit it").click()
    expect(page.locator("#edit-status p")).to_have_text(re.compile(r"^Every slider at 0"))
    page.locator("#direction-0 input[type=range]").focus()
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#edit-status p")).to_have_text(re.compile(r"edited: direction 0 \+2\.$"))

    page.get_by_role("tab", name="Walk").click()
    page.get_by_role("button", name="Walk the seed grid").click()
    # The grid's numbers arrive from the server: on a busy machine, clicking Walk before
    # they land would walk no keyframes.
    expect(page.locator("#keyframes textarea")).to_have_value(re.compile(r"^#\d+"))
    page.locator("#walk-frames input").fill("8")
    page.get_by_role("button", name="Walk", exact=True).click()
    expect(page.locator("#walk-status p")).to_have_text(re.compile(r"^72 frames through"))

    page.get_by_role("tab", name="Project").click()
    page.locator("#upload input[type=file]").set_input_files(str(painting))
    expect(page.locator("#upload img")).to_have_count(1)
    page.locator("#steps-w input").fill("100")
    page.locator("#steps-wplus input").fill("60")
    page.get_by_role("button", name="Project it").click()
    expect(page.locator("#project-status p")).to_have_text(re.compile(r"^Picture #\d+, \d+\.\d dB PSNR"))

    page.get_by_role("tab", name="Mix").click()
    page.locator("#forms textarea").fill("#1, s3, s8")
    page.locator("#styles textarea").fill("s4, s5")
    page.get_by_role("button", name="Mix", exact=True).click()
    expect(page.locator("#mix-status p")).to_have_text(re.compile(r"^6 cells"))

    page.get_by_role("tab", name="Guide").click()
    page.locator("#guide-from textarea").fill("#1")
    page.get_by_label("Steps", exact=True).fill("3")
    page.get_by_role("button", name="Guide", exact=True).click()
    expect(page.locator("#guide-status p")).to_have_text(re.compile(r"^Best score"))

    page.get_by_role("tab", name="Paint from a prompt").click()
    page.locator("#prompt-gallery .thumbnail-item").first.click()
    expect(page.locator("#selected textarea")).to_have_value("#1")
    page.get_by_role("button", name="Finish it").click()
    expect(page.locator("#finish-status p")).to_have_text(re.compile(r"^Picture #\d+; the PNG"))
