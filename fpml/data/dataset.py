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

    Arrays are read-only; every transform returns a new :class:`Dataset`.
    """

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        """Class index per row."""
        return self.y.argmax(axis=1)

    @property
    def class_counts(self) -> np.ndarray:
        return self.y.sum(axis=0).astype(np.int64)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"{c}: {n}" for c, n in enumerate(self.class_counts))
        return f"Dataset({len(self)} rows x {self.x.shape[1]} features; classes {{{counts}}})"


def dataset(x: np.ndarray, y: np.ndarray, features: tuple[str, ...]) -> Dataset:
    """A :class:`Dataset` with arrays converted to float32 and made read-only."""
    return Dataset(frozen(np.asarray(x, np.float32)), frozen(np.asarray(y, np.float32)), tuple(features))
