"""Run `ganscapes ARGS` and SIGKILL it in the middle of writing one file (crash tests).

Usage: python kill_runner.py PATTERN -- ARGS...

The process is armed once the first snapshot is complete (its training state renamed
into place); after that, the first write of a file whose name contains PATTERN is cut:
a plain write stops after half of its bytes, an atomic write (temporary file + rename)
stops with its temporary file half-written, just before the rename. Both then die by
SIGKILL, as a power cut or the out-of-memory killer would end them: no handler runs.
"""

from __future__ import annotations

import builtins
import io
import os
import signal
import sys

PATTERN = sys.argv[1]
ARMED = False


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _matches(name) -> bool:
    return ARMED and PATTERN in os.path.basename(os.fspath(name))


class _CutShort:
    """A file object whose first write keeps half of its bytes, then the process dies."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: max(1, len(data) // 2)])
        self._f.flush()
        os.fsync(self._f.fileno())
        _die()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._f, name)


_real_open = io.open
_real_replace = os.replace


def _open(file, mode="r", *args, **kwargs):
    f = _real_open(file, mode, *args, **kwargs)
    if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax") and _matches(file):
        return _CutShort(f)
    return f


def _replace(src, dst, *args, **kwargs):
    global ARMED
    if _matches(dst):
        os.truncate(src, os.path.getsize(src) // 2)
        _die()
    _real_replace(src, dst, *args, **kwargs)
    if os.path.basename(os.fspath(dst)).startswith("training-state-"):
        ARMED = True


builtins.open = io.open = _open
os.replace = _replace

if __name__ == "__main__":
    from ganscapes.cli import main

    sys.argv = ["ganscapes", *sys.argv[sys.argv.index("--") + 1 :]]
    main()
