"""The studio end to end: `ganscapes studio` in a subprocess, driven by headless Chromium.

The server runs as a user starts it (`python -m ganscapes studio …`) with the tiny 32²
model and the real default CLIP architecture, ViT-B-32, with random weights. The page
paints a seed, paints from a prompt, mixes, selects a picture in a gallery and finishes
it, downloads the PNG and reads its recipe, and searches the catalog. Every request the
page makes is recorded, and any that leaves 127.0.0.1 (analytics, fonts, a CDN) fails
the test; it is aborted rather than sent.

The screenshots the README shows are test_browser_screenshots.py's.
"""

from __future__ import annotations

import re

import pytest
from helpers_browser import CHROMIUM, STEP_TIMEOUT, local, wait_for_images
from PIL import Image

from ganscapes.provenance import read_recipe

pytestmark = pytest.mark.slow  # a studio server driven by Chromium

PROMPT = "impressionist painting of autumn woods"  # the page's default


def test_the_studio_in_chromium(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT)
    requests: list[str] = []  # every URL the page asked for
    outside: list[str] = []  # those that would have left the machine (aborted)
    errors: list[str] = []

    def route(r):
        url = r.request.url
        requests.append(url)
        if local(url):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--no-proxy-server"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT)
            page.on(
                "websocket", lambda ws: (requests.append(ws.url), None if local(ws.url) else outside.append(ws.url))
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(server.url)
            expect(page).to_have_title("ganscapes studio")

            # (a) a seed
            page.get_by_role("tab", name="Explore by seed").click()
            page.locator("#seed input").fill("7")
            page.get_by_role("button", name="Paint this seed").click()
            expect(page.locator("#seed-status p")).to_have_text("Seed 7, ψ 0.7: picture #1.")
            assert wait_for_images(page, "#seed-gallery img", 1) == [32]

            # (b) a prompt, ranked by ViT-B-32
            page.get_by_role("tab", name="Paint from a prompt").click()
            expect(page.locator("#prompt textarea")).to_have_value(PROMPT)
            page.locator("#count input").fill("12")
            page.locator("#top input").fill("4")
            page.get_by_role("button", name="Paint from the prompt").click()
            expect(page.locator("#prompt-status p")).to_have_text(
                re.compile(rf"^The 4 best of 12 for “{PROMPT}”: best score [+-]\d\.\d{{4}}\.$")
            )
            assert wait_for_images(page, "#prompt-gallery img", 4) == [32] * 4
            captions = page.locator("#prompt-gallery .caption-label").all_inner_texts()
            assert [c.split(" · ")[0] for c in captions] == [f"#{k}" for k in (2, 3, 4, 5)], captions
            assert all(c.split(" · ")[1].startswith("score ") for c in captions), captions
            page.mouse.move(0, 0)
            page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)

            # (c) a mix of a catalog picture and seeds: 2 forms × 2 styles, after a refused one
            page.get_by_role("tab", name="Mix").click()
            page.get_by_role("button", name="Mix", exact=True).click()
            expect(page.locator("#mix-status p")).to_have_text(
                "Could not do that: Choose at least one form: catalog numbers such as 12, or seeds such as s7."
            )
            page.locator("#forms textarea").fill("#1, s3")
            page.locator("#styles textarea").fill("s4, s5")
            page.get_by_role("button", name="Mix", exact=True).click()
            expect(page.locator("#mix-status p")).to_have_text("4 cells, pictures #6–#9.")
            (grid_width,) = wait_for_images(page, "#grid img", 1)
            assert grid_width > 2 * 32
            assert wait_for_images(page, "#mix-gallery img", 4) == [32] * 4

            # (d) select picture #1 in its gallery (not the one filled last), finish it, download it
            page.get_by_role("tab", name="Explore by seed").click()
            page.locator("#seed-gallery .thumbnail-item").first.click()
            expect(page.locator("#selected textarea")).to_have_value("#1")
            page.get_by_role("button", name="Finish it").click()  # opens the Finish tab and finishes at once
            expect(page.locator("#finish-from textarea")).to_have_value("#1")
            expect(page.locator("#finish-status p")).to_have_text(
                "Picture #10; the PNG carries its recipe (ganscapes info shows it)."
            )
            page.get_by_label("Width (0: keep)").fill("64")
            page.get_by_role("button", name="Finish", exact=True).click()
            expect(page.locator("#finish-status p")).to_have_text(
                "Picture #11; the PNG carries its recipe (ganscapes info shows it)."
            )
            with page.expect_download() as download:
                page.locator("#download").click()
            saved = tmp_path / "downloaded.png"
            download.value.save_as(saved)

            # the catalog, searched by prompt
            page.get_by_role("tab", name="Catalog").click()
            page.locator("#query textarea").fill("AUTUMN")
            page.get_by_role("button", name="Search").click()
            expect(page.locator("#catalog-status p")).to_have_text("4 picture(s) for “AUTUMN”.")
            assert len(wait_for_images(page, "#catalog-gallery img", 4)) == 4
        finally:
            browser.close()

    recipe = read_recipe(saved)
    assert recipe["kind"] == "post" and recipe["model_hash"] == server.model_hash
    assert recipe["source"]["seed"] == 7 and recipe["post"]["width"] == 64
    with Image.open(saved) as im:
        assert im.size == (64, round(64 / 1.27))
    assert outside == [], f"the page reached beyond the studio: {outside}"
    assert requests and all(local(u) for u in requests)
    assert errors == []
