"""Pure dataset transforms: each takes data (and a PRNG key where it is random) and returns new data.

Transforms of a :class:`Dataset` walk it in blocks of rows (:mod:`fpml.data.storage`), so they work the
same on data in memory and on memory-mapped data larger than memory (the output lives where the input's
``spill_dir`` says), and give the same bytes either way.

They compose with toolz (curried, data last):

>>> import jax, toolz
>>> from fpml.data import synthetic
>>> prep = toolz.compose(to_dataset("Class"), drop_columns(["Time"]))
>>> data = prep(synthetic.generate(seed=1, rows=1_000, frauds=20))
>>> train, test = split(jax.random.key(0), 200, data)
>>> len(train), len(test), test.class_counts.tolist()
(800, 200, [196, 4])
"""

from __future__ import annotations

import itertools
import numbers
import os
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from toolz import curry

from fpml.data import storage
from fpml.data.dataset import Dataset, dataset, frozen
from fpml.errors import ConfigError, DataError, did_you_mean


@curry
def drop_columns(columns: Sequence[str], frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without ``columns`` (each must exist)."""
    _check_named(":drop-columns", columns, frame)
    return frame.drop(columns=list(columns))


def _check_named(setting: str, columns: Sequence[str], frame: pd.DataFrame) -> None:
    """Every name in ``columns`` is a column of ``frame``; else a :class:`ConfigError` with the nearest name."""
    names = [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{setting} names column(s) not in the data: {', '.join(missing)}{did_you_mean(missing[0], names)}; "
            f"columns: {', '.join(names)}"
        )


@curry
def to_dataset(label: str, frame: pd.DataFrame, n_classes: int = 2) -> Dataset:
    """Features = every column but ``label``; labels (integers 0..n_classes-1) one-hot encoded (class k -> e_k)."""
    if label not in frame.columns:
        raise DataError(f"label column {label!r} is not in the data; columns: {', '.join(map(str, frame.columns))}")
    values = pd.to_numeric(frame[label], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isin(values, np.arange(n_classes)))
    if bad.size:
        raise DataError(
            f"label column {label!r} holds {frame[label].iloc[bad[0]]!s} at row {frame.index[bad[0]]} ({bad.size} "
            f"such rows): labels must be the classes 0..{n_classes - 1}"
        )
    classes = values.astype(np.int64)
    features = frame.drop(columns=[label])
    return dataset(
        features.to_numpy(np.float32), np.eye(n_classes, dtype=np.float32)[classes], tuple(map(str, features.columns))
    )


def _rebuild(data: Dataset, blocks) -> Dataset:
    """A dataset like ``data`` (features, storage) made of ``(x, y)`` row blocks."""
    x, y = storage.collect(blocks, data.spill_dir)
    return dataset(x, y, data.features, data.spill_dir)


def _blocks(data: Dataset):
    return ((data.x[s], data.y[s]) for s in storage.row_blocks(len(data)))


def concatenate(parts: Iterable[Dataset], spill_dir: str | None = None) -> Dataset:
    """The rows of ``parts`` (same features), in order, in memory or in memory-mapped files in ``spill_dir``.

    With a lazy iterable of parts (e.g. a CSV read in chunks), only one part is in memory at a time.
    """
    parts = iter(parts)
    first = next(parts, None)
    if first is None:
        raise DataError("no data: the table has no rows")

    def blocks():
        for part in itertools.chain([first], parts):
            if part.features != first.features:
                raise DataError(f"a chunk has features {part.features}, the first had {first.features}")
            yield part.x, part.y

    x, y = storage.collect(blocks(), spill_dir)
    return dataset(x, y, first.features, spill_dir)


def take(data: Dataset, rows: np.ndarray) -> Dataset:
    """The given rows of ``data``."""
    rows = np.asarray(rows)
    return _rebuild(data, ((data.x[rows[s]], data.y[rows[s]]) for s in storage.row_blocks(len(rows))))


@curry
def split(
    key: jax.Array, test_size: int | float | Sequence[int], data: Dataset, name: str = "test-size"
) -> tuple[Dataset, Dataset]:
    """Stratified random split -> ``(train, test)``; the test set keeps each class's share.

    ``test_size`` is a row count or a fraction: each class contributes ``round(test_rows * share)`` rows;
    or a row count per class (class 0, 1, ...), taken as given. Rows keep their original order within
    each part. ``name`` is the config key errors name.
    """
    n, labels = len(data), data.labels
    members = np.bincount(labels, minlength=data.y.shape[1])
    if isinstance(test_size, numbers.Real):
        counts = stratified_counts(test_size, members, name)
    else:
        counts = [int(k) for k in test_size]
        if len(counts) != len(members) or not all(0 <= k <= m for k, m in zip(counts, members, strict=True)):
            raise ConfigError(
                f":{name} {counts}: give a row count for each of the {len(members)} classes, each between 0 and "
                f"the class's rows ({members.tolist()})"
            )
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, int(c)), len(members)))
        chosen.append(members[order[: counts[c]]])
    is_test = np.zeros(n, bool)
    is_test[np.concatenate(chosen) if chosen else []] = True
    return take(data, np.flatnonzero(~is_test)), take(data, np.flatnonzero(is_test))


def stratified_counts(test_size: int | float, class_counts: Sequence[int], name: str = "test-size") -> list[int]:
    """Test rows per class of a stratified split of ``test_size`` rows (or that fraction) of rows with these
    class counts: ``round(test_rows * share)`` each, as :func:`split` takes them."""
    n = int(sum(class_counts))
    test_rows = int(test_size) if isinstance(test_size, numbers.Integral) else int(round(test_size * n))
    if not 0 < test_rows < n:
        raise ConfigError(f":{name} {test_size} leaves no rows for one side of the split ({n} rows in all)")
    return [int(round(test_rows * k / n)) for k in class_counts]


class Standardizer(NamedTuple):
    """Per-feature mean and standard deviation, fitted on training data."""

    mean: np.ndarray
    std: np.ndarray


class Moments(NamedTuple):
    """Row count, per-column mean and sum of squared deviations (float64) of a set of rows."""

    count: int
    mean: np.ndarray
    m2: np.ndarray


def merge_moments(a: Moments, b: Moments) -> Moments:
    """The moments of the rows of ``a`` and ``b`` together (Chan et al.'s pairwise update)."""
    total = a.count + b.count
    if b.count == 0 or total == 0:
        return a
    delta = b.mean - a.mean
    return Moments(total, a.mean + delta * (b.count / total), a.m2 + b.m2 + delta**2 * (a.count * b.count / total))


def moments(x: np.ndarray) -> Moments:
    """The :class:`Moments` of the rows of ``x``, in one pass over blocks of rows (memory does not grow with
    the data)."""
    total = Moments(0, np.zeros(x.shape[1]), np.zeros(x.shape[1]))
    for s in storage.row_blocks(len(x)):
        block = x[s].astype(np.float64)
        if len(block):
            mean = block.mean(axis=0)
            total = merge_moments(total, Moments(len(block), mean, ((block - mean) ** 2).sum(axis=0)))
    return Moments(total.count, frozen(total.mean), frozen(total.m2))


def fit_standardizer(data: Dataset | Moments) -> Standardizer:
    """Feature means and standard deviations of ``data``, or of rows with these :class:`Moments` (a
    constant feature gets std 1)."""
    m = data if isinstance(data, Moments) else moments(data.x)
    std = np.sqrt(m.m2 / max(m.count, 1))
    return Standardizer(frozen(np.array(m.mean)), frozen(np.where(std > 0, std, 1.0)))


@curry
def standardize(stats: Standardizer, data: Dataset) -> Dataset:
    """``(x - mean) / std`` with statistics from :func:`fit_standardizer` (fit them on training data)."""
    blocks = storage.row_blocks(len(data))
    return _rebuild(data, ((standardized(stats, data.x[s]), data.y[s]) for s in blocks))


def standardized(stats: Standardizer, x: np.ndarray) -> np.ndarray:
    """Float32 features ``x`` standardized as :func:`standardize` does (inference uses it on new rows)."""
    return ((np.asarray(x, np.float32) - stats.mean) / stats.std).astype(np.float32)


@curry
def log1p_columns(columns: Sequence[str], frame: pd.DataFrame) -> pd.DataFrame:
    """``log(1 + x)`` of the named non-negative columns (e.g. a heavy-tailed Amount)."""
    _check_named(":log1p-columns", columns, frame)
    for column in columns:
        below = frame[column][frame[column] < 0]
        if len(below):
            raise DataError(
                f"column {column} holds {len(below)} negative value(s), e.g. {below.iloc[0]:g}; log1p needs values >= 0"
            )
    return frame.assign(**{c: np.log1p(frame[c]) for c in columns})


SCALE_RULES = ("euclidean-norm", "feature-count")
AUGMENT_BLOCK_ROWS = 65_536
MAX_ROWS = 2**31  #: the stream's row indices are int32


class AugmentPlan(NamedTuple):
    """How many noisy copies of positive rows to add, and the noise half-width of each feature."""

    extra: int
    spread: np.ndarray


def plan_augmentation(
    target_share: float, scale: float, scale_rule: str, negatives: int, positives: Moments
) -> AugmentPlan:
    """The :class:`AugmentPlan` of :func:`augment_positives` for data with ``negatives`` rows of class 0 and
    positive rows with these :class:`Moments` (of one process's rows, or merged over all processes)."""
    if scale_rule not in SCALE_RULES:
        raise ConfigError(f":augment :scale-rule {scale_rule!r} is unknown; allowed: {', '.join(SCALE_RULES)}")
    if positives.count < 2:
        raise DataError(f"augmentation needs at least 2 positive rows, the training data has {positives.count}")
    wanted = int(round(target_share * negatives / (1.0 - target_share)))
    if negatives + wanted >= MAX_ROWS:
        raise ConfigError(
            f":augment :target-share {target_share!r} of {negatives:,} negative rows means {wanted:,} positive rows, "
            f"{negatives + wanted:,} rows in all, more than the 2^31 rows a stream indexes: lower it"
        )
    variances = positives.m2 / (positives.count - 1)
    if not np.any(variances):
        raise DataError(
            f"the {positives.count} positive rows are all alike (every feature's variance is 0): augmentation "
            "spreads its noise by those variances and cannot; drop :augment or check the data"
        )
    divisor = np.linalg.norm(variances) if scale_rule == "euclidean-norm" else variances.size
    with np.errstate(over="ignore"):  # checked below
        spread = variances * scale / divisor
    if not np.isfinite(spread).all():
        raise ConfigError(f":augment :scale {scale:g} makes the noise overflow to infinity; use a smaller scale")
    return AugmentPlan(max(0, wanted - positives.count), frozen(spread))


def add_noisy_positives(key: jax.Array, plan: AugmentPlan, data: Dataset) -> Dataset:
    """``data`` and ``plan.extra`` new positive rows: its positives in turn, each plus uniform noise in
    ``[-spread_i, spread_i)`` per feature.

    The noise of new rows ``[b * B, (b + 1) * B)`` (``B`` = :data:`AUGMENT_BLOCK_ROWS`) is drawn with
    ``fold_in(key, b)``, so new rows are made block by block, in memory or memory-mapped alike.
    """
    positives = data.x[data.labels == 1].astype(np.float64)
    if plan.extra and not len(positives):
        raise DataError(f"cannot add {plan.extra} noisy copies of positive rows: the data has none")
    rows, memory = len(data) + plan.extra, _physical_memory()
    needed = rows * (data.x.shape[1] + data.y.shape[1]) * 4  # the augmented copy of every row, float32
    if data.spill_dir is None and memory and needed > memory:
        raise DataError(
            f"augmentation would make {rows:,} rows ({needed / 2**30:.1f} GiB) of data held in memory "
            f"({memory / 2**30:.1f} GiB on this machine): lower :augment :target-share, or keep the data in "
            "memory-mapped files with :chunk-rows"
        )
    positive_label = np.zeros(data.y.shape[1], np.float32)
    positive_label[1] = 1.0

    def new_rows():
        for b, s in enumerate(storage.row_blocks(plan.extra, AUGMENT_BLOCK_ROWS)):
            shape = (s.stop - s.start, positives.shape[1])
            noise = np.asarray(jax.random.uniform(jax.random.fold_in(key, b), shape, minval=-1.0, maxval=1.0))
            rows = positives[np.arange(s.start, s.stop) % len(positives)] + noise * plan.spread
            yield rows.astype(np.float32), np.broadcast_to(positive_label, (shape[0], len(positive_label)))

    return _rebuild(data, itertools.chain(_blocks(data), new_rows()))


def _physical_memory() -> int | None:
    """Bytes of memory this machine has, where the platform says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@curry
def augment_positives(key: jax.Array, target_share: float, scale: float, scale_rule: str, data: Dataset) -> Dataset:
    """Add noisy copies of the positive class (class 1) until it is ``target_share`` of the rows.

    The Cortex post's variance-based augmentation: each new row is a positive row (every positive is
    copied equally often) plus uniform noise in ``[-s_i, s_i)`` per feature, where ``s_i`` is the
    unbiased variance of feature ``i`` over the positives of ``data`` times ``scale``, divided by the
    Euclidean norm of the variance vector (``scale_rule="euclidean-norm"``, the original code's rule) or
    by the number of features (``"feature-count"``). Pass training data only: the post's code took the
    variances over all frauds, test ones included, a leak fpml does not repeat.

    It is :func:`plan_augmentation` then :func:`add_noisy_positives` (which say how the noise is drawn).
    """
    labels = data.labels
    plan = plan_augmentation(target_share, scale, scale_rule, int((labels == 0).sum()), moments(data.x[labels == 1]))
    return add_noisy_positives(key, plan, data)
