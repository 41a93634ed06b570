"""What the studio's server lets in: its own page's requests, of bounded size, and one picture per upload.

Gradio's CORS middleware only withholds the Access-Control-Allow-Origin header from other
origins. That keeps another site from reading an answer, not from sending the request: a
form post or a `fetch(..., {mode: "no-cors"})` from any page the user visits runs on a
localhost server all the same (a "simple request" needs no preflight; see MDN's "Cross-Origin
Resource Sharing (CORS)"), so it could queue jobs or upload files until the disk is full.
This ASGI middleware answers such requests itself, before Gradio sees them:

- a request whose `Origin` is not the page's own (its host and port), or that the browser
  marks as coming from another site (`Sec-Fetch-Site`, except for following a link to the
  studio), gets 403;
- on a loopback address, a `Host` other than a loopback name gets 403, so a site cannot reach
  the studio by pointing its own name at 127.0.0.1 (DNS rebinding);
- a body longer than `max_body` gets 413, and one sent in chunks (which states no length) 411;
- Gradio's upload route (the Project tab's painting) takes one picture: the body, at most
  MAX_UPLOAD_BYTES and a little room for the form around it, is read here and parsed with
  the multipart parser Gradio itself uses (python-multipart); it must hold exactly one
  part, a file field `files` whose name is a plain name ending in .png, .jpg, .jpeg or
  .webp (Gradio serves a stored file with the type its name says, so a page named .html
  would run as the studio's own), whose bytes begin as that kind of picture does and whose
  header says at most MAX_UPLOAD_PIXELS. Anything else gets 400, 413 or 415 with one
  sentence, and Gradio never sees it. The other route that stores files (screen
  recordings) gets 403.
"""

from __future__ import annotations

import io
import warnings
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from ganscapes.studio.core import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS

MAX_BODY_BYTES = 1 << 20  # a queued request's JSON is a few hundred bytes; prompts are at most a few hundred characters
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# Gradio's routes that store a file sent by the page (gradio/routes.py: /upload, /process_recording).
UPLOAD_ROUTE = "/gradio_api/upload"
REFUSED_ROUTES = ("/gradio_api/process_recording",)
UPLOAD_ROOM = 16 << 10  # the form's boundaries and part headers around the picture
MAX_NAME_CHARS = 200
# The first bytes of each kind of picture taken, by its file name's ending (PNG: ISO/IEC 15948 §5.2;
# JPEG: the SOI marker FF D8 and the next marker's FF; WebP: a RIFF container of form type WEBP).
SIGNATURES = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".webp": (b"RIFF",),
}
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
ONE_PICTURE = "The studio takes one picture per upload: a PNG, JPEG or WebP file."


class Refused(Exception):
    """A request the guard answers itself: the HTTP status and one sentence."""

    def __init__(self, status: int, sentence: str):
        super().__init__(sentence)
        self.status = status


class RequestGuard:
    """ASGI middleware: refuses what the module docstring lists; passes the rest to `app` unchanged.

    `hosts` are the host names the server answers to, or None for any (a studio listening on a
    network address, whose names the studio cannot know).
    """

    def __init__(self, app, hosts: frozenset[str] | None = LOOPBACK_NAMES, max_body: int = MAX_BODY_BYTES):
        self.app, self.hosts, self.max_body = app, hosts, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
            try:
                self.check(scope, headers)
                if _is_upload(scope):
                    body = await _read_body(receive)
                    check_upload(headers.get("content-type", ""), body)
                    receive = _replay(body, receive)
            except Refused as refusal:
                await _answer(scope, receive, send, refusal)
                return
        await self.app(scope, receive, send)

    def check(self, scope, headers: dict[str, str]) -> None:
        """Raise `Refused` for a request from another site, to another host name, too large or to a refused route."""
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            raise Refused(403, "The studio answers only to 127.0.0.1 and localhost.")
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            raise Refused(403, "The studio refuses requests from other web sites.")
        site, mode = headers.get("sec-fetch-site"), headers.get("sec-fetch-mode")
        if site in ("cross-site", "same-site") and mode != "navigate":  # a link to the studio may come from anywhere
            raise Refused(403, "The studio refuses requests from other web sites.")
        # The server's HTTP parser delivers no more than Content-Length bytes, so the length bounds the body;
        # a body sent in chunks states none (browsers send chunks only for streams, which the page never sends).
        if "transfer-encoding" in headers:
            raise Refused(411, "The studio takes only requests that state their length.")
        length = headers.get("content-length", "0").strip()
        if _is_upload(scope):
            if not length.isdigit() or int(length) > MAX_UPLOAD_BYTES + UPLOAD_ROOM:
                raise Refused(413, f"The studio takes pictures of at most {MAX_UPLOAD_BYTES:,} bytes.")
        elif not length.isdigit() or int(length) > self.max_body:
            raise Refused(413, f"The studio takes requests of at most {self.max_body:,} bytes.")
        path = scope.get("path", "").rstrip("/")
        if scope["type"] == "http" and path.endswith(REFUSED_ROUTES):
            raise Refused(403, "The studio takes no uploads but pictures.")


def _is_upload(scope) -> bool:
    return scope["type"] == "http" and scope.get("path", "").rstrip("/").endswith(UPLOAD_ROUTE)


async def _read_body(receive) -> bytes:
    """The whole body: `check` has bounded its stated length, and the server delivers no more."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "The upload ended before its picture did.")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_UPLOAD_BYTES + UPLOAD_ROOM:
            raise Refused(413, f"The studio takes pictures of at most {MAX_UPLOAD_BYTES:,} bytes.")
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that gives the app the body read here, then whatever the client sends next (a disconnect)."""
    sent = False

    async def again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


def check_upload(content_type: str, body: bytes) -> None:
    """Raise `Refused` unless `body` is a multipart form of one picture, as the module docstring says."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise Refused(415, ONE_PICTURE)
    parts: list[dict] = []
    field, value = bytearray(), bytearray()
    ended = []  # the closing boundary was read: a form cut short is not passed on

    def begin():
        parts.append({"headers": {}, "data": bytearray()})

    def header_end():
        parts[-1]["headers"][bytes(field).lower()] = bytes(value)
        field.clear()
        value.clear()

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": lambda data, start, end: field.extend(data[start:end]),
        "on_header_value": lambda data, start, end: value.extend(data[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda data, start, end: parts[-1]["data"].extend(data[start:end]),
        "on_end": lambda: ended.append(True),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception:  # python-multipart's errors (MultipartParseError and others) on a damaged form
        raise Refused(400, ONE_PICTURE) from None
    if len(parts) != 1 or not ended:
        raise Refused(400, ONE_PICTURE)
    headers, data = parts[0]["headers"], bytes(parts[0]["data"])
    disposition, params = parse_options_header(headers.get(b"content-disposition", b""))
    name = params.get(b"filename")
    if disposition != b"form-data" or params.get(b"name") != b"files" or name is None:
        raise Refused(400, ONE_PICTURE)
    name = name.decode("utf-8", "replace")
    stem, dot, ending = name.rpartition(".")
    ending = "." + ending.lower()
    if (
        len(name) > MAX_NAME_CHARS
        or not stem
        or not dot
        or name.startswith(".")
        or any(c in name for c in "/\\:")
        or any(ord(c) < 32 for c in name)
    ):
        raise Refused(400, "The picture's file name must be a plain name such as painting.jpg.")
    if ending not in SIGNATURES or not data.startswith(SIGNATURES[ending]):
        raise Refused(415, ONE_PICTURE)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refused(413, f"The studio takes pictures of at most {MAX_UPLOAD_BYTES:,} bytes.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # reads the header: no pixel is decoded here
                found, (width, height) = image.format, image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(415, ONE_PICTURE) from None
    if found != FORMATS[ending]:
        raise Refused(415, ONE_PICTURE)
    if width * height > MAX_UPLOAD_PIXELS:
        raise Refused(413, f"The studio takes pictures of at most {MAX_UPLOAD_PIXELS:,} pixels, not {width}×{height}.")


async def _answer(scope, receive, send, refusal: Refused) -> None:
    if scope["type"] == "websocket":  # closing before accepting makes the server answer 403
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (str(refusal) + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if refusal.status in (411, 413):
        headers.append((b"connection", b"close"))  # the body is left unread
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _hostname(authority: str) -> str:
    """The host name of a `Host` header, lower case, without port or brackets; empty if unreadable."""
    try:
        return (urlsplit("//" + authority).hostname or "").lower()
    except ValueError:  # a malformed port or IPv6 address
        return ""


def _same_origin(origin: str, host: str) -> bool:
    """Whether `origin` (a browser's `Origin` header) is the page the browser loaded from this server.

    Only host and port are compared (the `Host` header carries no scheme); "null", sent by
    sandboxed frames and local files, is another origin.
    """
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()
