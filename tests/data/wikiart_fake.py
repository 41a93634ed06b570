"""A loopback HTTP server with scripted replies, standing in for WikiArt in tests.

Replies are keyed by the raw request path (percent-escapes kept, query dropped), so a
test can serve `/en/x/..%2F..%2Fetc%2Fpasswd` exactly as a crawler would ask for it.
A path with several replies gives them in order and then repeats the last one, which
is how flaky endpoints (429 once, 500 twice, always 503) are scripted. Every request is
counted and its Host and User-Agent recorded, so tests can assert retries, resumes
that download nothing, and politeness headers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    delay: float = 0.0  # seconds to stall before answering (for timeouts)


class FakeServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str]] = []  # (host header, path, user agent)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.other = f"http://localhost:{self.port}"  # same server, but another host name
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # -- scripting -------------------------------------------------------------------------

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def page(self, path: str, html: str) -> None:
        self.route(path, Reply(body=html))

    def image(self, path: str, data: bytes, content_type: str = "image/jpeg", **kw) -> None:
        self.route(path, Reply(body=data, content_type=content_type, **kw))

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.route(path, Reply(status=status, headers={"Location": location}))

    def hits_under(self, prefix: str) -> int:
        return sum(n for p, n in self.hits.items() if p.startswith(prefix))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _reply_for(self, path: str, host: str, agent: str) -> Reply:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((host, path, agent))
            replies = self.routes.get(path)
            if not replies:
                return Reply(status=404, body="<html><body><main>Not found</main></body></html>")
            return replies[min(self.hits[path], len(replies)) - 1]

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                reply = fake._reply_for(path, self.headers.get("Host", ""), self.headers.get("User-Agent", ""))
                if reply.delay:
                    time.sleep(reply.delay)
                body = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a size cap did its job)

            def log_message(self, *args) -> None:
                pass  # keep test output clean

        return Handler
