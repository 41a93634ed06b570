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


# ---------------------------------------------------------------------------------------
# Training past a damaged image


def damage(dataset: Path, names: list[str], how: str = "truncate") -> None:
    """Rewrite a zip dataset with these entries cut in half (or replaced by text)."""
    with zipfile.ZipFile(dataset) as zf:
        entries = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(dataset, "w") as zf:
        for info, data in entries:
            if info.filename in names:
                data = data[: len(data) // 2] if how == "truncate" else b"not a picture"
            zf.writestr(info, data)


@pytest.fixture(scope="module")
def training_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("training")
    make_samples(root / "raw", n=16, seed=5, min_side=24, max_side=40, progress=False)
    return prepare(root / "raw", root / "paintings.zip")


def train_config(dataset: Path, outdir: Path, **changes):
    from ganscapes.gan.train_config import TrainConfig

    base = dict(data=str(dataset), outdir=str(outdir), cfg="tiny", batch=4, kimg=0.008, metrics=[], workers=0, seed=0)
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize("workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_truncated_image_mid_dataset_is_skipped_with_a_warning(training_set, tmp_path, workers):
    from ganscapes.gan.training import train
    from ganscapes.gan.training_data import ImageDataset, InfiniteSampler

    dataset = tmp_path / "paintings.zip"
    dataset.write_bytes(training_set.read_bytes())
    ds = ImageDataset(dataset)
    drawn = InfiniteSampler(ds, seed=0).take(8)  # what the first two iterations train on
    name = ds.image_names[drawn[1]]
    damage(dataset, [name])
    lines = []
    config = train_config(dataset, tmp_path / "runs", workers=workers, kimg=0.008)
    result = train(config, log=lines.append, progress=False)
    assert result.kimg == pytest.approx(0.008) and result.stopped_by == "done"
    warnings = [line for line in lines if name in line]
    assert len(warnings) == 1, lines  # once, however often the sampler draws it
    assert warnings[0].startswith(f"warning: {name} in dataset {dataset} is damaged (")
    assert warnings[0].endswith("another image takes its place (1 damaged so far; training stops past 10).")


def test_training_stops_in_one_sentence_past_the_damaged_limit(training_set, tmp_path):
    import torch

    from ganscapes.gan.training_data import ImageDataset, TrainingBatches, TrainingImages

    dataset = tmp_path / "paintings.zip"
    dataset.write_bytes(training_set.read_bytes())
    damage(dataset, [f"00000/img{i:08d}.png" for i in range(0, 16) if i % 3 != 2], how="text")  # 11 of 16
    ds = ImageDataset(dataset)
    said = []
    batches = TrainingBatches(iter(torch.utils.data.DataLoader(TrainingImages(ds), batch_size=4)), ds, said.append)
    with pytest.raises(UserError) as err:
        for _ in range(4):
            next(batches)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"11 images of dataset {dataset} are damaged, more than the 10")
    assert message.endswith("prepare the dataset again.") and len(said) == 10


def test_clean_items_are_the_dataset_s_own(training_set):
    import torch

    from ganscapes.gan.training_data import ImageDataset, TrainingImages

    ds = ImageDataset(training_set, xflip=True)
    items = TrainingImages(ds)
    for i in (0, 5, 16, 31):
        image, label, damaged = items[i]
        assert torch.equal(image, ds[i][0]) and torch.equal(label, ds[i][1]) and damaged == -1


def test_a_damaged_image_is_replaced_by_the_next_readable_one_mirrored_alike(training_set, tmp_path):
    import torch

    from ganscapes.gan.training_data import ImageDataset, TrainingImages

    dataset = tmp_path / "paintings.zip"
    dataset.write_bytes(training_set.read_bytes())
    damage(dataset, ["00000/img00000003.png", "00000/img00000004.png"])
    ds = ImageDataset(dataset, xflip=True)
    items = TrainingImages(ds)
    image, _, damaged = items[3]
    assert damaged == 3 and torch.equal(image, ds[5][0])
    image, _, damaged = items[16 + 4]  # the mirrored copy of image 4: the mirrored image 5
    assert damaged == 4 and torch.equal(image, ds[16 + 5][0])


def test_a_worker_s_failure_reaches_the_user_as_one_sentence(training_set, monkeypatch):
    import torch

    from ganscapes.gan import training_data
    from ganscapes.gan.training_data import ImageDataset, TrainingBatches, TrainingImages

    ds = ImageDataset(training_set)
    real = training_data.ImageDataset.__getitem__

    def failing(self, index):
        if int(index) == 2:
            raise RuntimeError("the disk went away\nand more lines of detail")
        return real(self, index)

    monkeypatch.setattr(training_data.ImageDataset, "__getitem__", failing)  # workers fork with it
    loader = torch.utils.data.DataLoader(TrainingImages(ds), batch_size=4, num_workers=1)
    batches = TrainingBatches(iter(loader), ds, lambda _: None)
    with pytest.raises(UserError) as err:
        next(batches)
    assert str(err.value) == f"Reading item 2 of dataset {training_set} failed (RuntimeError: the disk went away)."


def test_a_dataset_aspect_outside_the_range_is_not_carried_into_models(training_set, tmp_path):
    from ganscapes.gan.training_data import ImageDataset

    dataset = tmp_path / "paintings.zip"
    with zipfile.ZipFile(training_set) as src, zipfile.ZipFile(dataset, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "manifest.json":
                data = json.dumps({**json.loads(data), "aspect": 1e-7}).encode()
            out.writestr(info, data)
    assert ImageDataset(dataset).aspect is None
