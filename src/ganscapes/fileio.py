"""Writing files so that an interruption never leaves half of one under the real name.

Every stage promises that Ctrl-C, a full disk or a crash loses nothing: a file is
written beside its target under a hidden temporary name and renamed into place only
when complete (a rename within a folder is atomic on every platform we support).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


def write_json_atomic(path: Path | str, obj, indent: int | None = 2) -> None:
    """JSON to `path` atomically: a reader (or the next resume) sees the old file or the new, never half."""
    write_bytes_atomic(path, (json.dumps(obj, indent=indent) + "\n").encode("utf-8"))


def append_jsonl(path: Path | str, row: dict) -> None:
    """Append one JSON line, first dropping a line that an earlier kill cut short.

    Appending is not atomic: a process killed mid-write leaves a partial last line, and
    the next row would be glued onto it. Cutting the file back to its last newline keeps
    every complete row and makes the new one a line of its own.
    """
    path = Path(path)
    with open(path, "a+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size:
            f.seek(max(0, size - 1))
            if f.read(1) != b"\n":
                f.truncate(_last_line_end(f, size))
        f.seek(0, os.SEEK_END)
        f.write((json.dumps(row) + "\n").encode("utf-8"))


def _last_line_end(f, size: int, chunk: int = 1 << 16) -> int:
    """The offset just after the last newline before `size` (0 when there is none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        f.seek(start)
        block = f.read(end - start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def read_jsonl(path: Path | str) -> list[dict]:
    """The complete JSON-object rows of a log file; a line cut by an interruption is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def remove_stale_temporaries(folder: Path | str) -> list[Path]:
    """Delete the `.NAME.PID.tmp` files of `atomic_path` whose writer process is gone.

    A SIGKILL or power cut between writing and renaming leaves such a file; a live PID
    means another process may still be writing it, so it is left alone.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not tmp.is_file():
            continue
        if int(parts[1]) != os.getpid() and _process_alive(int(parts[1])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # a number no process can have
    except PermissionError:
        return True  # another user's process
    return True
