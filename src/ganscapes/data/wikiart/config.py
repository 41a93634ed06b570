"""What a crawl selects and how politely: the settings, checked before any request is made.

`filter_key` hashes the settings that decide whether a page is rejected; the crawl log
remembers rejections under it, so changed settings never reuse stale verdicts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from ganscapes import __version__
from ganscapes.data.fetch import split_host
from ganscapes.data.wikiart.pages import _norm
from ganscapes.errors import UserError

DEFAULT_USER_AGENT = (
    f"ganscapes/{__version__} (+https://github.com/ganscapes/ganscapes; research crawler for public-domain paintings)"
)


@dataclass(frozen=True)
class CrawlConfig:
    base_url: str = "https://www.wikiart.org"
    movement: str = "Impressionism"
    genre: str = "landscape"
    born_after: int = 1800  # keep artists born after this year
    died_before: int = 1950  # keep artists with a known death year before this one
    public_domain_only: bool = True
    max_images: int | None = None  # images in the folder, counting earlier runs
    letters: str = "abcdefghijklmnopqrstuvwxyz"
    delay: float = 0.2  # seconds between requests
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0  # first retry waits this, then 2x, 4x... (Retry-After wins, capped at 60 s)
    max_bytes: int = 50_000_000  # per image
    allow_hosts: tuple[str, ...] = ("uploads*.wikiart.org",)  # image hosts besides the site's own (globs)
    user_agent: str = DEFAULT_USER_AGENT


def validate_config(config: CrawlConfig) -> None:
    """Raise `UserError` for settings that cannot work, before any request is made."""

    def bad(msg: str) -> None:
        raise UserError(msg)

    parts = urlsplit(config.base_url or "")
    try:
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError:
        bad(f"The base URL {config.base_url!r} has an invalid port.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        bad(f"The base URL must be an http(s) URL with a host name, not {config.base_url!r}.")
    if not config.movement.strip():
        bad("The movement must not be empty.")
    if not config.genre.strip():
        bad("The genre must not be empty.")
    if config.born_after >= config.died_before - 1:
        bad(f"No artist can be born after {config.born_after} and die before {config.died_before}.")
    if config.max_images is not None and config.max_images < 1:
        bad("max_images must be at least 1 (or not given, for no limit).")
    if not config.letters or not all(c.isascii() and c.isalnum() for c in config.letters):
        bad(f"letters must be a non-empty string of ASCII letters or digits, not {config.letters!r}.")
    if not config.delay >= 0:
        bad("The delay between requests must be 0 seconds or more.")
    if not config.timeout > 0:
        bad("The timeout must be more than 0 seconds.")
    if config.retries < 0:
        bad("retries must be 0 or more.")
    if not config.backoff >= 0:
        bad("The retry backoff must be 0 seconds or more.")
    if config.max_bytes < 1:
        bad("max_bytes must be at least 1.")
    if any(not isinstance(p, str) or not p.strip() for p in config.allow_hosts):
        bad("Every allowed image host must be a non-empty host name or glob pattern.")
    for pattern in config.allow_hosts:
        name, port = split_host(pattern)
        if not name or (port is not None and not 1 <= port <= 65535):
            bad(f"The allowed image host {pattern!r} must be a name or glob, optionally with a port from 1 to 65535.")
    if not config.user_agent.strip():
        bad("The User-Agent must not be empty; say who is crawling.")


def filter_key(config: CrawlConfig) -> str:
    """A short hash of every setting that decides whether a page is rejected.

    A rejection remembered under other settings (another genre, a bigger size cap) says
    nothing about the current ones, so the crawl log is only trusted when keys match.
    """
    settings = {
        "movement": _norm(config.movement),
        "genre": _norm(config.genre),
        "born_after": config.born_after,
        "died_before": config.died_before,
        "public_domain_only": config.public_domain_only,
        "allow_hosts": sorted(p.strip().lower() for p in config.allow_hosts),
        "max_bytes": config.max_bytes,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
