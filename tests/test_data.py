"""Synthetic data, CSV reading and its errors, pure transforms, and class-balanced streams."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import toolz
from scipy import stats

from fpml.data import io, stream, synthetic, transforms
from fpml.data.dataset import dataset
from fpml.errors import ConfigError, DataError

# ------------------------------------------------------------------------------------------- synthetic


@pytest.fixture(scope="module")
def full_frame() -> pd.DataFrame:
    return synthetic.generate()  # the default: 284,807 rows, 492 frauds, seed 0


@pytest.fixture(scope="module")
def small_frame() -> pd.DataFrame:
    return synthetic.generate(seed=3, rows=60, frauds=6)


def test_schema(full_frame):
    expected = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
    assert list(full_frame.columns) == expected
    assert tuple(expected) == io.CREDITCARD_COLUMNS
    assert len(full_frame) == 284_807
    assert set(np.unique(full_frame["Class"])) == {0, 1}
    assert full_frame["Class"].dtype.kind == "i"
    assert np.isfinite(full_frame.drop(columns=["Class"]).to_numpy()).all()
    t = full_frame["Time"].to_numpy()
    assert t.min() >= 0 and t.max() <= synthetic.SECONDS and (np.diff(t) >= 0).all()
    assert (full_frame["Amount"] >= 0).all()


def test_exact_fraud_count(full_frame):
    assert int(full_frame["Class"].sum()) == 492
    small = synthetic.generate(seed=5, rows=1_000, frauds=17)
    assert len(small) == 1_000 and int(small["Class"].sum()) == 17


def test_same_seed_same_bytes_different_seed_different():
    a = synthetic.generate(seed=11, rows=3_000, frauds=30)
    b = synthetic.generate(seed=11, rows=3_000, frauds=30)
    c = synthetic.generate(seed=12, rows=3_000, frauds=30)
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()
    pd.testing.assert_frame_equal(a, b)
    assert a.to_numpy().tobytes() != c.to_numpy().tobytes()
    assert not np.array_equal(a["V14"].to_numpy(), c["V14"].to_numpy())


def test_amount_distribution(full_frame):
    amount = full_frame["Amount"]
    assert 15 <= amount.median() <= 30
    assert 60 <= amount.mean() <= 120


def test_frauds_are_shifted_on_v14(full_frame):
    fraud = full_frame[full_frame["Class"] == 1]
    normal = full_frame[full_frame["Class"] == 0]
    assert fraud["V14"].mean() < -4
    assert abs(normal["V14"].mean()) < 0.05
    assert fraud["V4"].mean() > 3  # a positive shift too


@pytest.mark.parametrize(
    "kwargs",
    [{"rows": 10, "frauds": 10}, {"rows": 10, "frauds": 0}, {"seed": -1}, {"rows": 2.5}, {"seed": True}],
)
def test_generate_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        synthetic.generate(**kwargs)


# ---------------------------------------------------------------------------------------------- read_csv


def _write(tmp_path, frame: pd.DataFrame, name: str = "data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_read_good_csv(tmp_path, small_frame):
    path = _write(tmp_path, small_frame)
    loaded = io.read_csv(path)
    assert list(loaded.columns) == list(io.CREDITCARD_COLUMNS)
    assert loaded["Class"].dtype == np.int64
    np.testing.assert_array_equal(loaded["Class"].to_numpy(), small_frame["Class"].to_numpy())
    np.testing.assert_allclose(
        loaded.drop(columns=["Class"]).to_numpy(), small_frame.drop(columns=["Class"]).to_numpy(), rtol=1e-12
    )


def test_read_csv_reorders_columns_to_the_schema(tmp_path, small_frame):
    shuffled = small_frame[list(reversed(small_frame.columns))]
    loaded = io.read_csv(_write(tmp_path, shuffled))
    assert list(loaded.columns) == list(io.CREDITCARD_COLUMNS)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        io.read_csv(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty") as info:
        io.read_csv(path)
    assert "empty.csv" in str(info.value)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(io.CREDITCARD_COLUMNS) + "\n")
    with pytest.raises(DataError, match="no rows"):
        io.read_csv(path)


def test_missing_column(tmp_path, small_frame):
    with pytest.raises(DataError) as info:
        io.read_csv(_write(tmp_path, small_frame.drop(columns=["V3"])))
    assert "missing" in str(info.value) and "V3" in str(info.value)


def test_extra_column(tmp_path, small_frame):
    with pytest.raises(DataError) as info:
        io.read_csv(_write(tmp_path, small_frame.assign(Extra=1.0)))
    assert "unexpected" in str(info.value) and "Extra" in str(info.value)


def _with_cell(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    out = frame.astype(object)
    out.loc[row, column] = value
    return out


@pytest.mark.parametrize("value", ["abc", "nan", "NaN", "", "inf", "-inf", "1.2.3"])
def test_bad_cell_names_column_and_row(tmp_path, small_frame, value):
    path = _write(tmp_path, _with_cell(small_frame, "V5", 3, value))
    with pytest.raises(DataError) as info:
        io.read_csv(path)
    message = str(info.value)
    assert "V5" in message
    assert "line 5" in message  # data row 3 is line 5 of the file (line 1 is the header)
    assert str(path) in message


@pytest.mark.parametrize("value", [2, -1, 0.5])
def test_label_must_be_zero_or_one(tmp_path, small_frame, value):
    with pytest.raises(DataError) as info:
        io.read_csv(_write(tmp_path, _with_cell(small_frame, "Class", 7, value)))
    assert "Class" in str(info.value) and "0 or 1" in str(info.value)


def test_single_class(tmp_path, small_frame):
    with pytest.raises(DataError) as info:
        io.read_csv(_write(tmp_path, small_frame.assign(Class=0)))
    assert "only class 0" in str(info.value)


# -------------------------------------------------------------------------------------------- transforms


def test_drop_columns_is_pure(small_frame):
    before = small_frame.copy()
    out = transforms.drop_columns(["Time", "Amount"])(small_frame)
    assert "Time" not in out.columns and "Amount" not in out.columns
    assert len(out.columns) == len(small_frame.columns) - 2
    pd.testing.assert_frame_equal(small_frame, before)
    with pytest.raises(ConfigError, match="Nope"):
        transforms.drop_columns(["Nope"], small_frame)


def test_to_dataset_one_hot(small_frame):
    data = transforms.to_dataset("Class")(small_frame)
    assert data.x.shape == (60, 30) and data.y.shape == (60, 2)
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    classes = small_frame["Class"].to_numpy()
    np.testing.assert_array_equal(data.y, np.eye(2, dtype=np.float32)[classes])
    np.testing.assert_array_equal(data.labels, classes)
    assert data.class_counts.tolist() == [54, 6]
    assert data.features == tuple(c for c in io.CREDITCARD_COLUMNS if c != "Class")
    v14 = data.x[:, data.features.index("V14")]
    np.testing.assert_allclose(v14, small_frame["V14"].to_numpy(), rtol=1e-6)
    assert not data.x.flags.writeable and not data.y.flags.writeable
    with pytest.raises(DataError):
        transforms.to_dataset("Label", small_frame)


@pytest.mark.parametrize("bad, shown", [(-0.5, "-0.5"), (2, "2"), (1.5, "1.5"), (np.nan, "nan"), ("yes", "yes")])
def test_to_dataset_refuses_labels_that_are_not_classes(small_frame, bad, shown):
    """Never truncated or wrapped into a class (-0.5 became class 0, -1 class 1): one error naming the row."""
    frame = small_frame.astype({"Class": object})
    frame.loc[7, "Class"] = bad
    with pytest.raises(DataError, match=rf"^label column 'Class' holds {shown} at row 7 \(1 such rows\): .* 0\.\.1$"):
        transforms.to_dataset("Class", frame)


def _id_dataset(n_normal: int = 950, n_fraud: int = 50, seed: int = 0):
    """x[:, 0] is a unique row id; classes shuffled."""
    n = n_normal + n_fraud
    labels = np.zeros(n, np.int64)
    labels[np.random.default_rng(seed).choice(n, n_fraud, replace=False)] = 1
    x = np.stack([np.arange(n), np.random.default_rng(seed + 1).normal(size=n)], axis=1)
    return dataset(x, np.eye(2)[labels], ("id", "f")), labels


@pytest.mark.parametrize("test_size", [200, 100, 333, 0.2, 0.07])
def test_split_is_stratified_and_a_partition(test_size):
    data, labels = _id_dataset()
    train, test = transforms.split(jax.random.key(0), test_size, data)
    n = len(data)
    test_rows = int(round(test_size * n)) if isinstance(test_size, float) else test_size
    expected = [int(round(test_rows * count / n)) for count in (950, 50)]
    assert test.class_counts.tolist() == expected
    ids_train, ids_test = train.x[:, 0].astype(int), test.x[:, 0].astype(int)
    assert len(np.intersect1d(ids_train, ids_test)) == 0
    assert sorted(np.r_[ids_train, ids_test].tolist()) == list(range(n))
    assert (np.diff(ids_train) > 0).all() and (np.diff(ids_test) > 0).all()  # original order kept
    np.testing.assert_array_equal(test.labels, labels[ids_test])  # rows keep their labels


def test_split_purity_and_determinism():
    data, _ = _id_dataset()
    x_before, y_before = data.x.copy(), data.y.copy()
    a_train, a_test = transforms.split(jax.random.key(4), 100, data)
    b_train, b_test = transforms.split(jax.random.key(4), 100, data)
    c_train, c_test = transforms.split(jax.random.key(5), 100, data)
    np.testing.assert_array_equal(data.x, x_before)
    np.testing.assert_array_equal(data.y, y_before)
    assert a_test.x.tobytes() == b_test.x.tobytes() and a_train.x.tobytes() == b_train.x.tobytes()
    assert a_test.y.tobytes() == b_test.y.tobytes()
    assert a_test.x.tobytes() != c_test.x.tobytes()
    for part in (a_train, a_test):
        assert not part.x.flags.writeable and not part.y.flags.writeable
        with pytest.raises(ValueError):
            part.x[0, 0] = 1.0
    with pytest.raises(ValueError):
        data.x[0, 0] = 123.0


def test_split_rejects_sizes_leaving_nothing():
    data, _ = _id_dataset(90, 10)
    for size in (0, 100, 150, 0.0001):
        with pytest.raises(ConfigError):
            transforms.split(jax.random.key(0), size, data)


def test_standardize():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(5.0, 3.0, 2_000), rng.lognormal(3.0, 1.0, 2_000), np.full(2_000, 7.0)]
    data = dataset(x, np.eye(2)[rng.integers(0, 2, 2_000)], ("a", "b", "c"))
    train, test = transforms.split(jax.random.key(0), 500, data)
    stats = transforms.fit_standardizer(train)
    x_before = train.x.copy()
    scaled = transforms.standardize(stats)(train)
    np.testing.assert_array_equal(train.x, x_before)
    np.testing.assert_allclose(scaled.x[:, :2].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(scaled.x[:, :2].std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(scaled.x[:, 2], 0.0)  # a constant feature: std 1, no NaN
    assert np.isfinite(scaled.x).all()
    scaled_test = transforms.standardize(stats, test)  # test uses the training statistics
    expected = (test.x - stats.mean) / stats.std
    np.testing.assert_allclose(scaled_test.x, expected, rtol=1e-5)
    np.testing.assert_array_equal(scaled_test.y, test.y)
    assert not scaled.x.flags.writeable


def test_pipeline_composes(small_frame):
    prep = toolz.compose(transforms.to_dataset("Class"), transforms.drop_columns(["Time"]))
    data = prep(small_frame)
    assert "Time" not in data.features and data.x.shape == (60, 29)


# ------------------------------------------------------------------------------------------------ stream

LABELS = np.array([0] * 17 + [1] * 5)
np.random.default_rng(0).shuffle(LABELS)


_jitted_epoch = jax.jit(stream.epoch_indices, static_argnums=3)


def _epoch(key=0, epoch=0, size=20, labels=LABELS):
    s = stream.class_balanced(labels)
    return np.asarray(_jitted_epoch(s, jax.random.key(key), jnp.int32(epoch), size))


def test_epochs_are_exactly_balanced_per_epoch_and_batch():
    for epoch in range(4):
        idx = _epoch(epoch=epoch, size=20)
        assert idx.shape == (20,)
        got = LABELS[idx]
        assert np.sum(got == 1) == 10 and np.sum(got == 0) == 10
        assert got.tolist() == [0, 1] * 10  # strictly interleaved
        for batch in got.reshape(-1, 4):  # every even batch is balanced
            assert batch.sum() == 2


def test_each_pass_through_a_class_visits_every_row_once():
    rare = np.flatnonzero(LABELS == 1)
    common = np.flatnonzero(LABELS == 0)
    seq = np.concatenate([_epoch(epoch=e, size=20) for e in range(17)])  # 170 draws of each class
    rare_seq, common_seq = seq[1::2], seq[0::2]
    assert set(rare_seq) == set(rare) and set(common_seq) == set(common)
    for chunk in rare_seq.reshape(-1, len(rare)):  # 34 complete passes of the 5 rare rows
        assert sorted(chunk.tolist()) == rare.tolist()
    for chunk in common_seq.reshape(-1, len(common)):  # 10 complete passes of the 17 common rows
        assert sorted(chunk.tolist()) == common.tolist()
    passes = rare_seq.reshape(-1, len(rare))
    assert len({tuple(p) for p in passes}) > 1  # each pass is freshly shuffled


def test_epochs_differ_and_are_reproducible():
    a0, a0_again, a1 = _epoch(epoch=0), _epoch(epoch=0), _epoch(epoch=1)
    np.testing.assert_array_equal(a0, a0_again)
    assert not np.array_equal(a0, a1)
    assert not np.array_equal(_epoch(key=0, epoch=2), _epoch(key=1, epoch=2))


def test_epoch_indices_under_jit_with_traced_epoch():
    s = stream.class_balanced(LABELS)
    key = jax.random.key(0)
    compiled = jax.jit(lambda strm, k, e: stream.epoch_indices(strm, k, e, 20))
    traced = np.asarray(compiled(s, key, jnp.int32(5)))
    eager = np.asarray(stream.epoch_indices(s, key, 5, 20))
    np.testing.assert_array_equal(traced, eager)
    assert not np.array_equal(np.asarray(compiled(s, key, jnp.int32(6))), traced)
    assert compiled._cache_size() == 1  # one compilation serves every epoch


def test_epoch_size_must_be_a_multiple_of_the_class_count():
    with pytest.raises(ConfigError, match="epoch of 21 rows .* multiple of the 2 classes"):
        stream.epoch_indices(stream.class_balanced(LABELS), jax.random.key(0), 0, 21)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 65, 81, 492, 1000, 4097, 284_315])
def test_permute_is_a_bijection(n):
    round_keys = jax.random.bits(jax.random.key(n), (stream.FEISTEL_ROUNDS,), jnp.uint32)
    values = np.asarray(jax.jit(stream.permute, static_argnums=2)(jnp.arange(n), round_keys, n))
    np.testing.assert_array_equal(np.sort(values), np.arange(n))


def _passes(n: int, count: int = 3000) -> np.ndarray:
    """``count`` consecutive passes of a shuffled stream of ``n`` rows, one per line."""
    s = stream.shuffled(n)
    return np.asarray(_jitted_epoch(s, jax.random.key(n), jnp.int32(0), n * count)).reshape(count, n)


def _odd(perm: np.ndarray) -> bool:
    seen, cycles = np.zeros(len(perm), bool), 0
    for start in range(len(perm)):
        cycles += not seen[start]
        while not seen[start]:
            seen[start], start = True, perm[start]
    return bool((len(perm) - cycles) % 2)


@pytest.mark.parametrize("n", [3, 5, 9, 64, 65, 81, 100])
def test_shuffles_put_every_row_at_every_position_equally_often(n):
    """Over 3,000 passes, (position, row) counts as uniformly random permutations give them (chi-square),
    and odd and even permutations equally often (binomial): a Feistel network whose two radices are both
    odd makes only even ones (n = 81 would be 9 x 9)."""
    passes = _passes(n)
    counts = np.stack([np.bincount(passes[:, position], minlength=n) for position in range(n)])
    expected = len(passes) / n
    assert stats.chi2.sf(((counts - expected) ** 2 / expected).sum(), (n - 1) ** 2) > 1e-3
    assert stats.binomtest(sum(_odd(p) for p in passes), len(passes)).pvalue > 1e-3


@pytest.mark.parametrize("n", [3, 4, 5])
def test_small_classes_get_every_shuffle_equally_often(n):
    passes = _passes(n, count=200 * math.factorial(n))
    _, counts = np.unique(passes, axis=0, return_counts=True)
    assert len(counts) == math.factorial(n)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_shuffled_stream_cycles_all_rows():
    s = stream.shuffled(7)
    key = jax.random.key(2)
    seq = np.concatenate([np.asarray(_jitted_epoch(s, key, jnp.int32(e), 14)) for e in range(3)])
    for chunk in seq.reshape(-1, 7):
        assert sorted(chunk.tolist()) == list(range(7))


def test_fitted_statistics_and_plans_are_read_only(small_frame):
    """A Standardizer, Moments or AugmentPlan is a record like a Dataset: writing into one is an error."""
    data = transforms.to_dataset("Class", small_frame)
    stats, moments = transforms.fit_standardizer(data), transforms.moments(data.x)
    plan = transforms.plan_augmentation(0.5, 1.0, "euclidean-norm", 54, transforms.moments(data.x[data.labels == 1]))
    for array in (stats.mean, stats.std, moments.mean, moments.m2, plan.spread):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 100.0


def test_a_class_of_small_class_rows_is_shuffled_by_sorting_random_words():
    """At the boundary (64 rows) the pass is the stable order of 64 random words from the pass's key."""
    n, key = stream.SMALL_CLASS, jax.random.key(0)
    got = np.asarray(stream.epoch_indices(stream.shuffled(n), key, 0, n))
    pass_key = jax.random.fold_in(jax.random.fold_in(key, 0), 0)  # class 0, pass 0
    expected = np.argsort(np.asarray(jax.random.bits(pass_key, (n,), jnp.uint32)), kind="stable")
    np.testing.assert_array_equal(got, expected)


def test_each_class_is_shuffled_with_its_own_key():
    labels = np.tile([0, 1], 32)  # two classes of 32 rows: row 2i is class 0, row 2i + 1 class 1
    rows = np.asarray(stream.epoch_indices(stream.class_balanced(labels), jax.random.key(0), 0, 64))
    assert not np.array_equal(rows[0::2] // 2, rows[1::2] // 2)  # not the same permutation of both classes


def _csv_with(tmp_path, cells):
    frame = synthetic.generate(seed=1, rows=20, frauds=2).astype(str)
    for (row, column), value in cells.items():
        frame.loc[row, column] = value
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_value_beyond_float32_is_refused_on_either_side(tmp_path):
    for value in ("1e39", "-1e39"):
        with pytest.raises(DataError, match=f"'{value}' is too large"):
            io.read_csv(_csv_with(tmp_path, {(4, "V2"): value}))


def test_a_zero_in_a_log1p_column_is_accepted(tmp_path):
    """The real Kaggle file has transactions of Amount 0: log1p(0) = 0 is fine, only negatives are not."""
    frame = io.read_csv(_csv_with(tmp_path, {(4, "Amount"): "0"}), non_negative=["Amount"])
    assert frame["Amount"][4] == 0.0


def test_byte_parts_start_exactly_on_the_line_a_boundary_falls_on(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("a\n" + "1\n" * 10)  # a 2-byte header and ten 2-byte lines: byte 12 starts line 6
    assert io.part_bytes(path, 0, 2) == (2, 12) and io.part_bytes(path, 1, 2) == (12, 22)


def _two_equal_classes(n: int = 100):
    labels = np.r_[np.zeros(n, int), np.ones(n, int)]
    x = np.stack([np.arange(2 * n), np.zeros(2 * n)], axis=1).astype(np.float32)
    return dataset(x, np.eye(2, dtype=np.float32)[labels], ("id", "f"))


def test_split_draws_each_class_with_its_own_key():
    """Equal-sized classes must not lose the same positions to the test set."""

    data = _two_equal_classes()
    for seed in range(3):
        _, test = transforms.split(jax.random.key(seed), 50, data)
        ids = test.x[:, 0].astype(int)
        class0, class1 = ids[ids < 100], ids[ids >= 100] - 100
        assert len(class0) == len(class1) == 25
        assert class0.tolist() != class1.tolist()  # independent draws: same 25 of 100 has odds ~1e-23


def test_concatenate_refuses_parts_with_other_features():
    """concatenate's ``part.features != first.features`` check removed (columns silently misaligned)."""

    y = np.eye(2, dtype=np.float32)[[0, 1]]
    a = dataset(np.zeros((2, 2), np.float32), y, ("a", "b"))
    b = dataset(np.ones((2, 2), np.float32), y, ("b", "a"))
    whole = transforms.concatenate([a, a])
    assert len(whole) == 4 and whole.features == ("a", "b")
    with pytest.raises(DataError, match="features"):
        transforms.concatenate([a, b])
    with pytest.raises(DataError, match="features"):
        transforms.concatenate(iter([a, a, b]))


def test_take_returns_every_given_row_even_repeated():
    """More rows than the data holds (repeats, as oversampling takes them), every one of them."""

    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    data = dataset(x, np.eye(2, dtype=np.float32)[[0, 1, 0]], ("a", "b"))
    rows = np.array([2, 0, 0, 1, 2])
    out = transforms.take(data, rows)
    np.testing.assert_array_equal(out.x, x[rows])
    np.testing.assert_array_equal(out.y, data.y[rows])
