"""Every failure fpml reports to a user is an :class:`FpmlError`: one line, naming what is wrong and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FpmlError(Exception):
    """Base of fpml's own errors. ``str(err)`` is a complete one-line message."""


class ConfigError(FpmlError):
    """A config or network description is malformed: names the key, the bad value and what is allowed."""


class DataError(FpmlError):
    """A data file or dataset is unusable: names the file, column and row."""


class CheckpointError(FpmlError):
    """A checkpoint cannot be read or does not fit the network it is loaded for."""


def _best_kept(best_epoch: int | None, run_dir: object | None) -> str:
    """Where the best network so far is, for the messages of a stopped run."""
    if best_epoch is None:
        return "no epoch had finished, so no network was kept"
    where = f" in {run_dir}/best.npz" if run_dir is not None else " in this error's .result"
    return f"the best network so far (epoch {best_epoch + 1}) is kept{where}"


class TrainingDiverged(FpmlError):
    """The loss, the parameters or the network's test outputs became NaN or infinite; training stopped in
    ``epoch`` (at ``step``, with ``loss``, where one step's loss is to blame). ``result`` is the run up to its
    last good epoch (a :class:`fpml.train.TrainResult`: the best network and the state to continue from), or
    ``None``."""

    def __init__(
        self,
        epoch: int,
        what: str,
        *,
        step: int | None = None,
        loss: float | None = None,
        best_epoch: int | None = None,
        run_dir: object | None = None,
        result: object | None = None,
    ):
        at = f"epoch {epoch + 1}" + (f", step {step + 1}" if step is not None else "")
        super().__init__(
            f"{what} at {at}; training stopped ({_best_kept(best_epoch, run_dir)}). "
            "Lower the learning rate or add gradient clipping."
        )
        self.epoch, self.step, self.loss, self.best_epoch = epoch, step, loss, best_epoch
        self.run_dir, self.result = run_dir, result


class TrainingInterrupted(FpmlError):
    """Training was interrupted (Ctrl-C); everything saved up to the last finished epoch is intact, and
    ``result`` is the run up to that epoch (a :class:`fpml.train.TrainResult`), or ``None``."""

    def __init__(self, epoch: int, best_epoch: int | None, run_dir: object | None, result: object | None = None):
        where = f"; {_best_kept(best_epoch, run_dir)}" if best_epoch is not None else ""
        if where and run_dir is not None:
            where += f"; continue with: fpml resume {run_dir}"
        super().__init__(f"training interrupted during epoch {epoch + 1}{where}")
        self.epoch, self.best_epoch, self.run_dir, self.result = epoch, best_epoch, run_dir, result


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) turning ``a`` into ``b``."""
    previous2, previous = [], list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """A hint naming the nearest valid choice, or '' when nothing is close.

    >>> did_you_mean("lineer", ["linear", "relu"])
    " (did you mean 'linear'?)"
    >>> did_you_mean("adma", ["adam", "adamax"])
    " (did you mean 'adam'?)"
    """
    name, options = str(name), [str(c) for c in choices]
    ranked = sorted((edit_distance(name, c), -difflib.SequenceMatcher(None, name, c).ratio(), c) for c in options)
    if ranked and ranked[0][0] <= max(2, len(name) // 3):
        return f" (did you mean '{ranked[0][2]}'?)"
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def nearest_divisor(n: int, near: int, step: int = 1) -> int | None:
    """The multiple of ``step`` that divides ``n`` and is nearest ``near`` (a suggestion for a size), if any.

    >>> nearest_divisor(2000, 7), nearest_divisor(200_000, 100, step=8)
    (8, 80)
    """
    if n % step:
        return None
    fits = (step * d for d in range(1, min(n // step, 100_000) + 1) if (n // step) % d == 0)
    return min(fits, key=lambda b: abs(b - near), default=None)


def one_of(choices: Iterable[str]) -> str:
    """``choices`` as a sorted, readable list for messages."""
    return ", ".join(sorted(str(c) for c in choices))
