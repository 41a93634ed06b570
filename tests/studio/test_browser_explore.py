"""The studio as an explorer, in Chromium: seed grids, ψ that repaints live, the selected picture's panel.

A 3 × 3 grid from a seed or at random, repainted when the ψ slider is let go (no click),
by the mouse or the keyboard;
the side panel says what a picture is made of, its score for the prompt, its parents and
the `ganscapes reproduce` command that rebuilds it, which "Copy command" puts on the
clipboard; "Finish it" lands on the Finish tab with the picture finished. The server is
conftest's `server` (`ganscapes studio` over the tiny 32² model).
"""

from __future__ import annotations

import re
import shlex

import pytest
from helpers_browser import assert_whole_at_integer_zoom, studio_page, wait_for_images

pytestmark = pytest.mark.slow  # a studio server driven by Chromium


@pytest.fixture
def page(server):
    with studio_page(server, clipboard=True) as page:
        yield page


def test_a_seed_grid_repaints_when_psi_is_let_go(page, server):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed input").fill("20")
    page.get_by_role("button", name=re.compile(r"^Seed grid")).click()
    status = page.locator("#seed-status p")
    expect(status).to_have_text(re.compile(r"^Seeds 20–28, ψ 0\.7: pictures #\d+–#\d+\.$"))
    wait_for_images(page, "#seed-gallery img", 9)
    assert_whole_at_integer_zoom(page, "#seed-gallery img")
    first = page.locator("#seed-gallery img").first.get_attribute("src")
    # let the slider go near ψ 1.2: no button is pressed
    page.locator("#seed-psi input[type=range]").scroll_into_view_if_needed()
    track = page.locator("#seed-psi input[type=range]").bounding_box()
    page.mouse.click(track["x"] + track["width"] * 1.2 / 1.5, track["y"] + track["height"] / 2)
    expect(status).to_have_text(re.compile(r"^Seeds 20–28, ψ 1\.\d+: pictures"))
    expect(page.locator("#seed-gallery img").first).not_to_have_attribute("src", first)
    page.get_by_role("button", name="Random grid").click()
    expect(status).to_have_text(re.compile(r"^Seeds \d+–\d+, ψ 1\.\d+: pictures"))
    start = int(page.locator("#seed input").input_value())
    expect(status).to_have_text(re.compile(rf"^Seeds {start}–{start + 8},"))


def test_psi_moved_with_the_keyboard_repaints_when_the_key_is_let_go(page, server):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed input").fill("40")
    page.get_by_role("button", name=re.compile(r"^Seed grid")).click()
    status = page.locator("#seed-status p")
    expect(status).to_have_text(re.compile(r"^Seeds 40–48, ψ 0\.7: pictures #\d+–#\d+\.$"))
    first = page.locator("#seed-gallery img").first.get_attribute("src")
    slider = page.locator("#seed-psi input[type=range]")
    slider.focus()
    for _ in range(3):  # three steps of 0.05, each a key pressed and let go
        page.keyboard.press("ArrowRight")
    expect(slider).to_have_value("0.85")
    expect(status).to_have_text(re.compile(r"^Seeds 40–48, ψ 0\.85: pictures #\d+–#\d+\.$"))
    expect(page.locator("#seed-gallery img").first).not_to_have_attribute("src", first)
    page.keyboard.press("Home")
    expect(status).to_have_text(re.compile(r"^Seeds 40–48, ψ 0: pictures"))


def test_the_side_panel_explains_a_picture_and_copies_its_command(page, server):
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed input").fill("31")
    page.get_by_role("button", name="Paint this seed").click()
    expect(page.locator("#seed-status p")).to_have_text(re.compile(r"^Seed 31, ψ 0\.7: picture #\d+\.$"))
    number = re.search(r"#(\d+)", page.locator("#seed-status p").inner_text()).group(1)
    page.locator("#seed-gallery .thumbnail-item").first.click()
    about = page.locator("#about")
    expect(about).to_contain_text(f"Picture #{number} (seed) · from seed 31 at ψ 0.7")
    expect(about).to_contain_text(re.compile(r"Score [+-]\d\.\d{4} for “impressionist painting of autumn woods”"))
    command = page.locator("#command textarea")
    expect(command).to_have_value(re.compile(r"^ganscapes reproduce "))
    words = shlex.split(command.input_value())
    assert words[:2] == ["ganscapes", "reproduce"] and words[3] == "--model", words
    assert words[2].endswith("seed0031.png") and words[4].endswith("tiny.safetensors"), words
    page.get_by_role("button", name="Copy command").click()
    page.wait_for_function("t => navigator.clipboard.readText().then(c => c === t)", arg=command.input_value())

    # "Finish it": on the Finish tab, finished, one more click to download
    page.get_by_role("button", name="Finish it").click()
    expect(page.get_by_role("tab", name="Finish")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#finish-status p")).to_have_text(re.compile(r"^Picture #\d+; the PNG carries its recipe"))
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename.endswith("-finished.png")
