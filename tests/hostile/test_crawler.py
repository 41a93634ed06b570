"""A site that stalls the crawler, or sends it to another port, is cut off.

A socket timeout bounds each wait for data, so a server sending one byte a second never
trips it; `--timeout` must bound the whole request. And an allowed host is a host *and*
a port: a page must not point the crawler at another service of the same machine.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ganscapes.data.fetch import Fetcher, FetchError, OffHost, host_allowed
from ganscapes.data.wikiart import CrawlConfig
from ganscapes.data.wikiart.config import validate_config
from ganscapes.errors import UserError


class Trickler:
    """A loopback server that answers every connection with `reply`, one byte a second."""

    def __init__(self, reply: bytes, every: float = 1.0):
        self.reply, self.every = reply, every
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.1)  # here, not in the thread: a server closed at once must not race it
        self.port = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)  # the request
                for i in range(len(self.reply)):
                    if self._stop.is_set():
                        return
                    conn.sendall(self.reply[i : i + 1])
                    time.sleep(self.every)
            except OSError:
                return  # the client gave up: what the test wants

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def trickler(request):
    servers = []

    def make(reply: bytes) -> Trickler:
        servers.append(Trickler(reply))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(HEADERS + b"x" * 100, id="body"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 100, id="headers"),
        pytest.param(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"z" * 100, id="body without a length"),
    ],
)
def test_a_server_sending_a_byte_a_second_is_cut_off_at_the_timeout(trickler, reply):
    server = trickler(reply)
    with Fetcher(server.base, user_agent="t/1", delay=0, timeout=1.5, retries=0) as fetcher:
        start = time.monotonic()
        with pytest.raises(FetchError) as err:
            fetcher.get(server.base + "/slow.jpg", max_bytes=10_000)
        elapsed = time.monotonic() - start
    assert elapsed < 1.5 + 1.5, f"cut off after {elapsed:.1f} s"
    assert err.value.transient and str(err.value).startswith("timed out"), str(err.value)


def test_a_quick_response_is_untouched_by_the_deadline(trickler):
    fast = Trickler(HEADERS + b"x" * 100, every=0)
    try:
        with Fetcher(fast.base, user_agent="t/1", delay=0, timeout=1.5, retries=0) as fetcher:
            for _ in range(3):  # a second request on the same session is bounded afresh
                assert fetcher.get(fast.base + "/ok.jpg", max_bytes=10_000).content == b"x" * 100
    finally:
        fast.close()


# ---------------------------------------------------------------------------------------
# Hosts are hosts and ports


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://www.wikiart.org/en/x", True),
        ("http://www.wikiart.org/en/x", True),
        ("https://www.wikiart.org:443/en/x", True),
        ("https://www.wikiart.org:8443/en/x", False),
        ("http://www.wikiart.org:22/en/x", False),
        ("https://uploads1.wikiart.org/x.jpg", True),
        ("https://uploads1.wikiart.org:6379/x.jpg", False),
        ("http://images.example.org:8080/x.jpg", True),
        ("http://images.example.org/x.jpg", False),
        ("http://[::1]:8000/x.jpg", True),
        ("http://[::1]:8001/x.jpg", False),
    ],
)
def test_the_allow_list_includes_the_port(url, ok):
    patterns = ("uploads*.wikiart.org", "images.example.org:8080", "[::1]:8000")
    assert host_allowed(url, "www.wikiart.org", patterns) is ok


def test_a_site_with_a_port_allows_that_port_only(trickler):
    server = trickler(HEADERS + b"x" * 100)
    with Fetcher(server.base, user_agent="t/1", delay=0, timeout=5, retries=0) as fetcher:
        assert fetcher.allowed(f"{server.base}/a") and fetcher.allowed(f"http://127.0.0.1:{server.port}/b")
        other = server.port + 1 if server.port < 65535 else server.port - 1
        for url in (f"http://127.0.0.1:{other}/a", "http://127.0.0.1/a"):
            assert not fetcher.allowed(url)
            with pytest.raises(OffHost):
                fetcher.get(url, max_bytes=100)


@pytest.mark.parametrize("pattern", ["uploads.wikiart.org:0", "uploads.wikiart.org:70000", ":8080"])
def test_an_allowed_host_with_an_impossible_port_is_refused_before_crawling(pattern):
    with pytest.raises(UserError, match="optionally with a port from 1 to 65535"):
        validate_config(CrawlConfig(allow_hosts=(pattern,)))
