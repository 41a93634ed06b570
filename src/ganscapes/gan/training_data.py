"""Training data: the images of a prepared dataset as tensors, and the order they come in.

`ImageDataset` reads a dataset in the official layout (what NVIDIA's `dataset_tool.py`
writes and `training/dataset.py` `ImageFolderDataset` reads): a folder, searched
recursively, or a `.zip`, whose image files are taken in sorted order of their relative
paths, all square with one power-of-two side and one or three channels, plus an optional
`dataset.json` with labels. Items are `(uint8 [C, H, W], float32 [label_dim])`, what
the official loader hands to the training loop. `xflip=True` (`--mirror`) appends an
x-flipped copy of every image after the originals; `max_size` keeps a seeded random
subset (then sorted), chosen before the flip.

The dataset works in `DataLoader` worker processes: a zip is opened lazily by each
process that reads from it (a handle inherited through `fork` shares its file offset
with the parent, and would return garbage), and pickling drops the handle.

`InfiniteSampler` is the official loop's data order (NVIDIA's `torch_utils/misc.py`
`InfiniteSampler`): one shuffle, then an endless walk that swaps each visited item with
one up to half a dataset behind it. Its
position and random state are a `state_dict()`, so a resumed run continues with exactly
the items the interrupted one would have seen next.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganscapes.data.aspect import is_aspect
from ganscapes.data.dataset import LABELS, Dataset
from ganscapes.errors import UserError, first_line

# How many images the constructor opens to check sizes and channels: the first ones,
# the last one and a few seeded random ones. Opening reads only the header.
CHECK_FIRST = 16
CHECK_RANDOM = 8

_CHANNELS = {"L": 1, "1": 1, "RGB": 3, "P": 3, "LA": 2, "RGBA": 4, "CMYK": 4, "YCbCr": 3, "PA": 4}
# What reading or decoding one damaged image raises: a file gone or unreadable, a bad zip
# entry (CRC, deflate, LZMA, an unsupported method or encryption), a truncated or
# malformed picture (Pillow raises OSError, SyntaxError or ValueError).
READ_ERRORS = (
    OSError,
    KeyError,
    EOFError,
    ValueError,
    SyntaxError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    Image.DecompressionBombError,
)
# Training goes on past this many damaged images (distinct ones), or 1 % of the dataset
# if that is more, using another image in each one's place; one more stops it.
MIN_DAMAGED_ALLOWED = 10


class DamagedImage(UserError):
    """One image of a dataset cannot be used (unreadable, undecodable, or not like the others)."""

    def __init__(self, name: str, path: Path, reason: str, message: str | None = None):
        self.name, self.path, self.reason = name, Path(path), reason
        super().__init__(message or f"Cannot read {name} in dataset {path} ({reason}).")


class DataError(UserError):
    """A failure inside a data-loading worker, kept to its one sentence in the main process.

    PyTorch re-raises a worker's exception in the main process as the same class, built
    from a message of its own: "Caught X in DataLoader worker process 0", the worker's
    whole traceback, and last the original "module.X: sentence" line. Built from such a
    message, this class keeps only the sentence.
    """

    def __init__(self, message: str):
        if "DataLoader worker" in message and "Traceback" in message:
            last = message.strip().splitlines()[-1]
            message = last.split(": ", 1)[1] if ": " in last else last
        super().__init__(message)


class ImageDataset(torch.utils.data.Dataset):
    """The images (and labels) of a prepared dataset, folder or zip, for training."""

    def __init__(self, path, use_labels: bool = False, xflip: bool = False, max_size: int | None = None, seed: int = 0):
        self.path = Path(path)
        self.use_labels = bool(use_labels)
        self.xflip = bool(xflip)
        self.max_size = max_size
        self.seed = int(seed)
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        self._fingerprint: str | None = None

        with Dataset(self.path) as ds:  # lists the files; raises UserError for a missing or unreadable path
            self.is_zip = self.path.is_file()
            names = list(ds.image_names)
            if not names:
                raise UserError(
                    f"Dataset {self.path} holds no images (.png, .jpg, …); prepare one with `ganscapes prepare`."
                )
            manifest = ds.manifest or {}
            labels_json = ds.read_json(LABELS) if ds.has(LABELS) else None
            if ds.has(LABELS) and labels_json is None:
                raise UserError(f'{LABELS} in dataset {self.path} must be a JSON object such as {{"labels": null}}.')
            self._labels_file_size = len(ds.read_bytes(LABELS)) if ds.has(LABELS) else None

        if max_size is not None:
            if int(max_size) < 1:
                raise UserError(f"The dataset subset size must be at least 1, not {max_size}.")
            if len(names) > max_size:
                keep = np.arange(len(names))
                np.random.RandomState(self.seed).shuffle(keep)
                names = [names[i] for i in np.sort(keep[: int(max_size)])]
        self.image_names: list[str] = names
        self.prepare_format: str | None = manifest.get("format")
        aspect = manifest.get("aspect")  # goes into every snapshot; a model must be loadable again
        self.aspect: float | None = float(aspect) if is_aspect(aspect) else None

        raw = (labels_json or {}).get("labels")
        self.labels_available = bool(raw)
        if self.use_labels:
            if not raw:
                raise UserError(
                    f"Conditional training needs labels, but dataset {self.path} has none "
                    f'(no {LABELS} with a "labels" list); train without --cond.'
                )
            self._labels = _parse_labels(raw, names, self.path)
        else:
            self._labels = np.zeros([len(names), 0], dtype=np.float32)

        self._check_images()

    # -- size, shape, labels ------------------------------------------------------------

    @property
    def num_images(self) -> int:
        """Distinct image files used (after `max_size`, before the x-flip doubling)."""
        return len(self.image_names)

    def __len__(self) -> int:
        return self.num_images * (2 if self.xflip else 1)

    @property
    def name(self) -> str:
        return self.path.stem if self.is_zip else self.path.name

    @property
    def image_shape(self) -> list[int]:
        return [self.num_channels, self.resolution, self.resolution]

    @property
    def label_dim(self) -> int:
        return int(self._labels.shape[1])

    @property
    def label_shape(self) -> list[int]:
        return [self.label_dim]

    @property
    def has_labels(self) -> bool:
        """Whether items carry labels (only with `use_labels=True`)."""
        return self.label_dim > 0

    def get_label(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self._labels[self._raw_index(index)].copy())

    def sample_labels(self, n: int, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Labels [n, label_dim] of `n` dataset items drawn uniformly with replacement.

        From `generator`, else a generator seeded with `seed`, else torch's global
        generator (which the training loop seeds). Unconditional datasets give [n, 0]
        without drawing anything.
        """
        if self.label_dim == 0:
            return torch.zeros([n, 0], dtype=torch.float32)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        idx = torch.randint(self.num_images, [n], generator=generator).numpy()
        return torch.from_numpy(self._labels[idx].copy())

    # -- items --------------------------------------------------------------------------

    def _raw_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} items")
        return int(index % n) % self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = int(index)
        raw = self._raw_index(index)
        image = self._load(raw)
        if tuple(image.shape) != tuple(self.image_shape):
            name = self.image_names[raw]
            size = f"{image.shape[2]}x{image.shape[1]} with {image.shape[0]} channel(s)"
            raise DamagedImage(
                name,
                self.path,
                f"{size}, unlike the others",
                f"{name} in dataset {self.path} is {size}, unlike the others ({self.resolution}x{self.resolution}, "
                f"{self.num_channels}); prepare the dataset again.",
            )
        if self.xflip and index % len(self) >= self.num_images:
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
        if not image.flags.writeable:  # a view of PIL's buffer (grayscale)
            image = image.copy()
        return torch.from_numpy(image), torch.from_numpy(self._labels[raw].copy())

    def read_raw(self, raw: int) -> np.ndarray:
        """Image `raw` (an index into `image_names`) as uint8 [C, H, W], unflipped."""
        return self._load(raw)

    def _read_bytes(self, name: str) -> bytes:
        if not self.is_zip:
            return (self.path / name).read_bytes()
        if self._zip is None or self._zip_pid != os.getpid():
            # A handle inherited through fork shares its file offset with the parent's;
            # each process opens its own (and leaves the inherited one alone).
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip.read(name)

    def _open(self, raw: int):

        name = self.image_names[raw]
        try:
            return Image.open(io.BytesIO(self._read_bytes(name)))
        except READ_ERRORS as e:
            raise DamagedImage(name, self.path, first_line(e)) from None

    def _load(self, raw: int) -> np.ndarray:
        img = self._open(raw)
        name = self.image_names[raw]
        if getattr(self, "resolution", None) is not None and img.size != (self.resolution, self.resolution):
            # before decoding: a damaged header may claim any size (a decompression bomb)
            w, h = img.size
            raise DamagedImage(
                name,
                self.path,
                f"{w}x{h}, unlike the others",
                f"{name} in dataset {self.path} is {w}x{h}, unlike the others ({self.resolution}x{self.resolution}, "
                f"{self.num_channels}); prepare the dataset again.",
            )
        try:
            _check_mode(img.mode, name, self.path)
        except UserError as e:
            raise DamagedImage(name, self.path, f"pixel mode {img.mode}, unlike the others", str(e)) from None
        try:
            if img.mode == "1":
                img = img.convert("L")
            elif img.mode != "L" and img.mode != "RGB":
                img = img.convert("RGB")  # palette images
            a = np.asarray(img)
        except READ_ERRORS as e:
            reason = first_line(e)
            message = f"Cannot decode {name} in dataset {self.path} ({reason})."
            raise DamagedImage(name, self.path, reason, message) from None
        if a.ndim == 2:
            a = a[:, :, None]
        return a.transpose(2, 0, 1)

    def close(self) -> None:
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None
        self._zip_pid = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_zip"] = None  # an open zip cannot be pickled; the receiving process opens its own
        state["_zip_pid"] = None
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- checks and fingerprint -----------------------------------------------------------

    def _check_images(self) -> None:
        n = self.num_images
        picks = list(range(min(CHECK_FIRST, n))) + [n - 1]
        if n > CHECK_FIRST + 1:
            rng = np.random.RandomState(1)
            picks += [int(i) for i in rng.randint(CHECK_FIRST, n - 1, size=CHECK_RANDOM)]
        first = None
        damaged: DamagedImage | None = None
        for raw in dict.fromkeys(picks):
            try:
                img = self._open(raw)
            except DamagedImage as e:  # training replaces it when it comes up; the others decide the shape
                damaged = damaged or e
                continue
            name = self.image_names[raw]
            w, h = img.size
            _check_mode(img.mode, name, self.path)
            channels = _CHANNELS[img.mode]
            if w != h:
                raise UserError(
                    f"{name} in dataset {self.path} is {w}x{h}, but training needs square images; "
                    "prepare the dataset with `ganscapes prepare`."
                )
            if w < 4 or w & (w - 1):
                raise UserError(
                    f"{name} in dataset {self.path} is {w}x{h}, but training needs a side that is a power of two "
                    "(4, 8, …, 1024); prepare the dataset with `ganscapes prepare --res`."
                )
            if first is None:
                first = (name, w, channels)
            elif (w, channels) != first[1:]:
                raise UserError(
                    f"Dataset {self.path} mixes image sizes: {first[0]} is {first[1]}x{first[1]} with {first[2]} "
                    f"channel(s), {name} is {w}x{w} with {channels}; prepare the dataset again."
                )
        if first is None:
            raise damaged
        self.resolution = int(first[1])
        self.num_channels = int(first[2])

    def fingerprint(self) -> str:
        """SHA-256 over the used images' names and byte sizes (and the labels file's size
        when labels are used): equal for the same data, cheap to compute (no pixels read).

        Options (`xflip`) are not part of it; `max_size` is, through the names it keeps.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            sizes = self._file_sizes()
            for name in self.image_names:
                h.update(f"{name}\0{sizes[name]}\n".encode())
            if self.use_labels:
                h.update(f"{LABELS}\0{self._labels_file_size}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def _file_sizes(self) -> dict[str, int]:
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                return {info.filename: info.file_size for info in zf.infolist()}
        return {name: (self.path / name).stat().st_size for name in self.image_names}

    def __repr__(self) -> str:
        return (
            f"ImageDataset({str(self.path)!r}, images={self.num_images}, len={len(self)}, "
            f"shape={self.image_shape}, label_dim={self.label_dim})"
        )


def _check_mode(mode: str, name: str, path: Path) -> None:
    channels = _CHANNELS.get(mode)
    if channels is None:
        raise UserError(
            f"{name} in dataset {path} has pixel mode {mode} (not 8-bit), but training needs 8-bit RGB or "
            "grayscale images; prepare the dataset with `ganscapes prepare`."
        )
    if channels not in (1, 3):
        raise UserError(
            f"{name} in dataset {path} has {channels} channels ({mode}), but training needs RGB (3) or "
            "grayscale (1) images; prepare the dataset with `ganscapes prepare`."
        )


def _parse_labels(raw, names: list[str], path: Path) -> np.ndarray:
    """`[[name, int | [floats]], …]` → float32 [len(names), dim] in the order of `names`."""
    where = f"{LABELS} in dataset {path}"
    if not isinstance(raw, list):
        raise UserError(f'{where} must hold a list of [file name, label] pairs under "labels".')
    table = {}
    for entry in raw:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise UserError(f"{where} has an entry that is not a [file name, label] pair: {str(entry)[:80]}.")
        table[entry[0].replace("\\", "/")] = entry[1]
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(
            f"{where} has no label for {missing[0]}"
            + (f" and {len(missing) - 1} more images." if len(missing) > 1 else ".")
        )
    values = [table[n] for n in names]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        ints = np.asarray(values, dtype=np.int64)
        if ints.min() < 0:
            raise UserError(f"{where} has a negative class label ({int(ints.min())}); classes count from 0.")
        onehot = np.zeros([len(values), int(ints.max()) + 1], dtype=np.float32)
        onehot[np.arange(len(values)), ints] = 1
        return onehot
    if all(isinstance(v, list) for v in values):
        dims = {len(v) for v in values}
        if len(dims) != 1 or 0 in dims:
            raise UserError(f"{where} has label vectors of different lengths ({sorted(dims)[:4]}); they must be equal.")
        try:
            return np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise UserError(f"{where} has a label vector that is not all numbers.") from None
    raise UserError(f"{where} must give every image either an integer class or a list of numbers, not a mix.")


# ---------------------------------------------------------------------------------------
# Damaged images during training


class TrainingImages(torch.utils.data.Dataset):
    """The items of an ImageDataset for the training loop: `(image, label, damaged)`.

    A damaged image (truncated, undecodable, unlike the others) is replaced by the next
    readable one in dataset order (its mirror image for a mirrored item), and `damaged`
    gives its index in `image_names` (-1 for the usual case), so the main process can
    report it: workers are separate processes. Every other failure becomes a `DataError`
    of one sentence. Clean datasets give exactly the ImageDataset's items.
    """

    def __init__(self, dataset: ImageDataset, max_tries: int | None = None):
        self.dataset = dataset
        self.max_tries = max_tries or damaged_allowed(dataset.num_images) + 1

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        ds = self.dataset
        try:
            image, label = self._item(index)
            return image, label, -1
        except DamagedImage:
            damaged = ds._raw_index(int(index))
        n = ds.num_images
        half = (int(index) % len(ds)) // n  # 0: the images, 1: their mirrored copies
        for step in range(1, min(self.max_tries, n)):
            try:
                image, label = self._item(half * n + (damaged + step) % n)
                return image, label, damaged
            except DamagedImage:
                continue
        raise DataError(
            f"Dataset {ds.path} has no readable image near {ds.image_names[damaged]}: the next "
            f"{min(self.max_tries, n) - 1} are damaged too; prepare the dataset again."
        )

    def _item(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return self.dataset[index]
        except (DamagedImage, DataError):
            raise
        except UserError as e:
            raise DataError(str(e)) from None
        except Exception as e:  # a bug or the machine; still one sentence across the process boundary
            raise DataError(
                f"Reading item {index} of dataset {self.dataset.path} failed ({type(e).__name__}: {first_line(e)})."
            ) from None


def damaged_allowed(num_images: int) -> int:
    """How many distinct damaged images a run goes on past: MIN_DAMAGED_ALLOWED, or 1 % if more."""
    return max(MIN_DAMAGED_ALLOWED, num_images // 100)


class TrainingBatches:
    """The batches of a DataLoader over `TrainingImages`, as `(images, labels)`, for `next()`.

    Each damaged image is reported once, with its reason (read again here, in the main
    process), and counted; past `damaged_allowed` of them training stops with one
    sentence, since the dataset is then more damaged than a few bad files. A worker's
    failure arrives as one sentence too, not as PyTorch's traceback of the worker.
    """

    def __init__(self, batches: Iterator, dataset: ImageDataset, say: Callable[[str], None]):
        self._batches, self.dataset, self.say = batches, dataset, say
        self.allowed = damaged_allowed(dataset.num_images)
        self.damaged: dict[int, str] = {}  # index in image_names → reason

    def __iter__(self) -> TrainingBatches:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            images, labels, damaged = next(self._batches)
        except RuntimeError as e:
            if "DataLoader worker" not in str(e):
                raise
            raise UserError(f"A data-loading worker failed ({first_line(e)}); try fewer --workers.") from None
        for raw in sorted(set(damaged.tolist()) - {-1} - set(self.damaged)):
            self._report(int(raw))
        return images, labels

    def _report(self, raw: int) -> None:
        ds = self.dataset
        name = ds.image_names[raw]
        try:
            ds.read_raw(raw)
            reason = "unreadable in a data-loading worker"
        except DamagedImage as e:
            reason = e.reason
        self.damaged[raw] = reason
        count = len(self.damaged)
        if count > self.allowed:
            raise UserError(
                f"{count} images of dataset {ds.path} are damaged, more than the {self.allowed} training goes on "
                f"past (the last: {name}, {reason}); prepare the dataset again."
            )
        self.say(
            f"warning: {name} in dataset {ds.path} is damaged ({reason}); another image takes its place "
            f"({count} damaged so far; training stops past {self.allowed})."
        )


# ---------------------------------------------------------------------------------------
# Data order


class InfiniteSampler(torch.utils.data.Sampler):
    """An endless stream of dataset indices in the official order (`torch_utils/misc.py` `InfiniteSampler`).

    The indices are shuffled once with `RandomState(seed)`; then the walk visits position
    `step % n`, and after each visit swaps that item with one drawn from the `window`
    positions at and behind it (`window = round(n * window_size)`), so the order keeps
    changing while every item comes back about once per pass. Process `rank` of
    `num_replicas` takes the steps with `step % num_replicas == rank`.

    Iterating continues from the sampler's own position and moves it: `state_dict()` is
    where the next item comes from. When a `DataLoader` prefetches ahead of what has been
    used, keep a second sampler for the record and move it with `advance(n)` as batches
    are consumed.
    """

    def __init__(
        self,
        dataset,
        rank: int = 0,
        num_replicas: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        window_size: float = 0.5,
    ):
        size = len(dataset)
        if size < 1:
            raise ValueError("InfiniteSampler needs a dataset with at least one item")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not valid for {num_replicas} replicas")
        if not 0 <= window_size <= 1:
            raise ValueError(f"window_size must be from 0 to 1, not {window_size}")
        self.size = size
        self.rank, self.num_replicas = int(rank), int(num_replicas)
        self.shuffle, self.seed, self.window_size = bool(shuffle), int(seed), float(window_size)
        self._order = np.arange(size, dtype=np.int64)
        self._rng = np.random.RandomState(self.seed)
        self._window = 0
        if self.shuffle:
            self._rng.shuffle(self._order)
            self._window = int(np.rint(size * self.window_size))
        self._step = 0

    def _next(self) -> int:
        """The next index for this rank; moves past the steps of the other ranks."""
        while True:
            i = self._step % self.size
            item = int(self._order[i]) if self._step % self.num_replicas == self.rank else None
            if self._window >= 2:
                j = (i - self._rng.randint(self._window)) % self.size
                self._order[i], self._order[j] = self._order[j], self._order[i]
            self._step += 1
            if item is not None:
                return item

    def __iter__(self) -> Iterator[int]:
        while True:
            yield self._next()

    def take(self, n: int) -> list[int]:
        """The next `n` indices (moving the position)."""
        return [self._next() for _ in range(n)]

    def advance(self, n: int) -> None:
        """Move past the next `n` indices of this rank without returning them."""
        for _ in range(n):
            self._next()

    @property
    def position(self) -> int:
        """Steps taken so far, over all ranks."""
        return self._step

    def state_dict(self) -> dict:
        """Position, order and random state, as tensors and plain numbers (loadable with
        `torch.load(weights_only=True)`)."""
        name, keys, pos, has_gauss, cached = self._rng.get_state()
        return {
            "size": self.size,
            "rank": self.rank,
            "num_replicas": self.num_replicas,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "window": self._window,
            "step": self._step,
            "order": torch.from_numpy(self._order.copy()),
            "rng": {
                "name": str(name),
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != self.size:
            raise UserError(
                f"The saved data order is for {int(state['size'])} items, but the dataset now has {self.size}; "
                "resume with the same dataset and the same --mirror setting."
            )
        for key in ("rank", "num_replicas"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"the saved sampler state is for {key} {state[key]}, not {getattr(self, key)}")
        self.shuffle, self.seed = bool(state["shuffle"]), int(state["seed"])
        self._window = int(state["window"])
        self._step = int(state["step"])
        order = state["order"]
        self._order = (order.numpy() if isinstance(order, torch.Tensor) else np.asarray(order)).astype(np.int64).copy()
        r = state["rng"]
        keys = r["keys"].numpy() if isinstance(r["keys"], torch.Tensor) else np.asarray(r["keys"])
        self._rng = np.random.RandomState()
        self._rng.set_state((r["name"], keys.astype(np.uint32), int(r["pos"]), int(r["has_gauss"]), float(r["cached"])))
