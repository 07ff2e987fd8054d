"""Reading tabular data, with errors that name the file, column and row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fpml.errors import DataError

#: The Kaggle credit-card fraud schema.
CREDITCARD_COLUMNS: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")


def numeric(frame: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
    """The named columns as float64; the first cell that is not a finite number is an error naming it."""
    if frame.empty:
        raise DataError(f"{source}: has a header but no rows")
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column {column}, data row {row + 1} (line {row + 2} of the file): "
                f"value {frame[column].iloc[row]!r} is not a finite number"
            )
    return frame[list(columns)].astype(float)


def validate_frame(
    frame: pd.DataFrame, source: str, columns: Sequence[str] = CREDITCARD_COLUMNS, label: str = "Class"
) -> pd.DataFrame:
    """Check the schema and values of a loaded table; return it with float64 features and int labels."""
    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unexpected column(s) {', '.join(map(str, extra))}"] if extra else []
        )
        expected = (
            "the fraud schema Time, V1..V28, Amount, Class"
            if tuple(columns) == CREDITCARD_COLUMNS
            else ", ".join(columns)
        )
        raise DataError(f"{source}: {'; '.join(parts)}; expected {expected}")
    out = numeric(frame, columns, source)
    labels = out[label]
    off = ~labels.isin([0.0, 1.0])
    if off.any():
        row = int(np.flatnonzero(off.to_numpy())[0])
        raise DataError(
            f"{source}: column {label}, data row {row + 1} (line {row + 2} of the file): "
            f"label {frame[label].iloc[row]!r} is not 0 or 1"
        )
    if labels.nunique() < 2:
        raise DataError(f"{source}: column {label} holds only class {int(labels.iloc[0])}; need both 0 and 1")
    return out.assign(**{label: labels.astype(np.int64)})


def read_raw(path: str | Path) -> pd.DataFrame:
    """A CSV as strings, with clear errors for a missing, empty or unparsable file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV: {str(err).splitlines()[0]}") from None


def read_csv(path: str | Path, columns: Sequence[str] = CREDITCARD_COLUMNS, label: str = "Class") -> pd.DataFrame:
    """Load and validate a CSV with the given columns (the fraud schema by default)."""
    return validate_frame(read_raw(path), str(path), columns, label)


def read_features(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """The named columns of a CSV as float64, for prediction: other columns (a label, an id) may be present."""
    frame = read_raw(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the network needs {', '.join(columns)}")
    return numeric(frame, columns, str(path))
