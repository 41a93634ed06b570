"""The studio served as a user starts it, and what the browser tests check on its page.

`studio_server` runs `python -m ganscapes studio …` in a subprocess (its own process group,
ended with it) with the tiny 32² model and the real default CLIP architecture, ViT-B-32,
with random weights. The JavaScript checks read the page as a person sees it: where a
picture is drawn, at what zoom, and whether anything around it cuts it off.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

from ganscapes.clip.encoder import WEIGHTS_ENV
from ganscapes.gan.checkpoint import load_model

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 180  # seconds for the server to answer: imports, the model and ViT-B-32
STEP_TIMEOUT = 90_000  # milliseconds for one action of the page


class ServerFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End the server and everything it started (its own process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def studio_server(model_file: Path, folder: Path, extra: tuple[str, ...] = ()):
    """A running studio over a copy of `model_file` (under its own name) in `folder`; its url, port, out, log
    and model_hash."""
    shutil.copy(model_file, folder / model_file.name)
    port = free_port()
    env = {
        **os.environ,
        "GANSCAPES_CACHE": str(folder / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(folder / "hf"),
        "GRADIO_TEMP_DIR": str(folder / "gradio"),  # Gradio's copies of the pictures, not /tmp/gradio
        "PYTHONUNBUFFERED": "1",
    }
    env.pop(WEIGHTS_ENV, None)
    command = [sys.executable, "-m", "ganscapes", "studio", "--model", model_file.name, "--out", "out"]
    command += ["--port", str(port), "--clip-pretrained", "random", "--device", "cpu", *extra]
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"the studio exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                with opener.open(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"no answer within {START_TIMEOUT} s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.25)
        yield SimpleNamespace(
            url=url,
            port=port,
            out=folder / "out",
            log=log_path,
            proc=proc,
            model_hash=load_model(model_file).model_hash,
        )
    finally:
        stop(proc)
    with socket.socket() as s:  # nothing is left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0


def local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1"


def wait_for_images(page, selector: str, count: int) -> list[int]:
    """Wait until exactly `count` images match `selector` and all have loaded; their natural widths."""
    images = page.locator(selector)
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length === n", arg=[selector, count], timeout=STEP_TIMEOUT
    )
    for k in range(count):
        images.nth(k).scroll_into_view_if_needed()  # gallery images load lazily
    page.wait_for_function(
        "([sel, n]) => { const im = [...document.querySelectorAll(sel)];"
        " return im.length === n && im.every(i => i.complete && i.naturalWidth > 0); }",
        arg=[selector, count],
        timeout=STEP_TIMEOUT,
    )
    return page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")


# How each picture matching a selector is drawn: its natural and drawn size, the zoom, and whether any
# element around it (one that clips its overflow) or the object-fit cuts part of it off.
HOW_DRAWN = """els => els.map(img => {
  const r = img.getBoundingClientRect();
  const style = getComputedStyle(img);
  const fit = style.objectFit;
  const nw = img.naturalWidth || img.videoWidth, nh = img.naturalHeight || img.videoHeight;  // a picture or a film
  // the picture's own area inside the element: object-fit may shrink it, or crop it (cover)
  let w = r.width, h = r.height;
  if (fit === 'contain' || fit === 'scale-down') {
    const k = Math.min(r.width / nw, r.height / nh, fit === 'scale-down' ? 1 : Infinity);
    w = nw * k; h = nh * k;
  }
  const cropped = fit === 'cover' && Math.abs(r.width / nw - r.height / nh) > 1e-3;
  const left = r.left + (r.width - w) / 2, top = r.top + (r.height - h) / 2;
  let cut = cropped ? 'object-fit: cover' : null;
  for (let a = img.parentElement; a && a !== document.documentElement && !cut; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
    const q = a.getBoundingClientRect();
    if (left < q.left - 0.5 || top < q.top - 0.5 || left + w > q.right + 0.5 || top + h > q.bottom + 0.5)
      cut = (a.id || a.className || a.tagName).toString().slice(0, 80);
  }
  return {src: img.src.split('/').pop(), natural: [nw, nh], drawn: [w, h], zoom: w / nw, zoomY: h / nh, cut};
})"""


def how_drawn(page, selector: str) -> list[dict]:
    return page.eval_on_selector_all(selector, HOW_DRAWN)


def integer_zoom(z: float) -> bool:
    """A zoom of n or 1/n, n whole: every pixel of the picture drawn as the same square of screen pixels."""
    n = z if z >= 1 else 1 / z
    return abs(n - round(n)) < 1e-3


def assert_whole_at_integer_zoom(page, selector: str) -> list[dict]:
    drawn = how_drawn(page, selector)
    assert drawn, f"no picture matches {selector}"
    for d in drawn:
        assert d["cut"] is None, f"{selector}: part of {d['src']} is cut off by {d['cut']}: {d}"
        assert abs(d["zoom"] - d["zoomY"]) < 1e-3 and integer_zoom(d["zoom"]), f"{selector}: not an integer zoom: {d}"
    return drawn


@contextlib.contextmanager
def studio_page(server, clipboard: bool = False):
    """A 1400-pixel Chromium page on the studio that can reach nothing but the studio; on
    leaving, the page must have raised no script error."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--no-proxy-server"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            if clipboard:
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
            context.route("**/*", lambda r: r.continue_() if local(r.request.url) else r.abort())
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(server.url)
            yield page
        finally:
            browser.close()
    assert errors == []
