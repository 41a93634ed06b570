"""The studio against hostile requests: other web sites, huge bodies, uploads, and values no page would send.

Uploads: the Project tab takes one picture, so the upload route takes exactly one PNG,
JPEG or WebP of bounded bytes and pixels with a plain file name; oversized bodies, other
files, several files and names with paths are refused before Gradio stores anything, and
the handler reads only files inside Gradio's upload folder, checked again before decoding.

Two levels. The page's handlers (`Handlers`, which Gradio calls with the values as the
browser sent them) are called directly with out-of-range, non-finite, huge and mistyped
values: each must answer with a sentence for the page, raise nothing, print no traceback
and leave nothing behind. The real server (`launch(block=False)`, in this process, on a
free localhost port) is sent what any web page the user visits could send it: uploads and
jobs from another origin, bodies too large, a foreign Host name; each must be refused
before Gradio stores or runs anything.
"""

from __future__ import annotations

import http.client
import importlib.util
import io
import json
import math
import re
import socket
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from ganscapes.gan.checkpoint import save_model
from ganscapes.studio import core
from ganscapes.studio.app import KEEP, Handlers, launch
from ganscapes.studio.core import (
    MAX_FINISH_WIDTH,
    MAX_SEED,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_PIXELS,
    Studio,
    StudioConfig,
)
from ganscapes.studio.guard import MAX_BODY_BYTES

from helpers_models import tiny_model
from helpers_tinyclip import TINY_CLIP, register_tiny_clip

FAILED = "Could not do that: "


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these networks are tiny; a server thread shares the cores
    register_tiny_clip()
    folder = tmp_path_factory.mktemp("hostile-studio")
    save_model(folder / "tiny.safetensors", tiny_model(res=32, seed=0))
    yield Studio(
        StudioConfig(
            model=folder / "tiny.safetensors",
            out=folder / "out",
            device="cpu",
            clip_model=TINY_CLIP,
            clip_pretrained="random",
        )
    )
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def picture(studio):
    return studio.paint_seed(5, 0.7)


def page_text(markdown: str) -> str:
    """What a Markdown status shows: bold marks go, and the punctuation the handlers escape is shown as itself."""
    return re.sub(r"\\(.)|\*\*", lambda m: m.group(1) or "", markdown)


def request_folders(studio) -> set:
    folder = studio.out / "requests"
    return set(folder.iterdir()) if folder.is_dir() else set()


def assert_in_page(studio, capfd, call, match: str):
    """`call()` returns outputs whose last is a refusal matching `match`, prints no traceback, and
    adds nothing to the catalog or the output folder."""
    rows, folders = len(studio.catalog), request_folders(studio)
    capfd.readouterr()
    outputs = call()  # raises nothing
    status = outputs[-1]
    assert isinstance(status, str) and page_text(status).startswith(FAILED), status
    sentence = page_text(status).removeprefix(FAILED)
    assert re.search(match, sentence), sentence
    assert "\n" not in sentence and len(sentence) < 300, sentence
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
    assert len(studio.catalog) == rows, "a refused request was cataloged"
    assert request_folders(studio) == folders, "a refused request left a folder behind"
    return sentence


# ---------------------------------------------------------------------------------------
# the handlers, with values no page would send


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    "forms, styles, layers, custom, psi, match",
    [
        ("s99999999999", "s1", "fine", "", 0.7, r"^Forms \(columns\): seeds run from s0 to s4294967295, not s99999"),
        ("s1", "s-1", "fine", "", 0.7, r"^Styles \(rows\): seeds run from s0 to s4294967295, not s-1\.$"),
        ("s1", "s" + "9" * 500, "fine", "", 0.7, r"^'s9{20,}…' is neither a catalog number"),
        ("s1", "s2", "fine", "", NAN, r"^Enter ψ as a number, not nan\.$"),
        ("s1", "s2", "fine", "", INF, r"^Enter ψ as a number, not inf\.$"),
        ("s1", "s2", "fine", "", "lots", r"^Enter ψ as a number, not 'lots'\.$"),
        ("s1", "s2", "fine", "", 5, r"^ψ must be between -1 and 2, not 5\.$"),
        (
            "s1",
            "s2",
            "custom",
            "9" * 5000,
            0.7,
            r"^Custom layer range must be at most 100 characters long, not 5,000\.$",
        ),
        ("s1", "s2", "custom", "99999999999999999999-", 0.7, r"^Layer 99999999999999999999 does not exist"),
        ("s1", "s2", ["fine"], "", 0.7, r"^Layers taken from the style must be text, not list\.$"),
        ([1, 2], "s2", "fine", "", 0.7, r"^Forms \(columns\) must be text, not list\.$"),
        ("s1", "1," * 5000, "fine", "", 0.7, r"^Styles \(rows\) must be at most 1,000 characters long"),
        ("99999999999999999999999", "s1", "fine", "", 0.7, r"^There is no picture #99999999999999999999999 in"),
        ("-3", "s1", "fine", "", 0.7, r"^There is no picture #-3 in the catalog\.$"),
    ],
)
def test_mix_with_hostile_values_is_a_message_in_the_page(studio, capfd, forms, styles, layers, custom, psi, match):
    assert_in_page(studio, capfd, lambda: Handlers(studio).mix(forms, styles, layers, custom, psi), match)


@pytest.mark.parametrize(
    "seed, psi, match",
    [
        (99999999999, 0.7, rf"^Seed must be between 0 and {MAX_SEED}, not 99999999999\.$"),
        ("s99999999999", 0.7, r"^Enter a seed as a whole number, not 's99999999999'\.$"),
        pytest.param(10**5000, 0.7, r"^Seed must be between 0 and \d+, not a 5001-digit number\.$", id="10**5000"),
        ("9" * 5000, 0.7, r"^Enter a seed as a whole number, not '9{20,}…'\.$"),
        (INF, 0.7, r"^Enter a seed as a whole number, not inf\.$"),
        (NAN, 0.7, r"^Enter a seed as a whole number, not nan\.$"),
        (-INF, 0.7, r"^Enter a seed as a whole number, not -inf\.$"),
        (1.5, 0.7, r"^Enter a seed as a whole number, not 1\.5\.$"),
        (True, 0.7, r"^Enter a seed as a whole number, not bool\.$"),
        ({"seed": 1}, 0.7, r"^Enter a seed as a whole number, not dict\.$"),
        (3, "abc", r"^Enter ψ as a number, not 'abc'\.$"),
        (3, NAN, r"^Enter ψ as a number, not nan\.$"),
        (3, 1e308, r"^ψ must be between -1 and 2, not 1e\+308\.$"),
    ],
)
def test_seed_with_hostile_values_is_a_message_in_the_page(studio, capfd, seed, psi, match):
    assert_in_page(studio, capfd, lambda: Handlers(studio).seed(seed, psi), match)


def test_seeds_sent_as_text_or_whole_floats_still_paint(studio):
    *_, status = Handlers(studio).seed("12", "0.5")
    assert page_text(status).startswith("Seed 12, ψ 0.5: picture #")
    *_, status = Handlers(studio).seed(12.0, 0.5)
    assert page_text(status).startswith("Seed 12, ψ 0.5: picture #")


@pytest.mark.parametrize(
    "count, keep, psi, match",
    [
        (INF, 4, 0.7, r"^Enter how many pictures to generate as a whole number, not inf\.$"),
        (NAN, 4, 0.7, r"^Enter how many pictures to generate as a whole number, not nan\.$"),
        (10**100, 4, 0.7, r"^Pictures to generate must be between 1 and 400 on this CPU, not a 101-digit number\.$"),
        ("1e9", 4, 0.7, r"^Pictures to generate must be between 1 and 400 on this CPU, not 1000000000\.$"),
        (12, 10**9, 0.7, r"^Keep the best must be between 1 and 12, not 1000000000\.$"),
        (12, NAN, 0.7, r"^Enter how many to keep as a whole number, not nan\.$"),
        (12, 4, -INF, r"^Enter ψ as a number, not -inf\.$"),
    ],
)
def test_prompt_with_hostile_values_is_a_message_in_the_page(studio, capfd, count, keep, psi, match):
    assert_in_page(studio, capfd, lambda: Handlers(studio).prompt("autumn woods", count, psi, keep), match)


def test_a_prompt_that_is_not_text_is_a_message_in_the_page(studio, capfd):
    assert_in_page(studio, capfd, lambda: Handlers(studio).prompt(["woods"], 4, 0.7, 2), r"^Prompt must be text")
    assert_in_page(studio, capfd, lambda: Handlers(studio).prompt("w" * 10_000, 4, 0.7, 2), r"longer than 300")


@pytest.mark.parametrize(
    "start, steps, method, match",
    [
        (None, NAN, "adam", r"^Enter the number of steps as a whole number, not nan\.$"),
        (None, INF, "adam", r"^Enter the number of steps as a whole number, not inf\.$"),
        (None, "many", "adam", r"^Enter the number of steps as a whole number, not 'many'\.$"),
        (None, 10**9, "adam", r"^Steps must be between 1 and 300, not 1000000000\.$"),
        ("99999999999999999999999", 2, "adam", r"^There is no picture #99999999999999999999999 in the catalog\.$"),
        (None, 2, ["adam"], r"^Method must be text, not list\.$"),
    ],
)
def test_guide_with_hostile_values_is_a_message_in_the_page(studio, picture, capfd, start, steps, method, match):
    start = picture.id if start is None else start
    assert_in_page(studio, capfd, lambda: Handlers(studio).guide(start, "autumn woods", method, steps), match)


@pytest.mark.parametrize(
    "low, high, aspect, width, match",
    [
        (0.1, 99.9, "auto", NAN, r"^Enter a width as a whole number, not nan\.$"),
        (0.1, 99.9, "auto", INF, r"^Enter a width as a whole number, not inf\.$"),
        (
            0.1,
            99.9,
            "auto",
            10**6,
            rf"^Width must be between 1 and {MAX_FINISH_WIDTH} pixels \(0: keep\), not 1000000\.$",
        ),
        (0.1, 99.9, "auto", 16384, r"^Width must be between 1 and 4096 pixels"),  # post's own limit, too large here
        (0.1, 99.9, "0.1", 4096, r"^The finished picture would be 4096 × 40960 pixels; the studio makes at most 16,7"),
        (0.1, 99.9, "nan", None, r"^The aspect must be auto, a number such as 1\.27 or a ratio such as 4:3, not 'nan'"),
        (0.1, 99.9, "1e999", None, r"^The aspect must be auto, a number"),
        (0.1, 99.9, "4:3:2", None, r"^The aspect must be auto, a number"),
        (0.1, 99.9, "1" * 5000, None, r"^Aspect must be at most 40 characters long, not 5,000\.$"),
        (0.1, 99.9, 1.27, None, r"^Aspect must be text, not 1\.27\.$"),
        ("x", 99.9, "auto", None, r"^Enter the low percentile as a number, not 'x'\.$"),
        (NAN, 99.9, "auto", None, r"^Enter the low percentile as a number, not nan\.$"),
        (0.1, INF, "auto", None, r"^Enter the high percentile as a number, not inf\.$"),
        (-5, 99.9, "auto", None, r"^Low percentile must be between 0 and 100, not -5\.$"),
        (0.1, 1e300, "auto", None, r"^High percentile must be between 0 and 100, not 1e\+300\.$"),
    ],
)
def test_finish_with_hostile_values_is_a_message_in_the_page(
    studio, picture, capfd, monkeypatch, low, high, aspect, width, match
):
    def never(*args, **kwargs):
        raise AssertionError("post_files ran: the picture's size was not checked first")

    monkeypatch.setattr(core, "post_files", never)
    assert_in_page(studio, capfd, lambda: Handlers(studio).finish(picture.id, low, high, aspect, width), match)


@pytest.mark.parametrize("aspect, width", [("auto", "4096"), ("1", 4096), ("0.25", 2048)])
def test_finish_up_to_the_largest_picture_reaches_post(studio, picture, monkeypatch, aspect, width):
    """4,096 wide at the model's 1.27, and 4,096² exactly, pass the size check (post, replaced, is reached)."""

    def post_files(*args, **kwargs):
        raise core.StudioError("Post was reached.")

    monkeypatch.setattr(core, "post_files", post_files)
    status = Handlers(studio).finish(f"#{picture.id}", 0.1, 99.9, aspect, width)[-1]
    assert page_text(status) == FAILED + "Post was reached."


@pytest.mark.parametrize(
    "keys, frames, loop, match",
    [
        ("s1, s2", NAN, True, r"^Enter the frames per transition as a whole number, not nan\.$"),
        ("s1, s2", 10**9, True, r"^Frames per transition must be between 1 and 48, not 1000000000\.$"),
        ("s1, s2", 0, True, r"^Frames per transition must be between 1 and 48, not 0\.$"),
        ("s1, s2", 4, "yes", r"^Loop back to the first must be yes or no, not 'yes'\.$"),
        ("s1", 4, True, r"^A walk needs at least 2 keyframes"),
        (",".join(f"s{i}" for i in range(13)), 4, True, r"^At most 12 keyframes per walk, not 13\.$"),
        (["s1", "s2"], 4, True, r"^Keyframes must be text, not list\.$"),
        ("s1, #99999999999999999999999", 4, True, r"^There is no picture #99999999999999999999999 in the catalog"),
        ("s1, s" + "9" * 500, 4, True, r"^'s9{20,}…' is neither a catalog number"),
    ],
)
def test_walk_with_hostile_values_is_a_message_in_the_page(studio, capfd, keys, frames, loop, match):
    assert_in_page(studio, capfd, lambda: Handlers(studio).walk(keys, frames, loop, 0.7), match)


@pytest.mark.parametrize(
    "amounts, match",
    [
        ([NAN, 0, 0, 0, 0, 0], r"^Enter the amount of direction 0 as a number, not nan\.$"),
        ([0, 100, 0, 0, 0, 0], r"^direction 1 must be between -3 and 3 σ, not 100\.$"),
        ([0, -INF, 0, 0, 0, 0], r"^Enter the amount of direction 1 as a number, not -inf\.$"),
        ([1] * 7, r"^An edit takes 6 amounts, one per slider\.$"),
        ([1], r"^An edit takes 6 amounts, one per slider\.$"),
        ([0, 0, "x" * 500, 0, 0, 0], r"^Enter the amount of direction 2 as a number, not 'x{20,}…'\.$"),
    ],
)
def test_edit_with_hostile_values_is_a_message_in_the_page(studio, picture, capfd, amounts, match):
    studio.directions()  # computed once, outside the request's check of what it leaves behind
    assert_in_page(studio, capfd, lambda: Handlers(studio).edit(picture.id, *amounts), match)


@pytest.mark.parametrize(
    "distance, count, match",
    [
        (NAN, 4, r"^Enter a distance as a number, not nan\.$"),
        (1e300, 4, r"^Distance must be between 0 and 2 \(of W's spread\), not 1e\+300\.$"),
        (-1, 4, r"^Distance must be between 0 and 2"),
        (0.3, 10**6, r"^Neighbours must be between 1 and 16, not 1000000\.$"),
        (0.3, 0, r"^Neighbours must be between 1 and 16, not 0\.$"),
        (0.3, [4], r"^Enter how many neighbours as a whole number, not list\.$"),
    ],
)
def test_more_like_this_with_hostile_values_is_a_message_in_the_page(studio, picture, capfd, distance, count, match):
    assert_in_page(studio, capfd, lambda: Handlers(studio).near(picture.id, distance, count), match)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` × `height` pixels in its header and holds none (PNG spec, §5.3 and §11.2.2)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def inbox(tmp_path) -> Path:
    return tmp_path / "uploads"


def test_project_reads_only_what_was_uploaded_and_checks_it_before_decoding(studio, capfd, inbox, tmp_path):
    inbox.mkdir()
    outside = tmp_path / "outside.png"
    outside.write_bytes(small_png())
    (inbox / "link.png").symlink_to(outside)
    (inbox / "notes.png").write_text("not a picture")
    (inbox / "huge.png").write_bytes(png_header(10_000, 10_000))
    with open(inbox / "big.png", "wb") as f:  # sparse: MAX_UPLOAD_BYTES + 1 bytes on no disk
        f.write(small_png())
        f.truncate(MAX_UPLOAD_BYTES + 1)
    on = Handlers(studio, inbox=inbox)
    not_received = r"^The upload is not a file the studio received\.$"
    for upload in (
        str(outside),
        "/etc/passwd",
        str(inbox / ".." / "outside.png"),
        str(inbox / "link.png"),
        str(inbox / "missing.png"),
        str(inbox),
        {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
        ["a.png"],
        str(inbox / "a\x00.png"),
        "x" * 10_000,
    ):
        assert_in_page(studio, capfd, lambda u=upload: on.project(u, 2, 2), not_received)
    assert_in_page(studio, capfd, lambda: on.project(None, 2, 2), r"^Choose a picture of your painting to upload")
    assert_in_page(studio, capfd, lambda: on.project(str(inbox / "notes.png"), 2, 2), r"^The upload is not a PNG, J")
    assert_in_page(
        studio,
        capfd,
        lambda: on.project(str(inbox / "huge.png"), 2, 2),
        rf"^The picture is 10000 × 10000 pixels; the studio takes at most {MAX_UPLOAD_PIXELS:,} pixels\.$",
    )
    assert_in_page(
        studio,
        capfd,
        lambda: on.project(str(inbox / "big.png"), 2, 2),
        rf"^The picture is {MAX_UPLOAD_BYTES + 1:,} bytes; the studio takes at most {MAX_UPLOAD_BYTES:,}\.$",
    )
    (inbox / "fine.png").write_bytes(small_png())
    for w, wplus, match in (
        (NAN, 2, r"^Enter the steps in W as a whole number, not nan\.$"),
        (2, 10**9, r"^Steps in W\+ must be between 0 and 2000, not 1000000000\.$"),
        (-1, 2, r"^Steps in W must be between 0 and 2000, not -1\.$"),
        (0, 0, r"^Give some steps in W or in W\+"),
    ):
        assert_in_page(studio, capfd, lambda a=w, b=wplus: on.project(str(inbox / "fine.png"), a, b), match)
    assert_in_page(studio, capfd, lambda: Handlers(studio).project(str(inbox / "fine.png"), 2, 2), r"takes no uploads")


def test_search_and_selection_with_hostile_values(studio, capfd):
    h = Handlers(studio)
    assert_in_page(studio, capfd, lambda: h.search({"prompt": "x"}), r"^Search prompts must be text, not dict\.$")
    assert_in_page(studio, capfd, lambda: h.search("%" * 5000), r"^Search prompts must be at most 1,000 characters")
    for index in (-1, 3, "0", True, None, [0, 1], 10**100):
        assert h.select([7, 8, 9], index) == ("#7" if index == 0 else ""), index
    assert h.select([7, 8, 9], 2) == "#9"
    assert h.append({"a": 1}, "#3") == "#3" and h.append("#1", ["#3"]) == "#1" and h.append(None, None) == ""


def test_echoed_text_cannot_add_markdown_to_the_page(studio):
    """A value quoted in a sentence is shown as typed: an image from another site is not loaded."""
    status = Handlers(studio).mix("![x](http://evil.example/t.png)", "s1", "fine", "", 0.7)[-1]
    assert page_text(status) == FAILED + "'![x](http://evil.example/t.png)' is not a catalog number such as 12 or #12."
    assert "![" not in status and "](" not in status and "<" not in status.replace("\\<", ""), status


def test_an_unexpected_error_is_a_message_in_the_page_and_a_traceback_in_the_log(studio, capfd, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire\nsecond line")

    monkeypatch.setattr(studio, "paint_seed", broken)
    capfd.readouterr()
    outputs = Handlers(studio).seed(1, 0.7)
    assert outputs[:2] == (KEEP, KEEP)  # the pictures shown before stay
    assert page_text(outputs[-1]) == "Something went wrong: the disk is on fire. The studio's log has the details."
    assert "Traceback" in capfd.readouterr().err  # a bug, unlike a refused value, is worth its traceback


# ---------------------------------------------------------------------------------------
# the server, as any web page the user visits could reach it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(studio, tmp_path_factory):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("Gradio is not installed (pip install 'ganscapes[studio]'), so the studio cannot run")
    temp = tmp_path_factory.mktemp("gradio-temp")  # where Gradio would store uploads
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(temp))
        messages: list[str] = []
        app = launch(studio, port=port, log=messages.append, block=False)
        try:
            yield SimpleNamespace(port=port, host=f"127.0.0.1:{port}", temp=temp)
        finally:
            app.close()


def send(server, method: str, path: str, body: bytes = b"", headers: dict | None = None, chunked: bool = False):
    """(status, text) of one request to the server; a refusal may close the connection before the body is sent."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host="host" in {k.lower() for k in headers or {}})
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        elif body or method == "POST":
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        try:
            if chunked:
                connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            elif body:
                connection.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before reading: the answer is already there
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def upload_body(size: int = 0, files: list[tuple[str, bytes]] | None = None, field: str = "files"):
    """A multipart form as a browser posts it: `files` (name, bytes), or one payload.bin of `size` bytes."""
    boundary = "ganscapes-boundary"
    body = b""
    for name, data in files or [("payload.bin", b"x" * size)]:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def stored_payloads(server) -> list[Path]:
    return [p for p in server.temp.rglob("*") if p.is_file()]


def test_the_page_and_its_own_requests_are_served(server):
    status, text = send(server, "GET", "/")
    assert status == 200 and "ganscapes studio" in text
    status, _ = send(server, "GET", "/config", headers={"Origin": f"http://{server.host}"})
    assert status == 200
    # a link to the studio from another site opens it (a navigation), as the README's link does
    status, _ = send(server, "GET", "/", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})
    assert status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another server on this machine
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
        {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    ],
)
def test_an_upload_from_another_origin_is_refused(server, headers):
    body, form = upload_body(1000)
    status, text = send(server, "POST", "/gradio_api/upload", body, {**form, **headers})
    assert (status, text.strip()) == (403, "The studio refuses requests from other web sites.")
    assert stored_payloads(server) == []


def test_a_job_from_another_origin_is_refused(server):
    job = json.dumps({"data": ["s1", "s2", "fine", "", 0.7], "fn_index": 0, "session_hash": "x"}).encode()
    headers = {"Content-Type": "application/json", "Origin": "http://evil.example"}
    status, text = send(server, "POST", "/gradio_api/queue/join", job, headers)
    assert (status, text.strip()) == (403, "The studio refuses requests from other web sites.")
    status, _ = send(server, "GET", "/gradio_api/file=catalog.sqlite", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


def test_a_foreign_host_name_is_refused(server):
    """DNS rebinding: evil.example made to resolve to 127.0.0.1 sends its own name as Host."""
    port = server.port
    headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    status, text = send(server, "GET", "/config", headers=headers)
    assert (status, text.strip()) == (403, "The studio answers only to 127.0.0.1 and localhost.")
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert send(server, "GET", "/config", headers={"Host": host, "Origin": f"http://{host}"})[0] == 200


ONE_PICTURE = "The studio takes one picture per upload: a PNG, JPEG or WebP file."
PLAIN_NAME = "The picture's file name must be a plain name such as painting.jpg."


def test_screen_recordings_are_refused_even_from_the_page(server):
    """Gradio's other route that stores files: no field of the studio records the screen."""
    body, form = upload_body(1000)
    for path in ("/gradio_api/process_recording", "/gradio_api/process_recording/"):
        status, text = send(server, "POST", path, body, {**form, "Origin": f"http://{server.host}"})
        assert (status, text.strip()) == (403, "The studio takes no uploads but pictures."), path
    assert stored_payloads(server) == []


@pytest.mark.parametrize(
    "files, field, status, sentence",
    [
        ([("payload.bin", b"x" * 1000)], "files", 415, ONE_PICTURE),
        ([("painting.png", b"<html><script>alert(1)</script>")], "files", 415, ONE_PICTURE),
        ([("painting.html", None)], "files", 415, ONE_PICTURE),  # a picture's bytes under a page's name
        ([("painting.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")], "files", 415, ONE_PICTURE),
        ([("painting.jpg", None)], "files", 415, ONE_PICTURE),  # PNG bytes under a JPEG's name
        ([("painting.png", None), ("second.png", None)], "files", 400, ONE_PICTURE),
        ([("painting.png", None)] * 50, "files", 400, ONE_PICTURE),
        ([("painting.png", None)], "video", 400, ONE_PICTURE),
        ([("../../painting.png", None)], "files", 400, PLAIN_NAME),
        ([("..\\..\\painting.png", None)], "files", 400, PLAIN_NAME),
        ([("/etc/painting.png", None)], "files", 400, PLAIN_NAME),
        ([(".png", None)], "files", 400, PLAIN_NAME),
        ([("C:painting.png", None)], "files", 400, PLAIN_NAME),
        ([("painting", None)], "files", 400, PLAIN_NAME),
        ([("p" * 300 + ".png", None)], "files", 400, PLAIN_NAME),
        (
            [("huge.png", png_header(10_000, 10_000))],
            "files",
            413,
            f"The studio takes pictures of at most {MAX_UPLOAD_PIXELS:,} pixels, not 10000×10000.",
        ),
    ],
)
def test_an_upload_that_is_not_one_picture_is_refused(server, files, field, status, sentence):
    files = [(name, small_png() if data is None else data) for name, data in files]
    body, form = upload_body(files=files, field=field)
    got = send(server, "POST", "/gradio_api/upload", body, {**form, "Origin": f"http://{server.host}"})
    assert (got[0], got[1].strip()) == (status, sentence)
    assert stored_payloads(server) == []


def test_a_form_that_is_not_multipart_or_is_damaged_is_refused(server):
    headers = {"Origin": f"http://{server.host}"}
    status, text = send(server, "POST", "/gradio_api/upload", small_png(), {**headers, "Content-Type": "image/png"})
    assert (status, text.strip()) == (415, ONE_PICTURE)
    body, form = upload_body(files=[("painting.png", small_png())])
    status, text = send(server, "POST", "/gradio_api/upload", body[:-40], {**headers, **form})  # cut short
    assert (status, text.strip()) == (400, ONE_PICTURE)
    assert stored_payloads(server) == []


@pytest.mark.parametrize("name, kind", [("painting.png", "PNG"), ("Painting.JPG", "JPEG"), ("painting.webp", "WEBP")])
def test_one_picture_from_the_page_is_stored(server, name, kind):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 160, 90)).save(buffer, format=kind)
    body, form = upload_body(files=[(name, buffer.getvalue())])
    status, text = send(server, "POST", "/gradio_api/upload", body, {**form, "Origin": f"http://{server.host}"})
    assert status == 200, text
    (stored,) = json.loads(text)
    assert Path(stored).name == name and Path(stored).resolve().is_relative_to(server.temp.resolve())
    assert Path(stored).read_bytes() == buffer.getvalue()
    Path(stored).unlink()


def test_a_too_large_request_is_refused(server):
    body, form = upload_body(MAX_UPLOAD_BYTES + (64 << 10))
    status, text = send(server, "POST", "/gradio_api/upload", body, form)
    assert (status, text.strip()) == (413, f"The studio takes pictures of at most {MAX_UPLOAD_BYTES:,} bytes.")
    # a picture just over the limit, inside a body the guard reads
    big = small_png() + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(small_png()))
    body, form = upload_body(files=[("painting.png", big)])
    status, text = send(server, "POST", "/gradio_api/upload", body, form)
    assert (status, text.strip()) == (413, f"The studio takes pictures of at most {MAX_UPLOAD_BYTES:,} bytes.")
    status, text = send(server, "POST", "/gradio_api/queue/join", b"[" * (MAX_BODY_BYTES + 1), {"Content-Type": "x"})
    assert (status, text.strip()) == (413, f"The studio takes requests of at most {MAX_BODY_BYTES:,} bytes.")
    status, _ = send(server, "POST", "/gradio_api/queue/join", b"[" * (MAX_BODY_BYTES + 1), {"Content-Type": "x"})
    assert status == 413
    # a body in chunks says no length before it is read
    status, text = send(server, "POST", "/gradio_api/queue/join", b"{}", {"Content-Type": "x"}, chunked=True)
    assert (status, text.strip()) == (411, "The studio takes only requests that state their length.")
    assert stored_payloads(server) == []


@pytest.mark.filterwarnings(
    "ignore:.*no_silent_downcasting:DeprecationWarning", "ignore:The copy keyword:DeprecationWarning"
)
def test_a_hostile_value_through_the_server_is_a_message_in_the_page(server, studio, capfd):
    """Mix with seed s99999999999 and ψ out of the slider's range, as an HTTP client sends them:
    the studio's sentence, not Gradio's error box, and no traceback in the server's log."""
    from gradio_client import Client

    capfd.readouterr()
    client = Client(f"http://{server.host}/", verbose=False)
    outputs = client.predict("s99999999999", "s1", "fine", "", 0.7, api_name="/mix")
    assert outputs[0] == {"__type__": "update"}  # the grid shown before is kept (gr.skip())
    assert page_text(outputs[-1]) == FAILED + "Forms (columns): seeds run from s0 to s4294967295, not s99999999999."
    outputs = client.predict("s1", "s2", "fine", "", 9, api_name="/mix")  # the slider stops at 1.5
    assert page_text(outputs[-1]) == FAILED + "ψ must be between -1 and 2, not 9."
    outputs = client.predict(10**12, 0.7, api_name="/seed")
    assert page_text(outputs[-1]) == FAILED + f"Seed must be between 0 and {MAX_SEED}, not 1000000000000."
    err = capfd.readouterr().err
    assert "Traceback" not in err, err
