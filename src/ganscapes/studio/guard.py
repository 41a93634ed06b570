"""What the studio's server lets in: its own page's requests, of bounded size, and no uploads.

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
- Gradio's upload routes get 403: no field of the studio takes a file.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_BODY_BYTES = 1 << 20  # a queued request's JSON is a few hundred bytes; prompts are at most a few hundred characters
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
# Gradio's routes that store a file sent by the page (gradio/routes.py: /upload, /process_recording).
UPLOAD_ROUTES = ("/gradio_api/upload", "/gradio_api/process_recording")


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
            except Refused as refusal:
                await _answer(scope, receive, send, refusal)
                return
        await self.app(scope, receive, send)

    def check(self, scope, headers: dict[str, str]) -> None:
        """Raise `Refused` for a request from another site, to another host name, too large or an upload."""
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
        if not length.isdigit() or int(length) > self.max_body:
            raise Refused(413, f"The studio takes requests of at most {self.max_body:,} bytes.")
        path = scope.get("path", "").rstrip("/")
        if scope["type"] == "http" and path.endswith(UPLOAD_ROUTES):
            raise Refused(403, "The studio takes no uploads.")


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
