"""The crawl: letters → artists → works lists → paintings, each image saved and listed at once.

Rejections are appended to the crawl log (`crawl-log.jsonl`) under the key of the
filter settings; network failures are only logged, so the next run retries them.
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
from urllib.parse import urlsplit

from tqdm import tqdm

from ganscapes.data.fetch import Fetcher, FetchError, OffHost, TooLarge
from ganscapes.data.images import BadImage, check_image_bytes
from ganscapes.data.manifest import ManifestWriter, RawRecord, read_manifest
from ganscapes.data.naming import confined_path, slugify, unique_name
from ganscapes.data.wikiart.config import CrawlConfig, filter_key, validate_config
from ganscapes.data.wikiart.pages import (
    ArtistLink,
    _norm,
    page_mentions,
    parse_artist_list,
    parse_painting,
    parse_works_list,
)
from ganscapes.errors import UserError

CRAWL_LOG_NAME = "crawl-log.jsonl"
MAX_PAGE_BYTES = 10_000_000  # an HTML page bigger than this is not a WikiArt page
MAX_TITLE = 500  # characters kept of a scraped title
SUFFIX_BY_FORMAT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
_PART = re.compile(r"^\..+\.\d+\.part$")


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


def _last_segment(url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return PurePosixPath(path).name if path else ""


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
