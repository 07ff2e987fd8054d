"""Reading tabular data, with errors that name the file, column and row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fpml.errors import DataError

#: The Kaggle credit-card fraud schema.
CREDITCARD_COLUMNS: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")


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
        raise DataError(f"{source}: {'; '.join(parts)}; expected {', '.join(columns)}")
    if frame.empty:
        raise DataError(f"{source}: has a header but no rows")
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column {column}, row {row + 2} (line {row + 2} of the file): "
                f"value {frame[column].iloc[row]!r} is not a finite number"
            )
    labels = frame[label].astype(float)
    off = ~labels.isin([0.0, 1.0])
    if off.any():
        row = int(np.flatnonzero(off.to_numpy())[0])
        raise DataError(f"{source}: column {label}, row {row + 2}: label {frame[label].iloc[row]!r} is not 0 or 1")
    if labels.nunique() < 2:
        raise DataError(f"{source}: column {label} holds only class {int(labels.iloc[0])}; need both 0 and 1")
    out = frame[list(columns)].astype(float)
    return out.assign(**{label: labels.astype(np.int64)})


def read_csv(path: str | Path, columns: Sequence[str] = CREDITCARD_COLUMNS, label: str = "Class") -> pd.DataFrame:
    """Load and validate a CSV with the given columns (the fraud schema by default)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header line: {','.join(columns)})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV: {str(err).splitlines()[0]}") from None
    return validate_frame(frame, str(path), columns, label)
