"""The WikiArt crawler against a fake WikiArt on the loopback interface.

The fake site is small but has one of every trap the real crawl meets: artists outside
the dates or the movement, copyrighted and wrong-genre paintings, pages without an
image, images on foreign hosts, huge images, non-images, path-traversal slugs, and
endpoints that fail once, twice or always.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
from pathlib import Path

import pytest
from PIL import Image
from wikiart_fake import FakeServer, Reply

from ganscapes.data import wikiart
from ganscapes.data.fetch import Fetcher, FetchError, OffHost, TooLarge, host_allowed, parse_retry_after
from ganscapes.data.manifest import MANIFEST_NAME, ManifestWriter, read_manifest
from ganscapes.data.wikiart import (
    CRAWL_LOG_NAME,
    CrawlConfig,
    crawl_wikiart,
    filter_key,
    parse_artist_list,
    parse_life_dates,
    parse_painting,
    strip_image_suffix,
)
from ganscapes.errors import UserError

MAX_BYTES = 60_000
LONG_SLUG = "a" * 300
TRAVERSAL_SLUG = "..%2F..%2Fetc%2Fpasswd"


# ---------------------------------------------------------------------------------------
# the fake site


def jpeg(color: tuple[int, int, int], size=(32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def noisy_jpeg(side: int = 320) -> bytes:
    """A JPEG that cannot compress below MAX_BYTES."""
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    data = buf.getvalue()
    assert len(data) > MAX_BYTES
    return data


def html_list(entries: list[tuple[str, str, str]]) -> str:
    items = "".join(f'<li><a href="{href}">{name}</a><span>{dates}</span></li>' for href, name, dates in entries)
    # The header list sits outside <main> and must not be taken for an artist or work.
    return (
        '<html><head><title>list</title></head><body><header><ul><li><a href="/en/artists-by-art-movement">'
        f"Impressionism, 1800 - 1900</a></li></ul></header><main><ul>{items}</ul></main></body></html>"
    )


def artist_html(name: str, movement: str) -> str:
    return (
        f"<html><head><script>var tags = ['Impressionism'];</script></head><body><main><article><h3>{name}</h3>"
        f"<ul><li>Art Movement:\n  <a href='/en/artists-by-art-movement/x'>{movement}</a></li></ul>"
        "</article></main></body></html>"
    )


def painting_html(title: str, genre: str, licence: str = "Public domain", og_image: str | None = None) -> str:
    og = f'<meta property="og:image" content="{og_image}">' if og_image else ""
    return (
        f'<html><head><meta property="og:title" content="{title} - WikiArt.org">{og}</head><body>'
        f"<main><article><h3>{title}</h3><ul>"
        f'<li>Genre: <a href="/en/paintings-by-genre/x"><span itemprop="genre">{genre}</span></a></li>'
        f"<li>{licence}</li></ul></article></main></body></html>"
    )


class Site:
    """The fake site's content, and what a crawl of it should produce."""

    def __init__(self, server: FakeServer):
        self.server = server
        s, base, other = server, server.base, server.other
        self.images = {
            "sunrise": jpeg((200, 120, 40)),
            "passwd": jpeg((10, 20, 30)),
            "long": jpeg((40, 200, 90)),
            "flaky429": jpeg((90, 90, 200)),
            "flaky500": jpeg((200, 200, 10)),
            "moved": jpeg((5, 120, 220)),
            "elsewhere": jpeg((255, 0, 0)),
            "boulevard": jpeg((120, 120, 120)),
            "hay": jpeg((230, 210, 150), size=(40, 30)),
            "lilies": jpeg((0, 140, 120)),
            "portrait": jpeg((250, 220, 200)),
        }

        s.page(
            "/en/Alphabet/c/text-list",
            html_list(
                [
                    ("/en/claude-monet", "Claude Monet", ", 1840 - 1926"),
                    ("/en/old-master", "Old Master", ", 1790 - 1850"),
                    ("/en/living-painter", "Living Painter", ", b. 1950"),
                    ("/en/gustave-courbet", "Gustave Courbet", ", 1819 - 1877"),
                    ("/en/late-painter", "Late Painter", ", 1870 - 1960"),
                    (f"{other}/en/off-host-artist", "Off Host", ", 1850 - 1900"),
                ]
            ),
        )
        s.page(
            "/en/Alphabet/p/text-list",
            html_list(
                [
                    ("/en/camille-pissarro", "Camille Pissarro", " ,  c. 1830 \u2013 1903 "),
                    ("/en/claude-monet", "Claude Monet", ", 1840 - 1926"),  # listed twice: one artist
                ]
            ),
        )
        # no route for letter x: a 404 that must just be skipped

        s.page("/en/claude-monet", artist_html("Claude Monet", "Impressionism"))
        s.page("/en/camille-pissarro", artist_html("Camille Pissarro", "impressionism"))
        s.page("/en/gustave-courbet", artist_html("Gustave Courbet", "Realism"))
        for slug in ("old-master", "living-painter", "late-painter", "off-host-artist"):
            s.page(f"/en/{slug}", artist_html(slug, "Impressionism"))

        monet = "/en/claude-monet"
        works = [
            "impression-sunrise",
            "impression-sunrise#comments",  # the same page again
            "water-lilies",
            "portrait-of-camille",
            "no-image",
            "elsewhere",
            "garbage",
            "huge",
            "huge-chunked",
            TRAVERSAL_SLUG,
            LONG_SLUG,
            "flaky-429",
            "flaky-500",
            "always-503",
            "html-instead",
            "missing",
            f"{other}{monet}/off-host-work",
            "duplicate",
            "moved",
            "redirect-away",
        ]
        s.page(
            f"{monet}/all-works/text-list",
            html_list([(w if w.startswith("http") else f"{monet}/{w}", w, ", 1872") for w in works]),
        )

        def painting(slug, title, image_path, genre="landscape", licence="Public domain", suffix="!Large.jpg"):
            og = f"{base}{image_path}{suffix}" if image_path and not image_path.startswith("http") else image_path
            s.page(f"{monet}/{slug}", painting_html(title, genre, licence, og))

        painting("impression-sunrise", "Impression, sunrise", "/img/monet/sunrise.jpg")
        s.image("/img/monet/sunrise.jpg", self.images["sunrise"])  # only the stripped URL exists
        painting("water-lilies", "Water Lilies", "/img/monet/lilies.jpg", licence="Copyright: <a href='#'>Fair Use</a>")
        s.image("/img/monet/lilies.jpg", self.images["lilies"])
        painting("portrait-of-camille", "Camille", "/img/monet/portrait.jpg", genre="portrait")
        s.image("/img/monet/portrait.jpg", self.images["portrait"])
        painting("no-image", "Lost", None)
        painting("elsewhere", "Elsewhere", f"{other}/img/monet/elsewhere.jpg!Large.jpg")
        s.image("/img/monet/elsewhere.jpg", self.images["elsewhere"])
        painting("garbage", "Garbage", "/img/monet/garbage.jpg")
        s.image("/img/monet/garbage.jpg", b"this is not a JPEG at all")
        painting("huge", "Huge", "/img/monet/huge.jpg")
        s.image("/img/monet/huge.jpg", noisy_jpeg())
        painting("huge-chunked", "Huge, no length", "/img/monet/huge-chunked.jpg")
        s.image("/img/monet/huge-chunked.jpg", noisy_jpeg(), send_length=False)
        painting(TRAVERSAL_SLUG, "../../etc/passwd", "/img/monet/passwd.jpg")
        s.image("/img/monet/passwd.jpg", self.images["passwd"])
        painting(LONG_SLUG, "A/very\x00long/../title " * 20, "/img/monet/long.jpg")
        s.image("/img/monet/long.jpg", self.images["long"])
        s.route(
            f"{monet}/flaky-429",
            Reply(status=429, body="slow down", headers={"Retry-After": "0"}),
            Reply(body=painting_html("Flaky 429", "Landscape", og_image=f"{base}/img/monet/flaky429.jpg!Large.jpg")),
        )
        s.image("/img/monet/flaky429.jpg", self.images["flaky429"])
        painting("flaky-500", "Flaky 500", "/img/monet/flaky500.jpg")
        s.route(
            "/img/monet/flaky500.jpg",
            Reply(status=500, body="oops"),
            Reply(status=502, body="oops"),
            Reply(body=self.images["flaky500"], content_type="image/jpeg"),
        )
        s.route(f"{monet}/always-503", Reply(status=503, body="down"))
        painting("html-instead", "HTML", "/img/monet/html.jpg")
        s.route("/img/monet/html.jpg", Reply(body="<html>are you a robot?</html>"))
        painting("duplicate", "Duplicate", "/img/monet/dup.jpg")
        s.image("/img/monet/dup.jpg", self.images["sunrise"])
        s.redirect(f"{monet}/moved", f"{monet}/moved-here")
        s.route(f"{monet}/moved-here", Reply(body=painting_html("Moved", "landscape", og_image="/img/monet/moved.jpg")))
        s.image("/img/monet/moved.jpg", self.images["moved"])
        s.redirect(f"{monet}/redirect-away", f"{other}{monet}/impression-sunrise")

        pissarro = "/en/camille-pissarro"
        s.page(
            f"{pissarro}/all-works/text-list",
            html_list([(f"{pissarro}/boulevard-montmartre", "Boulevard", ""), (f"{pissarro}/hay-harvest", "Hay", "")]),
        )
        s.page(
            f"{pissarro}/boulevard-montmartre",
            painting_html("Boulevard Montmartre", "landscape", og_image="/img/pissarro/boulevard.jpg!Large.jpg"),
        )
        s.image("/img/pissarro/boulevard.jpg", self.images["boulevard"])
        s.page(
            f"{pissarro}/hay-harvest",
            painting_html("Hay Harvest", "  Landscape ", "License:\n Public Domain ", og_image="/img/pissarro/hay.jpg"),
        )
        s.image("/img/pissarro/hay.jpg", self.images["hay"])

        self.expected = {
            "claude-monet_impression-sunrise.jpg": ("sunrise", f"{monet}/impression-sunrise"),
            "claude-monet_etc-passwd.jpg": ("passwd", f"{monet}/{TRAVERSAL_SLUG}"),
            f"claude-monet_{'a' * 80}.jpg": ("long", f"{monet}/{LONG_SLUG}"),
            "claude-monet_flaky-429.jpg": ("flaky429", f"{monet}/flaky-429"),
            "claude-monet_flaky-500.jpg": ("flaky500", f"{monet}/flaky-500"),
            "claude-monet_moved.jpg": ("moved", f"{monet}/moved"),
            "camille-pissarro_boulevard-montmartre.jpg": ("boulevard", f"{pissarro}/boulevard-montmartre"),
            "camille-pissarro_hay-harvest.jpg": ("hay", f"{pissarro}/hay-harvest"),
        }


@pytest.fixture
def server():
    with FakeServer() as s:
        yield s


@pytest.fixture
def site(server):
    return Site(server)


def config(server: FakeServer, **kw) -> CrawlConfig:
    settings = dict(
        base_url=server.base,
        letters="cpx",
        delay=0,
        backoff=0.01,
        timeout=5,
        max_bytes=MAX_BYTES,
        user_agent="ganscapes-test/1.0 (+https://example.org/tests)",
    )
    settings.update(kw)
    return CrawlConfig(**settings)


def crawl(out: Path, cfg: CrawlConfig):
    lines: list[str] = []
    summary = crawl_wikiart(out, cfg, progress=False, log=lines.append)
    return summary, lines


def image_files(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.suffix == ".jpg"}


# ---------------------------------------------------------------------------------------
# the crawl


def test_crawl_saves_exactly_the_wanted_paintings(tmp_path, server, site):
    out = tmp_path / "raw"
    summary, lines = crawl(out, config(server))

    assert image_files(out) == set(site.expected)
    records = {r.file: r for r in read_manifest(out)}
    assert set(records) == set(site.expected)
    for name, (key, source_path) in site.expected.items():
        r = records[name]
        data = (out / name).read_bytes()
        assert data == site.images[key]
        assert r.sha256 == hashlib.sha256(data).hexdigest() and r.bytes == len(data)
        assert r.source == server.base + source_path
        assert r.licence == "Public domain"
        assert r.genre.strip().lower() == "landscape"
        assert "!" not in r.image_url and r.image_url.startswith(server.base + "/img/")

    monet = records["claude-monet_impression-sunrise.jpg"]
    assert (monet.artist, monet.born, monet.died, monet.title) == ("Claude Monet", 1840, 1926, "Impression, sunrise")
    assert monet.image_url == f"{server.base}/img/monet/sunrise.jpg"
    pissarro = records["camille-pissarro_hay-harvest.jpg"]
    assert (pissarro.artist, pissarro.born, pissarro.died) == ("Camille Pissarro", 1830, 1903)
    assert records["claude-monet_etc-passwd.jpg"].title == "../../etc/passwd"
    assert records["claude-monet_moved.jpg"].title == "Moved"

    assert (summary.saved, summary.already, summary.skipped, summary.failed) == (8, 0, 11, 2)
    assert (summary.duplicates, summary.artists_listed, summary.artists_kept) == (1, 7, 2)
    assert summary.list_failures == 0 and not summary.reached_max

    hits = server.hits
    assert hits["/en/Alphabet/x/text-list"] == 1
    assert hits["/en/claude-monet/flaky-429"] == 2
    assert hits["/img/monet/flaky500.jpg"] == 3
    assert hits["/en/claude-monet/always-503"] == 4  # 1 + 3 retries
    assert hits["/en/claude-monet/missing"] == 1  # a 404 is not retried
    assert hits["/en/claude-monet/impression-sunrise"] == 1  # the #comments link is the same page
    for slug in ("old-master", "living-painter", "late-painter", "off-host-artist"):
        assert hits[f"/en/{slug}"] == 0, slug  # date or host filter decided without a request
    assert hits["/en/gustave-courbet"] == 1 and hits["/en/gustave-courbet/all-works/text-list"] == 0
    assert hits["/img/monet/elsewhere.jpg"] == 0  # foreign image host never contacted
    assert hits["/en/claude-monet/off-host-work"] == 0
    assert hits["/img/monet/lilies.jpg"] == hits["/img/monet/portrait.jpg"] == 0  # filters come first
    assert hits["/img/monet/sunrise.jpg!Large.jpg"] == 0

    assert {agent for _, _, agent in server.requests} == {"ganscapes-test/1.0 (+https://example.org/tests)"}
    assert {host for host, _, _ in server.requests} == {f"127.0.0.1:{server.port}"}

    text = "\n".join(lines)
    assert "no-image: no og:image" in text
    assert "elsewhere: image is on a host that is not allowed" in text
    assert "always-503" in text and "will retry next run" in text
    assert "garbage: image" in text and "not usable" in text
    assert "huge: image" in text and f"larger than {MAX_BYTES:,} bytes" in text
    assert "huge-chunked: image" in text
    assert "same image as claude-monet_impression-sunrise.jpg" in text
    assert "redirect-away" in text and "not allowed" in text
    assert "no artists under 'x'" in text
    assert lines[-1].startswith("WikiArt crawl done: saved 8 new image(s)")


def test_traversal_and_long_slugs_stay_inside_out(tmp_path, server, site):
    out = tmp_path / "deep" / "raw"
    crawl(out, config(server))
    assert not (tmp_path / "etc").exists() and not (tmp_path / "deep" / "etc").exists()
    for r in read_manifest(out):
        path = (out / r.file).resolve()
        assert path.parent == out.resolve()
        assert len(r.file) < 200 and "/" not in r.file and "\x00" not in r.file
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [f"deep/raw/{n}" for n in site.expected] + [f"deep/raw/{MANIFEST_NAME}", f"deep/raw/{CRAWL_LOG_NAME}"]
    )


def test_resume_downloads_nothing_again(tmp_path, server, site):
    out = tmp_path / "raw"
    cfg = config(server)
    crawl(out, cfg)
    before = server.hits.copy()
    manifest_before = (out / MANIFEST_NAME).read_text()

    summary, lines = crawl(out, cfg)
    assert summary.saved == 0 and summary.already == 8
    assert summary.rejected_before == 8  # lilies, portrait, no-image, elsewhere, garbage, huge x2, duplicate
    assert summary.failed == 2 and summary.skipped == 3  # 503 and HTML retried; 404, off-host, redirect-away
    assert (out / MANIFEST_NAME).read_text() == manifest_before
    new = server.hits - before
    assert {p for p in new if p.startswith("/img/")} == {"/img/monet/html.jpg"}  # only the failed one again
    for name, (_, source_path) in site.expected.items():
        assert new[source_path] == 0, name
    assert new["/en/claude-monet/water-lilies"] == 0 and new["/en/gustave-courbet"] == 0
    assert new["/en/claude-monet/always-503"] == 4
    assert lines[-1].startswith("WikiArt crawl done: saved 0 new image(s)")


def test_changed_filters_reconsider_rejections_and_allow_hosts(tmp_path, server, site):
    out = tmp_path / "raw"
    crawl(out, config(server))
    cfg = config(server, allow_hosts=("uploads*.wikiart.org", f"LOCALHOST:{server.port}"))  # the port counts
    assert filter_key(cfg) != filter_key(config(server))
    summary, _ = crawl(out, cfg)
    assert summary.saved == 1 and summary.already == 8 and summary.rejected_before == 0
    elsewhere = next(r for r in read_manifest(out) if r.file == "claude-monet_elsewhere.jpg")
    assert elsewhere.image_url == f"{server.other}/img/monet/elsewhere.jpg"
    assert (out / elsewhere.file).read_bytes() == site.images["elsewhere"]
    assert server.hits["/en/claude-monet/water-lilies"] == 2  # re-judged under the new filters
    assert server.hits["/en/claude-monet/off-host-work"] == 0  # allow_hosts is for images, not pages
    assert (f"localhost:{server.port}", "/en/claude-monet/impression-sunrise", cfg.user_agent) not in server.requests


def test_max_images_counts_earlier_runs(tmp_path, server, site):
    out = tmp_path / "raw"
    summary, _ = crawl(out, config(server, max_images=2))
    assert summary.saved == 2 and summary.reached_max
    assert image_files(out) == {"claude-monet_impression-sunrise.jpg", "claude-monet_etc-passwd.jpg"}
    assert server.hits[f"/en/claude-monet/{LONG_SLUG}"] == 0 and server.hits["/en/Alphabet/p/text-list"] == 0

    summary, _ = crawl(out, config(server, max_images=3))
    assert summary.saved == 1 and summary.already == 2
    assert len(read_manifest(out)) == 3

    before = sum(server.hits.values())
    summary, lines = crawl(out, config(server, max_images=3))
    assert summary.saved == 0 and summary.reached_max and sum(server.hits.values()) == before
    assert "nothing to do" in lines[0]


def test_any_licence_records_the_licence_found(tmp_path, server, site):
    out = tmp_path / "raw"
    summary, _ = crawl(out, config(server, public_domain_only=False, letters="c"))
    records = {r.file: r for r in read_manifest(out)}
    assert records["claude-monet_water-lilies.jpg"].licence == "Fair Use"
    assert records["claude-monet_impression-sunrise.jpg"].licence == "Public domain"
    assert "claude-monet_portrait-of-camille.jpg" not in records  # still the wrong genre
    assert summary.saved == 7


def test_interrupt_leaves_manifest_and_folder_consistent(tmp_path, server, site, monkeypatch):
    out = tmp_path / "raw"
    real_append = ManifestWriter.append
    calls = []

    def append_then_interrupt(self, record):
        calls.append(record.file)
        if len(calls) == 3:
            raise KeyboardInterrupt  # after the image was renamed into place, before it was listed
        real_append(self, record)

    monkeypatch.setattr(ManifestWriter, "append", append_then_interrupt)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        crawl_wikiart(out, config(server), progress=False, log=lines.append)
    assert lines[-1].startswith("WikiArt crawl interrupted: saved 2")
    listed = {r.file for r in read_manifest(out)}
    assert len(listed) == 2 and image_files(out) == listed
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]

    monkeypatch.setattr(ManifestWriter, "append", real_append)
    summary, _ = crawl(out, config(server))
    assert summary.saved == 6 and summary.already == 2
    assert image_files(out) == {r.file for r in read_manifest(out)} == set(site.expected)


def test_cut_manifest_line_and_stale_temp_files_are_repaired(tmp_path, server, site):
    out = tmp_path / "raw"
    out.mkdir()
    (out / MANIFEST_NAME).write_text('{"file": "cut-sh')
    (out / ".claude-monet_x.jpg.4242.part").write_bytes(b"half an image")
    crawl(out, config(server, max_images=1))
    assert [r.file for r in read_manifest(out)] == ["claude-monet_impression-sunrise.jpg"]
    assert not (out / ".claude-monet_x.jpg.4242.part").exists()


def test_crawl_log_records_filter_rejections_only(tmp_path, server, site):
    out = tmp_path / "raw"
    crawl(out, config(server))
    entries = [json.loads(line) for line in (out / CRAWL_LOG_NAME).read_text().splitlines()]
    key = filter_key(config(server))
    assert {e["filters"] for e in entries} == {key}
    by_url = {e["url"].removeprefix(server.base): e for e in entries}
    assert by_url["/en/gustave-courbet"]["kind"] == "artist"
    assert "Impressionism" in by_url["/en/gustave-courbet"]["reason"]
    assert "public domain" in by_url["/en/claude-monet/water-lilies"]["reason"]
    assert "portrait" in by_url["/en/claude-monet/portrait-of-camille"]["reason"]
    for transient in ("always-503", "html-instead", "missing"):
        assert f"/en/claude-monet/{transient}" not in by_url


def test_default_user_agent_names_the_project():
    assert CrawlConfig().user_agent.startswith("ganscapes/")
    assert "+https://" in CrawlConfig().user_agent


@pytest.mark.parametrize(
    "changes, words",
    [
        (dict(delay=-1), "delay"),
        (dict(retries=-1), "retries"),
        (dict(backoff=-0.5), "backoff"),
        (dict(timeout=0), "timeout"),
        (dict(base_url="ftp://example.org"), "base URL"),
        (dict(base_url="https://"), "base URL"),
        (dict(base_url="www.wikiart.org"), "base URL"),
        (dict(base_url="https://example.org:99999"), "port"),
        (dict(max_images=0), "max_images"),
        (dict(max_bytes=0), "max_bytes"),
        (dict(letters=""), "letters"),
        (dict(letters="a/b"), "letters"),
        (dict(movement="  "), "movement"),
        (dict(genre=""), "genre"),
        (dict(born_after=1950, died_before=1900), "born after"),
        (dict(allow_hosts=("",)), "host"),
        (dict(user_agent=" "), "User-Agent"),
    ],
)
def test_bad_config_is_a_user_error(tmp_path, changes, words):
    with pytest.raises(UserError, match=words):
        crawl_wikiart(tmp_path / "raw", CrawlConfig(**changes), progress=False, log=lambda _: None)
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize(
    "text, dates",
    [
        (", 1840 - 1926", (1840, 1926)),
        ("1840-1926", (1840, 1926)),
        (" ,  c. 1830 \u2013 1903 ", (1830, 1903)),
        ("c.1830\u2014c.1903", (1830, 1903)),
        ("(1840 \u2212 1926)", (1840, 1926)),
        (", 1840 -", (1840, 0)),
        (", b. 1950", (1950, 0)),
        ("1950 - present", (1950, 0)),
        ("? - 1926", (0, 1926)),
        ("Jean-Baptiste, 1796 - 1875", (1796, 1875)),
        ("1840s - 1900s", (1840, 1900)),
        ("", (0, 0)),
        ("unknown", (0, 0)),
        ("14 November 1840 - 5 December 1926", (1840, 1926)),
    ],
)
def test_parse_life_dates(text, dates):
    assert parse_life_dates(text) == dates


@pytest.mark.parametrize(
    "url, stripped",
    [
        (
            "https://uploads1.wikiart.org/images/claude-monet/x.jpg!Large.jpg",
            "https://uploads1.wikiart.org/images/claude-monet/x.jpg",
        ),
        ("https://uploads1.wikiart.org/images/x.jpg!PinterestSmall.jpg", "https://uploads1.wikiart.org/images/x.jpg"),
        ("https://uploads1.wikiart.org/images/x.jpg", "https://uploads1.wikiart.org/images/x.jpg"),
    ],
)
def test_strip_image_suffix(url, stripped):
    assert strip_image_suffix(url) == stripped


def test_parse_artist_list_reads_only_main():
    html = html_list([("/en/claude-monet", "Claude  Monet", ", 1840 - 1926"), ("/en/x#top", "X", "")])
    artists = parse_artist_list(html, "https://www.wikiart.org/en/Alphabet/c/text-list")
    assert [(a.name, a.url, a.born, a.died) for a in artists] == [
        ("Claude Monet", "https://www.wikiart.org/en/claude-monet", 1840, 1926),
        ("X", "https://www.wikiart.org/en/x", 0, 0),
    ]


def test_parse_painting_fields():
    page = parse_painting(
        painting_html("Sunrise", " Landscape ", og_image="//uploads0.wikiart.org/a/b.jpg!Large.jpg"),
        "https://www.wikiart.org/en/claude-monet/sunrise",
    )
    assert page.title == "Sunrise" and page.genres == ["Landscape"] and page.public_domain
    assert page.image_url == "https://uploads0.wikiart.org/a/b.jpg"
    other = parse_painting(
        '<html><head><meta property="og:title" content="OG"></head><body><main>'
        "<p>Copyright:</p><p>\u00a9 Estate of Somebody</p></main></body></html>",
        "https://www.wikiart.org/en/x/y",
    )
    assert (other.title, other.public_domain, other.licence, other.image_url) == (
        "OG",
        False,
        "\u00a9 Estate of Somebody",
        None,
    )
    assert parse_painting("<p>nothing</p>", "https://x.org/a").licence == "unknown"


# ---------------------------------------------------------------------------------------
# the fetcher


def fetcher(server: FakeServer, sleeps: list | None = None, **kw) -> Fetcher:
    settings = dict(user_agent="t/1", delay=0, backoff=1.0, retries=3, timeout=5)
    settings.update(kw)
    return Fetcher(server.base, sleep=(sleeps.append if sleeps is not None else lambda s: None), **settings)


def test_backoff_doubles_and_retry_after_wins_up_to_a_cap(server):
    server.route("/flaky", Reply(status=500), Reply(status=503), Reply(body=b"ok"))
    sleeps: list[float] = []
    assert fetcher(server, sleeps).get(server.base + "/flaky", max_bytes=100).content == b"ok"
    assert sleeps == [1.0, 2.0]

    server.route("/busy", Reply(status=429, headers={"Retry-After": "7"}), Reply(body=b"ok"))
    server.route("/very-busy", Reply(status=429, headers={"Retry-After": "3600"}), Reply(body=b"ok"))
    sleeps.clear()
    f = fetcher(server, sleeps)
    f.get(server.base + "/busy", max_bytes=100)
    f.get(server.base + "/very-busy", max_bytes=100)
    assert sleeps == [7.0, 60.0]


def test_gives_up_after_retries_and_does_not_retry_4xx(server):
    server.route("/down", Reply(status=503))
    with pytest.raises(FetchError) as e:
        fetcher(server, retries=2).get(server.base + "/down", max_bytes=100)
    assert e.value.transient and e.value.status == 503 and "3 tries" in str(e.value)
    assert server.hits["/down"] == 3

    server.route("/gone", Reply(status=410))
    with pytest.raises(FetchError) as e:
        fetcher(server).get(server.base + "/gone", max_bytes=100)
    assert not e.value.transient and e.value.status == 410 and server.hits["/gone"] == 1


def test_connection_errors_and_timeouts_are_retried(server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    f = Fetcher(f"http://127.0.0.1:{closed_port}", user_agent="t/1", delay=0, retries=1, backoff=0)
    with pytest.raises(FetchError) as e:
        f.get(f"http://127.0.0.1:{closed_port}/x", max_bytes=100)
    assert e.value.transient and "connection failed" in str(e.value)
    assert f.requests_made == 2

    server.route("/slow", Reply(body=b"late", delay=1.0))
    with pytest.raises(FetchError) as e:
        fetcher(server, timeout=0.2, retries=1).get(server.base + "/slow", max_bytes=100)
    assert e.value.transient and "timed out" in str(e.value) and server.hits["/slow"] == 2


def test_size_cap_with_and_without_content_length(server):
    server.route("/big", Reply(body=b"x" * 5000))
    server.route("/big-stream", Reply(body=b"x" * 500_000, send_length=False))
    server.route("/fits", Reply(body=b"x" * 1000, send_length=False))
    f = fetcher(server)
    with pytest.raises(TooLarge):
        f.get(server.base + "/big", max_bytes=4999)
    with pytest.raises(TooLarge):
        f.get(server.base + "/big-stream", max_bytes=100_000)
    assert len(f.get(server.base + "/fits", max_bytes=1000).content) == 1000


def test_redirects_are_checked_host_by_host(server):
    server.redirect("/a", "/b")
    server.route("/b", Reply(body=b"here"))
    server.redirect("/away", f"{server.other}/b")
    server.redirect("/loop", "/loop")
    f = fetcher(server)
    got = f.get(server.base + "/a", max_bytes=100)
    assert got.content == b"here" and got.url == server.base + "/b"
    with pytest.raises(OffHost):
        f.get(server.base + "/away", max_bytes=100)
    with pytest.raises(OffHost):  # the right host name, but not its port
        fetcher(server, allow_hosts=("localhost",)).get(server.base + "/away", max_bytes=100)
    allowed = (f"localhost:{server.port}",)
    assert fetcher(server, allow_hosts=allowed).get(server.base + "/away", max_bytes=100).content == b"here"
    with pytest.raises(OffHost):
        fetcher(server, allow_hosts=allowed).get(server.base + "/away", max_bytes=100, base_host_only=True)
    with pytest.raises(FetchError, match="redirects"):
        f.get(server.base + "/loop", max_bytes=100)
    with pytest.raises(OffHost):
        f.get(server.other + "/b", max_bytes=100)


def test_requests_are_paced(server):
    server.route("/p", Reply(body=b"ok"))
    sleeps: list[float] = []
    f = fetcher(server, sleeps, delay=0.5)
    f.get(server.base + "/p", max_bytes=10)
    f.get(server.base + "/p", max_bytes=10)
    assert len(sleeps) == 1 and 0.2 < sleeps[0] <= 0.5


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://www.wikiart.org/en/x", True),
        ("http://WWW.WIKIART.ORG/en/x", True),
        ("https://uploads4.wikiart.org/images/x.jpg", True),
        ("https://uploads.wikiart.org/images/x.jpg", True),
        ("https://uploads4.wikiart.org.evil.com/x.jpg", False),
        ("https://www.wikiart.org@evil.com/x", False),
        ("https://evil.com\\@www.wikiart.org/x", False),
        ("https://evil.com/?https://www.wikiart.org", False),
        ("ftp://www.wikiart.org/x", False),
        ("file:///etc/passwd", False),
        ("/en/relative", False),
        ("https://www.wikiart.org:notaport/x", False),
    ],
)
def test_host_allowed(url, ok):
    assert host_allowed(url, "www.wikiart.org", ("uploads*.wikiart.org",)) is ok


def test_parse_retry_after():
    assert parse_retry_after("0") == 0 and parse_retry_after("12") == 12 and parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40) == pytest.approx(60)
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=40) == 0


def test_module_exports_what_the_cli_uses():
    assert callable(wikiart.crawl_wikiart) and wikiart.CrawlConfig().allow_hosts == ("uploads*.wikiart.org",)
