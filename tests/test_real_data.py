"""Checks on the real Kaggle creditcard.csv (data/creditcard.csv): run with ``pytest -m real_data``."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import pytest
import toolz
from scipy.spatial import cKDTree

from fpml.data import io, kaggle, transforms

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"


@pytest.fixture(scope="module")
def source():
    return kaggle.obtain("kaggle", DATA_DIR, quiet=True)


@pytest.fixture(scope="module")
def frame(source):
    return kaggle.load_frame(source)


@pytest.fixture(scope="module")
def data(frame):
    return toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))


@pytest.fixture(scope="module")
def post_split(data):
    return transforms.split(jax.random.key(0), 50_000, data)


@pytest.mark.real_data
def test_obtain_verifies_the_kaggle_file(source):
    assert source.path == DATA_DIR / "creditcard.csv"
    assert source.verified is True
    assert "sha256 verified" in source.description
    assert source.path.stat().st_size == kaggle.SIZE
    assert kaggle.sha256_of(source.path) == kaggle.SHA256


@pytest.mark.real_data
def test_frame_shape_frauds_and_columns(frame):
    assert frame.shape == (284_807, 31)
    assert list(frame.columns) == list(io.CREDITCARD_COLUMNS)
    assert int(frame["Class"].sum()) == 492
    assert frame["Class"].dtype == np.int64
    assert (frame.drop(columns="Class").dtypes == np.float64).all()
    assert frame["Time"].min() == 0 and frame["Time"].max() == 172_792
    assert frame["Amount"].min() == 0


@pytest.mark.real_data
def test_cached_load_is_fast_and_identical(source, frame):
    assert (DATA_DIR / "creditcard.npz").is_file()
    started = time.perf_counter()
    again = kaggle.load_frame(source)
    seconds = time.perf_counter() - started
    assert seconds < 1.0, f"cached load took {seconds:.2f} s"
    assert again.equals(frame)
    assert again.to_numpy().tobytes() == frame.to_numpy().tobytes()


@pytest.mark.real_data
def test_the_posts_split_holds_86_test_frauds(post_split):
    train_part, test_part = post_split
    assert len(test_part) == 50_000 and len(train_part) == 234_807
    assert test_part.class_counts.tolist() == [49_914, 86]
    assert train_part.class_counts.tolist() == [234_401, 406]
    assert test_part.x.shape[1] == 29


@pytest.mark.real_data
def test_stratified_fifth_holds_98_test_frauds(data):
    train_part, test_part = transforms.split(jax.random.key(0), 0.2, data)
    assert len(test_part) == 56_961
    assert int(test_part.class_counts[1]) == 98
    assert int(train_part.class_counts[1]) == 492 - 98


@pytest.mark.real_data
def test_augmenting_the_training_part_reaches_50_50_from_training_positives(data, post_split):
    train_part, test_part = post_split
    out = transforms.augment_positives(jax.random.key(1), 0.5, 5000.0, "euclidean-norm", train_part)
    assert out.class_counts.tolist() == [234_401, 234_401]
    n = len(train_part)
    assert out.x[:n].tobytes() == train_part.x.tobytes()

    # Which positives are copied, and whose variances set the noise? A small scale keeps each new row
    # near its source on V1..V28 (Amount carries almost all the variance, so the V noise stays < 0.01),
    # so the source is unambiguous: training positives are at least 0.08 apart there.
    scale = 10.0
    small = transforms.augment_positives(jax.random.key(1), 0.5, scale, "euclidean-norm", train_part)
    assert small.class_counts.tolist() == [234_401, 234_401]
    train_pos = train_part.x[train_part.labels == 1].astype(np.float64)
    all_pos = data.x[data.labels == 1].astype(np.float64)
    s_train = train_pos.var(axis=0, ddof=1) * scale / np.linalg.norm(train_pos.var(axis=0, ddof=1))
    s_all = all_pos.var(axis=0, ddof=1) * scale / np.linalg.norm(all_pos.var(axis=0, ddof=1))
    v = slice(0, 28)
    assert s_train[v].max() < 0.01

    new = small.x[n:].astype(np.float64)
    distance, source = cKDTree(train_pos[:, v]).query(new[:, v], p=np.inf)
    assert distance.max() <= s_train[v].max() + 1e-5  # every new row is a noisy copy of a training positive
    noise = new - train_pos[source]
    slack = np.spacing(np.abs(small.x[n:])).astype(np.float64)
    assert (np.abs(noise) <= s_train + slack).all()
    # the noise reaches the training positives' spread, on features where that differs from all positives'
    top = np.abs(noise).max(axis=0)
    differs = np.flatnonzero((np.abs(s_train / s_all - 1) > 0.05) & (s_train > 1e-3))
    assert len(differs) >= 3
    np.testing.assert_allclose(top[differs], s_train[differs], rtol=0.01)
    assert (np.abs(top[differs] / s_all[differs] - 1) > 0.03).all()
    # every training positive is copied (395 distinct rows; a few frauds are duplicated rows) ...
    assert len(np.unique(train_pos[np.unique(source)], axis=0)) == len(np.unique(train_pos, axis=0))
    # ... and no new row comes from a test fraud that has no twin among the training frauds
    test_pos = test_part.x[test_part.labels == 1].astype(np.float64)
    to_train, _ = cKDTree(train_pos[:, v]).query(test_pos[:, v], p=np.inf)
    test_only = test_pos[to_train > 0.05]
    assert len(test_only) >= 70  # 78: eight test frauds duplicate training ones
    to_test_only, _ = cKDTree(test_only[:, v]).query(new[:, v], p=np.inf)
    assert to_test_only.min() > 2 * s_train[v].max()
