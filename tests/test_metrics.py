"""fpml.metrics against scikit-learn on random inputs (several seeds, tied scores included)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from fpml import metrics

SEEDS = [0, 1, 2, 3, 7, 42]


def _labels_and_scores(seed: int, n: int = 200, tied: bool = False):
    """Random 0/1 labels (both classes present) and scores; ``tied`` rounds scores so many coincide."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]  # both classes always present
    scores = np.clip(0.35 * y + rng.uniform(0, 0.8, size=n), 0, 1)
    if tied:
        scores = np.round(scores, 1)  # ~11 distinct values among 200 rows: heavy ties
    return y, scores


def _labels_and_predictions(seed: int, n: int = 150):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    pred = np.where(rng.uniform(size=n) < 0.7, y, 1 - y)
    return y, pred


# ------------------------------------------------------------------------------------ threshold metrics


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_accuracy_confusion_match_sklearn(seed):
    y, pred = _labels_and_predictions(seed)
    expected_precision = skm.precision_score(y, pred, zero_division=0)
    assert metrics.precision(y, pred) == pytest.approx(expected_precision, abs=1e-12)
    assert metrics.recall(y, pred) == pytest.approx(skm.recall_score(y, pred, zero_division=0), abs=1e-12)
    assert metrics.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    cm = metrics.confusion_matrix(y, pred)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=[0, 1]))
    assert cm.sum() == len(y)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_f_beta_matches_sklearn(seed, beta):
    y, pred = _labels_and_predictions(seed)
    p, r = metrics.precision(y, pred), metrics.recall(y, pred)
    expected = skm.fbeta_score(y, pred, beta=beta, zero_division=0)
    assert metrics.f_beta(p, r, beta) == pytest.approx(expected, abs=1e-12)


def test_f_beta_weighs_recall_more_for_large_beta():
    # precision 1, recall 0.5: F2 leans to recall (lower), F0.5 leans to precision (higher)
    assert metrics.f_beta(1.0, 0.5, 2.0) < metrics.f_beta(1.0, 0.5, 1.0) < metrics.f_beta(1.0, 0.5, 0.5)
    assert metrics.f_beta(1.0, 0.5, 1.0) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
def test_report_matches_sklearn_at_threshold(seed, threshold):
    y, scores = _labels_and_scores(seed, tied=True)
    rep = metrics.report(y, scores, threshold=threshold, beta=2.0)
    pred = (scores >= threshold).astype(int)
    assert rep.precision == pytest.approx(skm.precision_score(y, pred, zero_division=0))
    assert rep.recall == pytest.approx(skm.recall_score(y, pred, zero_division=0))
    assert rep.f_beta == pytest.approx(skm.fbeta_score(y, pred, beta=2.0, zero_division=0))
    assert rep.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert rep.auroc == pytest.approx(skm.roc_auc_score(y, scores))
    assert rep.auprc == pytest.approx(skm.average_precision_score(y, scores))
    d = rep.as_dict()
    assert (d["tn"], d["fp"], d["fn"], d["tp"]) == tuple(skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())


# ------------------------------------------------------------------------------------- zero division


def test_nothing_predicted_positive_gives_zero_not_nan():
    y = np.array([0, 1, 1, 0, 1])
    pred = np.zeros(5, dtype=int)
    p, r = metrics.precision(y, pred), metrics.recall(y, pred)
    f = metrics.f_beta(p, r, 1.0)
    assert (p, r, f) == (0.0, 0.0, 0.0)
    assert not any(np.isnan([p, r, f]))
    for beta in (0.5, 2.0):
        assert metrics.f_beta(p, r, beta) == 0.0


def test_no_positives_gives_zero_recall():
    y = np.zeros(6, dtype=int)
    pred = np.array([0, 1, 0, 0, 1, 0])
    assert metrics.recall(y, pred) == 0.0
    assert metrics.precision(y, pred) == 0.0
    assert metrics.f_beta(0.0, 0.0) == 0.0


def test_report_with_nothing_predicted_positive_has_no_nan():
    y = np.array([0, 0, 1, 1, 0])
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.05])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning either
        rep = metrics.report(y, probs, threshold=0.9)
    values = [v for k, v in rep.as_dict().items()]
    assert not np.isnan(np.array(values, dtype=float)).any()
    assert rep.precision == 0.0 and rep.f_beta == 0.0 and rep.recall == 0.0
    assert rep.auroc == pytest.approx(skm.roc_auc_score(y, probs))


# -------------------------------------------------------------------------------------------- label


def test_label_threshold_changes_labels():
    probs = np.array([0.1, 0.5, 0.6, 0.89, 0.9, 0.95, 1.0])
    at_half = metrics.label(probs, 0.5)
    at_09 = metrics.label(probs, 0.9)
    assert at_half.tolist() == [0, 1, 1, 1, 1, 1, 1]
    assert at_09.tolist() == [0, 0, 0, 0, 1, 1, 1]  # >= : exactly 0.9 is positive
    assert not np.array_equal(at_half, at_09)
    assert metrics.label(probs).tolist() == at_half.tolist()  # default threshold 0.5


def test_label_uses_greater_or_equal():
    assert metrics.label(np.array([0.5]), 0.5).tolist() == [1]
    assert metrics.label(np.array([np.nextafter(0.5, 0)]), 0.5).tolist() == [0]


def test_label_accepts_rows_by_two_matrix():
    positive = np.array([0.1, 0.5, 0.7, 0.9, 0.95])
    matrix = np.stack([1 - positive, positive], axis=1)
    np.testing.assert_array_equal(metrics.label(matrix, 0.9), metrics.label(positive, 0.9))
    assert metrics.label(matrix, 0.9).tolist() == [0, 0, 0, 1, 1]
    # column 1 is the positive class: swapping the columns changes the answer
    assert metrics.label(matrix[:, ::-1], 0.9).tolist() == [1, 0, 0, 0, 0]


def test_report_accepts_rows_by_two_matrix():
    y, scores = _labels_and_scores(5)
    matrix = np.stack([1 - scores, scores], axis=1)
    a, b = metrics.report(y, matrix, 0.6), metrics.report(y, scores, 0.6)
    assert a.as_dict() == b.as_dict()


# ------------------------------------------------------------------------------------ ranking metrics


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tied", [False, True])
def test_roc_curve_matches_sklearn(seed, tied):
    y, scores = _labels_and_scores(seed, tied=tied)
    fpr, tpr, thr = metrics.roc_curve(y, scores)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_allclose(thr, sk_thr)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, np.inf)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tied", [False, True])
def test_precision_recall_curve_matches_sklearn(seed, tied):
    y, scores = _labels_and_scores(seed, tied=tied)
    prec, rec, thr = metrics.precision_recall_curve(y, scores)
    sk_prec, sk_rec, sk_thr = skm.precision_recall_curve(y, scores, drop_intermediate=False)
    # fpml stops the curve at the first threshold reaching full recall (points with a lower threshold
    # repeat recall 1 and add nothing to the area); scikit-learn >= 1.1 keeps them. Compare the rest.
    full = np.flatnonzero(sk_rec == 1.0)
    start = full.max() if full.size else 0
    np.testing.assert_allclose(prec, sk_prec[start:], atol=1e-12)
    np.testing.assert_allclose(rec, sk_rec[start:], atol=1e-12)
    np.testing.assert_allclose(thr, sk_thr[start:])
    assert (prec[-1], rec[-1]) == (1.0, 0.0)
    assert np.all(np.diff(thr) > 0)  # increasing thresholds
    assert len(prec) == len(rec) == len(thr) + 1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tied", [False, True])
def test_auroc_matches_sklearn(seed, tied):
    y, scores = _labels_and_scores(seed, tied=tied)
    assert metrics.auroc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("tied", [False, True])
def test_auprc_matches_average_precision(seed, tied):
    y, scores = _labels_and_scores(seed, tied=tied)
    assert metrics.auprc(y, scores) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)


def test_all_tied_scores():
    y = np.array([0, 1, 0, 1, 1, 0])
    scores = np.full(6, 0.3)
    assert metrics.auroc(y, scores) == pytest.approx(0.5)
    assert metrics.auprc(y, scores) == pytest.approx(skm.average_precision_score(y, scores))
    fpr, tpr, thr = metrics.roc_curve(y, scores)
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]


def test_ranking_extremes():
    y = np.array([0, 0, 0, 1, 1])
    perfect = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert metrics.auroc(y, perfect) == 1.0
    assert metrics.auprc(y, perfect) == 1.0
    assert metrics.auroc(y, 1 - perfect) == 0.0
    assert metrics.auprc(y, 1 - perfect) == pytest.approx(skm.average_precision_score(y, 1 - perfect))


def test_one_class_only_has_no_auroc_and_a_defined_auprc():
    """AUROC is NaN with one class, as scikit-learn's (never a 0.0 that reads as an inverted ranker)."""
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns that both are undefined
        assert np.isnan(skm.roc_auc_score(np.zeros(4), scores))
        assert skm.average_precision_score(np.zeros(4), scores) == 0.0
    assert np.isnan(metrics.auroc(np.zeros(4), scores)) and np.isnan(metrics.auroc(np.ones(4), scores))
    no_positives = metrics.auprc(np.zeros(4), scores)
    assert no_positives == 0.0 and np.copysign(1.0, no_positives) == 1.0  # not -0.0 in the logs
    assert metrics.auprc(np.ones(4), scores) == 1.0


def test_nan_scores_are_refused_as_scikit_learn_does():
    y, scores = np.array([0, 1, 0, 1]), np.array([0.1, np.nan, 0.3, 0.9])
    with pytest.raises(ValueError, match="NaN"):
        skm.roc_auc_score(y, scores)
    for fn in (metrics.auroc, metrics.auprc, metrics.best_threshold, metrics.roc_curve):
        with pytest.raises(ValueError, match="scores hold 1 NaN values"):
            fn(y, scores)


def test_label_takes_a_column_of_p_positive_and_refuses_other_matrices():
    positive = np.array([0.1, 0.95])
    assert metrics.label(positive[:, None], 0.9).tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        metrics.label(np.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 1, 1\)"):
        metrics.report(np.array([0, 1]), positive[:, None, None])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_best_threshold_maximises_f_beta_by_brute_force(seed, beta):
    y, scores = _labels_and_scores(seed, tied=True)
    threshold, best = metrics.best_threshold(y, scores, beta)
    by_sklearn = {t: skm.fbeta_score(y, (scores >= t).astype(int), beta=beta) for t in np.unique(scores)}
    assert best == pytest.approx(max(by_sklearn.values()))
    assert by_sklearn[threshold] == pytest.approx(best)


def test_best_threshold_weighs_recall_by_beta():
    y, scores = np.array([1, 0, 0, 1]), np.array([0.9, 0.8, 0.7, 0.6])
    assert metrics.best_threshold(y, scores, beta=2.0) == (0.6, pytest.approx(5 / 6))  # F2 0.556 at 0.9
