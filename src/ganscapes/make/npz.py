"""`.npz` files written atomically and read within bounds.

A latents file may come from anywhere, and `numpy.load` allocates whatever shape a
member's header claims. Here each member's header (shape, dtype; NumPy's `.npy`
format, see `numpy.lib.format`) is read first, so the caller can check the sizes before
any data is read, and only the rows asked for are read: taking rows 0 and 1 of a
million-row file costs two rows of memory. Object arrays (pickles) are never read.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from ganscapes.fileio import atomic_path

MAX_HEADER = 10_000  # bytes of a member's .npy header (numpy's own default limit)


class NpzError(ValueError):
    """The file is not a readable .npz archive, or a member is damaged."""


def save_npz(path: Path, **arrays) -> None:
    """numpy.savez into `path`, atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


class NpzReader:
    """The members of an .npz archive: their headers, and their data row by row."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise NpzError(f"not a zip archive: {e}") from None
        self._members = {n.removesuffix(".npy"): n for n in names if n.endswith(".npy")}
        self._headers: dict[str, tuple[tuple[int, ...], np.dtype, bool, int]] = {}

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def keys(self) -> list[str]:
        return list(self._members)

    def __contains__(self, key: str) -> bool:
        return key in self._members

    def shape(self, key: str) -> tuple[int, ...]:
        return self._header(key)[0]

    def dtype(self, key: str) -> np.dtype:
        return self._header(key)[1]

    def _header(self, key: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
        """(shape, dtype, fortran order, offset of the data) of a member, from its header alone."""
        if key not in self._headers:
            try:
                with self._zip.open(self._members[key]) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER)
                    elif version in ((2, 0), (3, 0)):
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER)
                    else:
                        raise NpzError(f"member {key!r} has an unknown .npy version {version}")
                    offset = f.tell()
            except NpzError:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
                raise NpzError(f"member {key!r} is damaged: {e}") from None
            if dtype.hasobject:
                raise NpzError(f"member {key!r} holds Python objects, which are not read")
            self._headers[key] = (tuple(int(n) for n in shape), dtype, bool(fortran), offset)
        return self._headers[key]

    def read(self, key: str, rows: list[int] | None = None, max_bytes: int = 1 << 30, lead: int = 1) -> np.ndarray:
        """The member `key`, or only its `rows` in the order given.

        Rows count along the first `lead` axes taken together (lead 2: the rows of an
        [S, F, …] array are its S·F items, in C order). Refuses (NpzError) to read more
        than `max_bytes` of data; callers check the shape against their own limits first.
        """
        shape, dtype, fortran, offset = self._header(key)
        if rows is not None and len(shape) < lead:
            raise NpzError(f"member {key!r} has fewer than {lead} axes")
        n = math.prod(shape[:lead])
        row_shape = shape[lead:] if rows is not None else shape
        row_bytes = math.prod(row_shape) * dtype.itemsize
        count = len(rows) if rows is not None else 1
        for r in rows or ():
            if not 0 <= r < n:
                raise NpzError(f"member {key!r} has no row {r}")
        if count * row_bytes > max_bytes:
            raise NpzError(f"member {key!r} would need {count * row_bytes:,} bytes, more than {max_bytes:,}")
        try:
            with self._zip.open(self._members[key]) as f:
                if rows is None or (fortran and len(shape) > 1):
                    whole = self._read_whole(f, key, offset, shape, dtype, fortran, max_bytes)
                    return whole if rows is None else whole.reshape(n, *row_shape)[rows]
                found: dict[int, np.ndarray] = {}
                for r in sorted(set(rows)):  # forward only: a zip member seeks backwards by re-reading
                    f.seek(offset + r * row_bytes)
                    found[r] = self._exact(f, row_bytes, key).view(dtype).reshape(row_shape)
        except NpzError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as e:
            raise NpzError(f"member {key!r} is damaged: {e}") from None
        out = np.empty((len(rows), *row_shape), dtype)
        for k, r in enumerate(rows):
            out[k] = found[r]
        return out

    def _read_whole(
        self, f, key: str, offset: int, shape, dtype: np.dtype, fortran: bool, max_bytes: int
    ) -> np.ndarray:
        size = math.prod(shape) * dtype.itemsize
        if size > max_bytes:
            raise NpzError(f"an array of {size:,} bytes is more than {max_bytes:,}")
        f.seek(offset)
        flat = self._exact(f, size, key).view(dtype)
        if fortran and len(shape) > 1:
            return flat.reshape(shape[::-1]).T.copy()
        return flat.reshape(shape)

    @staticmethod
    def _exact(f, n: int, what: str) -> np.ndarray:
        data = f.read(n)
        if len(data) != n:
            raise NpzError(f"member {what!r} is cut short")
        return np.frombuffer(bytearray(data), np.uint8)
