"""Training data: ImageDataset over folders and zips, labels, checks; InfiniteSampler order and resume."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.errors import UserError
from ganscapes.gan.training_data import ImageDataset, InfiniteSampler

from helpers_images import noise, png_bytes, solid, write, zip_bytes


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict[str, Path]:
    """The same 6 source pictures prepared at 16² as a folder and as a zip."""
    root = tmp_path_factory.mktemp("prep")
    for i in range(6):
        write(root / "raw" / f"p{i}.png", png_bytes(noise(40 + 4 * i, 30, seed=i)))
    quiet = {"log": lambda _: None, "progress": False}
    prepare_dataset(root / "raw", root / "folder", PrepareConfig(res=16, workers=1), **quiet)
    prepare_dataset(root / "raw", root / "paint.zip", PrepareConfig(res=16, workers=1), **quiet)
    return {"folder": root / "folder", "zip": root / "paint.zip"}


def official_folder(root: Path, images: list[Image.Image], labels=None) -> Path:
    """A dataset folder in the official layout, written directly."""
    for i, img in enumerate(images):
        write(root / f"{i // 1000:05d}" / f"img{i:08d}.png", png_bytes(img))
    if labels is not None:
        names = [f"{i // 1000:05d}/img{i:08d}.png" for i in range(len(images))]
        (root / "dataset.json").write_text(json.dumps({"labels": [[n, v] for n, v in zip(names, labels)]}))
    return root


# ---------------------------------------------------------------------------------------
# Items


def test_items_shapes_and_properties(prepared):
    ds = ImageDataset(prepared["zip"])
    assert len(ds) == ds.num_images == 6
    assert (ds.resolution, ds.num_channels, ds.image_shape) == (16, 3, [3, 16, 16])
    assert (ds.label_dim, ds.has_labels, ds.labels_available) == (0, False, False)
    assert ds.name == "paint"
    assert ImageDataset(prepared["folder"]).name == "folder"
    img, label = ds[0]
    assert img.dtype == torch.uint8 and list(img.shape) == [3, 16, 16]
    assert label.dtype == torch.float32 and list(label.shape) == [0]
    assert ds.prepare_format == "center-rect" and isinstance(ds.aspect, float)


def test_xflip_appends_mirrored_copies(prepared):
    plain = ImageDataset(prepared["folder"])
    ds = ImageDataset(prepared["folder"], xflip=True)
    assert len(ds) == 12 and ds.num_images == 6
    for i in range(6):
        assert torch.equal(ds[i][0], plain[i][0])
        assert torch.equal(ds[6 + i][0], torch.flip(plain[i][0], dims=[2]))
    assert not torch.equal(ds[6][0], ds[0][0])
    with pytest.raises(IndexError):
        ds[12]


def test_zip_and_folder_give_identical_items(prepared):
    a, b = ImageDataset(prepared["folder"]), ImageDataset(prepared["zip"])
    assert a.image_names == b.image_names
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0])
    assert a.fingerprint() == b.fingerprint()


def test_fingerprint_changes_with_the_data(tmp_path, prepared):
    base = ImageDataset(prepared["zip"]).fingerprint()
    assert base == ImageDataset(prepared["zip"], xflip=True).fingerprint()
    assert len(base) == 64
    assert ImageDataset(prepared["zip"], max_size=4).fingerprint() != base
    other = official_folder(tmp_path / "o", [noise(16, 16, seed=i) for i in range(5)])
    assert ImageDataset(other).fingerprint() != base


def test_max_size_keeps_a_seeded_sorted_subset(prepared):
    a = ImageDataset(prepared["zip"], max_size=3, seed=1)
    b = ImageDataset(prepared["zip"], max_size=3, seed=1)
    assert a.image_names == b.image_names == sorted(a.image_names) and len(a) == 3
    assert len(ImageDataset(prepared["zip"], max_size=3, seed=1, xflip=True)) == 6


def test_grayscale_images_have_one_channel(tmp_path):
    root = official_folder(tmp_path / "g", [solid(8, 8, 100, mode="L"), solid(8, 8, 50, mode="L")])
    ds = ImageDataset(root)
    assert ds.num_channels == 1
    img, _ = ds[1]
    assert list(img.shape) == [1, 8, 8] and int(img[0, 0, 0]) == 50


def test_integer_labels_become_one_hot(tmp_path):
    root = official_folder(tmp_path / "l", [noise(8, 8, seed=i) for i in range(4)], labels=[0, 2, 1, 2])
    ds = ImageDataset(root, use_labels=True, xflip=True)
    assert (ds.label_dim, ds.has_labels) == (3, True)
    assert ds[1][1].tolist() == [0, 0, 1] and ds[5][1].tolist() == [0, 0, 1]
    assert ds.get_label(2).tolist() == [0, 1, 0]
    labels = ds.sample_labels(50, seed=3)
    assert labels.shape == (50, 3) and torch.all(labels.sum(1) == 1)
    assert torch.equal(labels, ds.sample_labels(50, seed=3))
    # Without use_labels the labels are ignored but known to exist.
    plain = ImageDataset(root)
    assert (plain.label_dim, plain.labels_available) == (0, True)
    assert plain.sample_labels(3).shape == (3, 0)


def test_float_vector_labels_stay_vectors(tmp_path):
    root = official_folder(tmp_path / "f", [noise(8, 8, seed=i) for i in range(2)], labels=[[0.5, -1.0], [2.0, 3.25]])
    ds = ImageDataset(root, use_labels=True)
    assert ds.label_dim == 2
    assert ds[1][1].dtype == torch.float32 and ds[1][1].tolist() == [2.0, 3.25]


# ---------------------------------------------------------------------------------------
# Errors


def error_of(path, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        ImageDataset(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_empty_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "holds no images" in error_of(tmp_path / "empty")
    write(tmp_path / "empty.zip", zip_bytes([("readme.txt", b"hi")]))
    assert "holds no images" in error_of(tmp_path / "empty.zip")


def test_missing_dataset(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope")


def test_non_square_images(tmp_path):
    root = official_folder(tmp_path / "r", [noise(16, 8)])
    assert "is 16x8, but training needs square images" in error_of(root)


def test_side_not_a_power_of_two(tmp_path):
    root = official_folder(tmp_path / "p", [noise(12, 12)])
    assert "power of two" in error_of(root)


def test_mixed_sizes(tmp_path):
    root = official_folder(tmp_path / "m", [noise(16, 16, seed=i) for i in range(5)] + [noise(8, 8)])
    assert "mixes image sizes" in error_of(root)


def test_mixed_channels(tmp_path):
    root = official_folder(tmp_path / "c", [noise(8, 8), solid(8, 8, 3, mode="L")])
    assert "mixes image sizes" in error_of(root)


def test_rgba_is_refused(tmp_path):
    root = official_folder(tmp_path / "a", [solid(8, 8, (1, 2, 3, 4), mode="RGBA")])
    assert "has 4 channels (RGBA)" in error_of(root)


def test_use_labels_without_labels(prepared):
    assert "needs labels" in error_of(prepared["zip"], use_labels=True)


def test_labels_file_missing_an_image(tmp_path):
    root = official_folder(tmp_path / "x", [noise(8, 8, seed=i) for i in range(2)], labels=[0, 1])
    data = json.loads((root / "dataset.json").read_text())
    data["labels"] = data["labels"][:1]
    (root / "dataset.json").write_text(json.dumps(data))
    assert "has no label for 00000/img00000001.png" in error_of(root, use_labels=True)


def test_an_odd_image_past_the_checked_sample_fails_on_reading(tmp_path):
    images = [noise(8, 8, seed=i) for i in range(40)]
    images[20] = noise(16, 16)
    root = official_folder(tmp_path / "late", images)
    try:
        ds = ImageDataset(root)  # the constructor samples; it may or may not open image 20
    except UserError:
        return
    with pytest.raises(UserError, match="unlike the others"):
        ds[20]


# ---------------------------------------------------------------------------------------
# Workers


def test_dataloader_with_two_workers_over_a_zip(prepared):
    ds = ImageDataset(prepared["zip"], xflip=True)
    ds[0]  # the parent opens its zip handle first: workers must not share it
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    images = torch.cat([img for img, _ in loader])
    expected = torch.stack([ds[i][0] for i in range(len(ds))])
    assert torch.equal(images, expected)


def test_pickling_drops_the_zip_handle(prepared):
    ds = ImageDataset(prepared["zip"])
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._zip is None
    assert torch.equal(copy[3][0], ds[3][0])


# ---------------------------------------------------------------------------------------
# InfiniteSampler


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_sampler_covers_the_dataset_and_keeps_shuffling():
    s = InfiniteSampler(Sized(10), seed=0)
    first = s.take(10)
    assert first != list(range(10))
    long = s.take(1000)
    counts = np.bincount(long, minlength=10)
    assert counts.min() > 50  # every item keeps coming back
    assert s.take(10) != first
    # Swaps reach half a dataset back (wrapping around at the start), so a pass is not an
    # exact permutation, but most items come once and all come soon.
    assert len(set(InfiniteSampler(Sized(1000), seed=0).take(1000))) > 750
    assert set(InfiniteSampler(Sized(1000), seed=0).take(6000)) == set(range(1000))


def test_sampler_without_shuffle_is_sequential():
    assert InfiniteSampler(Sized(4), shuffle=False).take(6) == [0, 1, 2, 3, 0, 1]


def test_sampler_is_deterministic_by_seed():
    assert InfiniteSampler(Sized(50), seed=3).take(200) == InfiniteSampler(Sized(50), seed=3).take(200)
    assert InfiniteSampler(Sized(50), seed=3).take(200) != InfiniteSampler(Sized(50), seed=4).take(200)


def test_sampler_state_round_trip_resumes_the_same_sequence(tmp_path):
    reference = InfiniteSampler(Sized(37), seed=5).take(300)
    s = InfiniteSampler(Sized(37), seed=5)
    assert s.take(123) == reference[:123]
    path = tmp_path / "state.pt"
    torch.save(s.state_dict(), path)
    resumed = InfiniteSampler(Sized(37), seed=5)
    resumed.load_state_dict(torch.load(path, weights_only=True))
    assert resumed.take(177) == reference[123:]


def test_sampler_advance_tracks_what_was_used():
    reference = InfiniteSampler(Sized(20), seed=1).take(60)
    record = InfiniteSampler(Sized(20), seed=1)
    record.advance(25)
    follower = InfiniteSampler(Sized(20), seed=1)
    follower.load_state_dict(record.state_dict())
    assert follower.take(35) == reference[25:]
    assert iter(follower).__next__() == InfiniteSampler(Sized(20), seed=1).take(61)[60]


def test_sampler_refuses_a_different_dataset_size():
    state = InfiniteSampler(Sized(10)).state_dict()
    with pytest.raises(UserError, match="saved data order is for 10 items"):
        InfiniteSampler(Sized(20)).load_state_dict(state)


def test_sampler_ranks_partition_the_global_sequence():
    whole = InfiniteSampler(Sized(30), seed=2).take(120)
    parts = [InfiniteSampler(Sized(30), seed=2, rank=r, num_replicas=3).take(40) for r in range(3)]
    for r in range(3):
        assert parts[r] == whole[r::3]


def test_sampler_in_a_dataloader(prepared):
    ds = ImageDataset(prepared["zip"])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=InfiniteSampler(ds, seed=0))
    batches = [b for _, b in zip(range(3), loader)]
    assert [list(img.shape) for img, _ in batches] == [[4, 3, 16, 16]] * 3
