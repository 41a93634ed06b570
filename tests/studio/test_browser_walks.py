"""Walks and edits in the page, in Chromium: a walk played and downloaded, sliders that repaint, more like this,
and a painting uploaded and projected.

The server is conftest's `server` (`ganscapes studio` over the tiny 32² model). Each picture
a tab shows must be drawn whole at an integer zoom, and land in the catalog: clicking it
fills the side panel with its recipe.
"""

from __future__ import annotations

import re

import pytest
from helpers_browser import assert_whole_at_integer_zoom, studio_page, wait_for_images
from PIL import Image

pytestmark = pytest.mark.slow  # a studio server driven by Chromium


@pytest.fixture
def page(server):
    with studio_page(server) as page:
        yield page


def paint_grid(page, start: int) -> list[str]:
    """A seed grid from `start`; the catalog numbers of its pictures."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed input").fill(str(start))
    page.get_by_role("button", name=re.compile(r"^Seed grid")).click()
    status = page.locator("#seed-status p")
    expect(status).to_have_text(re.compile(rf"^Seeds {start}–{start + 8}, ψ 0\.7: pictures #\d+–#\d+\.$"))
    first, last = (int(n) for n in re.findall(r"#(\d+)", status.inner_text()))
    return [f"#{n}" for n in range(first, last + 1)]


def test_a_walk_through_the_seed_grid_plays_in_the_page_and_downloads(page, server):
    from playwright.sync_api import expect

    numbers = paint_grid(page, 60)
    page.get_by_role("tab", name="Walk").click()
    page.get_by_role("button", name="Walk the seed grid").click()
    expect(page.locator("#keyframes textarea")).to_have_value(", ".join(numbers))
    page.locator("#keyframes textarea").fill(", ".join(numbers[:3]))  # a short film: 3 pictures
    page.locator("#walk-frames input").fill("4")
    page.get_by_role("button", name="Walk", exact=True).click()
    expect(page.locator("#walk-status p")).to_have_text(re.compile(r"^12 frames through #\d+, #\d+, #\d+; the MP4"))
    video = page.locator("#walk-video video")
    # the browser decodes it: its size is the model's, and it lasts 12 frames at 24 a second
    page.wait_for_function(
        "() => { const v = document.querySelector('#walk-video video'); return v && v.readyState >= 1; }"
    )
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [32, 32]
    assert video.evaluate("v => v.duration") == pytest.approx(0.5, abs=0.05)
    assert_whole_at_integer_zoom(page, "#walk-video video")
    with page.expect_download() as download:
        page.locator("#walk-download").click()
    assert download.value.suggested_filename == "walk.mp4"

    # "Add to walk" from the side panel
    page.get_by_role("tab", name="Explore by seed").click()
    page.locator("#seed-gallery .thumbnail-item").nth(4).click()
    expect(page.locator("#selected textarea")).to_have_value(numbers[4])
    page.get_by_role("button", name="Add to walk").click()
    page.get_by_role("tab", name="Walk").click()
    expect(page.locator("#keyframes textarea")).to_have_value(", ".join([*numbers[:3], numbers[4]]))


def test_edit_sliders_repaint_the_selected_picture(page, server):
    from playwright.sync_api import expect

    numbers = paint_grid(page, 80)
    page.locator("#seed-gallery .thumbnail-item").nth(1).click()
    expect(page.locator("#selected textarea")).to_have_value(numbers[1])
    page.get_by_role("button", name="Edit it").click()
    expect(page.get_by_role("tab", name="Edit")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#edit-from textarea")).to_have_value(numbers[1])
    status = page.locator("#edit-status p")
    expect(status).to_have_text(f"Every slider at 0: picture {numbers[1]} as it is.")
    slider = page.locator("#direction-0 input[type=range]")
    slider.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    expect(status).to_have_text(re.compile(rf"^Picture #\d+: {numbers[1]} edited: direction 0 \+1\.$"))
    wait_for_images(page, "#edit-gallery img", 2)
    assert_whole_at_integer_zoom(page, "#edit-gallery img")
    # by the mouse: let go near +2 on direction 2
    track = page.locator("#direction-2 input[type=range]")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 5 / 6, box["y"] + box["height"] / 2)
    expect(status).to_have_text(re.compile(r"direction 0 \+1, direction 2 \+[12](\.\d+)?\.$"))
    edited = re.match(r"Picture (#\d+)", status.inner_text()).group(1)
    page.locator("#edit-gallery .thumbnail-item").nth(1).click()
    expect(page.locator("#selected textarea")).to_have_value(edited)
    expect(page.locator("#about")).to_contain_text(f"Picture {edited} (edit)")
    expect(page.locator("#command textarea")).to_have_value(re.compile(r"^ganscapes reproduce .*edit-01\.png"))
    page.get_by_role("button", name="All sliders to 0").click()
    expect(status).to_have_text(f"Every slider at 0: picture {numbers[1]} as it is.")  # the picture edited


def test_more_like_this_shows_neighbours(page, server):
    from playwright.sync_api import expect

    numbers = paint_grid(page, 100)
    page.locator("#seed-gallery .thumbnail-item").nth(2).click()
    expect(page.locator("#selected textarea")).to_have_value(numbers[2])
    page.get_by_role("button", name="More like this").click()
    expect(page.get_by_role("tab", name="More like this")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#near-status p")).to_have_text(
        re.compile(rf"^8 pictures near {numbers[2]}, at 0\.5 of W's spread: #\d+–#\d+\.$")
    )
    wait_for_images(page, "#near-gallery img", 9)
    assert_whole_at_integer_zoom(page, "#near-gallery img")
    page.locator("#near-gallery .thumbnail-item").nth(5).click()
    expect(page.locator("#about")).to_contain_text(f"(near) · from near {numbers[2]} (0.5)")


def test_a_painting_uploaded_is_projected_into_the_catalog(page, server, tmp_path):
    from playwright.sync_api import expect

    painting = tmp_path / "my painting.jpg"
    Image.new("RGB", (120, 90), (200, 140, 60)).save(painting)
    page.get_by_role("tab", name="Project").click()
    page.locator("#upload input[type=file]").set_input_files(str(painting))
    expect(page.locator("#upload img")).to_have_count(1)
    page.locator("#steps-w input").fill("3")
    page.locator("#steps-wplus input").fill("2")
    page.get_by_role("button", name="Project it").click()
    status = page.locator("#project-status p")
    expect(status).to_have_text(re.compile(r"^Picture #\d+, -?\d+\.\d dB PSNR from your painting"))
    wait_for_images(page, "#project-gallery img", 2)
    assert_whole_at_integer_zoom(page, "#project-gallery img")
    number = re.match(r"Picture (#\d+)", status.inner_text()).group(1)
    page.locator("#project-gallery .thumbnail-item").nth(1).click()
    expect(page.locator("#about")).to_contain_text(f"Picture {number} (project) · from projection of my painting.jpg")
    # a file that is no picture: the server refuses it before storing it, and the page says why
    page.locator("#upload input[type=file]").set_input_files(
        {"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture at all"}
    )
    expect(page.get_by_text("The studio takes one picture per upload: a PNG, JPEG or WebP file.")).to_be_visible()
