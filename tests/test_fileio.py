"""Writes that survive interruptions: atomic files, JSON-lines logs, leftovers of killed writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ganscapes.fileio import (
    append_jsonl,
    atomic_path,
    read_jsonl,
    remove_stale_temporaries,
    write_json_atomic,
)


def test_append_jsonl_drops_a_line_cut_by_a_kill(tmp_path):
    log = tmp_path / "log.jsonl"
    append_jsonl(log, {"tick": 0})
    with open(log, "ab") as f:
        f.write(b'{"tick": 1, "kim')  # what a SIGKILL mid-append leaves
    append_jsonl(log, {"tick": 2})
    assert log.read_text() == '{"tick": 0}\n{"tick": 2}\n'
    assert read_jsonl(log) == [{"tick": 0}, {"tick": 2}]


def test_append_jsonl_on_a_file_that_is_only_a_cut_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_bytes(b"x" * 200_000)  # longer than one search block, and no newline at all
    append_jsonl(log, {"kimg": 1.0})
    assert log.read_text() == '{"kimg": 1.0}\n'


def test_read_jsonl_skips_what_is_not_a_complete_object(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_bytes(b'{"a": 1}\n\n[1, 2]\nnot json\n\xff\xfe\n{"b": 2}\n{"c": ')
    assert read_jsonl(log) == [{"a": 1}, {"b": 2}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_write_json_atomic_leaves_the_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "best.json"
    write_json_atomic(path, {"kimg": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"kimg": object()})
    assert json.loads(path.read_text()) == {"kimg": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["best.json"]


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = tmp_path / f".training-state-000004.pt.{dead_pid}.tmp"
        busy = tmp_path / f".network-snapshot-000004.safetensors.{live.pid}.tmp"
        foreign = tmp_path / ".notes.tmp"  # not one of ours: no PID in its name
        for p in (stale, busy, foreign):
            p.write_bytes(b"partial")
        assert remove_stale_temporaries(tmp_path) == [stale]
        assert busy.exists() and foreign.exists() and not stale.exists()
    finally:
        live.kill()
        live.wait()


def test_atomic_path_names_match_what_cleanup_looks_for(tmp_path):
    target = tmp_path / "fakes000004.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            os.link(tmp, tmp_path / f".fakes000004.png.{2**22 + 1}.tmp")  # as a killed writer would leave it
            raise RuntimeError
    assert not target.exists()
    assert len(remove_stale_temporaries(tmp_path)) == 1
    assert list(tmp_path.iterdir()) == []
