"""`gather wikiart`: crawl WikiArt for public-domain paintings of one movement and genre.

This is how the GANscapes article built its training set: walk WikiArt's artist lists
letter by letter, keep artists of the right era whose page names the movement, and
download the paintings of the wanted genre that are marked public domain.

The crawl may take hours and the site is not ours, so it is built to be stopped and
started again: every saved image is listed in `manifest.jsonl` at once, and every page
the filters rejected is listed in `crawl-log.jsonl` under a key of the filter settings,
so a re-run with the same settings fetches neither again. Network failures are only
logged, never remembered, so the next run retries them. Nothing scraped from the site
chooses where a file is written: names are slugs of the URL, confined to the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, CData, NavigableString
from tqdm import tqdm

from ganscapes import __version__
from ganscapes.data.fetch import Fetcher, FetchError, OffHost, TooLarge
from ganscapes.data.images import BadImage, check_image_bytes
from ganscapes.data.manifest import ManifestWriter, RawRecord, read_manifest
from ganscapes.data.naming import confined_path, slugify, unique_name
from ganscapes.errors import UserError

CRAWL_LOG_NAME = "crawl-log.jsonl"
MAX_PAGE_BYTES = 10_000_000  # an HTML page bigger than this is not a WikiArt page
MAX_TITLE = 500  # characters kept of a scraped title
PUBLIC_DOMAIN = "Public domain"
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
DEFAULT_USER_AGENT = (
    f"ganscapes/{__version__} (+https://github.com/ganscapes/ganscapes; research crawler for public-domain paintings)"
)

_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
_DASH = re.compile("[-\u2010-\u2015\u2212]")  # hyphen, en/em dashes, minus sign
_PART = re.compile(r"^\..+\.\d+\.part$")


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


@dataclass
class CrawlSummary:
    saved: int = 0  # images downloaded and added to the manifest in this run
    skipped: int = 0  # painting pages rejected in this run (filters, no/bad/huge image, 404...)
    already: int = 0  # painting pages whose image was already in the manifest
    failed: int = 0  # painting pages or images that failed on the network; retried next run
    rejected_before: int = 0  # painting pages skipped because an earlier run's filters rejected them
    duplicates: int = 0  # of `skipped`: the same image bytes as a file already saved
    artists_listed: int = 0  # distinct artists seen on the letter pages
    artists_kept: int = 0  # artists passing the date and movement filters
    list_failures: int = 0  # letter, artist and works-list pages that could not be fetched
    reached_max: bool = False
    requests: int = 0  # HTTP requests made, retries and redirects included

    def line(self, out: Path, interrupted: bool = False) -> str:
        head = "WikiArt crawl interrupted" if interrupted else "WikiArt crawl done"
        text = (
            f"{head}: saved {self.saved} new image(s) in {out}, {self.already} already there, "
            f"{self.skipped} skipped, {self.failed} failed (retried on the next run)"
        )
        if self.rejected_before:
            text += f", {self.rejected_before} rejected by an earlier run (see {CRAWL_LOG_NAME})"
        text += f"; {self.artists_kept} of {self.artists_listed} artist(s) kept"
        if self.list_failures:
            text += f", {self.list_failures} list page(s) could not be fetched"
        if self.reached_max:
            text += "; stopped at --max-images"
        return text + "."


# ---------------------------------------------------------------------------------------
# parsing (pure functions of the HTML, so they can be tested without a server)


@dataclass
class ArtistLink:
    name: str
    url: str
    born: int
    died: int


@dataclass
class PaintingPage:
    title: str | None
    genres: list[str]
    public_domain: bool
    licence: str  # "Public domain", what the page says otherwise, or "unknown"
    image_url: str | None  # absolute, with WikiArt's "!Large.jpg" size suffix removed


def parse_life_dates(text: str) -> tuple[int, int]:
    """(born, died) from text like ", 1840 - 1926"; 0 for a year that is not given.

    Life dates on WikiArt are free text: "c. 1840 – 1926", "1840 -", "b. 1950",
    "? - 1926", or nothing. A year is three or four digits standing alone; the death
    year is the first one after the dash that follows the birth year.
    """
    text = text or ""
    first = _YEAR.search(text)
    if first is None:
        return 0, 0
    dash = _DASH.search(text)
    if dash is not None and dash.start() < first.start() and _DASH.search(text, first.end()) is None:
        return 0, int(first.group(1))  # "? - 1926": only a death year
    after = _DASH.search(text, first.end())
    if after is None:
        return int(first.group(1)), 0
    died = _YEAR.search(text, after.end())
    return int(first.group(1)), int(died.group(1)) if died else 0


def strip_image_suffix(url: str) -> str:
    """The original image URL: WikiArt appends "!Large.jpg"-style size variants to it."""
    return url.split("!", 1)[0]


def parse_artist_list(html: str | bytes, page_url: str, charset: str | None = None) -> list[ArtistLink]:
    soup = _soup(html, charset)
    artists = []
    for li in _main(soup).find_all("li"):
        link = li.find("a", href=True)
        if link is None:
            continue
        name = " ".join(link.get_text(" ").split())
        rest = " ".join(s for s in _strings(li) if not any(p is link for p in s.parents))
        born, died = parse_life_dates(rest)
        artists.append(ArtistLink(name=name, url=_clean_url(urljoin(page_url, link["href"])), born=born, died=died))
    return artists


def parse_works_list(html: str | bytes, page_url: str, charset: str | None = None) -> list[str]:
    soup = _soup(html, charset)
    urls = []
    for li in _main(soup).find_all("li"):
        link = li.find("a", href=True)
        if link is not None:
            urls.append(_clean_url(urljoin(page_url, link["href"])))
    return urls


def page_mentions(html: str | bytes, words: str, charset: str | None = None) -> bool:
    """Whether the page's visible content mentions `words` (case and spacing ignored)."""
    return _norm(words) in _norm(" ".join(_strings(_main(_soup(html, charset)))))


def parse_painting(html: str | bytes, page_url: str, charset: str | None = None) -> PaintingPage:
    soup = _soup(html, charset)
    main = _main(soup)
    text = _norm(" ".join(_strings(main)))
    public_domain = "public domain" in text

    og_image = _meta(soup, "og:image")
    image_url = strip_image_suffix(urljoin(page_url, og_image)) if og_image else None

    title = None
    for tag in (main.find("h3"), main.find("h1"), soup.find("h1")):
        if tag is not None and tag.get_text(strip=True):
            title = " ".join(tag.get_text(" ").split())
            break
    if title is None:
        title = _meta(soup, "og:title")

    genres = [" ".join(s.get_text(" ").split()) for s in soup.find_all("span", attrs={"itemprop": "genre"})]
    licence = PUBLIC_DOMAIN if public_domain else _find_licence(main)
    return PaintingPage(title=title, genres=genres, public_domain=public_domain, licence=licence, image_url=image_url)


def _find_licence(node) -> str:
    """What follows "License:" or "Copyright:" on the page, or "unknown"."""
    lines = [" ".join(s.split()) for s in "\n".join(_strings(node, sep=True)).split("\n")]
    lines = [s for s in lines if s]
    for i, line in enumerate(lines):
        m = re.match(r"^(?:licen[cs]e|copyright)\s*:?\s*(.*)$", line, re.IGNORECASE)
        if not m:
            continue
        value = m.group(1).strip() or (lines[i + 1] if i + 1 < len(lines) else "")
        value = value.strip(" :")
        if value:
            return value[:80]
    return "unknown"


def _soup(html: str | bytes, charset: str | None) -> BeautifulSoup:
    if isinstance(html, bytes) and charset:
        try:
            html = html.decode(charset, errors="replace")
        except LookupError:
            pass  # unknown charset name: let BeautifulSoup sniff
    return BeautifulSoup(html, "html.parser")


def _main(soup: BeautifulSoup):
    return soup.find("main") or soup.body or soup


def _strings(node, sep: bool = False) -> Iterator[str]:
    """Visible text pieces: no scripts, styles or comments, which may mention anything."""
    for s in node.find_all(string=True):
        if type(s) not in (NavigableString, CData):
            continue
        if s.parent is not None and s.parent.name in ("script", "style", "noscript", "template"):
            continue
        yield s


def _meta(soup: BeautifulSoup, prop: str) -> str | None:
    for tag in soup.find_all("meta"):
        if (tag.get("property") or tag.get("name") or "").strip().lower() == prop and (
            tag.get("content") or ""
        ).strip():
            return tag["content"].strip()
    return None


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _clean_url(url: str) -> str:
    """Without the fragment, so the same page linked two ways is one page."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def _last_segment(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return PurePosixPath(path).name if path else ""


# ---------------------------------------------------------------------------------------
# the crawl


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


def crawl_wikiart(
    out: Path,
    config: CrawlConfig = CrawlConfig(),
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> CrawlSummary:
    """Download the paintings `config` selects into `out`; resumable, never aborts on the network."""
    validate_config(config)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create the output folder {out}: {e.strerror or e}.") from None
    if progress and log is print:
        log = tqdm.write  # print would tear the progress bar
    crawl = _Crawl(out, config, log, progress)
    return crawl.run()


class _Crawl:
    def __init__(self, out: Path, config: CrawlConfig, log: Callable[[str], None], progress: bool):
        self.out = out
        self.cfg = config
        self.log = log
        self.progress = progress
        self.summary = CrawlSummary()
        self.key = filter_key(config)
        self.genre = _norm(config.genre)
        self.base = config.base_url.rstrip("/")

        _end_with_newline(out / CRAWL_LOG_NAME)
        for p in out.iterdir():
            if _PART.match(p.name) and p.is_file():
                p.unlink(missing_ok=True)  # left by a crawl killed mid-write

        present = [r for r in read_manifest(out) if _present(out, r.file)]
        self.done_sources = {r.source for r in present}
        self.known_sha = {r.sha256: r.file for r in present}
        self.have = len({r.file for r in present})
        self.taken = {r.file for r in present} | {p.name for p in out.iterdir()}
        self.rejected = _read_crawl_log(out, self.key)
        self.seen_paintings: set[str] = set()
        self.seen_artists: set[str] = set()

    def full(self) -> bool:
        return self.cfg.max_images is not None and self.have >= self.cfg.max_images

    def run(self) -> CrawlSummary:
        cfg, out = self.cfg, self.out
        if self.full():
            self.summary.reached_max = True
            self.log(f"{out} already holds {self.have} image(s), at least max_images={cfg.max_images}; nothing to do.")
            return self.summary
        self.fetcher = Fetcher(
            cfg.base_url,
            user_agent=cfg.user_agent,
            allow_hosts=cfg.allow_hosts,
            delay=cfg.delay,
            timeout=cfg.timeout,
            retries=cfg.retries,
            backoff=cfg.backoff,
        )
        try:
            with (
                self.fetcher,
                ManifestWriter(out) as self.manifest,
                open(out / CRAWL_LOG_NAME, "a", encoding="utf-8") as self.crawl_log,
                tqdm(
                    total=cfg.max_images,
                    initial=self.have,
                    desc="wikiart",
                    unit="img",
                    disable=not self.progress,
                ) as self.bar,
            ):
                self._walk()
        except KeyboardInterrupt:
            self.log(self.summary.line(out, interrupted=True))
            raise
        finally:
            self.summary.requests = self.fetcher.requests_made
        self.log(self.summary.line(out))
        return self.summary

    # -- walking the site ---------------------------------------------------------------

    def _walk(self) -> None:
        for artist in self._artists():
            works_url = artist.url.rstrip("/") + "/all-works/text-list"
            page = self._get_page(works_url, f"works of {artist.name}")
            if page is None:
                continue
            for url in parse_works_list(page.content, page.url, page.charset):
                if self.full():
                    self.summary.reached_max = True
                    return
                self._painting(url, artist)
            if self.full():
                self.summary.reached_max = True
                return

    def _artists(self) -> Iterator[ArtistLink]:
        cfg = self.cfg
        for letter in dict.fromkeys(cfg.letters):
            url = f"{self.base}/en/Alphabet/{letter}/text-list"
            page = self._get_page(url, f"artists under {letter!r}")
            if page is None:
                continue
            for artist in parse_artist_list(page.content, page.url, page.charset):
                if artist.url in self.seen_artists:
                    continue
                self.seen_artists.add(artist.url)
                self.summary.artists_listed += 1
                if not (artist.born > cfg.born_after and 0 < artist.died < cfg.died_before):
                    continue
                if not self.fetcher.allowed(artist.url, base_host_only=True):
                    self.log(f"skipped artist {artist.name} ({artist.url}): not on {urlsplit(self.base).hostname}")
                    continue
                if artist.url in self.rejected:
                    continue
                page = self._get_page(artist.url, f"artist page of {artist.name}")
                if page is None:
                    continue
                if not page_mentions(page.content, cfg.movement, page.charset):
                    self._reject(artist.url, f"artist page does not mention {cfg.movement}", "artist")
                    continue
                self.summary.artists_kept += 1
                yield artist

    def _get_page(self, url: str, what: str):
        """A list or artist page, or None after logging why not (these are never remembered)."""
        try:
            return self.fetcher.get(url, max_bytes=MAX_PAGE_BYTES, accept="text/html", base_host_only=True)
        except FetchError as e:
            if e.status != 404:
                self.summary.list_failures += 1
            if e.status == 404:
                self.log(f"no {what} ({url}): HTTP 404")
            else:
                self.log(f"could not fetch {what} ({url}): {e}")
            return None

    # -- one painting ---------------------------------------------------------------------

    def _painting(self, url: str, artist: ArtistLink) -> None:
        s = self.summary
        if url in self.seen_paintings:
            return
        self.seen_paintings.add(url)
        if url in self.done_sources:
            s.already += 1
            return
        if url in self.rejected:
            s.rejected_before += 1
            return
        if not self.fetcher.allowed(url, base_host_only=True):
            self._skip(url, f"painting link leads off {urlsplit(self.base).hostname}")
            return
        self.bar.set_postfix_str(artist.name[:30], refresh=False)

        try:
            page = self.fetcher.get(url, max_bytes=MAX_PAGE_BYTES, accept="text/html", base_host_only=True)
        except FetchError as e:
            self._fetch_failed(url, "painting page", e)
            return
        info = parse_painting(page.content, page.url, page.charset)
        if self.cfg.public_domain_only and not info.public_domain:
            self._reject(url, "not marked public domain")
            return
        genre = next((g for g in info.genres if _norm(g) == self.genre), None)
        if genre is None:
            found = ", ".join(info.genres) or "none given"
            self._reject(url, f"genre is {found}, not {self.cfg.genre}")
            return
        if info.image_url is None:
            self._reject(url, "no og:image on the page", quiet=False)
            return
        if not self.fetcher.allowed(info.image_url):
            self._reject(url, f"image is on a host that is not allowed: {info.image_url}", quiet=False)
            return

        try:
            image = self.fetcher.get(info.image_url, max_bytes=self.cfg.max_bytes, accept="image/*")
        except TooLarge as e:
            self._reject(url, f"image {info.image_url} is {e}", quiet=False)
            return
        except OffHost as e:
            self._reject(url, f"image {e}", quiet=False)
            return
        except FetchError as e:
            self._fetch_failed(url, f"image {info.image_url}", e)
            return
        data = image.content
        try:
            width, height, fmt = check_image_bytes(data)
        except BadImage as e:
            if image.content_type.startswith("text/"):
                # An HTML error or challenge page in place of the image: the site's
                # trouble, not the painting's, so try again next run.
                s.failed += 1
                self.log(f"failed {url}: image URL returned {image.content_type}, not an image; will retry next run")
            else:
                self._reject(url, f"image {info.image_url} is not usable: {e}", quiet=False)
            return
        sha = hashlib.sha256(data).hexdigest()
        if sha in self.known_sha:
            s.duplicates += 1
            self._reject(url, f"same image as {self.known_sha[sha]}", quiet=False)
            return

        artist_slug = slugify(_last_segment(artist.url), max_len=80, fallback="artist")
        painting_slug = slugify(_last_segment(url), max_len=80, fallback="painting")
        name = unique_name(f"{artist_slug}_{painting_slug}", SUFFIX_BY_FORMAT.get(fmt, ".img"), self.taken)
        record = RawRecord(
            file=name,
            sha256=sha,
            bytes=len(data),
            source=url,
            image_url=info.image_url,
            artist=artist.name or artist_slug,
            born=artist.born,
            died=artist.died,
            title=(info.title or painting_slug)[:MAX_TITLE],
            licence=info.licence,
            genre=genre,
            extra={"width": width, "height": height, "format": fmt, "artist_url": artist.url},
        )
        self._save(name, data, record)
        self.done_sources.add(url)
        self.known_sha[sha] = name
        self.have += 1
        s.saved += 1
        self.bar.update(1)

    def _save(self, name: str, data: bytes, record: RawRecord) -> None:
        """Image first (atomically), record second: the manifest never lists a partial file.

        An interrupt after the rename but before the record reached the manifest removes
        the image again, so no unlisted file is left for the next run to trip over.
        """
        path = confined_path(self.out, name)
        tmp = path.with_name(f".{name}.{os.getpid()}.part")
        renamed = listed = False
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            renamed = True
            self.manifest.append(record)
            listed = True
        except OSError as e:
            raise UserError(f"Cannot write {path}: {e.strerror or e}.") from None
        finally:
            if not listed:
                tmp.unlink(missing_ok=True)
                if renamed:
                    path.unlink(missing_ok=True)
                self.taken.discard(name)

    # -- bookkeeping ------------------------------------------------------------------------

    def _skip(self, url: str, reason: str) -> None:
        self.summary.skipped += 1
        self.log(f"skipped {url}: {reason}")

    def _reject(self, url: str, reason: str, kind: str = "painting", quiet: bool = True) -> None:
        """A final verdict under the current filters: remembered, so no re-run asks again.

        Plain filter misses (wrong genre, not public domain) are the normal case and would
        drown the log; they are only written to the crawl log.
        """
        if kind == "painting":
            self.summary.skipped += 1
        if not quiet:
            self.log(f"skipped {url}: {reason}")
        entry = {"url": url, "kind": kind, "reason": reason, "filters": self.key, "time": int(time.time())}
        self.crawl_log.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.crawl_log.flush()
        self.rejected.add(url)

    def _fetch_failed(self, url: str, what: str, e: FetchError) -> None:
        if e.transient:
            self.summary.failed += 1
            self.log(f"failed {url}: {what}: {e}; will retry next run")
        else:
            self._skip(url, f"{what}: {e}")


def _present(out: Path, name: str) -> bool:
    try:
        return confined_path(out, name).is_file()
    except (ValueError, TypeError, OSError):  # a hand-edited manifest may hold anything
        return False


def _read_crawl_log(out: Path, key: str) -> set[str]:
    path = out / CRAWL_LOG_NAME
    urls: set[str] = set()
    if not path.exists():
        return urls
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(entry, dict) and entry.get("filters") == key and isinstance(entry.get("url"), str):
                urls.add(entry["url"])
    return urls


def _end_with_newline(path: Path) -> None:
    """Finish a last line cut short by a crash, so the next append starts a line of its own."""
    try:
        with open(path, "rb+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except FileNotFoundError:
        pass
