"""A polite, defensive HTTP fetcher for crawling somebody else's website.

A crawl that runs for hours against a site we do not own has to behave: it identifies
itself, paces its requests, backs off when the server says it is busy, and never
follows a link or redirect to a host it was not told to trust. It also has to survive
the site: a flaky server costs a few retries and a logged line, never the whole crawl,
and an oversized or endless response body is cut off instead of filling memory.

Every failure is a `FetchError` whose `transient` flag tells the caller whether the
same request could succeed later (worth retrying on the next run) or not (a 404, a
body over the size cap, a host we refuse).
"""

from __future__ import annotations

import contextvars
import fnmatch
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_RETRY_WAIT = 60.0  # seconds; a Retry-After of an hour must not stall a crawl silently
MAX_REDIRECTS = 5
CHUNK = 64 * 1024
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A request that did not produce a usable body; `str(e)` is the reason."""

    def __init__(self, url: str, reason: str, *, transient: bool, status: int | None = None):
        super().__init__(reason)
        self.url = url
        self.reason = reason
        self.transient = transient
        self.status = status


class OffHost(FetchError):
    """The URL (or a redirect) leads to a host outside the allowed set."""

    def __init__(self, url: str, reason: str | None = None):
        super().__init__(url, reason or f"host of {url} is not allowed", transient=False)


class TooLarge(FetchError):
    """The body is larger than the caller's cap (declared or actually sent)."""

    def __init__(self, url: str, max_bytes: int):
        super().__init__(url, f"larger than {max_bytes:,} bytes", transient=False)


@dataclass
class Fetched:
    url: str  # after redirects
    status: int
    content: bytes
    content_type: str  # media type only, lower case, e.g. "image/jpeg"; "" if not sent
    charset: str | None


class _Retry(Exception):
    """Internal: this attempt failed in a way that a later attempt may not."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(entry: str) -> tuple[str, int | None]:
    """`"uploads*.wikiart.org"` → (glob, None); `"localhost:8000"` → ("localhost", 8000);
    `"[::1]:8000"` → ("::1", 8000). A port that is not a number is part of the name (and matches nothing)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return host, int(port)
    return entry, None


def host_allowed(url: str, base_host: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """True for http(s) URLs on `base_host` or on a host matching one of the glob `patterns`.

    The port counts too: an entry with a port (`localhost:8000`) allows that port only, one
    without it the scheme's default port (80, 443) only, so that a page cannot send the
    crawler to another service of an allowed host. URLs that parsers disagree on
    (backslashes, whitespace or control characters before the path) are refused outright,
    so the host we check is the host requests connects to.
    """
    if not isinstance(url, str) or any(c in url for c in "\\\x00\r\n\t "):
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    port = port if port is not None else DEFAULT_PORTS[parts.scheme]

    def matches(entry: str, glob: bool) -> bool:
        name, wanted = split_host(entry)
        if (wanted if wanted is not None else DEFAULT_PORTS[parts.scheme]) != port:
            return False
        return fnmatch.fnmatchcase(host, name) if glob else host == name

    return matches(base_host, glob=False) or any(matches(p, glob=True) for p in patterns if p.strip())


# --- The whole-request deadline -------------------------------------------------------
#
# A socket timeout bounds each wait for data, not a response: a server that sends one
# byte every second never trips it, and can hold a crawl for days. Each request therefore
# has a deadline; when it passes, a timer shuts the request's socket down, which ends any
# read blocked on it (for the status line, the headers or the body) at once.


class _Deadline:
    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        self._conn: HTTPConnection | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            if self.expired:
                _cut(conn)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._conn is not None:
                _cut(self._conn)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._conn = None


def _cut(conn: HTTPConnection) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            # socket.socket's own shutdown: on a TLS socket it ends the blocked read too,
            # without SSLSocket.shutdown's teardown of the TLS state another thread is using.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("ganscapes_fetch_deadline", default=None)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        deadline = _DEADLINE.get()
        if deadline is not None:
            deadline.attach(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args, **kwargs):
        deadline = _DEADLINE.get()
        if deadline is not None:
            deadline.attach(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections the deadline of the request in flight can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class Fetcher:
    """GETs with pacing, retries, a host allow-list and a body size cap.

    `sleep` and `clock` are injectable so tests can check the waits without waiting.
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str,
        allow_hosts: tuple[str, ...] = (),
        delay: float = 0.2,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        base = urlsplit(base_url)
        host = (base.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host
        self.base_host = f"{host}:{base.port}" if base.port is not None else host  # see host_allowed
        self.allow_hosts = tuple(allow_hosts)
        self.delay = delay
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._last: float | None = None
        self.requests_made = 0
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _DeadlineAdapter())

    def allowed(self, url: str, base_host_only: bool = False) -> bool:
        """Whether `url` may be fetched: on the base host, or (unless `base_host_only`) an allowed one."""
        return host_allowed(url, self.base_host, () if base_host_only else self.allow_hosts)

    def get(self, url: str, *, max_bytes: int, accept: str = "*/*", base_host_only: bool = False) -> Fetched:
        """The body of `url`, retrying transient failures; raises `FetchError`.

        `base_host_only` is for the site's own pages: the extra allowed hosts are meant
        for images, and a page link or redirect leading there is not followed.
        """
        if not self.allowed(url, base_host_only):
            raise OffHost(url)
        attempt = 0
        while True:
            try:
                return self._attempt(url, max_bytes, accept, base_host_only)
            except _Retry as e:
                if attempt >= self.retries:
                    tries = "1 try" if attempt == 0 else f"{attempt + 1} tries"
                    raise FetchError(
                        url, f"{e.reason} (gave up after {tries})", transient=True, status=e.status
                    ) from None
                wait = e.retry_after if e.retry_after is not None else self.backoff * (2**attempt)
                self._sleep(min(max(wait, 0.0), MAX_RETRY_WAIT))
                attempt += 1

    def _pace(self) -> None:
        if self._last is not None and self.delay > 0:
            wait = self._last + self.delay - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last = self._clock()

    def _attempt(self, url: str, max_bytes: int, accept: str, base_host_only: bool) -> Fetched:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            self._pace()
            self.requests_made += 1
            deadline = _Deadline(self.timeout)
            token = _DEADLINE.set(deadline)
            try:
                result = self._request(url, current, max_bytes, accept, deadline)
            finally:
                deadline.stop()
                _DEADLINE.reset(token)
            if isinstance(result, Fetched):
                return result
            if not self.allowed(result, base_host_only):
                raise OffHost(url, f"redirects to {result}, a host that is not allowed")
            current = result
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects", transient=False)

    def _request(self, url: str, current: str, max_bytes: int, accept: str, deadline: _Deadline) -> Fetched | str:
        """One request within `deadline`: the body, or the URL a redirect points to."""
        late = f"timed out: no complete response within {self.timeout:g} s"
        try:
            return self._exchange(url, current, max_bytes, accept, deadline)
        except _Retry as e:
            if deadline.expired:
                raise _Retry(late) from None
            raise e from None
        except FetchError:
            raise
        except (requests.RequestException, OSError) as e:
            if deadline.expired:
                raise _Retry(late) from None
            raise _Retry(f"connection broke ({_short(e)})") from None

    def _exchange(self, url: str, current: str, max_bytes: int, accept: str, deadline: _Deadline) -> Fetched | str:
        """The request itself: its errors sorted into retry or give up, its body read within the caps."""
        try:
            r = self.session.get(
                current,
                stream=True,
                allow_redirects=False,
                timeout=(self.timeout, self.timeout),
                headers={"Accept": accept},
            )
        except requests.Timeout:
            raise _Retry("timed out") from None
        except requests.ConnectionError as e:
            raise _Retry(f"connection failed ({_short(e)})") from None
        except requests.RequestException as e:
            raise FetchError(url, f"request refused ({_short(e)})", transient=False) from None
        with r:
            status = r.status_code
            if status in REDIRECT_STATUSES and r.headers.get("Location"):
                return urljoin(current, r.headers["Location"])
            if status in RETRY_STATUSES:
                raise _Retry(f"HTTP {status}", status, parse_retry_after(r.headers.get("Retry-After")))
            if not 200 <= status < 300:
                raise FetchError(url, f"HTTP {status}", transient=False, status=status)
            declared = r.headers.get("Content-Length", "")
            if declared.strip().isdigit() and int(declared) > max_bytes:
                raise TooLarge(url, max_bytes)
            body = bytearray()
            try:
                for chunk in r.iter_content(CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        raise TooLarge(url, max_bytes)
            except requests.Timeout:
                raise _Retry("timed out while reading") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                raise _Retry(f"connection broke while reading ({_short(e)})") from None
            except requests.exceptions.ContentDecodingError as e:
                raise _Retry(f"undecodable response ({_short(e)})") from None
            if deadline.expired:  # a body without a length ends when its socket does: not complete
                raise _Retry("timed out while reading")
            ctype = r.headers.get("Content-Type", "")
            media = ctype.split(";")[0].strip().lower()
            charset = None
            for param in ctype.split(";")[1:]:
                k, _, v = param.partition("=")
                if k.strip().lower() == "charset" and v.strip():
                    charset = v.strip().strip("\"'")
            return Fetched(current, status, bytes(body), media, charset)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(e: Exception) -> str:
    """The innermost message of requests' nested exceptions, kept to one short line."""
    inner = e
    while inner.args and isinstance(inner.args[0], Exception):
        inner = inner.args[0]
    text = str(inner) or type(inner).__name__
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."
