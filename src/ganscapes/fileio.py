"""Writing files so that an interruption never leaves half of one under the real name.

Every stage promises that Ctrl-C, a full disk or a crash loses nothing: a file is
written beside its target under a hidden temporary name and renamed into place only
when complete (a rename within a folder is atomic on every platform we support).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` if the block succeeds.

    On any exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes, fsync: bool = False) -> None:
    """Write `data` to `path` atomically; `fsync` also waits until it is on disk."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
