"""Writing files so that an interruption never leaves half of one under the real name.

Every stage promises that Ctrl-C, a full disk or a crash loses nothing: a file is
written beside its target under a hidden temporary name and renamed into place only
when complete (a rename within a folder is atomic on every platform we support).
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganscapes.errors import UserError

# What the system says when it will not store a file: permissions, a read-only or full
# disk, a path through a file. None of these is a bug in ganscapes, so each is reported
# as one sentence naming the file.
WRITE_REFUSALS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EFBIG,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENAMETOOLONG,
        errno.EIO,
    }
)


class WriteError(UserError):
    """A file or folder the system would not let us write; `path` and `reason` say which and why."""

    def __init__(self, path: Path | str, error: OSError):
        self.path = Path(path)
        reason = error.strerror or type(error).__name__
        self.reason = reason[:1].lower() + reason[1:]
        super().__init__(f"Cannot write {self.path}: {self.reason}.")


def refused_write(error: BaseException) -> bool:
    """Whether `error` is the system refusing a write (see WRITE_REFUSALS), not a bug."""
    return isinstance(error, OSError) and error.errno in WRITE_REFUSALS


def writable_folder(folder: Path | str) -> Path:
    """Create `folder` if needed and check that files can be written in it, before any long work.

    A command that would compute for minutes and then fail on its first write says so at
    once instead: the folder is created and a probe file written and removed.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f".ganscapes-write-check.{os.getpid()}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(folder / f".ganscapes-write-check.{os.getpid()}.tmp")
    except OSError as e:
        if refused_write(e):
            raise WriteError(folder, e) from None
        raise
    return folder


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it replaces `path` if the block succeeds.

    On any exception the temporary file is removed and `path` is left as it was.
    A write the system refuses (a full disk, no permission: `WRITE_REFUSALS`) becomes a
    `WriteError` naming `path`; `path` keeps its old content either way.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if refused_write(e) and e.filename in (None, str(tmp), str(path)):
            raise WriteError(path, e) from None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a folder we cannot write to: there is no temporary file either


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
    try:
        with open(path, "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(max(0, size - 1))
                if f.read(1) != b"\n":
                    f.truncate(_last_line_end(f, size))
            f.seek(0, os.SEEK_END)
            f.write((json.dumps(row) + "\n").encode("utf-8"))
    except OSError as e:
        if refused_write(e):
            raise WriteError(path, e) from None
        raise


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


def remove_stale_temporaries(folder: Path | str, recursive: bool = False) -> list[Path]:
    """Delete the `.NAME.PID.tmp` files of `atomic_path` whose writer process is gone.

    A SIGKILL or power cut between writing and renaming leaves such a file; a live PID
    means another process may still be writing it, so it is left alone. `recursive`
    also looks in every folder below.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not tmp.is_file():
            continue
        if not _writer_gone(int(parts[1])):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def remove_stale_copies(path: Path | str, tags: tuple[str, ...]) -> list[Path]:
    """Delete the `.NAME.TAG-PID` siblings of `path` (files or whole folders) whose process is gone.

    Writers that replace a whole dataset build it as `.NAME.tmp-PID` and may keep the
    one they replace as `.NAME.old-PID` for a moment; curate builds `.NAME.curated-PID`.
    A kill leaves them behind, each as large as the dataset.
    """
    path = Path(path)
    removed = []
    for tag in tags:
        for copy in sorted(path.parent.glob(f".{glob.escape(path.name)}.{tag}-*")):
            pid = copy.name.rsplit("-", 1)[1]
            if pid.isdigit() and _writer_gone(int(pid)):
                remove_path(copy)
                removed.append(copy)
    return removed


def stale_copies(path: Path | str, tag: str) -> list[Path]:
    """The `.NAME.TAG-PID` siblings of `path` whose process is gone, newest first."""
    path = Path(path)
    found = []
    for copy in path.parent.glob(f".{glob.escape(path.name)}.{tag}-*"):
        pid = copy.name.rsplit("-", 1)[1]
        if pid.isdigit() and _writer_gone(int(pid)):
            found.append(copy)
    return sorted(found, key=lambda p: p.lstat().st_mtime_ns, reverse=True)


def remove_path(path: Path) -> None:
    """Delete a file, a link or a whole folder; nothing when it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _writer_gone(pid: int) -> bool:
    """Whether the process that named a temporary file after its PID no longer runs.

    Our own PID counts as gone: this process has not written the file yet (callers sweep
    before they write), so it is the leftover of an earlier process that had the same
    PID, as happens in containers.
    """
    return pid == os.getpid() or not _process_alive(pid)


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
