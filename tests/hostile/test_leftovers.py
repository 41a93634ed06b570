"""What a `kill -9` leaves behind is cleaned up by the next run of the same command.

Temporary files carry the PID of the process that wrote them; only those of processes
that are gone are deleted (a live PID may be a second run writing right now). A
dataset folder replaced by `prepare` is never missing, even when the process dies
between its two renames.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ganscapes.clip.curate import RefuseRule, curate_dataset, curation_dir_for, undo_curation
from ganscapes.clip.prompts import Prompt
from ganscapes.data.dataset import Dataset
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples

from helpers_images import tree_bytes
from helpers_tinyclip import tiny_clip

SRC = Path(__file__).resolve().parents[2] / "src"


def dead_pid() -> int:
    """The PID of a process that has just exited (not reused within a test)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def live_pid() -> int:
    """A PID that is alive for the whole test and is not ours: the parent's."""
    return os.getppid()


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    make_samples(root / "raw", n=5, seed=4, min_side=24, max_side=40, progress=False)
    return root / "raw"


def prepare(raw: Path, out: Path, res: int = 16, log=None):
    return prepare_dataset(raw, out, PrepareConfig(res=res, workers=1), log=log or (lambda _: None), progress=False)


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def copies(path: Path) -> list[str]:
    """The whole-dataset copies beside `path` (not prepare's resumable `.NAME.partial`)."""
    return [n for n in siblings(path) if n != f".{path.name}.partial"]


# ---------------------------------------------------------------------------------------
# prepare: whole-dataset copies, and a kill between the two renames


KILL_AT_SECOND_RENAME = """
    import os, signal, sys
    from pathlib import Path
    sys.path.insert(0, {src!r})
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset

    out = Path({out!r})
    real = os.replace

    def replace(a, b, *args, **kwargs):
        if Path(a).name.startswith(f".{{out.name}}.tmp-"):  # the old one is set aside: die now
            os.kill(os.getpid(), signal.SIGKILL)
        return real(a, b, *args, **kwargs)

    os.replace = replace
    prepare_dataset(Path({raw!r}), out, PrepareConfig(res=8, workers=1), log=lambda _: None, progress=False)
"""


def test_a_prepare_killed_between_its_two_renames_loses_no_dataset(raw, tmp_path):
    out = tmp_path / "landscapes"
    prepare(raw, out)
    before = tree_bytes(out)
    script = textwrap.dedent(KILL_AT_SECOND_RENAME.format(src=str(SRC), out=str(out), raw=str(raw)))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists()
    assert [n.split("-")[0] for n in copies(out)] == [".landscapes.old", ".landscapes.tmp"]

    notes = []
    result = prepare(raw, out, res=8, log=notes.append)  # the same command again
    assert any("its previous version is back in place" in n for n in notes)
    assert result.images == 5 and copies(out) == []
    assert tree_bytes(out) != before  # now the 8² version


def test_reading_a_dataset_whose_replacement_was_killed_restores_it(raw, tmp_path):
    out = tmp_path / "landscapes"
    prepare(raw, out)
    before = tree_bytes(out)
    pid = dead_pid()
    os.replace(out, out.with_name(f".landscapes.old-{pid}"))
    (tmp_path / f".landscapes.tmp-{pid}").mkdir()
    with Dataset(out) as ds:
        assert len(ds) == 5
    assert tree_bytes(out) == before and copies(out) == []


def test_copies_of_dead_prepares_are_deleted_and_those_of_live_ones_kept(raw, tmp_path):
    out = tmp_path / "landscapes.zip"
    prepare(raw, out)
    dead, live = dead_pid(), live_pid()
    for name in (f".landscapes.zip.tmp-{dead}", f".landscapes.zip.old-{dead}", f".landscapes.zip.tmp-{live}"):
        (tmp_path / name).write_bytes(b"PK half a dataset")
    folder_copy = tmp_path / f".landscapes.zip.tmp-{dead}-x"  # not a PID: left alone
    folder_copy.mkdir()
    prepare(raw, out)
    assert siblings(out) == sorted([f".landscapes.zip.tmp-{dead}-x", f".landscapes.zip.tmp-{live}"])


# ---------------------------------------------------------------------------------------
# curate: the zip being rebuilt, and atomic writes in the dataset and the curation folder


@pytest.mark.parametrize("action", ["curate", "undo"])
def test_curate_leftovers_of_dead_processes_are_deleted(raw, tmp_path, action):
    dataset = prepare(raw, tmp_path / "landscapes.zip").out
    folder = prepare(raw, tmp_path / "folder").out
    dead, live = dead_pid(), live_pid()
    clip = tiny_clip()
    rule, prompt = RefuseRule(count=1), Prompt(("a landscape",))
    if action == "undo":
        curate_dataset(dataset, prompt, rule, clip, workers=0, progress=False)
        curate_dataset(folder, prompt, rule, clip, workers=0, progress=False)
    curation = curation_dir_for(dataset)
    curation.mkdir(exist_ok=True)
    leftovers = [
        tmp_path / f".landscapes.zip.curated-{dead}",
        folder / f".manifest.json.{dead}.tmp",
        folder / f".dataset.json.{dead}.tmp",
        curation / f".curation.json.{dead}.tmp",
    ]
    if action == "undo":
        leftovers.append(curation / "salon_des_refuses" / "00000" / f".img00000001.png.{dead}.tmp")
    kept = [tmp_path / f".landscapes.zip.curated-{live}", folder / f".manifest.json.{live}.tmp"]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half written")
    for ds in (dataset, folder):
        if action == "undo":
            undo_curation(ds)
        else:
            curate_dataset(ds, prompt, rule, clip, workers=0, progress=False)
    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in kept)


# ---------------------------------------------------------------------------------------
# train: temporary files of a killed snapshot, in any run folder of --outdir


@pytest.mark.slow
def test_a_new_training_run_deletes_temporaries_of_killed_runs(raw, tmp_path):
    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.training import train

    dataset = prepare(raw, tmp_path / "paintings.zip").out
    old_run = tmp_path / "runs" / "00000-paintings-tiny-ada"
    old_run.mkdir(parents=True)
    dead, live = dead_pid(), live_pid()
    stale = old_run / f".training-state-000004.pt.{dead}.tmp"
    busy = old_run / f".training-state-000004.pt.{live}.tmp"
    for path in (stale, busy):
        path.write_bytes(b"half a state")
    config = TrainConfig(
        data=str(dataset), outdir=str(tmp_path / "runs"), cfg="tiny", batch=4, kimg=0.004, metrics=[], workers=0
    )
    result = train(config, log=lambda _: None, progress=False)
    assert result.run_dir.name.startswith("00001-")
    assert not stale.exists() and busy.exists()
