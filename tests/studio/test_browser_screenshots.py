"""Every tab of the studio, filled, at a desktop width (1,400 px) and a phone's (390 px), in Chromium.

Each tab is shown after real work (a prompt ranked, a seed grid, a mix, a guided search, a
finished picture, the catalog) and every picture on it must be drawn whole at an integer
zoom at both widths. With GANSCAPES_UPDATE_SCREENSHOT=1 the screenshots replace those in
docs/studio/ that the README shows; otherwise they go to the test's folder.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from helpers_browser import CHROMIUM, STEP_TIMEOUT, assert_whole_at_integer_zoom, local, wait_for_images

pytestmark = pytest.mark.slow  # a studio server driven by Chromium

SCREENSHOT_ENV = "GANSCAPES_UPDATE_SCREENSHOT"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "studio"
WIDTHS = {"wide": (1400, 900), "phone": (390, 844)}
TABS = {  # file name: the tab's label, and the pictures on it
    "prompt": ("Paint from a prompt", "#prompt-gallery img"),
    "seed": ("Explore by seed", "#seed-gallery img"),
    "mix": ("Mix", "#grid img, #mix-gallery img"),
    "guide": ("Guide", "#guide-gallery img, #history img"),
    "finish": ("Finish", "#finished img"),
    "catalog": ("Catalog", "#catalog-gallery img"),
}


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

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--no-proxy-server"])
        try:
            context = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS["wide"], strict=True)))
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT)
            page.goto(server.url)
            fill_every_tab(page)
            shots = []
            for name, (w, h) in WIDTHS.items():
                page.set_viewport_size({"width": w, "height": h})
                for tab, (label, pictures) in TABS.items():
                    page.get_by_role("tab", name=label).click()
                    if tab == "catalog":
                        expect(page.locator("#catalog-status p")).to_have_text(re.compile(r"^\d+ picture"))
                    page.wait_for_timeout(300)  # the pictures' sizes follow the new width
                    page.wait_for_function(
                        "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)",
                        arg=pictures,
                    )
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
        for shot in shots:
            shutil.copy(shot, DOCS / shot.name)


def fill_every_tab(page) -> None:
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

    page.get_by_role("tab", name="Mix").click()
    page.locator("#forms textarea").fill("#1, s3, s8")
    page.locator("#styles textarea").fill("s4, s5")
    page.get_by_role("button", name="Mix", exact=True).click()
    expect(page.locator("#mix-status p")).to_have_text(re.compile(r"^6 cells"))

    page.get_by_role("tab", name="Guide").click()
    page.locator("#guide-from textarea").fill("#1")
    page.get_by_label("Steps").fill("3")
    page.get_by_role("button", name="Guide", exact=True).click()
    expect(page.locator("#guide-status p")).to_have_text(re.compile(r"^Best score"))

    page.get_by_role("tab", name="Paint from a prompt").click()
    page.locator("#prompt-gallery .thumbnail-item").first.click()
    expect(page.locator("#selected textarea")).to_have_value("#1")
    page.get_by_role("button", name="Finish it").click()
    expect(page.locator("#finish-status p")).to_have_text(re.compile(r"^Picture #\d+; the PNG"))
