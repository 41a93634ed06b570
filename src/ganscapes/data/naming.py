"""Safe file names from untrusted text (painting titles, URLs, zip entry names).

A title scraped from the web or an entry name from somebody's zip must never choose
where a file lands: everything is reduced to a short ASCII slug, and the final path is
checked to lie inside the output folder.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

MAX_SLUG = 80


def slugify(text: str, max_len: int = MAX_SLUG, fallback: str = "untitled") -> str:
    """Lower-case ASCII letters, digits and single hyphens; never empty, never a path."""
    text = unquote(text or "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    text = text[:max_len].strip("-")
    return text or fallback


def confined_path(folder: Path, name: str) -> Path:
    """`folder/name`, refusing any name that would resolve outside `folder`."""
    folder = Path(folder).resolve()
    path = (folder / name).resolve()
    if path.parent != folder and folder not in path.parents:
        raise ValueError(f"refusing to write {name!r} outside {folder}")
    return path


def unique_name(stem: str, suffix: str, taken: set[str]) -> str:
    """`stem.suffix`, or `stem-2.suffix`, `stem-3.suffix`… if that name is taken.

    The chosen name is added to `taken`.
    """
    name = f"{stem}{suffix}"
    n = 2
    while name in taken:
        name = f"{stem}-{n}{suffix}"
        n += 1
    taken.add(name)
    return name
