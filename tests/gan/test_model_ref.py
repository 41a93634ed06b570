"""`--model` resolution: a file as given, a run folder's best (or latest) snapshot, a name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganscapes.errors import UserError
from ganscapes.gan import model_ref
from ganscapes.gan.model_ref import resolve_model


def snapshot(run: Path, tag: str, state: bool = True) -> Path:
    """A snapshot's two files, empty: resolution looks at names, loading is checkpoint's business."""
    run.mkdir(parents=True, exist_ok=True)
    model = run / f"network-snapshot-{tag}.safetensors"
    model.write_bytes(b"")
    if state:
        (run / f"training-state-{tag}.pt").write_bytes(b"")
    return model


def test_a_file_or_a_missing_path_is_passed_on_as_given(tmp_path):
    file = tmp_path / "landscapes.safetensors"
    file.write_bytes(b"")
    for given in (file, tmp_path / "absent.safetensors", str(file)):
        choice = resolve_model(given)
        assert choice.path == Path(given) and choice.why is None and choice.describe() == str(given)


def test_a_run_folder_gives_its_best_snapshot(tmp_path):
    run = tmp_path / "00003-landscapes-tiny-ada"
    best = snapshot(run, "000008")
    snapshot(run, "000012")
    record = {"kimg": 8.0, "score": 12.34567, "metric": "SWDx1e3_avg", "snapshot": best.name}
    (run / "best.json").write_text(json.dumps(record))
    choice = resolve_model(run)
    assert choice.path == best
    assert choice.why == "the run's best snapshot, SWDx1e3_avg 12.3457 at 8 kimg"
    assert choice.describe() == f"{best} (the run's best snapshot, SWDx1e3_avg 12.3457 at 8 kimg)"


@pytest.mark.parametrize(
    "best_json",
    [
        None,  # no metrics were run
        "{not json",  # cut short by a kill
        json.dumps({"kimg": 4, "score": 1.0, "snapshot": "network-snapshot-000004.safetensors"}),  # pruned by hand
        json.dumps({"kimg": 4, "score": 1.0, "snapshot": "../elsewhere/network-snapshot-000004.safetensors"}),
        json.dumps(["a list"]),
    ],
    ids=["none", "damaged", "gone", "outside", "not-an-object"],
)
def test_without_a_usable_best_json_the_latest_complete_snapshot(best_json, tmp_path):
    run = tmp_path / "run"
    snapshot(run, "000008")
    latest = snapshot(run, "000012.008")
    snapshot(run, "000016", state=False)  # a kill before its training state: not a snapshot yet
    if best_json is not None:
        (run / "best.json").write_text(best_json)
    outside = tmp_path / "elsewhere" / "network-snapshot-000004.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(b"")
    choice = resolve_model(run)
    assert choice.path == latest
    assert choice.why == "the run's latest snapshot, 12.008 kimg; it has no best.json"


def test_a_folder_without_snapshots_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"^--model .*empty is a folder without a training snapshot \(.*\)\.$"):
        resolve_model(tmp_path / "empty")
    outdir = tmp_path / "runs"
    snapshot(outdir / "00000-a-tiny", "000004")
    snapshot(outdir / "00001-a-tiny", "000004")
    (outdir / "00002-a-tiny").mkdir()  # a start that failed before its first snapshot
    with pytest.raises(UserError, match=r"it holds training runs, name one, e\.g\. --model .*00001-a-tiny\.$"):
        resolve_model(outdir)


def test_names_come_before_paths(tmp_path, monkeypatch):
    """The one place a bundled model's name goes; a folder of that name is then `./name`."""
    packaged = tmp_path / "packaged.safetensors"
    monkeypatch.setitem(model_ref.NAMED_MODELS, "example", lambda: packaged)
    monkeypatch.chdir(tmp_path)
    snapshot(tmp_path / "example", "000004")
    choice = resolve_model("example")
    assert choice.path == packaged and choice.why == "the model called 'example'"
    assert resolve_model("./example").path == Path("example/network-snapshot-000004.safetensors")
