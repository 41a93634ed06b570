"""Datasets changed behind ganscapes' back, and damaged ones, never cost data or a traceback.

The datasets are a handful of 16-pixel procedural paintings; CLIP is the tiny random
architecture of `helpers_tinyclip`, so curating takes a second.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from ganscapes.clip.curate import RefuseRule, curate_dataset, curation_dir_for, undo_curation
from ganscapes.clip.prompts import Prompt
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import UserError

from helpers_images import file_sha256
from helpers_tinyclip import tiny_clip


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    make_samples(root / "raw", n=6, seed=3, min_side=24, max_side=40, progress=False)
    return root / "raw"


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


def prepare(raw: Path, out: Path, res: int = 16) -> Path:
    prepare_dataset(raw, out, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False)
    return out


def curate(dataset: Path, clip, refuse: int = 2):
    return curate_dataset(dataset, Prompt(("a landscape",)), RefuseRule(count=refuse), clip, workers=0, progress=False)


# ---------------------------------------------------------------------------------------
# curate --undo never replaces a dataset that changed since


def test_undo_refuses_to_replace_a_zip_prepared_again_and_keeps_both(raw, clip, tmp_path):
    dataset = prepare(raw, tmp_path / "landscapes.zip")
    curate(dataset, clip)
    original = curation_dir_for(dataset) / "original.zip"
    kept = file_sha256(original)
    prepare(raw, dataset, res=8)  # the user prepares it again, at another size
    again = file_sha256(dataset)
    with pytest.raises(UserError) as err:
        undo_curation(dataset)
    message = str(err.value)
    assert "no longer the zip that curate wrote" in message and str(original) in message and "\n" not in message
    assert file_sha256(dataset) == again and file_sha256(original) == kept


def test_undo_of_an_older_curation_without_a_fingerprint_checks_the_entries(raw, clip, tmp_path):
    dataset = prepare(raw, tmp_path / "landscapes.zip")
    curate(dataset, clip)
    state = curation_dir_for(dataset) / "curation.json"
    record = json.loads(state.read_text())
    del record["curated_zip"]  # as ganscapes 0.1 wrote it
    state.write_text(json.dumps(record))
    prepare(raw, dataset, res=8)
    with pytest.raises(UserError, match="no longer the zip that curate wrote"):
        undo_curation(dataset)


@pytest.mark.parametrize("fingerprint", [True, False])
def test_undo_still_restores_the_zip_it_curated(raw, clip, tmp_path, fingerprint):
    dataset = prepare(raw, tmp_path / "landscapes.zip")
    before = file_sha256(dataset)
    result = curate(dataset, clip)
    if not fingerprint:
        state = curation_dir_for(dataset) / "curation.json"
        record = json.loads(state.read_text())
        del record["curated_zip"]
        state.write_text(json.dumps(record))
    assert undo_curation(dataset) == len(result.refused) == 2
    assert file_sha256(dataset) == before and not curation_dir_for(dataset).exists()


def test_undo_restores_when_the_curated_zip_was_deleted_or_a_kill_fell_between_the_renames(raw, clip, tmp_path):
    dataset = prepare(raw, tmp_path / "landscapes.zip")
    before = file_sha256(dataset)
    curate(dataset, clip)
    dataset.unlink()  # deleted by hand, or never renamed into place
    undo_curation(dataset)
    assert file_sha256(dataset) == before


def test_a_curation_folder_name_taken_by_a_file_is_refused_before_scoring(raw, clip, tmp_path, monkeypatch):
    import ganscapes.clip.curate as curate_mod

    dataset = prepare(raw, tmp_path / "landscapes.zip")
    taken = curation_dir_for(dataset)
    taken.write_text("notes")
    monkeypatch.setattr(curate_mod, "embed_images", lambda *a, **k: pytest.fail("scored before checking"))
    for action in (lambda: curate(dataset, clip), lambda: undo_curation(dataset)):
        with pytest.raises(UserError, match=rf"^{taken} exists and is not a folder; .*move it\.$"):
            action()
    assert taken.read_text() == "notes"


def test_zip_entries_of_a_curated_zip_keep_their_settings(raw, clip, tmp_path):
    """The fingerprint is of the rewritten zip itself, so it is computed after the rewrite."""
    dataset = prepare(raw, tmp_path / "landscapes.zip")
    curate(dataset, clip)
    record = json.loads((curation_dir_for(dataset) / "curation.json").read_text())
    assert record["curated_zip"] == {"bytes": dataset.stat().st_size, "sha256": file_sha256(dataset)}
    with zipfile.ZipFile(dataset) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == 4
