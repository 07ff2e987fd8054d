"""Reading tabular data, with errors that name the file, column and row."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from fpml.errors import DataError

#: The Kaggle credit-card fraud schema.
CREDITCARD_COLUMNS: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class")


def fraud_schema(label: str = "Class") -> tuple[str, ...]:
    """The credit-card columns with the label column named ``label`` (``:label`` in a config)."""
    return (*CREDITCARD_COLUMNS[:-1], label)


def _where(source: str, column: str, row: int) -> str:
    line = _line_of_row(Path(source), row)
    return f"{source}: column {column}, data row {row + 1}" + (f" (line {line} of the file)" if line else "")


def _line_of_row(path: Path, row: int) -> int | None:
    """The line of a CSV file holding its data row ``row`` (0-based), blank lines skipped as pandas skips
    them; ``None`` where lines do not tell it (not a file; ``\\r`` line ends, which pandas reads too).
    For error messages only: it reads the file up to that row."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        rows = -2  # the first line that is not blank is the header
        for line, text in enumerate(handle, start=1):
            rows += bool(text.strip())
            if rows == row:
                return line
    return None


FLOAT32_MAX = float(np.finfo(np.float32).max)
TOO_LARGE = f"is too large: features are float32, at most {FLOAT32_MAX:.4g} in magnitude"
NEGATIVE = "is negative: the column is log1p-transformed (:log1p-columns), which needs values >= 0"


def numeric(
    frame: pd.DataFrame, columns: Sequence[str], source: str, first_row: int = 0, non_negative: Sequence[str] = ()
) -> pd.DataFrame:
    """The named columns as float64; the first cell that is not a finite number, is too large for the
    float32 that training uses, or is negative in a ``non_negative`` column (one to be log1p-transformed),
    is an error naming it.

    ``first_row`` is the data row the frame starts at in its file (for a chunk of a larger file).
    """
    if frame.empty:
        raise DataError(f"{source}: has a header but no rows")
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        checks = [(~np.isfinite(values), "is not a finite number"), (np.abs(values) > FLOAT32_MAX, TOO_LARGE)]
        if column in non_negative:
            checks.append((values < 0, NEGATIVE))
        for bad, what in checks:
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(f"{_where(source, column, first_row + row)}: value {frame[column].iloc[row]!r} {what}")
    return frame[list(columns)].astype(float)


def validate_frame(
    frame: pd.DataFrame,
    source: str,
    columns: Sequence[str] = CREDITCARD_COLUMNS,
    label: str = "Class",
    first_row: int = 0,
    non_negative: Sequence[str] = (),
) -> pd.DataFrame:
    """Check the schema and values of a table (or of a chunk of one starting at data row ``first_row``;
    ``non_negative`` columns must hold no negative value); return it with float64 features and int labels.
    Whether both classes occur is :func:`check_classes`."""
    missing = [c for c in columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    if missing or extra:
        parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unexpected column(s) {', '.join(map(str, extra))}"] if extra else []
        )
        expected = (
            f"the fraud schema Time, V1..V28, Amount, {label}"
            if tuple(columns) == fraud_schema(label)
            else ", ".join(columns)
        )
        raise DataError(f"{source}: {'; '.join(parts)}; expected {expected}")
    out = numeric(frame, columns, source, first_row, non_negative)
    labels = out[label]
    off = ~labels.isin([0.0, 1.0])
    if off.any():
        row = int(np.flatnonzero(off.to_numpy())[0])
        raise DataError(f"{_where(source, label, first_row + row)}: label {frame[label].iloc[row]!r} is not 0 or 1")
    return out.assign(**{label: labels.astype(np.int64)})


def check_classes(classes: set[int], source: str, label: str = "Class") -> None:
    """Both classes must occur in a labelled table."""
    if len(classes) < 2:
        raise DataError(f"{source}: column {label} holds only class {min(classes)}; need both 0 and 1")


def _csv_rows(path: Path, start: int, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number counted from byte start, fields)`` of the CSV rows from byte ``start``, lazily."""
    with open(path, "rb") as raw:
        raw.seek(start)
        reader = csv.reader(io.TextIOWrapper(raw, encoding=encoding, newline=""))
        for row in reader:
            yield reader.line_num, row


def _check_header(path: Path, part_start: int | None = None) -> None:
    """A column named twice is an error (pandas would silently rename the second one ``NAME.1``), and so is
    a first data row (of the file, or of the part starting at byte ``part_start``) with more fields than the
    header: pandas would silently take its first field for an index and shift the others."""
    try:
        rows = _csv_rows(path, 0, "utf-8-sig")
        header = next(rows, (0, []))[1]
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise DataError(f"{path}: column(s) {', '.join(twice)} appear more than once in the header")
        if part_start is not None:
            rows = _csv_rows(path, part_start, "utf-8")
        line, first = next(((n, row) for n, row in rows if row), (0, []))  # pandas skips blank lines
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err, part_start) from None
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV: {err}") from None
    if len(first) > len(header):
        line += 0 if part_start is None else _lines_before(path, part_start)
        raise DataError(f"{path}: not a readable CSV: Expected {len(header)} fields in line {line}, saw {len(first)}")


def _not_utf8(path: Path, err: UnicodeDecodeError, part_start: int | None) -> DataError:
    """The error for a CSV that is not UTF-8 text, naming the first line (from ``part_start``) that is not."""
    line = None
    with open(path, "rb") as handle:
        handle.seek(part_start or 0)
        for number, text in enumerate(handle, start=1):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                line = number + (_lines_before(path, part_start) if part_start else 0)
                break
    where = f"line {line}" if line else "it"
    return DataError(
        f"{path}: not a readable CSV: {where} is not UTF-8 text ({err.reason}, byte 0x{err.object[err.start]:02x}); "
        "save the file as UTF-8 (a spreadsheet's Latin-1 or cp1252 export is not)"
    )


@contextmanager
def _reading(path: Path, part_start: int | None = None) -> Iterator[None]:
    """Clear errors for a missing, empty or unparsable CSV (or part of one, starting at byte ``part_start``:
    pandas numbers its lines from there, the error the file's)."""
    if not path.is_file():
        raise DataError(f"data file {path} " + ("is a folder, not a CSV file" if path.is_dir() else "does not exist"))
    try:
        _check_header(path, part_start)
        yield
    except OSError as err:  # no permission to read it, an I/O error
        raise DataError(f"data file {path} cannot be read: {err.strerror or err}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (expected a header line)") from None
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err, part_start) from None
    except pd.errors.ParserError as err:
        message = str(err).splitlines()[0]
        if part_start is not None:  # pandas read the header, then the part
            lines_before = _lines_before(path, part_start) - 1  # the header is pandas's line 1
            message = re.sub(r"line (\d+)", lambda m: f"line {int(m[1]) + lines_before}", message)
        raise DataError(f"{path}: not a readable CSV: {message}") from None


def read_raw(path: str | Path) -> pd.DataFrame:
    """A CSV as strings, with clear errors for a missing, empty or unparsable file."""
    with _reading(Path(path)):
        return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_csv(
    path: str | Path,
    columns: Sequence[str] = CREDITCARD_COLUMNS,
    label: str = "Class",
    *,
    non_negative: Sequence[str] = (),
) -> pd.DataFrame:
    """Load and validate a CSV with the given columns (the fraud schema by default; ``non_negative``: see
    :func:`validate_frame`)."""
    frame = validate_frame(read_raw(path), str(path), columns, label, non_negative=non_negative)
    check_classes(set(frame[label].unique().tolist()), str(path), label)
    return frame


def part_bytes(path: str | Path, part: int, parts: int) -> tuple[int, int]:
    """Bytes ``[start, end)`` of part ``part`` (0-based) of ``parts`` of a CSV's data lines.

    The lines after the header are cut into ``parts`` byte ranges of about equal size, each boundary
    moved to the start of the next line, so every line is in exactly one part and a process of a
    multi-process run can read its own part without reading the others. A part may hold no line.
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        first = len(handle.readline())

        def line_start(offset: int) -> int:  # the first line that starts at or after ``offset``
            if offset <= first or offset >= size:
                return min(max(offset, first), size)
            handle.seek(offset - 1)
            handle.readline()
            return handle.tell()

        body = size - first
        return line_start(first + body * part // parts), line_start(first + body * (part + 1) // parts)


class _Window(io.RawIOBase):
    """``prefix``, then the next ``length`` bytes of an open binary file, as one file."""

    def __init__(self, prefix: bytes, handle, length: int):
        self._prefix, self._handle, self._left = prefix, handle, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n], self._prefix = self._prefix[:n], self._prefix[n:]
            return n
        n = self._handle.readinto(memoryview(buffer)[: min(len(buffer), self._left)])
        self._left -= n
        return n


def _lines_before(path: Path, offset: int) -> int:
    """How many lines of a file end before byte ``offset`` (a line start)."""
    lines = 0
    with open(path, "rb") as handle:
        while handle.tell() < offset:
            lines += handle.read(min(1 << 20, offset - handle.tell())).count(b"\n")
    return lines


def _rows_before(path: Path, offset: int) -> int:
    """How many data rows of a CSV start before byte ``offset`` (a line start): its lines after the header,
    blank ones excepted, as pandas counts them."""
    rows = 0
    with open(path, "rb") as handle:
        handle.readline()
        while handle.tell() < offset:
            rows += bool(handle.readline().strip())
    return rows


def _raw_chunks(
    path: str | Path, chunk_rows: int | None, part: tuple[int, int] | None = None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first data row, chunk as strings)`` of a CSV, or of ``part=(index, count)`` of its data lines
    (:func:`part_bytes`; rows count from the part's first), lazily, with the errors of :func:`read_raw`.
    ``chunk_rows=None`` reads it in one chunk."""
    path, first_row = Path(path), 0
    start, end = part_bytes(path, *part) if part is not None and path.is_file() else (None, None)
    with _reading(path, start), ExitStack() as stack:
        source = path
        if part is not None:
            if start == end:
                return
            handle = stack.enter_context(open(path, "rb"))
            header = handle.readline()  # parsed with the part, so the part reads exactly as in the whole file
            handle.seek(start)
            source = io.BufferedReader(_Window(header, handle, end - start))
        options = {"dtype": str, "keep_default_na": False}
        if chunk_rows is None:
            chunks = [pd.read_csv(source, **options)]
        else:
            chunks = stack.enter_context(pd.read_csv(source, chunksize=chunk_rows, **options))
        for raw in chunks:
            yield first_row, raw
            first_row += len(raw)
    if first_row == 0 and part is None:
        raise DataError(f"{path}: has a header but no rows")


def read_csv_chunks(
    path: str | Path,
    chunk_rows: int | None,
    columns: Sequence[str] = CREDITCARD_COLUMNS,
    label: str = "Class",
    *,
    ignore_others: bool = False,
    part: tuple[int, int] | None = None,
    non_negative: Sequence[str] = (),
    both_classes: bool = True,
) -> Iterator[pd.DataFrame]:
    """:func:`read_csv` ``chunk_rows`` rows at a time (``None``: at once): validated frames, lazily; errors
    name the file's row.

    ``ignore_others`` drops columns not in ``columns`` (an id, a column the network does not use) instead
    of refusing them, for scoring a labelled file with a trained network. ``part=(index, count)`` reads
    only that part of the data lines (:func:`part_bytes`: one process's share); it may hold one class, or
    no rows. ``both_classes=False`` accepts a file of one class (scoring; training needs both).
    """
    classes: set[int] = set()
    for first_row, raw in _raw_chunks(path, chunk_rows, part):
        if part is not None and raw.empty:  # a part of blank lines
            continue
        raw = has_columns(raw, path, columns)[list(columns)] if ignore_others else raw
        try:
            frame = validate_frame(raw, str(path), columns, label, first_row, non_negative)
        except DataError:
            if part is None:
                raise
            before = _rows_before(Path(path), part_bytes(path, *part)[0])  # the file's row numbers, for the error
            frame = validate_frame(raw, str(path), columns, label, before + first_row, non_negative)
        classes.update(frame[label].unique().tolist())
        yield frame
    if part is None and both_classes:
        check_classes(classes, str(path), label)


def read_feature_chunks(
    path: str | Path, columns: Sequence[str], chunk_rows: int, non_negative: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """The named columns of a CSV as float64, ``chunk_rows`` rows at a time, lazily (files larger than memory);
    for prediction: other columns (a label, an id) may be present."""
    for first_row, raw in _raw_chunks(path, chunk_rows):
        yield numeric(has_columns(raw, path, columns), columns, str(path), first_row, non_negative)


def has_columns(frame: pd.DataFrame, path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """``frame``, or a :class:`DataError` naming the ``columns`` it lacks (``path`` says where it came from)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; scoring needs {', '.join(columns)}")
    return frame
