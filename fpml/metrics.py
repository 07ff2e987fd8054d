"""Classification metrics on host arrays, with defined values where a ratio would be 0/0.

Precision is 0 when nothing is predicted positive, recall 0 when there are no positives, and F-beta 0
when both are 0 -- so no NaN ever reaches model selection (scikit-learn's ``zero_division=0``). AUROC is
NaN when the labels hold one class only (no ranking to judge); NaN scores raise ``ValueError``.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1]); p = np.array([0.1, 0.8, 0.7, 0.95])
>>> label(p, 0.9).tolist(), precision(y, label(p, 0.9)), recall(y, label(p, 0.9))
([0, 0, 0, 1], 1.0, 0.5)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def positive(positive_prob: np.ndarray) -> np.ndarray:
    """P(positive) per row, from a vector of it, a rows x 1 matrix of it, or a rows x 2 matrix of class
    probabilities (column 1); any other shape is a ``ValueError``."""
    p = np.asarray(positive_prob)
    if p.ndim == 2 and p.shape[1] in (1, 2):
        return p[:, -1]
    if p.ndim != 1:
        raise ValueError(
            f"expected P(positive) per row or a rows x 2 matrix of class probabilities, got shape {p.shape}"
        )
    return p


def label(positive_prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Predicted class: 1 where ``P(positive) >= threshold``, else 0 (``positive_prob`` as :func:`positive` takes)."""
    return (positive(positive_prob) >= threshold).astype(np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """``[[tn, fp], [fn, tp]]`` for 0/1 labels (scikit-learn's layout)."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    return np.array([[np.sum(~t & ~p), np.sum(~t & p)], [np.sum(t & ~p), np.sum(t & p)]], dtype=np.int64)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """tp / (tp + fp); 0 when nothing is predicted positive."""
    (_, fp), (_, tp) = confusion_matrix(y_true, y_pred)
    return _ratio(tp, tp + fp)


def recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """tp / (tp + fn); 0 when there are no positives."""
    _, (fn, tp) = confusion_matrix(y_true, y_pred)
    return _ratio(tp, tp + fn)


def f_beta(precision_value: float, recall_value: float, beta: float = 1.0) -> float:
    """(1 + b^2) P R / (b^2 P + R); 0 when P and R are both 0. ``beta`` > 1 weighs recall more."""
    b2 = beta * beta
    return _ratio((1 + b2) * precision_value * recall_value, b2 * precision_value + recall_value)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of rows predicted correctly."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def _ranked(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    y, s = np.asarray(y_true).astype(np.int64), np.asarray(scores, np.float64)
    if np.isnan(s).any():
        raise ValueError(f"scores hold {int(np.isnan(s).sum())} NaN values: they cannot be ranked")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_each]
    return tps, (last_of_each + 1) - tps, s[last_of_each]


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, starting from (0, 0) at threshold +inf."""
    tps, fps, thresholds = _ranked(y_true, scores)
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1), np.r_[np.inf, thresholds]


def precision_recall_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, thresholds)`` by increasing threshold, ending at (1, 0) as scikit-learn does."""
    tps, fps, thresholds = _ranked(y_true, scores)
    prec = tps / (tps + fps)
    rec = tps / tps[-1] if tps[-1] else np.zeros_like(tps, dtype=float)
    stop = np.searchsorted(tps, tps[-1]) + 1  # past full recall the curve adds nothing
    return np.r_[prec[:stop][::-1], 1.0], np.r_[rec[:stop][::-1], 0.0], thresholds[:stop][::-1]


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids), 0.5 ... 1 for useful scores; NaN when ``y_true`` holds one class only."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    if not (fpr[-1] and tpr[-1]):
        return float("nan")
    return float(np.trapezoid(tpr, fpr))


def auprc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over thresholds of dR * P (0 when
    there are no positives)."""
    prec, rec, _ = precision_recall_curve(y_true, scores)
    return float(np.sum(-np.diff(rec) * prec[:-1])) + 0.0  # + 0.0: never -0.0


def best_threshold(y_true: np.ndarray, positive_prob: np.ndarray, beta: float = 1.0) -> tuple[float, float]:
    """``(threshold, f_beta)`` maximising F-beta over every distinct score (ties: the higher threshold)."""
    prec, rec, thresholds = precision_recall_curve(y_true, positive_prob)
    b2 = beta * beta
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(prec + rec > 0, (1 + b2) * prec * rec / (b2 * prec + rec), 0.0)[:-1]
    if not len(thresholds):
        return 0.5, 0.0
    best = int(np.flatnonzero(scores == scores.max())[-1])
    return float(thresholds[best]), float(scores[best])


class Report(NamedTuple):
    """Threshold metrics of a binary classifier on one data set."""

    precision: float
    recall: float
    f_beta: float
    accuracy: float
    auroc: float
    auprc: float
    confusion: np.ndarray
    threshold: float
    beta: float

    def as_dict(self) -> dict[str, float]:
        """Scalar metrics, for logs."""
        (tn, fp), (fn, tp) = self.confusion.tolist()
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f-beta": self.f_beta,
            "accuracy": self.accuracy,
            "auroc": self.auroc,
            "auprc": self.auprc,
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
            "threshold": self.threshold,
            "beta": self.beta,
        }


def report(y_true: np.ndarray, positive_prob: np.ndarray, threshold: float = 0.5, beta: float = 1.0) -> Report:
    """All metrics at once: threshold ones at ``threshold``, ranking ones from the probabilities."""
    p = positive(positive_prob)
    pred = label(p, threshold)
    prec, rec = precision(y_true, pred), recall(y_true, pred)
    return Report(
        prec,
        rec,
        f_beta(prec, rec, beta),
        accuracy(y_true, pred),
        auroc(y_true, p),
        auprc(y_true, p),
        confusion_matrix(y_true, pred),
        float(threshold),
        float(beta),
    )
