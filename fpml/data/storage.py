"""Where a dataset's arrays live: in memory, or in memory-mapped files for data larger than host memory.

Transforms build their output as blocks of rows; :func:`collect` joins the blocks in memory
(``directory=None``) or appends them to unnamed temporary files in ``directory`` and maps those
read-only. The files have no name, so they vanish with their last mapping, whether the run ends or
crashes; nothing is left to clean up. Results do not depend on where the arrays live.

>>> blocks = ((np.full((2, 3), b, np.float32), np.full(2, b, np.int8)) for b in range(3))
>>> x, labels = collect(blocks, None)
>>> x.shape, labels.tolist()
((6, 3), [0, 0, 1, 1, 2, 2])
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from fpml.errors import DataError

#: Rows per block when a transform walks a dataset: bounds the memory a transform needs beyond its output.
BLOCK_ROWS = 65_536


def row_blocks(n_rows: int, block_rows: int = BLOCK_ROWS) -> Iterator[slice]:
    """Consecutive slices of at most ``block_rows`` rows covering ``[0, n_rows)`` (one empty slice if 0)."""
    yield from (slice(start, min(start + block_rows, n_rows)) for start in range(0, max(n_rows, 1), block_rows))


def collect(blocks: Iterable[tuple[np.ndarray, ...]], directory: str | Path | None) -> tuple[np.ndarray, ...]:
    """Join blocks of rows (tuples of arrays, one per output) into arrays: in memory, or memory-mapped files."""
    if directory is None:
        parts = list(blocks)
        if not parts:
            raise ValueError("collect needs at least one block (it may have zero rows)")
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
    files, layout, rows = None, None, 0
    try:
        for block in blocks:
            block = tuple(np.ascontiguousarray(a) for a in block)
            if files is None:
                Path(directory).mkdir(parents=True, exist_ok=True)
                files = [tempfile.TemporaryFile(dir=directory) for _ in block]
                layout = [(a.dtype, a.shape[1:]) for a in block]
            if [(a.dtype, a.shape[1:]) for a in block] != layout:
                raise ValueError(f"blocks differ in dtype or row shape: {layout} vs the block at row {rows}")
            for handle, array in zip(files, block, strict=True):
                handle.write(array.tobytes() if array.size == 0 else memoryview(array).cast("B"))
            rows += len(block[0])
        if files is None:
            raise ValueError("collect needs at least one block (it may have zero rows)")
        return tuple(_map(handle, dtype, (rows, *shape)) for handle, (dtype, shape) in zip(files, layout, strict=True))
    except OSError as err:  # not writable, disk full, ...
        raise DataError(
            f"cannot keep the data in memory-mapped files in {directory} ({err.strerror or err}); "
            f"point :data-dir at a folder with room for it"
        ) from None
    finally:
        for handle in files or ():
            handle.close()  # a mapping keeps its own reference to the file


def _map(handle, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:  # an empty file cannot be mapped
        return np.zeros(shape, dtype)
    handle.flush()
    return np.memmap(handle, dtype, mode="r", shape=shape)


def is_mapped(array: np.ndarray) -> bool:
    """Whether ``array`` (or the array it views) is a memory-mapped file."""
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base if isinstance(array.base, np.ndarray) else None
    return False
