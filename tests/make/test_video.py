"""video: latent walks — the interpolation, the MP4 and its recipe, reproduce --frame, the command (tiny 16² models)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import save_model
from ganscapes.make import video
from ganscapes.make.generate import generate_images
from ganscapes.make.latents import LatentSet
from ganscapes.make.recipes import MAX_VIDEO_FRAMES, VideoRecipe, parse_recipe
from ganscapes.make.reproduce import reproduce_file
from ganscapes.make.seeds import map_seeds
from ganscapes.make.video import (
    Walk,
    ease,
    frame_count,
    keyframe_sources,
    latent_walk,
    lerp,
    position,
    read_video_recipe,
    reproduce_frame,
    slerp,
)
from ganscapes.provenance import read_recipe

from helpers_clip import assert_error, run_cli
from helpers_models import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16)  # num_ws 6, aspect 1.27


@pytest.fixture(scope="module")
def walk_z(model, tmp_path_factory):
    """A looping walk in z through seeds 1, 5, 9 (3 frames each), with previews and PNG frames."""
    out = tmp_path_factory.mktemp("walk") / "walk.mp4"
    result = latent_walk(
        model, [1, 5, 9], out, frames=3, loop=True, gif=True, webp=True, keep_frames=True, progress=False
    )
    return result


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def recipe_of(model, keys, **settings) -> VideoRecipe:
    walk = {"space": "z", "frames": 4, "loop": False, "easing": "linear", **settings}
    sources = keyframe_sources(keys, model, walk["space"], 1.0, None, None)
    return VideoRecipe(model_hash=model.model_hash, keyframes=sources, **walk)


# ---------------------------------------------------------------------------------------
# the interpolation


def test_slerp_ends_exactly_on_its_endpoints_and_keeps_the_norm_of_equal_vectors():
    rng = np.random.RandomState(0)
    a, b = rng.randn(512), rng.randn(512)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    assert np.array_equal(slerp(a, b, 0.0), a)
    assert np.array_equal(slerp(a, b, 1.0), b)
    norms = [np.linalg.norm(slerp(a, b, t)) for t in np.linspace(0, 1, 11)]
    assert np.allclose(norms, np.linalg.norm(a), rtol=1e-12)
    # a chord would cut the corner: its middle is about 1/√2 as long for near-orthogonal z
    assert np.linalg.norm(lerp(a, b, 0.5)) < 0.8 * np.linalg.norm(a)


def test_slerp_of_parallel_or_zero_vectors_is_the_straight_line():
    a = np.ones(8)
    assert np.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)
    assert np.allclose(slerp(np.zeros(8), a, 0.25), 0.25 * a)


def test_easing_keeps_its_ends_and_never_goes_back():
    t = np.linspace(0, 1, 101)
    for easing in ("linear", "smooth"):
        e = ease(t, easing)
        assert e[0] == 0.0 and e[-1] == 1.0
        assert np.all(np.diff(e) >= 0)
    smooth = ease(t, "smooth")
    assert smooth[1] < t[1] and smooth[50] == pytest.approx(0.5)  # slow near the keyframes


def test_positions_of_an_open_and_a_looping_walk():
    assert frame_count(3, 4, loop=False) == 9
    assert frame_count(3, 4, loop=True) == 12
    assert position(0, 3, 4, False) == (0, 1, 0.0)
    assert position(5, 3, 4, False) == (1, 2, 0.25)
    assert position(8, 3, 4, False) == (2, 2, 0.0)  # the last keyframe closes an open walk
    assert position(11, 3, 4, True) == (2, 0, 0.75)  # a loop walks back towards the first


def test_keyframes_are_exact_frames_in_z_and_the_loop_does_not_repeat_the_first(model):
    G = model.G_ema
    recipe = recipe_of(model, [1, 5, 9], loop=True)
    walk = Walk(recipe, G, "cpu")
    total = recipe.frame_count()
    ws = walk.ws(list(range(total)))
    keys = map_seeds(G, [1, 5, 9], 1.0, None, None, "cpu")
    for k in range(3):
        assert np.array_equal(ws[4 * k], keys[k])  # each transition starts on its keyframe, bit for bit
    assert not np.array_equal(ws[-1], ws[0])  # the last frame before the wrap is on its way back
    assert np.abs(ws[-1] - ws[0]).max() < np.abs(ws[4 * 2] - ws[0]).max()  # and close to the first
    # a frame's w does not depend on the frames painted with it
    assert np.array_equal(walk.ws([5])[0], ws[5])


def test_a_walk_in_w_is_the_straight_line_between_the_keyframe_ws(model):
    G = model.G_ema
    recipe = recipe_of(model, [1, 5], space="w", frames=4)
    ws = Walk(recipe, G, "cpu").ws(list(range(recipe.frame_count())))
    a, b = map_seeds(G, [1, 5], 1.0, None, None, "cpu")
    assert np.array_equal(ws[0], a) and np.array_equal(ws[-1], b)
    assert np.allclose(ws[1], 0.75 * a + 0.25 * b, atol=1e-6)
    assert np.allclose(ws[2], (a + b) / 2, atol=1e-6)


def test_a_walk_on_some_layers_keeps_the_other_rows_of_the_first_keyframe(model):
    G = model.G_ema
    recipe = recipe_of(model, [1, 5, 9], layers=[4, 5], space="z")
    walk = Walk(recipe, G, "cpu")
    ws = walk.ws(list(range(recipe.frame_count())))
    first = walk.keys_w[0]
    assert np.array_equal(ws[:, :4], np.broadcast_to(first[:4], ws[:, :4].shape))
    assert not np.array_equal(ws[3, 4:], first[4:])  # the fine rows do travel
    assert np.array_equal(ws[-1, 4:], walk.keys_w[2][4:])


# ---------------------------------------------------------------------------------------
# the MP4, its recipe and reproduce


def test_the_mp4_decodes_to_every_frame_at_the_models_size(walk_z):
    frames = decode(walk_z.video)
    assert walk_z.frames == len(frames) == 9  # 3 keyframes x 3, looping
    assert frames[0].shape == (16, 16, 3)
    assert [p.suffix for p in walk_z.previews] == [".gif", ".webp"] and all(p.is_file() for p in walk_z.previews)
    assert len(walk_z.frame_files) == 9
    assert not list(walk_z.video.parent.glob(".*"))  # no temporary file left


def test_the_recipe_round_trips_from_the_mp4_tag_and_from_the_json(walk_z):
    from_mp4 = read_video_recipe(walk_z.video)
    from_json = read_video_recipe(walk_z.recipe)
    assert from_mp4 == from_json == json.loads(walk_z.recipe.read_text())
    typed = parse_recipe(from_mp4)
    assert isinstance(typed, VideoRecipe)
    assert typed.to_json() == from_mp4  # every field read back, the version kept
    assert [k.seed for k in typed.keyframes] == [1, 5, 9] and typed.loop and typed.frames == 3
    assert len(typed.digests) == 9 and typed.noise_mode == "const"


def test_reproduce_frame_rebuilds_the_frames_the_video_painted(model, walk_z):
    for source in (walk_z.video, walk_z.recipe):
        result = reproduce_frame(source, 4, model)
        assert result.identical, (result.digest, result.expected)
    kept = reproduce_file(walk_z.frame_files[4], model)  # the lossless PNG carries its own recipe
    assert kept.identical
    assert np.array_equal(reproduce_frame(walk_z.video, 4, model).pixels, kept.original)
    assert read_recipe(walk_z.frame_files[4])["frame"] == 4


def test_a_posted_walk_in_w_from_a_latents_file_is_finished_and_reproduced(model, tmp_path):
    gen = generate_images(model, [3, 4], psi=0.7, out=tmp_path / "gen", progress=False)
    out = tmp_path / "posted.mp4"
    result = latent_walk(
        model, [f"{gen.latents}:1", 7, f"{gen.latents}:0"], out, frames=2, space="w", post=True, progress=False
    )
    assert result.size == (16, 13)  # 16 / 1.27, the training data's aspect
    frames = decode(out)
    assert len(frames) == 5 and frames[0].shape == (14, 16, 3)  # x264 wants even sides: one edge row added
    recipe = parse_recipe(read_video_recipe(out))
    assert recipe.keyframes[0].row == 1 and recipe.keyframes[0].w is not None and recipe.keyframes[1].seed == 7
    assert np.array_equal(recipe.keyframes[0].w, LatentSet.load(gen.latents, [1]).w[0])
    assert reproduce_frame(out, 3, model).identical
    with pytest.raises(UserError, match="frame must be from 0 to 4"):
        reproduce_frame(out, 5, model)


def test_random_noise_frames_are_rebuilt_from_their_kept_pngs(model, tmp_path):
    out = tmp_path / "boil.mp4"
    result = latent_walk(model, [1, 2], out, frames=3, noise_mode="random", keep_frames=True, progress=False)
    assert reproduce_file(result.frame_files[2], model).identical
    with pytest.raises(UserError, match="random noise"):
        reproduce_frame(out, 2, model)


# ---------------------------------------------------------------------------------------
# refusals: one sentence each


@pytest.mark.parametrize(
    "keys, settings, message",
    [
        ([1, 2], {"frames": 0}, "frames must be from 1 to 1000 per transition, not 0."),
        (list(range(12)), {"frames": 1000}, "frames 1000 per transition between 12 keyframes make 11,001 frames"),
        ([1, 2], {"easing": "bouncy"}, "easing must be one of linear, smooth, not 'bouncy'."),
        ([1, 2], {"space": "x"}, "space must be one of z, w, not 'x'."),
        ([1], {}, "A walk needs at least 2 keyframes"),
        (list(range(101)), {}, "A walk has at most 100 keyframes, not 101."),
        (["missing.npz:0"], {}, "The latents file missing.npz does not exist."),
        ([1, 2], {"fps": 0}, "fps must be from 1 to 120, not 0."),
        ([1, 2], {"layers": []}, "layers names no layer, so nothing would move"),
        ([1, 2], {"layers": [9]}, "Layer 9 does not exist: this model has layers 0 to 5."),
    ],
)
def test_bad_walks_are_refused_in_one_sentence(model, tmp_path, monkeypatch, keys, settings, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        latent_walk(model, keys, tmp_path / "v.mp4", progress=False, **settings)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "v.mp4").exists()


def test_total_frames_and_pixels_are_bounded(model, tmp_path, monkeypatch):
    with pytest.raises(UserError, match=f"more than {MAX_VIDEO_FRAMES:,}"):
        latent_walk(model, list(range(12)), tmp_path / "v.mp4", frames=1000, progress=False)
    monkeypatch.setattr(video, "MAX_VIDEO_PIXELS", 16 * 16 * 10)  # ten frames of 16²
    with pytest.raises(UserError, match=r"frames 6 per transition make 13 frames of 16 x 16 pixels, more than 2,560"):
        latent_walk(model, [1, 2, 3], tmp_path / "v.mp4", frames=6, progress=False)
    assert latent_walk(model, [1, 2, 3], tmp_path / "v.mp4", frames=4, progress=False).frames == 9


def test_bad_latents_rows_and_files_without_z_are_refused(model, tmp_path):
    gen = generate_images(model, [3, 4], out=tmp_path / "gen", progress=False)
    with pytest.raises(UserError, match=r"Row 7 is not in .*latents.npz, which has rows 0 to 1\."):
        latent_walk(model, [f"{gen.latents}:7", 1], tmp_path / "v.mp4", progress=False)
    no_seeds = LatentSet(LatentSet.load(gen.latents).w, model_hash=model.model_hash).save(tmp_path / "w.npz")
    with pytest.raises(UserError, match="holds no seeds, so its rows have no z to walk through; use --space w"):
        latent_walk(model, [f"{no_seeds}:0-1"], tmp_path / "v.mp4", progress=False)
    assert latent_walk(model, [f"{no_seeds}:0-1"], tmp_path / "v.mp4", frames=1, space="w", progress=False).frames == 2
    many = LatentSet(np.zeros([150, 6, 32], np.float32)).save(tmp_path / "many.npz")
    with pytest.raises(UserError, match=r"A walk has at most 100 keyframes; .*many.npz names 150 more\."):
        latent_walk(model, [1, str(many)], tmp_path / "v.mp4", space="w", progress=False)


def test_damaged_video_recipes_are_refused_by_field(walk_z, tmp_path):
    raw = read_video_recipe(walk_z.recipe)
    for field, value, message in [
        ("frames", 10**6, "The recipe's frames must be a whole number from 1 to 1000"),
        ("keyframes", [], "The recipe's keyframes must be a list of 2 to 100 latents"),
        ("digests", ["zz"], "The recipe's digests must be a list of 9 hexadecimal SHA-256 prefixes"),
        ("easing", "wobbly", "The recipe's easing must be one of linear, smooth"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_recipe({**raw, field: value})
    (tmp_path / "x.json").write_text(json.dumps({"kind": "generate", "seed": 1}))
    with pytest.raises(UserError, match="is of kind 'generate', not a video's"):
        read_video_recipe(tmp_path / "x.json")


# ---------------------------------------------------------------------------------------
# the command


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, model)
    return path


def test_video_and_reproduce_frame_from_the_command_line(model_file, model, tmp_path, monkeypatch, capsys):
    gen = generate_images(model, [3, 4], out=tmp_path / "gen", progress=False)
    out = tmp_path / "film" / "walk.mp4"
    args = ["video", "--model", model_file, "--out", out, "--latents", f"{gen.latents}:1", "--seeds", "2,8"]
    code = run_cli(monkeypatch, *args, "--frames", "2", "--layers", "fine", "--easing", "linear", "--gif")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "5 frames of 16x16 at 24 fps" in captured.out
    recipe = parse_recipe(read_video_recipe(out))
    # the keyframes in the order the options were given: the file's row first
    assert [k.seed for k in recipe.keyframes] == [4, 2, 8] and recipe.layers == [3, 4, 5]  # fine at 16²: the upper half
    assert out.with_suffix(".gif").is_file() and len(decode(out)) == 5

    rebuilt = tmp_path / "rebuilt"
    code = run_cli(monkeypatch, "reproduce", out, "--model", model_file, "--frame", "3", "--out", rebuilt)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{out} frame 3: identical" in captured.out
    assert reproduce_file(rebuilt / "walk_frame00003.png", model).identical  # the rebuilt PNG carries its recipe

    code = run_cli(monkeypatch, "reproduce", out.with_suffix(".json"), "--model", model_file, "--frame", "9")
    assert code == 1
    assert_error(capsys.readouterr().err, "--frame must be from 0 to 4 (the video has 5 frames), not 9.", alone=False)


def test_video_command_refusals(model_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v.mp4"
    cases = [
        (["--seeds", "1,2", "--easing", "bouncy"], None),
        (["--latents", "nowhere.npz:0", "--seeds", "1"], "The latents file nowhere.npz does not exist."),
        (["--seeds", "1,2", "--frames", "5000"], "--frames must be from 1 to 1000 per transition, not 5000."),
        ([], "Give the keyframes with --seeds 1,5,9 and/or --latents FILE.npz:ROWS."),
        (
            ["--seeds", "1,2", "--layers", "none"],
            "--layers none names no layer, so nothing would move; use fine, auto, all or 8-.",
        ),
    ]
    monkeypatch.chdir(tmp_path)
    for extra, message in cases:
        code = run_cli(monkeypatch, "video", "--model", model_file, "--out", out, "--device", "cpu", *extra)
        err = capsys.readouterr().err
        if message is None:
            assert code == 2 and "bouncy" in err  # Click's own refusal of an unknown choice
        else:
            assert code == 1, err
            assert_error(err, message, alone=False)
    assert not out.exists()
    assert run_cli(monkeypatch, "video", "--model", model_file, "--out", "v.gif", "--seeds", "1,2") == 1
    assert_error(capsys.readouterr().err, "--out must be an .mp4 file, not v.gif.")
    assert run_cli(monkeypatch, "reproduce", "gone.mp4", "--model", model_file, "--frame", "0") == 1
    assert_error(capsys.readouterr().err, "gone.mp4 does not exist.")
    assert run_cli(monkeypatch, "reproduce", "walk.mp4", "--model", model_file) == 1
    assert_error(capsys.readouterr().err, "Name the frame of walk.mp4 to rebuild with --frame N (from 0).")
    assert run_cli(monkeypatch, "reproduce", "seed0001.png", "--model", model_file, "--frame", "1") == 1
    assert_error(capsys.readouterr().err, "--frame is for videos (VIDEO.mp4 or VIDEO.json), not seed0001.png.")


def test_a_frame_is_the_same_on_its_own_as_in_its_batch(model, tmp_path):
    """The frames of one batch are painted in one call; rebuilt alone, each is the same (ROW_GROUP padding)."""
    torch.manual_seed(0)
    result = latent_walk(model, [11, 12], tmp_path / "b.mp4", frames=7, batch=8, keep_frames=True, progress=False)
    for k in (0, 3, 7):
        assert reproduce_file(result.frame_files[k], model).identical


def test_info_describes_a_video_and_a_kept_frame(model_file, model, tmp_path, monkeypatch, capsys):
    result = latent_walk(model, [1, 2], tmp_path / "w.mp4", frames=2, layers=[4, 5], keep_frames=True, progress=False)
    assert run_cli(monkeypatch, "info", result.video) == 0
    out = capsys.readouterr().out
    assert "video: a latent walk" in out and "seeds 1, 2" in out and "3 frames" in out
    assert f"ganscapes reproduce {result.video} --frame 0 --model MODEL" in out
    assert run_cli(monkeypatch, "info", result.frame_files[1]) == 0
    out = capsys.readouterr().out
    assert "video: frame 1 of a latent walk" in out and "4-5 move" in out
    assert run_cli(monkeypatch, "info", result.recipe, "--json") == 0
    assert json.loads(capsys.readouterr().out) == read_video_recipe(result.video)
