"""The studio's actions, called directly: what each writes and catalogs, its limits, and confinement.

A Studio on the tiny 32² model (num_ws 8, so `fine` is layers 4-7) with the tiny random
open_clip architecture of `helpers_tinyclip`: ranking and guiding run through the real
code, in milliseconds. Every picture is checked against its recipe (`reproduce_file`)
and against the latent the catalog points at, which is what mix and guide start from.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganscapes.clip.encoder import WEIGHTS_ENV
from ganscapes.errors import SettingError, UserError
from ganscapes.make.paint import paint
from ganscapes.make.reproduce import reproduce_file
from ganscapes.make.seeds import map_seeds
from ganscapes.provenance import read_recipe
from ganscapes.studio.core import (
    FIELD_LABELS,
    MAX_GRID,
    MAX_GUIDE_STEPS,
    MAX_IMAGES,
    MAX_TOP,
    Studio,
    StudioConfig,
    StudioError,
)

from helpers_tinyclip import TINY_CLIP, register_tiny_clip

PROMPT = "impressionist painting of autumn woods"


@pytest.fixture(scope="module")
def studio(model_file, tmp_path_factory) -> Studio:
    register_tiny_clip()
    out = tmp_path_factory.mktemp("studio") / "out"
    return Studio(StudioConfig(model=model_file, out=out, device="cpu", clip_model=TINY_CLIP, clip_pretrained="random"))


@pytest.fixture(scope="module")
def seed_entry(studio):
    return studio.paint_seed(42, 0.7)


@pytest.fixture(scope="module")
def prompt_run(studio):
    """paint_prompt(PROMPT, 12, 0.7, top 4): (entries, progress calls)."""
    calls: list[tuple[float, str]] = []
    entries = studio.paint_prompt(PROMPT, 12, 0.7, 4, progress=lambda f, d: calls.append((f, d)))
    return entries, calls


def pixels_of(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def painted(studio, entry) -> np.ndarray:
    """The picture the catalog's latent for `entry` paints."""
    return paint(studio.model.G_ema, studio.w_of(entry)[None], "const")[0]


def request_folders(studio) -> set:
    folder = studio.out / "requests"
    return set(folder.iterdir()) if folder.is_dir() else set()


def refused(studio, call, match: str, error=StudioError):
    """`call()` raises `error` matching `match` as one sentence and adds nothing to the catalog or the folder."""
    rows, folders = len(studio.catalog), request_folders(studio)
    with pytest.raises(error, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and "Traceback" not in message, message
    assert len(studio.catalog) == rows, "a refused request was cataloged"
    assert request_folders(studio) == folders, "a refused request left a folder behind"
    return message


# ---------------------------------------------------------------------------------------
# seeds


def test_paint_seed_writes_a_png_whose_recipe_reproduces(studio, seed_entry):
    e = seed_entry
    assert (e.kind, e.seed, e.row, e.prompt, e.score) == ("seed", 42, 0, None, None)
    assert e.model_hash == studio.model.model_hash
    assert e.file.startswith("requests/") and e.file.endswith("seed0042.png") and e.latents.endswith("latents.npz")
    path = studio.path_of(e)
    assert path.is_file() and path.is_relative_to(studio.out)
    recipe = read_recipe(path)
    assert (recipe["seed"], recipe["psi"], recipe["model_hash"]) == (42, 0.7, studio.model.model_hash)
    assert reproduce_file(path, studio.model).identical
    assert studio.catalog.get(e.id) == e
    # the recorded latent is the seed's at ψ 0.7 and paints the same pixels
    w = studio.w_of(e)
    assert np.array_equal(w, map_seeds(studio.model.G_ema, [42], 0.7, None, None, studio.device)[0])
    assert np.array_equal(painted(studio, e), pixels_of(path))


def test_paint_seed_refuses_bad_seeds_and_psi(studio):
    refused(studio, lambda: studio.paint_seed(-1, 0.7), r"^Seed must be between 0 and 4294967295, not -1\.$")
    refused(studio, lambda: studio.paint_seed(2**32, 0.7), r"not 4294967296\.")
    refused(studio, lambda: studio.paint_seed(1, 2.5), r"^ψ must be between -1 and 2, not 2\.5\.$")


def test_random_seed_is_a_valid_seed(studio):
    seeds = {studio.random_seed() for _ in range(20)}
    assert len(seeds) > 1 and all(0 <= s < 2**31 for s in seeds)


# ---------------------------------------------------------------------------------------
# prompts


def test_paint_prompt_keeps_the_top_k_best_first(studio, prompt_run):
    entries, _ = prompt_run
    assert len(entries) == 4
    assert [e.kind for e in entries] == ["prompt"] * 4 and {e.prompt for e in entries} == {PROMPT}
    scores = [e.score for e in entries]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert [e.id for e in entries] == list(range(entries[0].id, entries[0].id + 4))
    assert [e.row for e in entries] == [0, 1, 2, 3] and len({e.latents for e in entries}) == 1
    assert len({e.seed for e in entries}) == 4
    for k, e in enumerate(entries):
        assert studio.catalog.get(e.id) == e
        recipe = read_recipe(studio.path_of(e))
        assert recipe["seed"] == e.seed and recipe["rank"] == k + 1 and recipe["prompt"] == [PROMPT]
        assert recipe["score"] == pytest.approx(e.score, abs=1e-6)
        assert recipe["clip_model"] == f"{TINY_CLIP}/random-0"
    assert reproduce_file(studio.path_of(entries[0]), studio.model).identical
    # the 12 generated pictures, of which these are the best (rank's table lists all)
    table = (studio.out / entries[0].file).parent.parent / "ranking.csv"
    assert len(table.read_text().splitlines()) == 1 + 12


def test_prompt_latents_paint_the_same_pixels_as_their_files(studio, prompt_run):
    entries, _ = prompt_run
    for e in entries:
        w = studio.w_of(e)
        assert np.array_equal(w, map_seeds(studio.model.G_ema, [e.seed], 0.7, None, None, studio.device)[0]), e
        assert np.array_equal(painted(studio, e), pixels_of(studio.path_of(e))), e


def test_paint_prompt_reports_progress_up_to_one(prompt_run):
    _, calls = prompt_run
    fractions = [f for f, _ in calls]
    assert len(calls) >= 3 and all(isinstance(d, str) and d for _, d in calls)
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == 1.0
    assert all(0 <= f <= 1 for f in fractions)
    assert any("ranking" in d for _, d in calls)


def test_paint_prompt_limits(studio):
    top_cpu = MAX_IMAGES["cpu"]
    assert studio.max_images == top_cpu and studio.default_images <= top_cpu
    refused(
        studio,
        lambda: studio.paint_prompt(PROMPT, top_cpu + 1, 0.7, 4),
        rf"^Pictures to generate must be between 1 and {top_cpu} on this CPU, not {top_cpu + 1}\.$",
    )
    refused(
        studio,
        lambda: studio.paint_prompt(PROMPT, 0, 0.7, 1),
        r"^Pictures to generate must be between 1 and .* not 0\.",
    )
    refused(studio, lambda: studio.paint_prompt(PROMPT, 5, 0.7, 6), r"^Keep the best must be between 1 and 5, not 6\.$")
    refused(
        studio,
        lambda: studio.paint_prompt(PROMPT, 100, 0.7, MAX_TOP + 1),
        rf"^Keep the best must be between 1 and {MAX_TOP}, not {MAX_TOP + 1}\.$",
    )
    refused(studio, lambda: studio.paint_prompt(PROMPT, 5, 0.7, 0), r"^Keep the best must be between 1 and 5, not 0\.$")
    refused(studio, lambda: studio.paint_prompt(PROMPT, 5, -1.5, 2), r"^ψ must be between -1 and 2, not -1\.5\.$")
    refused(studio, lambda: studio.paint_prompt("   ", 5, 0.7, 2), r"prompt is empty|phrase is empty", error=UserError)


@pytest.fixture
def offline_studio(model_file, tmp_path, monkeypatch) -> Studio:
    """The default CLIP (ViT-B-32, openai) on a machine without its weights and offline."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported earlier in this session: its cache folder is already fixed
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return Studio(StudioConfig(model=model_file, out=tmp_path / "out", device="cpu"))


def test_without_clip_weights_prompts_say_what_to_do_and_seeds_still_work(offline_studio):
    studio = offline_studio
    note = studio.clip_status()
    assert note is not None and "--clip-weights" in note and "ViT-B-32 (openai)" in note
    message = refused(studio, lambda: studio.paint_prompt(PROMPT, 5, 0.7, 2), r"--clip-weights")
    assert message == note and "pictures by seed work without it" in message
    refused(studio, lambda: studio.guide(1, PROMPT, "adam", 2), r"There is no picture #1")
    entry = studio.paint_seed(3, 0.7)
    assert entry.id == 1 and studio.path_of(entry).is_file()
    refused(studio, lambda: studio.guide(entry.id, PROMPT, "adam", 2), r"--clip-weights")  # asked again: same answer


# ---------------------------------------------------------------------------------------
# mix


def test_mix_catalog_numbers_and_seeds(studio, seed_entry):
    grid, cells = studio.mix(f"#{seed_entry.id}, s5", "s4; s6", "fine", psi=0.7)
    assert grid.is_file() and grid.is_relative_to(studio.out)
    with Image.open(grid) as im:
        assert im.width > 2 * 32 and im.height > 2 * 32
    assert len(cells) == 4 and {c.kind for c in cells} == {"mix"}
    assert [c.row for c in cells] == [0, 1, 2, 3] and len({c.latents for c in cells}) == 1
    assert [studio.path_of(c).name for c in cells] == ["F1-S1.png", "F2-S1.png", "F1-S2.png", "F2-S2.png"]
    for c in cells:
        assert studio.catalog.get(c.id) == c
        assert np.array_equal(painted(studio, c), pixels_of(studio.path_of(c))), c
    G = studio.model.G_ema
    form = studio.w_of(seed_entry)
    style = map_seeds(G, [4], 0.7, None, None, studio.device)[0]
    w = studio.w_of(cells[0])  # F1-S1: the catalog picture's coarse and middle layers, seed 4's fine ones
    assert np.array_equal(w[:4], form[:4]) and np.array_equal(w[4:], style[4:])
    recipe = read_recipe(studio.path_of(cells[0]))
    assert (
        recipe["form"]["catalog"] == seed_entry.id and recipe["style"]["seed"] == 4 and recipe["layers"] == [4, 5, 6, 7]
    )
    assert reproduce_file(studio.path_of(cells[0]), studio.model).identical


@pytest.mark.parametrize(
    "layers, custom, expected",
    [
        ("coarse", "", [0, 1, 2, 3]),
        ("fine", "", [4, 5, 6, 7]),
        ("custom", "2-5", [2, 3, 4, 5]),
        ("custom", "1, 6-", [1, 6, 7]),
        ("fine", "0-7", [4, 5, 6, 7]),  # the custom range counts only when custom is chosen
    ],
)
def test_mix_takes_the_chosen_layers_from_the_style(studio, layers, custom, expected):
    _, (cell,) = studio.mix("s1", "s2", layers, custom, psi=0.7)
    G = studio.model.G_ema
    form, style = map_seeds(G, [1, 2], 0.7, None, None, studio.device)
    w = studio.w_of(cell)
    from_style = [i for i in range(G.num_ws) if np.array_equal(w[i], style[i]) and not np.array_equal(w[i], form[i])]
    from_form = [i for i in range(G.num_ws) if np.array_equal(w[i], form[i])]
    assert from_style == expected and sorted(from_form + from_style) == list(range(G.num_ws))


def test_mix_accepts_numbers_without_hash_and_prompt_picks(studio, seed_entry, prompt_run):
    best = prompt_run[0][0]
    _, cells = studio.mix(f" {seed_entry.id} ", f"#{best.id}", "coarse")
    assert len(cells) == 1
    w = studio.w_of(cells[0])
    assert np.array_equal(w[:4], studio.w_of(best)[:4]) and np.array_equal(w[4:], studio.w_of(seed_entry)[4:])


def test_mix_refuses_bad_lists(studio, seed_entry):
    for forms, styles, match in [
        ("", "s1", r"^Choose at least one form: catalog numbers such as 12, or seeds such as s7\.$"),
        (" , ;", "s1", r"Choose at least one form:"),
        ("s1", "", r"Choose at least one style:"),
        (
            ",".join(f"s{i}" for i in range(MAX_GRID + 1)),
            "s1",
            rf"^At most {MAX_GRID} forms per grid, not {MAX_GRID + 1}\.$",
        ),
        ("s1", ",".join(f"s{i}" for i in range(MAX_GRID + 1)), rf"At most {MAX_GRID} styles per grid"),
        ("#99999", "s1", r"^There is no picture #99999 in the catalog\.$"),
        ("s1", "99999", r"There is no picture #99999"),
        ("x7", "s1", r"^'x7' is not a catalog number such as 12 or #12\.$"),
        ("sx", "s1", r"^'sx' is neither a catalog number such as 12 nor a seed such as s7\.$"),
    ]:
        refused(studio, lambda forms=forms, styles=styles: studio.mix(forms, styles, "fine"), match)
    # the largest grid is allowed
    _, cells = studio.mix(",".join(f"s{i}" for i in range(MAX_GRID)), "s1", "fine")
    assert len(cells) == MAX_GRID


def test_mix_refuses_bad_layers(studio):
    refused(
        studio,
        lambda: studio.mix("s1", "s2", "everything"),
        r"^Layers must be one of auto, coarse, middle, fine or custom, not 'everything'\.$",
    )
    refused(
        studio, lambda: studio.mix("s1", "s2", "custom", "four"), r"Cannot read the layer range 'four'", error=UserError
    )
    refused(
        studio,
        lambda: studio.mix("s1", "s2", "custom", "6-9"),
        r"Layer 9 does not exist: this model has layers 0 to 7",
        error=UserError,
    )
    refused(studio, lambda: studio.mix("s1", "s2", "custom", "5-2"), r"runs backwards", error=UserError)
    # A range with no layer of this 32² model (8 layers: "middle" is empty) would give cells equal to the forms.
    refused(studio, lambda: studio.mix("s1", "s2", "middle"), r"^The layer range 'middle' names no layer of this model")
    refused(studio, lambda: studio.mix("s1", "s2", "custom", ""), r"^The layer range 'custom' names no layer")


def test_empty_number_boxes_are_refused_with_a_sentence(studio, seed_entry):
    refused(studio, lambda: studio.paint_seed(None, 0.7), r"^Enter a seed \(a whole number\)\.$")
    refused(studio, lambda: studio.paint_seed(3, None), r"^Enter ψ, e\.g\. 0\.7\.$")
    refused(studio, lambda: studio.paint_prompt("woods", None, 0.7, 4), r"^Enter how many pictures to generate")
    refused(studio, lambda: studio.paint_prompt("woods", 8, 0.7, None), r"^Enter how many to keep")
    refused(studio, lambda: studio.finish(seed_entry.id, None, 99.9, "auto", 0), r"^Enter both percentiles")


def test_mix_refuses_a_picture_without_a_latent(studio):
    bare = studio.catalog.add("requests/nowhere/x.png", "post", studio.model.model_hash)
    refused(
        studio,
        lambda: studio.mix(f"#{bare.id}", "s1", "fine"),
        rf"^Picture #{bare.id} \(post\) has no latent to start from\.$",
    )


# ---------------------------------------------------------------------------------------
# guide and finish


def test_guide_from_a_catalog_picture(studio, seed_entry):
    calls: list[tuple[float, str]] = []
    best, plot = studio.guide(seed_entry.id, PROMPT, "adam", 3, progress=lambda f, d: calls.append((f, d)))
    assert best.kind == "guide" and best.prompt == PROMPT and isinstance(best.score, float)
    assert studio.catalog.get(best.id) == best and best.row == 0
    path = studio.path_of(best)
    recipe = read_recipe(path)
    assert recipe["kind"] == "latent" and recipe["score"] == pytest.approx(best.score, abs=1e-6)
    assert (
        recipe["search"]["steps"] == 3 and recipe["search"]["space"] == "w"
    )  # a seed's latent is the same on every layer
    assert np.array_equal(painted(studio, best), pixels_of(path))
    assert reproduce_file(path, studio.model).identical
    assert plot.is_file() and plot.name == "history.png" and plot.is_relative_to(studio.out)
    with Image.open(plot) as im:
        assert im.format == "PNG" and im.width > 100
    assert [round(f, 6) for f, _ in calls] == [round(1 / 3, 6), round(2 / 3, 6), 1.0]
    assert calls[-1][1].startswith("step 3: ")


def test_guide_genetic_from_a_mixed_picture(studio):
    _, (cell,) = studio.mix("s1", "s2", "fine")
    best, plot = studio.guide(f"#{cell.id}", PROMPT, "genetic", 2)
    assert best.kind == "guide" and plot.is_file()
    assert read_recipe(studio.path_of(best))["search"]["space"] == "wplus"  # a mixed latent differs per layer
    assert np.array_equal(painted(studio, best), pixels_of(studio.path_of(best)))


def test_guide_limits(studio, seed_entry):
    refused(
        studio,
        lambda: studio.guide(seed_entry.id, PROMPT, "adam", 0),
        rf"^Steps must be between 1 and {MAX_GUIDE_STEPS}, not 0\.$",
    )
    refused(studio, lambda: studio.guide(seed_entry.id, PROMPT, "adam", MAX_GUIDE_STEPS + 1), r"Steps must be between")
    refused(studio, lambda: studio.guide("twelve", PROMPT, "adam", 2), r"^'twelve' is not a catalog number")
    refused(
        studio,
        lambda: studio.guide(seed_entry.id, PROMPT, "sgd", 2),
        r"^Method must be one of adam, genetic, not 'sgd'\.$",
    )
    refused(studio, lambda: studio.guide(seed_entry.id, "", "adam", 2), r"empty", error=UserError)


def test_finish_writes_a_post_png_at_the_requested_size(studio, seed_entry):
    done = studio.finish(f"#{seed_entry.id}", 0.1, 99.9, "4:3", 48)
    assert done.kind == "post" and (done.seed, done.latents, done.row) == (
        seed_entry.seed,
        seed_entry.latents,
        seed_entry.row,
    )
    path = studio.path_of(done)
    assert path != studio.path_of(seed_entry) and path.suffix == ".png"
    assert path.name == studio.path_of(seed_entry).stem + "-finished.png"
    with Image.open(path) as im:
        assert im.size == (48, 36)
    recipe = read_recipe(path)
    assert recipe["kind"] == "post" and recipe["model_hash"] == studio.model.model_hash
    assert recipe["post"] == {"low": 0.1, "high": 99.9, "aspect": pytest.approx(4 / 3), "width": 48}
    assert recipe["source"]["seed"] == 42
    assert reproduce_file(path, studio.model).identical
    assert np.array_equal(studio.w_of(done), studio.w_of(seed_entry))  # a finished picture can be mixed again


@pytest.mark.parametrize(
    "aspect, width, size",
    [
        ("auto", None, (32, 25)),  # the model's 1.27, the width kept
        ("", 0, (32, 25)),
        ("1", 40, (40, 40)),
        ("2.5", None, (32, 13)),
    ],
)
def test_finish_aspect_and_width(studio, seed_entry, aspect, width, size):
    with Image.open(studio.path_of(studio.finish(seed_entry.id, 1, 99, aspect, width))) as im:
        assert im.size == size


def test_finish_refuses_bad_settings(studio, seed_entry):
    for aspect in ("wide", "4:0", "4:x"):
        refused(
            studio,
            lambda aspect=aspect: studio.finish(seed_entry.id, 0.1, 99.9, aspect, None),
            rf"^The aspect must be auto, a number such as 1\.27 or a ratio such as 4:3, not '{aspect}'\.$",
        )
    refused(
        studio, lambda: studio.finish(seed_entry.id, 50, 10, "auto", None), r"percentiles must satisfy", error=UserError
    )
    # the library's settings (PostSettings.aspect, .width), said with the labels of the page's fields
    refused(
        studio,
        lambda: studio.finish(seed_entry.id, 0.1, 99.9, "20", None),
        r"^Aspect must be between 0\.1 and 10 \(width / height\), not 20\.$",
    )
    refused(
        studio, lambda: studio.finish(seed_entry.id, 0.1, 99.9, "auto", -5), r"^Width must be between 1 and \d+ pixels"
    )
    refused(studio, lambda: studio.finish(99999, 0.1, 99.9, "auto", None), r"There is no picture #99999")


# ---------------------------------------------------------------------------------------
# confinement


def test_confined_refuses_paths_outside_the_folder(studio, tmp_path):
    inside = studio.confined("requests/x/y.png")
    assert inside == studio.out / "requests" / "x" / "y.png"
    for rel in ("../x", "requests/../../x", "/etc/passwd", str(tmp_path / "elsewhere.png"), str(studio.out.parent)):
        with pytest.raises(StudioError, match=r"is outside the studio's folder\.$"):
            studio.confined(rel)
    assert studio.confined(str(studio.out / "catalog.sqlite")) == studio.out / "catalog.sqlite"  # absolute but inside


def test_a_symlink_out_of_the_folder_is_refused(studio, seed_entry, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(studio.path_of(seed_entry), outside / "seed.png")
    link = studio.out / "link"
    link.symlink_to(outside, target_is_directory=True)
    try:
        with pytest.raises(StudioError, match="outside"):
            studio.confined("link/seed.png")
    finally:
        link.unlink()


@pytest.fixture
def opened_files():
    """Paths opened by this process while the test runs (an audit hook; hooks cannot be removed,
    so one is installed once and records only while a test holds the list)."""
    state = _AUDIT
    if not state["installed"]:

        def hook(event, args):
            log = state["log"]
            if event == "open" and log is not None and args and isinstance(args[0], (str, bytes, os.PathLike)):
                log.append(os.fsdecode(args[0]))

        sys.addaudithook(hook)
        state["installed"] = True
    state["log"] = []
    yield state["log"]
    state["log"] = None


_AUDIT: dict = {"installed": False, "log": None}


def test_catalog_rows_pointing_outside_are_refused_never_read(studio, seed_entry, tmp_path, opened_files):
    # a readable picture and latents file outside the folder, as a tampered catalog might name them
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(studio.path_of(seed_entry), outside / "seed.png")
    shutil.copy(studio.confined(seed_entry.latents), outside / "latents.npz")
    rel = Path(os.path.relpath(outside, studio.out)).as_posix()  # ../../<this test's folder>/outside
    assert rel.startswith("../")
    h = studio.model.model_hash
    rows = [
        studio.catalog.add(
            file="../../etc/passwd", kind="seed", model_hash=h, seed=1, latents="../../etc/passwd", row=0
        ),
        studio.catalog.add(
            file=str(outside / "seed.png"),
            kind="seed",
            model_hash=h,
            seed=1,
            latents=str(outside / "latents.npz"),
            row=0,
        ),
        studio.catalog.add(
            file=f"{rel}/seed.png", kind="seed", model_hash=h, seed=1, latents=f"{rel}/latents.npz", row=0
        ),
    ]
    opened_files.clear()
    for row in rows:
        for call in (
            studio.path_of,
            studio.w_of,
            lambda e: studio.finish(e.id, 0.1, 99.9, "auto", None),
            lambda e: studio.mix(f"#{e.id}", "s1", "fine"),
            lambda e: studio.mix("s1", str(e.id), "fine"),
            lambda e: studio.guide(e.id, PROMPT, "adam", 2),
        ):
            refused(studio, lambda call=call, row=row: call(row), r"is outside the studio's folder\.$")
    leaked = [p for p in opened_files if "passwd" in p or str(outside) in p]
    assert leaked == [], leaked
    studio.w_of(seed_entry)  # the hook does see what the studio reads
    assert str(studio.confined(seed_entry.latents)) in opened_files


# ---------------------------------------------------------------------------------------
# start-up


def test_a_missing_model_stops_the_studio_with_one_sentence(tmp_path):
    with pytest.raises(UserError) as info:
        Studio(StudioConfig(model=tmp_path / "nope.safetensors", out=tmp_path / "out", device="cpu"))
    message = str(info.value)
    assert message == f"Model file {tmp_path / 'nope.safetensors'} does not exist."
    assert not (tmp_path / "out").exists()  # nothing made before the model loaded


@pytest.mark.parametrize(
    "name, content",
    [
        ("bad.safetensors", b"this is not a model at all"),
        ("empty.safetensors", b""),
        ("bad.pkl", b"\x80\x04not a pickle"),
        ("model.txt", b"hello"),
    ],
)
def test_a_corrupt_model_stops_the_studio_with_one_sentence(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as info:
        Studio(StudioConfig(model=path, out=tmp_path / "out", device="cpu"))
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and str(path) in message, message
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# the page's words


def test_a_library_setting_error_names_the_field_by_its_label(studio, seed_entry, monkeypatch):
    """The library names its setting (`aspect`); the page says the label of its field."""
    import ganscapes.studio.core as post  # where the studio looks PostSettings up

    def refuse(setting):
        def settings(**kwargs):
            raise SettingError(setting, "must be between 0.1 and 10 (width / height), not 20.")

        return settings

    monkeypatch.setattr(post, "PostSettings", refuse("aspect"))
    refused(
        studio,
        lambda: studio.finish(seed_entry.id, 0.1, 99.9, "20", None),
        r"^Aspect must be between 0\.1 and 10 \(width / height\), not 20\.$",
    )
    # a setting the page does not show is the studio's own choice: the library's words stay
    monkeypatch.setattr(post, "PostSettings", refuse("batch"))
    refused(studio, lambda: studio.finish(seed_entry.id, 0.1, 99.9, "20", None), r"^batch must be", error=SettingError)


def test_every_label_is_a_field_of_the_page():
    import re

    import ganscapes.studio.app as app

    labels = re.findall(r'label="([^"]+)"', Path(app.__file__).read_text(encoding="utf-8"))
    for setting, label in FIELD_LABELS.items():
        assert any(shown == label or shown.startswith(label + " ") for shown in labels), (setting, label)


def test_a_repainted_seed_and_psi_is_the_same_catalog_entry(studio):
    first = studio.paint_seed(40, 0.55)
    rows = len(studio.catalog)
    assert studio.paint_seed("40", 0.55) == first and len(studio.catalog) == rows
    grid = studio.paint_seeds([40, 41], 0.55)
    assert grid[0] == first and grid[1].seed == 41 and len(studio.catalog) == rows + 1
    refused(studio, lambda: studio.paint_seeds(list(range(17)), 0.55), r"^A seed grid has 1 to 16 seeds\.$")


def test_about_a_picture_gives_its_recipe_score_parents_and_command(studio, seed_entry):
    facts = studio.about(seed_entry.id, "autumn woods")
    assert facts.parents == f"seed {seed_entry.seed} at ψ {seed_entry.psi:g}"
    assert ("kind", "generate: one seed through the mapping network") in facts.rows
    (what, line), *_ = facts.commands
    words = shlex.split(line)
    assert words == [
        "ganscapes",
        "reproduce",
        str(studio.path_of(seed_entry)),
        "--model",
        str(studio.cfg.model.resolve()),
    ]
    assert facts.score is not None and facts.prompt == "autumn woods"
    cells = studio.mix(f"#{seed_entry.id}", "s3", "fine", "", 0.7)[1]
    assert studio.about(cells[0].id).parents == f"form × style: #{seed_entry.id} × s3"
