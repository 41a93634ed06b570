"""Shared by the hostile-input tests: running a step under a memory cap.

Where the failure is an allocation (a PNG bomb decoded, a picture of billions of pixels),
a test runs the step in a forked child whose address space may grow by only `headroom`
bytes beyond what it inherited (RLIMIT_AS). The step must end with the expected refusal;
an allocation it should have refused first shows up as MemoryError instead.
"""

from __future__ import annotations

import os
import pickle
import sys
import traceback

import pytest


def _address_space() -> int:
    """This process's current virtual memory size in bytes (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run_capped(fn, *args, headroom: int = 256 << 20, timeout: float = 120):
    """`fn(*args)` in a forked child limited to `headroom` more bytes of address space.

    Returns ("ok", value) or ("raised", exception type name, message); the child's own
    failures come back as ("raised", …) too, and a child still running after `timeout`
    seconds is killed and reported as ("raised", "timeout", …). Only numpy and Pillow
    work belongs in the child: PyTorch's thread pools do not survive a fork.
    """
    import resource
    import select
    import signal

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: cap, run, report, and leave without running any cleanup
        os.close(read)
        try:
            limit = _address_space() + headroom
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                outcome = ("ok", fn(*args))
            except BaseException as e:  # noqa: BLE001 (reported to the parent)
                outcome = ("raised", type(e).__name__, str(e) or traceback.format_exc(limit=2))
            data = pickle.dumps(outcome)
        except BaseException as e:  # noqa: BLE001
            data = pickle.dumps(("raised", type(e).__name__, str(e)))
        with os.fdopen(write, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        if not select.select([f], [], [], timeout)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return ("raised", "timeout", f"still running after {timeout} s")
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data) if data else ("raised", "killed", "the child process died")


@pytest.fixture
def capped():
    """`capped(fn, *args, headroom=…)`: see `run_capped`; skipped where there is no /proc and fork."""
    if not sys.platform.startswith("linux"):
        pytest.skip("memory caps are tested on Linux (RLIMIT_AS and /proc)")
    return run_capped
