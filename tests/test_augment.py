"""Variance-based augmentation of the positives, log1p columns, the decision threshold, balanced streams."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import f1_score, precision_score, recall_score

from fpml import edn, metrics, network, train
from fpml.data import stream, transforms
from fpml.data.dataset import dataset
from fpml.errors import ConfigError, DataError

N_FEATURES = 5


def make_data(n_negative: int = 3000, n_positive: int = 10, seed: int = 0):
    """Negatives around 0; positives well apart (feature 0 = 10 * j) with different per-feature spreads."""
    rng = np.random.default_rng(seed)
    negatives = rng.normal(size=(n_negative, N_FEATURES))
    positives = rng.normal(size=(n_positive, N_FEATURES)) * np.array([1.0, 3.0, 0.5, 2.0, 1.5]) + 4.0
    positives[:, 0] = 10.0 * np.arange(n_positive)
    x = np.concatenate([negatives, positives])
    labels = np.r_[np.zeros(n_negative, int), np.ones(n_positive, int)]
    order = rng.permutation(len(x))  # positives scattered among negatives
    x, labels = x[order], labels[order]
    return dataset(x, np.eye(2)[labels], tuple(f"f{i}" for i in range(N_FEATURES)))


@pytest.fixture(scope="module")
def data():
    return make_data()


def spread(data, scale: float, rule: str) -> np.ndarray:
    positives = data.x[data.labels == 1].astype(np.float64)
    var = positives.var(axis=0, ddof=1)
    return var * scale / (np.linalg.norm(var) if rule == "euclidean-norm" else var.shape[0])


def sources_of(data, new_rows: np.ndarray, bound: float) -> np.ndarray:
    """Index (into the positives of ``data``) of the positive each new row was copied from (unambiguous)."""
    positives = data.x[data.labels == 1].astype(np.float64)
    distance = np.abs(new_rows[:, None, :].astype(np.float64) - positives[None, :, :]).max(axis=2)
    nearest = distance.argmin(axis=1)
    ordered = np.sort(distance, axis=1)
    assert (ordered[:, 0] <= bound * 1.001 + 1e-5).all()
    assert (ordered[:, 1] > 2 * bound + 1e-3).all()  # no other positive could have produced the row
    return nearest


# ------------------------------------------------------------------------------------ augment_positives


def test_purity_input_unchanged_and_read_only(data):
    x_before, y_before = data.x.copy(), data.y.copy()
    out = transforms.augment_positives(jax.random.key(0), 0.5, 1.0, "euclidean-norm", data)
    assert out is not data and out.x is not data.x
    np.testing.assert_array_equal(data.x, x_before)
    np.testing.assert_array_equal(data.y, y_before)
    assert not data.x.flags.writeable and not data.y.flags.writeable
    assert not out.x.flags.writeable and not out.y.flags.writeable
    with pytest.raises(ValueError):
        out.x[0, 0] = 1.0
    assert out.features == data.features
    assert out.x.dtype == np.float32 and out.y.dtype == np.float32


def test_same_key_same_bytes_different_key_different(data):
    a = transforms.augment_positives(jax.random.key(1), 0.5, 1.0, "euclidean-norm", data)
    b = transforms.augment_positives(jax.random.key(1), 0.5, 1.0, "euclidean-norm", data)
    c = transforms.augment_positives(jax.random.key(2), 0.5, 1.0, "euclidean-norm", data)
    assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
    assert a.x.shape == c.x.shape and a.y.tobytes() == c.y.tobytes()
    assert a.x.tobytes() != c.x.tobytes()
    n = len(data)
    assert a.x[:n].tobytes() == c.x[:n].tobytes()  # only the new rows depend on the key
    assert not np.any(np.all(a.x[n:] == c.x[n:], axis=1))


@pytest.mark.parametrize(
    "share,n_negative,n_positive,expected_positive",
    [(0.5, 3000, 10, 3000), (0.5, 777, 5, 777), (0.25, 3000, 10, 1000), (0.25, 1000, 7, 333), (0.25, 1001, 7, 334)],
)
def test_target_share(share, n_negative, n_positive, expected_positive):
    data = make_data(n_negative, n_positive, seed=n_negative)
    out = transforms.augment_positives(jax.random.key(0), share, 0.5, "euclidean-norm", data)
    counts = out.class_counts.tolist()
    assert counts == [n_negative, expected_positive]
    assert expected_positive == round(share * n_negative / (1 - share))
    assert len(out) == n_negative + expected_positive
    assert counts[1] / len(out) == pytest.approx(share, abs=1.0 / len(out))
    np.testing.assert_array_equal(out.y[len(data) :], np.tile([0.0, 1.0], (len(out) - len(data), 1)))


def test_share_already_reached_adds_nothing():
    data = make_data(100, 40)
    out = transforms.augment_positives(jax.random.key(0), 0.25, 1.0, "euclidean-norm", data)
    assert out.x.tobytes() == data.x.tobytes() and out.y.tobytes() == data.y.tobytes()


@pytest.mark.parametrize("rule", ["euclidean-norm", "feature-count"])
def test_originals_first_copies_equal_noise_bounded_and_uniform(data, rule):
    s = spread(data, 1.0, rule)
    scale = 0.5 / s.max()  # largest half-width 0.5: far less than the 10 between positives
    s = spread(data, scale, rule)
    assert s.max() == pytest.approx(0.5)
    out = transforms.augment_positives(jax.random.key(3), 0.5, scale, rule, data)
    n = len(data)
    # originals kept first and unchanged; negatives untouched
    assert out.x[:n].tobytes() == data.x.tobytes() and out.y[:n].tobytes() == data.y.tobytes()
    np.testing.assert_array_equal(out.x[out.labels == 0], data.x[data.labels == 0])
    assert (out.labels[n:] == 1).all()
    new = out.x[n:]
    assert len(new) == 3000 - 10
    # every new row is a copy of one original positive; every positive copied equally often
    src = sources_of(data, new, s.max())
    copies = np.bincount(src, minlength=10)
    assert copies.sum() == len(new) and copies.max() - copies.min() <= 1
    # noise within [-s_i, s_i) per feature, up to float32 rounding of the stored row
    positives = data.x[data.labels == 1].astype(np.float64)
    noise = new.astype(np.float64) - positives[src]
    slack = np.spacing(np.abs(new).astype(np.float32)).astype(np.float64)
    assert (noise >= -s - slack).all() and (noise < s + slack).all()
    # the bound is reached: the spread is s_i, not smaller (e.g. a ddof=0 variance for feature-count)
    np.testing.assert_allclose(np.abs(noise).max(axis=0), s, rtol=5e-3)
    # uniform: mean ~0, std ~ s/sqrt(3), and a Kolmogorov-Smirnov test per feature
    np.testing.assert_allclose(noise.mean(axis=0) / s, 0.0, atol=0.06)
    np.testing.assert_allclose(noise.std(axis=0), s / np.sqrt(3.0), rtol=0.05)
    for i in range(N_FEATURES):
        assert scipy_stats.kstest(noise[:, i], "uniform", args=(-s[i], 2 * s[i])).pvalue > 1e-3
        assert scipy_stats.kstest(noise[:, i], "norm", args=(0.0, s[i] / np.sqrt(3))).pvalue < 1e-3


def test_scale_rules_differ_as_documented(data):
    positives = transforms.moments(data.x[data.labels == 1])
    euclid, count = (
        transforms.plan_augmentation(0.5, 100.0, rule, 3000, positives).spread
        for rule in ("euclidean-norm", "feature-count")
    )
    var = data.x[data.labels == 1].astype(np.float64).var(axis=0, ddof=1)
    np.testing.assert_allclose(euclid, var * 100.0 / np.linalg.norm(var), rtol=1e-6)
    np.testing.assert_allclose(count, var * 100.0 / N_FEATURES, rtol=1e-6)
    a = transforms.augment_positives(jax.random.key(4), 0.5, 100.0, "euclidean-norm", data)
    b = transforms.augment_positives(jax.random.key(4), 0.5, 100.0, "feature-count", data)
    n = len(data)
    # same key, same uniform draws u in [-1, 1): the new rows differ by u * (euclid - count), so the ratio
    # is u itself, spread over nearly all of [-1, 1) (and 0 everywhere if the rule were ignored)
    ratio = (a.x[n:].astype(np.float64) - b.x[n:]) / (euclid - count)
    assert 0.95 < np.abs(ratio).max() <= 1.0 + 1e-3


def test_bad_scale_rule_is_a_config_error(data):
    with pytest.raises(ConfigError, match="scale-rule"):
        transforms.augment_positives(jax.random.key(0), 0.5, 1.0, "manhattan", data)


@pytest.mark.parametrize("n_positive", [0, 1])
def test_fewer_than_two_positives_is_a_data_error(n_positive):
    labels = np.r_[np.zeros(20, int), np.ones(n_positive, int)]
    data = dataset(np.random.default_rng(0).normal(size=(len(labels), 3)), np.eye(2)[labels], ("a", "b", "c"))
    with pytest.raises(DataError, match="at least 2 positive"):
        transforms.augment_positives(jax.random.key(0), 0.5, 1.0, "euclidean-norm", data)


def test_positives_all_alike_are_a_data_error_not_nan_features():
    labels = np.r_[np.zeros(20, int), np.ones(4, int)]
    x = np.random.default_rng(0).normal(size=(len(labels), 3))
    x[labels == 1] = [1.0, 2.0, 3.0]  # four identical positives: every variance is 0
    data = dataset(x, np.eye(2)[labels], ("a", "b", "c"))
    with pytest.raises(DataError, match="the 4 positive rows are all alike"):
        transforms.augment_positives(jax.random.key(0), 0.5, 1.0, "euclidean-norm", data)


def test_a_scale_that_overflows_is_a_config_error(data):
    with pytest.raises(ConfigError, match=r":augment :scale 1e\+308 makes the noise overflow"):
        transforms.augment_positives(jax.random.key(0), 0.5, 1e308, "feature-count", data)


def test_a_target_share_beyond_what_a_stream_indexes_is_refused_before_any_allocation(data):
    with pytest.raises(
        ConfigError, match=r"0\.9999999 of 3,000 negative rows .* 30,000,000,016 rows in all, more than"
    ):
        transforms.plan_augmentation(0.9999999, 1.0, "euclidean-norm", 3000, transforms.moments(data.x[:10]))


def test_augmentation_larger_than_memory_says_how_to_go_on(data, monkeypatch):
    monkeypatch.setattr(transforms, "_physical_memory", lambda: 1_000)  # bytes: fewer than 100 rows of 5 floats
    with pytest.raises(DataError, match=r"would make [\d,]+ rows .* lower :augment :target-share, or .*:chunk-rows"):
        transforms.augment_positives(jax.random.key(0), 0.5, 1.0, "euclidean-norm", data)


# ---------------------------------------------------------------------------------------- log1p_columns


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"V1": rng.normal(size=50), "Amount": rng.lognormal(3, 1.5, size=50), "Class": rng.integers(0, 2, 50)}
    ).assign(Amount=lambda f: f["Amount"].where(np.arange(50) % 10 != 0, 0.0))


def test_log1p_values_and_purity(frame):
    before = frame.copy(deep=True)
    out = transforms.log1p_columns(["Amount"], frame)
    pd.testing.assert_frame_equal(frame, before)  # input unchanged
    np.testing.assert_array_equal(out["Amount"].to_numpy(), np.log1p(before["Amount"].to_numpy()))
    assert (out["Amount"][before["Amount"] == 0] == 0).all()
    pd.testing.assert_frame_equal(out.drop(columns="Amount"), before.drop(columns="Amount"))
    assert list(out.columns) == list(before.columns)
    pd.testing.assert_frame_equal(transforms.log1p_columns([], frame), before)


def test_log1p_negative_values_are_a_data_error(frame):
    with pytest.raises(DataError, match="V1"):
        transforms.log1p_columns(["Amount", "V1"], frame)


def test_log1p_unknown_column_is_a_config_error(frame):
    with pytest.raises(ConfigError, match="Amout"):
        transforms.log1p_columns(["Amout"], frame)


# -------------------------------------------------------------------------------- the decision threshold


def test_label_depends_on_the_threshold():
    p = np.array([0.05, 0.4, 0.5, 0.6, 0.89, 0.9, 0.95, 1.0])
    assert metrics.label(p, 0.5).tolist() == [0, 0, 1, 1, 1, 1, 1, 1]
    assert metrics.label(p, 0.9).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    two_columns = np.stack([1 - p, p], axis=1)
    assert metrics.label(two_columns, 0.9).tolist() == metrics.label(p, 0.9).tolist()


TINY = edn.loads("[{:type :input :size 1} {:type :linear :size 2} {:type :softmax}]")


def tiny_setup():
    net = network.build(TINY)
    params = net.init(jax.random.key(0))
    (layer,) = params
    # logits (0, 3x): P(positive) = sigmoid(3x), from ~0 to ~1 over x in [-2, 2]
    params = {layer: {"w": jax.numpy.array([[0.0, 3.0]]), "b": jax.numpy.zeros(2)}}
    x = np.linspace(-2, 2, 41)[:, None]
    rng = np.random.default_rng(1)
    labels = (rng.random(41) < 1 / (1 + np.exp(-3 * x[:, 0]))).astype(int)
    data = dataset(x, np.eye(2)[labels], ("x",))
    probs = np.asarray(net.apply(params, x))[:, 1]
    return net, params, data, probs


def test_classification_test_fn_applies_its_threshold():
    net, params, data, probs = tiny_setup()
    assert probs.min() < 0.01 and probs.max() > 0.99
    results = {}
    for threshold in (0.5, 0.9):
        result = train.classification_test_fn(net, data, threshold=threshold)(params, None)
        m = result.metrics
        pred = (probs >= threshold).astype(int)
        assert m["threshold"] == threshold
        assert m["precision"] == pytest.approx(precision_score(data.labels, pred, zero_division=0))
        assert m["recall"] == pytest.approx(recall_score(data.labels, pred, zero_division=0))
        assert m["f-beta"] == pytest.approx(f1_score(data.labels, pred, zero_division=0))
        assert m["tp"] + m["fp"] == pred.sum()
        results[threshold] = m
    assert results[0.9]["precision"] != results[0.5]["precision"]
    assert results[0.9]["recall"] != results[0.5]["recall"]
    assert results[0.9]["recall"] < results[0.5]["recall"]
    tuned = train.classification_test_fn(net, data, threshold=None)(params, None).metrics
    best, best_f1 = metrics.best_threshold(data.labels, probs)
    assert tuned["threshold"] == pytest.approx(best)
    assert tuned["f-beta"] == pytest.approx(best_f1)
    assert tuned["f-beta"] >= max(results[0.5]["f-beta"], results[0.9]["f-beta"])


def brute_force_best(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    f1 = {t: f1_score(y, (scores >= t).astype(int), zero_division=0) for t in np.unique(scores)}
    top = max(f1.values())
    return max(t for t, v in f1.items() if np.isclose(v, top, rtol=0, atol=1e-12)), top


@pytest.mark.parametrize("seed", range(8))
def test_best_threshold_maximises_f1(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = (rng.random(n) < rng.uniform(0.05, 0.5)).astype(int)
    y[:2] = [0, 1]
    scores = np.clip(y * rng.uniform(0.0, 0.6) + rng.random(n) * 0.7, 0, 1)
    if seed % 2:
        scores = np.round(scores, 1)  # many ties
    threshold, f1 = metrics.best_threshold(y, scores)
    expected_threshold, expected_f1 = brute_force_best(y, scores)
    assert f1 == pytest.approx(expected_f1, abs=1e-12)
    assert f1_score(y, (scores >= threshold).astype(int)) == pytest.approx(expected_f1, abs=1e-12)
    assert threshold == expected_threshold


def test_best_threshold_prefers_the_higher_of_tied_thresholds():
    y = np.array([1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6])  # F1 at 0.9: 2/3 (P 1, R 1/2); at 0.6: 2/3 (P 1/2, R 1)
    assert f1_score(y, scores >= 0.9) == pytest.approx(f1_score(y, scores >= 0.6))
    threshold, f1 = metrics.best_threshold(y, scores)
    assert threshold == 0.9 and f1 == pytest.approx(2 / 3)


# ------------------------------------------------------------------------- the class-balanced stream


epoch_indices = jax.jit(stream.epoch_indices, static_argnums=3)


def test_class_balanced_stream_over_augmented_data_is_balanced():
    data = make_data(2000, 12, seed=5)
    for share in (0.5, 0.25):
        out = transforms.augment_positives(jax.random.key(0), share, 1.0, "euclidean-norm", data)
        s = stream.class_balanced(out.labels)
        for epoch in (0, 5):
            idx = np.asarray(epoch_indices(s, jax.random.key(9), epoch, 1000))
            assert len(idx) == 1000
            assert int((out.labels[idx] == 1).sum()) == 500
            assert (out.labels[idx[0::2]] == 0).all() and (out.labels[idx[1::2]] == 1).all()
        # one pass over the positives uses every one of them, augmented rows included, exactly once
        n_positive = int(out.class_counts[1])
        idx = np.asarray(epoch_indices(s, jax.random.key(9), 0, 2 * n_positive))
        assert sorted(idx[1::2].tolist()) == np.flatnonzero(out.labels == 1).tolist()
        assert (idx[1::2] >= len(data)).sum() == n_positive - 12
