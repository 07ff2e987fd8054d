"""The immutable dataset record that transforms take and return."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy-free view: transforms cannot mutate data they were given."""
    view = array.view()
    view.flags.writeable = False
    return view


class Dataset(NamedTuple):
    """Features ``x`` (float32, rows x features), one-hot labels ``y`` (float32, rows x classes), names.

    Arrays are read-only; every transform returns a new :class:`Dataset`. ``spill_dir`` says where the
    arrays that transforms derive from this one live: ``None`` in memory, else memory-mapped files in that
    folder (:mod:`fpml.data.storage`), for data larger than host memory.
    """

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    spill_dir: str | None = None

    @property
    def labels(self) -> np.ndarray:
        """Class index per row."""
        return self.y.argmax(axis=1)

    @property
    def class_counts(self) -> np.ndarray:
        return self.y.sum(axis=0, dtype=np.float64).astype(np.int64)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in enumerate(self.class_counts))
        where = f"; memory-mapped in {self.spill_dir}" if self.spill_dir is not None else ""
        return f"Dataset({len(self)} rows x {self.x.shape[1]} features; classes {{{counts}}}{where})"


def dataset(x: np.ndarray, y: np.ndarray, features: tuple[str, ...], spill_dir: str | None = None) -> Dataset:
    """A :class:`Dataset` with arrays converted to float32 and made read-only.

    Arrays already float32 are not copied (a dataset may be larger than memory, memory-mapped): the dataset
    is then a read-only view of them, and whoever passed them must not write to them afterwards.
    """
    return Dataset(frozen(np.asarray(x, np.float32)), frozen(np.asarray(y, np.float32)), tuple(features), spill_dir)
