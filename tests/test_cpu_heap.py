"""`keep_freed_memory`: large CPU tensors reuse the process's freed memory instead of new pages."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults while writing a new 64 MB tensor, round after round. With the setting,
# glibc's aligned blocks (PyTorch asks for 64-byte alignment) settle into reusing freed
# memory after a few rounds, 5 to 10 here depending on what else sits on the heap.
_PROBE = textwrap.dedent(
    """
    import resource, sys, torch
    from ganscapes.cpu_heap import keep_freed_memory

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(16 << 20).fill_(1)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    counts = [faults() for _ in range(40)]
    print(applied, sorted(counts[-10:])[5])  # the median of the last ten rounds
    """
)


def _probe(mode: str, env: dict | None = None) -> tuple[str, int]:
    environ = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=environ)
    out = proc.stdout
    applied, faults = out.split()
    return applied, int(faults)


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_freed_memory_is_reused_for_large_tensors():
    applied, faults = _probe("keep")
    assert applied == "True"
    assert faults < 200  # a 64 MB tensor is 16,384 pages: none of them new


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_by_default_every_large_tensor_comes_as_new_pages():
    # The behaviour the setting changes: without it each 64 MB tensor is a fresh mapping.
    applied, faults = _probe("default")
    assert applied == "False"
    assert faults > 10_000


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_the_environment_can_turn_it_off():
    # GANSCAPES_KEEP_FREED_MEMORY=0: a process that should give memory back keeps glibc's defaults.
    applied, faults = _probe("keep", {"GANSCAPES_KEEP_FREED_MEMORY": "0"})
    assert applied == "False"
    assert faults > 10_000


def test_it_decides_once_per_process(monkeypatch):
    # Painting asks for every batch; the answer of the first call stands (no re-checking).
    from ganscapes.cpu_heap import OPT_OUT, keep_freed_memory

    keep_freed_memory.cache_clear()
    try:
        monkeypatch.setenv(OPT_OUT, "0")
        assert keep_freed_memory() is False
        monkeypatch.delenv(OPT_OUT)
        assert keep_freed_memory() is False
    finally:
        keep_freed_memory.cache_clear()
