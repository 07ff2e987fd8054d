"""PNG figures of a run, written atomically: training curves, precision-recall curve, confusion matrix."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fpml import metrics  # noqa: E402
from fpml.files import atomic_write  # noqa: E402
from fpml.train import EpochRecord  # noqa: E402


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def training_curves(history: Sequence[EpochRecord], path: str | Path) -> Path:
    """Loss (left) and precision/recall/F-beta of the judging set (right) per epoch; the best epoch marked."""
    epochs = [r.epoch + 1 for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r.loss for r in history], marker=".")
    left.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    for key, name in (("precision", "precision"), ("recall", "recall"), ("f-beta", "F-beta"), ("auprc", "AUPRC")):
        right.plot(epochs, [r.metrics[key] for r in history], marker=".", label=name)
    best = [r.epoch + 1 for r in history if r.best]
    if best:
        right.axvline(best[-1], color="grey", ls="--", label=f"best epoch {best[-1]}")
    right.set(xlabel="epoch", ylim=(0, 1.02), title="judging-set metrics at the threshold")
    right.legend(fontsize=8, loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save(fig, path)


def pr_curve(labels: np.ndarray, probs: np.ndarray, threshold: float, path: str | Path, title: str = "") -> Path:
    """The precision-recall curve with the point of the decision threshold marked."""
    prec, rec, _ = metrics.precision_recall_curve(labels, probs)
    report = metrics.report(labels, probs, threshold)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.step(rec, prec, where="post", label=f"AUPRC {report.auprc:.3f}")
    ax.plot(
        [report.recall],
        [report.precision],
        "o",
        ms=9,
        label=f"threshold {threshold:.3g}: P {report.precision:.3f}, R {report.recall:.3f}",
    )
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.01),
        ylim=(0, 1.01),
        title=title or "precision-recall on the test set",
    )
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    return save(fig, path)


def confusion(matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """A 2x2 confusion matrix with counts (rows: actual, columns: predicted)."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count:,}",
            ha="center",
            va="center",
            fontsize=13,
            color="white" if matrix[i, j] > matrix.max() / 2 else "black",
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["normal", "fraud"],
        yticklabels=["normal", "fraud"],
        xlabel="predicted",
        ylabel="actual",
        title=title or "confusion matrix (test set)",
    )
    return save(fig, path)
