"""A run killed (SIGKILL) while it writes any file of a snapshot resumes as if never stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.gan.train_state import list_snapshots

pytestmark = pytest.mark.slow  # training runs killed and resumed in subprocesses

KILL_RUNNER = Path(__file__).with_name("kill_runner.py")
# Four ticks of one iteration each (4 images), a snapshot with SWD after every tick.
TRAIN = [
    "train",
    "--cfg",
    "tiny",
    "--batch",
    "4",
    "--kimg",
    "0.016",
    "--kimg-per-tick",
    "0.004",
    "--snap",
    "1",
    "--metrics",
    "swd",
    "--metric-images",
    "8",
    "--workers",
    "0",
    "--device",
    "cpu",
    "--keep",
    "2",
]
VOLATILE = {"time", "sec_per_tick", "sec_per_kimg", "sec_per_iter", "peak_mem_mb"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=16, seed=3, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


def _train(dataset: Path, outdir: Path, *extra: str, kill: str | None = None) -> subprocess.CompletedProcess:
    args = [*TRAIN, "--data", str(dataset), "--outdir", str(outdir), *extra]
    cmd = [sys.executable, str(KILL_RUNNER), kill, "--", *args] if kill else [sys.executable, "-m", "ganscapes", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("reference")
    done = _train(dataset, outdir)
    assert done.returncode == 0, done.stderr[-2000:]
    return next(outdir.iterdir())


def _log(run_dir: Path, name: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / name).read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


@pytest.mark.parametrize(
    "victim", ["network-snapshot", "training-state", "fakes", "metrics.jsonl", "best.json", "log.jsonl"]
)
def test_sigkill_while_writing_a_snapshot_file_then_resume_latest(dataset, uninterrupted, tmp_path, victim):
    killed = _train(dataset, tmp_path, kill=victim)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    run_dir = next(tmp_path.iterdir())

    resumed = _train(dataset, tmp_path, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    assert "Resuming" in resumed.stdout + resumed.stderr

    # The resumed run ends exactly where the uninterrupted one did, and its folder says the same.
    final = list_snapshots(run_dir)[-1][1]
    reference = list_snapshots(uninterrupted)[-1][1]
    assert final.name == reference.name
    ours, theirs = load_file(str(final)), load_file(str(reference))
    assert ours.keys() == theirs.keys()
    assert all(ours[k].equal(theirs[k]) for k in ours)
    assert _log(run_dir, "log.jsonl") == _log(uninterrupted, "log.jsonl")
    assert _log(run_dir, "metrics.jsonl") == _log(uninterrupted, "metrics.jsonl")
    assert json.loads((run_dir / "best.json").read_text()) == json.loads((uninterrupted / "best.json").read_text())
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no half-written leftovers


def test_an_empty_best_json_is_rebuilt_on_resume(dataset, uninterrupted, tmp_path):
    """The reported failure: a kill after best.json was truncated stopped every later resume."""
    first = _train(dataset, tmp_path, "--kimg", "0.008")
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = next(tmp_path.iterdir())
    expected = json.loads((run_dir / "best.json").read_text())
    (run_dir / "best.json").write_text("")

    resumed = _train(dataset, tmp_path, "--resume", "latest")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "best.json was damaged" in resumed.stdout + resumed.stderr
    best = json.loads((run_dir / "best.json").read_text())
    assert best == json.loads((uninterrupted / "best.json").read_text())
    assert best["score"] <= expected["score"]


def test_a_missing_best_json_is_rebuilt_and_its_snapshot_kept(dataset, tmp_path):
    first = _train(dataset, tmp_path, "--kimg", "0.008")
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = next(tmp_path.iterdir())
    expected = json.loads((run_dir / "best.json").read_text())
    (run_dir / "best.json").unlink()

    resumed = _train(dataset, tmp_path, "--resume", "latest", "--keep", "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    best = json.loads((run_dir / "best.json").read_text())
    kept = {model.name for _, model, _ in list_snapshots(run_dir)}
    assert best["snapshot"] in kept
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert best["score"] == min(r["SWDx1e3_avg"] for r in rows) <= expected["score"]
