"""Reading WikiArt's pages: pure functions of the HTML, so they can be tested without a server.

Everything here treats the page as untrusted text: only visible text counts (no
scripts, styles or comments), and URLs are made absolute and lose their fragment.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, CData, NavigableString

PUBLIC_DOMAIN = "Public domain"

_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
_DASH = re.compile("[-\u2010-\u2015\u2212]")  # hyphen, en/em dashes, minus sign


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
