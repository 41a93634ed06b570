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

The modules: `pages` reads WikiArt's HTML (pure functions, testable without a server),
`config` holds the settings, their checks and the key of the filter settings, and
`crawl` walks the site, saves images and keeps the crawl log.
"""

from ganscapes.data.wikiart.config import DEFAULT_USER_AGENT, CrawlConfig, filter_key, validate_config
from ganscapes.data.wikiart.crawl import (
    CRAWL_LOG_NAME,
    MAX_PAGE_BYTES,
    MAX_TITLE,
    SUFFIX_BY_FORMAT,
    CrawlSummary,
    crawl_wikiart,
)
from ganscapes.data.wikiart.pages import (
    PUBLIC_DOMAIN,
    ArtistLink,
    PaintingPage,
    page_mentions,
    parse_artist_list,
    parse_life_dates,
    parse_painting,
    parse_works_list,
    strip_image_suffix,
)

__all__ = [
    "CRAWL_LOG_NAME",
    "DEFAULT_USER_AGENT",
    "MAX_PAGE_BYTES",
    "MAX_TITLE",
    "PUBLIC_DOMAIN",
    "SUFFIX_BY_FORMAT",
    "ArtistLink",
    "CrawlConfig",
    "CrawlSummary",
    "PaintingPage",
    "crawl_wikiart",
    "filter_key",
    "page_mentions",
    "parse_artist_list",
    "parse_life_dates",
    "parse_painting",
    "parse_works_list",
    "strip_image_suffix",
    "validate_config",
]
