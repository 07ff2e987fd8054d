"""Data larger than memory: a CSV read in chunks into memory-mapped files gives the same bytes, and the
same trained network, as the whole table read into memory."""

from __future__ import annotations

import functools
import gzip
import itertools
import os

import jax
import numpy as np
import pandas as pd
import pytest

from fpml import config, distributed
from fpml.data import io, storage, synthetic, transforms
from fpml.data.dataset import dataset
from fpml.errors import ConfigError, DataError
from pipelines import fraud

CONFIG = """
{:network [{:type :input :size 29} {:type :linear->relu :size 8} {:type :dropout :keep 0.9}
           {:type :linear :size 2} {:type :softmax}]
 :data "CSV"
 :data-dir "SPILL"
 :test-size 1500
 :validation-size 1000
 :standardize true
 :log1p-columns ["Amount"]
 :augment {:target-share 0.5}
 :seed 1
 :threshold :tune
 :optimizer {:name :adam :learning-rate 0.01}
 :epoch-count 2
 :epoch-size 2000
 :batch-size 50
 :steps-per-call 10
 :run-dir "RUNS"}
"""


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "fraud.csv"
    synthetic.generate(seed=5, rows=6_000, frauds=60).to_csv(path, index=False)
    return path


def cfg_for(csv, tmp_path, chunk_rows=None):
    text = CONFIG.replace("CSV", str(csv)).replace("SPILL", str(tmp_path / "spill")).replace("RUNS", str(tmp_path))
    return config.override(config.from_text(text), [f"chunk-rows={chunk_rows}"] if chunk_rows else [])


def test_collect_in_memory_and_mapped_agree(tmp_path):
    rng = np.random.default_rng(0)
    blocks = [(rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 9, n).astype(np.int8)) for n in (5, 0, 7)]
    in_memory = storage.collect(iter(blocks), None)
    mapped = storage.collect(iter(blocks), tmp_path)
    for a, b in zip(in_memory, mapped, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        assert storage.is_mapped(b) and not storage.is_mapped(a) and not b.flags.writeable
    assert os.listdir(tmp_path) == []  # unnamed files: nothing to clean up, ever


def test_collect_zero_rows_and_mismatched_blocks(tmp_path):
    (empty,) = storage.collect([(np.zeros((0, 4), np.float32),)], tmp_path)
    assert empty.shape == (0, 4)
    with pytest.raises(ValueError, match="blocks differ"):
        storage.collect([(np.zeros((2, 4)),), (np.zeros((2, 5)),)], tmp_path)
    with pytest.raises(ValueError, match="at least one block"):
        storage.collect([], None)


def test_an_unwritable_spill_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot keep the data in memory-mapped files in .*file.*:data-dir"):
        storage.collect([(np.zeros((2, 3), np.float32),)], blocker / "spill")


def test_row_blocks_cover_the_rows():
    assert [(s.start, s.stop) for s in storage.row_blocks(10, 4)] == [(0, 4), (4, 8), (8, 10)]
    assert [(s.start, s.stop) for s in storage.row_blocks(0, 4)] == [(0, 0)]


def test_blockwise_standardizer_matches_numpy():
    x = np.random.default_rng(1).normal(3.0, 2.0, size=(3 * storage.BLOCK_ROWS + 17, 3)).astype(np.float32)
    x[:, 2] = 4.0  # a constant feature gets std 1
    stats = transforms.fit_standardizer(dataset(x, np.eye(2)[np.zeros(len(x), int)], ("a", "b", "c")))
    np.testing.assert_allclose(stats.mean, x.mean(axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(stats.std[:2], x.std(axis=0, dtype=np.float64)[:2], rtol=1e-12)
    assert stats.std[2] == 1.0


def test_transforms_give_the_same_bytes_mapped(tmp_path):
    """take, split, standardize and augmentation (with more new rows than one noise block) on mapped data."""
    rng = np.random.default_rng(2)
    labels = (rng.random(100_000) < 0.01).astype(int)
    x = rng.normal(size=(len(labels), 3))
    memory = dataset(x, np.eye(2)[labels], ("a", "b", "c"))
    mapped = transforms.concatenate([memory], str(tmp_path))
    assert storage.is_mapped(mapped.x) and mapped.spill_dir == str(tmp_path)

    def chain(data):
        train, test = transforms.split(jax.random.key(0), 0.2, data)
        scaled = transforms.standardize(transforms.fit_standardizer(train), train)
        return transforms.augment_positives(jax.random.key(1), 0.5, 5000.0, "euclidean-norm", scaled), test

    for a, b in zip(chain(memory), chain(mapped), strict=True):
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
        assert storage.is_mapped(b.x) and b.spill_dir == str(tmp_path)
    assert len(chain(memory)[0]) - len(memory) * 0.8 > transforms.AUGMENT_BLOCK_ROWS  # crossed a noise block


def test_a_file_read_in_chunks_trains_as_the_whole_file(csv, tmp_path):
    whole = fraud.run(cfg_for(csv, tmp_path / "whole"), "whole", quiet=True)
    chunked = fraud.run(cfg_for(csv, tmp_path / "chunked", chunk_rows=700), "chunked", quiet=True)
    assert "read 700 rows at a time" in chunked.data.source
    for part in ("train", "validation", "test"):
        a, b = getattr(whole.data, part), getattr(chunked.data, part)
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes() and a.features == b.features
        assert storage.is_mapped(b.x) and not storage.is_mapped(a.x)
    np.testing.assert_array_equal(whole.data.standardizer.mean, chunked.data.standardizer.mean)
    for layer, leaves in whole.result.params.items():
        for name, value in leaves.items():
            np.testing.assert_array_equal(value, chunked.result.params[layer][name], err_msg=f"{layer}/{name}")
    assert [r.metrics for r in whole.result.history] == [r.metrics for r in chunked.result.history]
    np.testing.assert_allclose(whole.test_probs, chunked.test_probs, rtol=1e-6)
    assert os.listdir(tmp_path / "chunked" / "spill") == []


def test_a_bad_cell_names_its_row_in_the_file(tmp_path):
    frame = synthetic.generate(seed=5, rows=100, frauds=5).astype(str)
    frame.loc[76, "V7"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    chunks = fraud.kaggle.load_chunks(fraud.kaggle.obtain(str(tmp_path / "bad.csv")), 25)
    with pytest.raises(DataError, match=r"column V7, data row 77 \(line 78 of the file\): value 'oops'"):
        list(chunks)


# ------------------------------------------------------------------ one process's part of a file


@pytest.mark.parametrize("ending", ["\n", "\r\n", "none"])
def test_byte_parts_hold_every_line_once(tmp_path, ending):
    frame = synthetic.generate(seed=3, rows=60, frauds=3)
    text = frame.to_csv(index=False, lineterminator="\n" if ending == "none" else ending)
    path = tmp_path / "f.csv"
    path.write_bytes((text.rstrip("\n") if ending == "none" else text).encode())
    data = path.read_bytes()
    header_end = data.index(b"\n") + 1
    whole = pd.concat(io.read_csv_chunks(path, 64))
    for parts in (1, 2, 3, 7, 80):
        ranges = [io.part_bytes(path, p, parts) for p in range(parts)]
        assert ranges[0][0] == header_end and ranges[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous
        assert all(data[start - 1 : start] == b"\n" for start, end in ranges if end > start)  # at line starts
        sizes = [end - start for start, end in ranges]
        assert max(sizes) - min(sizes) < 2 * max(map(len, data.splitlines(True)))  # about equal
        read = [list(io.read_csv_chunks(path, 64, part=(p, parts))) or [whole.iloc[:0]] for p in range(parts)]
        read = [pd.concat(chunks) for chunks in read]
        pd.testing.assert_frame_equal(pd.concat(read, ignore_index=True), whole.reset_index(drop=True))


def test_a_bad_cell_in_a_part_names_its_row_in_the_file(tmp_path):
    frame = synthetic.generate(seed=5, rows=100, frauds=5).astype(str)
    frame.loc[76, "V7"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert list(io.read_csv_chunks(tmp_path / "bad.csv", 10, part=(0, 2)))  # the first half is fine
    with pytest.raises(DataError, match=r"column V7, data row 77 \(line 78 of the file\): value 'oops'"):
        list(io.read_csv_chunks(tmp_path / "bad.csv", 10, part=(1, 2)))


@pytest.mark.parametrize("data", ["csv", "synthetic"])
@pytest.mark.parametrize("chunk_rows", [None, 700])
def test_the_parts_of_the_data_make_the_whole(csv, tmp_path, data, chunk_rows):
    keys = [f"data={csv}" if data == "csv" else "data=:synthetic", "synthetic={:rows 3000 :frauds 30}"]
    feed = [f"data-dir={tmp_path}", f"chunk-rows={chunk_rows or 'nil'}", "steps-per-call=100"]
    cfg = config.load("fraud", [*keys, *feed])
    whole = fraud.load_data(cfg.set("chunk-rows", None))[0]
    parts = [fraud.load_data(cfg, part=(p, 3))[0] for p in range(3)]
    assert max(map(len, parts)) - min(map(len, parts)) < 0.05 * len(whole)
    assert np.concatenate([p.x for p in parts]).tobytes() == whole.x.tobytes()
    assert np.concatenate([p.y for p in parts]).tobytes() == whole.y.tobytes()


def test_a_part_without_rows_is_one_clear_error(tmp_path):
    synthetic.generate(seed=5, rows=3, frauds=1).to_csv(tmp_path / "tiny.csv", index=False)
    cfg = config.load("fraud", [f"data={tmp_path / 'tiny.csv'}"])
    with pytest.raises(DataError, match=r"process 4 of 5 found no rows in its part of CSV file .*tiny.csv"):
        fraud.load_data(cfg, part=(4, 5))


def test_merged_moments_equal_those_of_all_rows():
    x = np.random.default_rng(4).normal(2.0, 3.0, size=(1_000, 3))
    cuts = [0, 0, 10, 11, 500, 1_000]  # parts of 0, 10, 1, 489 and 500 rows
    parts = [transforms.moments(x[a:b]) for a, b in itertools.pairwise(cuts)]
    merged = functools.reduce(transforms.merge_moments, parts)
    assert merged.count == 1_000
    np.testing.assert_allclose(merged.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.m2 / 1_000, x.var(axis=0), rtol=1e-12)
    stats = transforms.fit_standardizer(merged)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-12)


def test_all_rows_in_one_process_is_the_array_itself():
    a = np.arange(12.0).reshape(4, 3)
    assert distributed.all_rows(a).tobytes() == a.tobytes()


def test_a_malformed_line_in_a_part_names_its_line_in_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    synthetic.generate(seed=5, rows=100, frauds=5).to_csv(path, index=False)
    lines = path.read_text().splitlines(True)
    lines[80] = lines[80].rstrip("\n") + ",7\n"  # one field too many on line 81
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=r"bad.csv: not a readable CSV: .*Expected 31 fields in line 81, saw 32"):
        list(io.read_csv_chunks(path, 10, part=(1, 2)))
    with pytest.raises(DataError, match=r"Expected 31 fields in line 81, saw 32"):
        list(io.read_csv_chunks(path, 10))


def test_a_part_starting_on_a_line_with_an_extra_field_is_not_misread(tmp_path):
    """pandas would take a first line with one field too many for an index column, shifting every column."""
    path = tmp_path / "bad.csv"
    synthetic.generate(seed=5, rows=100, frauds=5).to_csv(path, index=False)
    start = io.part_bytes(path, 1, 2)[0]
    line = path.read_bytes()[:start].count(b"\n") + 1  # the part's first line
    lines = path.read_text().splitlines(True)
    lines[line - 1 :] = [text.rstrip("\n") + ",0\n" for text in lines[line - 1 :]]
    path.write_text("".join(lines))
    with pytest.raises(DataError, match=rf"Expected 31 fields in line {line}, saw 32"):
        list(io.read_csv_chunks(path, 10))
    first = path.read_bytes()[: io.part_bytes(path, 1, 2)[0]].count(b"\n") + 1  # the longer lines moved it
    assert first >= line
    with pytest.raises(DataError, match=rf"Expected 31 fields in line {first}, saw 32"):
        list(io.read_csv_chunks(path, 10, part=(1, 2)))


def test_a_part_of_blank_lines_has_no_rows(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(synthetic.generate(seed=5, rows=40, frauds=2).to_csv(index=False) + "\n" * 60_000)
    assert list(io.read_csv_chunks(path, 10, part=(1, 2))) == []
    cfg = config.load("fraud", [f"data={path}"])
    assert len(fraud.load_data(cfg, part=(0, 2))[0]) == 40
    with pytest.raises(DataError, match=r"process 1 of 2 found no rows in its part"):
        fraud.load_data(cfg, part=(1, 2))


def test_a_first_row_with_an_extra_field_is_an_error_not_a_shifted_table(tmp_path):
    path = tmp_path / "bad.csv"
    synthetic.generate(seed=5, rows=10, frauds=1).to_csv(path, index=False)
    lines = path.read_text().splitlines(True)
    lines[1] = lines[1].rstrip("\n") + ",0\n"
    path.write_text("".join(lines))
    for read in (lambda: io.read_csv(path), lambda: list(io.read_csv_chunks(path, 3))):
        with pytest.raises(DataError, match=r"bad.csv: not a readable CSV: Expected 31 fields in line 2, saw 32"):
            read()


@pytest.mark.parametrize(
    ("processes", "rows", "positives", "size"), [(8, 1000, 3, 0.1), (4, 10_000, 14, 0.1), (2, 10, 5, 6), (3, 7, 1, 9)]
)
def test_a_split_over_processes_takes_each_class_s_rows_as_one_process_would(processes, rows, positives, size):
    def part(p):
        labels = np.zeros(rows, int)
        labels[np.random.default_rng(p).choice(rows, positives, replace=False)] = 1
        return dataset(np.arange(rows * 2.0).reshape(rows, 2) + p * rows * 2, np.eye(2)[labels], ("a", "b"))

    parts = [part(p) for p in range(processes)]
    counts = np.array([p.class_counts for p in parts])
    key = jax.random.key(0)
    one = transforms.split(key, size, transforms.concatenate(parts))[1].class_counts
    tests = [fraud._split_part(key, size, p, counts, (i, processes), "test-size")[1] for i, p in enumerate(parts)]
    assert sum(t.class_counts for t in tests).tolist() == one.tolist()  # every class, exactly
    assert all(abs(len(t) - len(tests[0])) <= 2 for t in tests)  # each process its share


def test_old_mac_line_endings_read_and_a_compressed_file_is_one_clear_error(tmp_path):
    frame = synthetic.generate(seed=1, rows=20, frauds=2)
    (tmp_path / "cr.csv").write_bytes(frame.to_csv(index=False).replace("\n", "\r").encode())
    assert len(io.read_csv(tmp_path / "cr.csv")) == 20
    frame = frame.astype(str)
    frame.loc[12, "V3"] = "x"  # its line cannot be told from "\n"s: the message names the data row alone
    (tmp_path / "cr.csv").write_bytes(frame.to_csv(index=False).replace("\n", "\r").encode())
    with pytest.raises(DataError, match=r"cr.csv: column V3, data row 13: value 'x' is not a finite number"):
        io.read_csv(tmp_path / "cr.csv")
    (tmp_path / "gz.csv").write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    for read in (lambda: io.read_csv(tmp_path / "gz.csv"), lambda: list(io.read_csv_chunks(tmp_path / "gz.csv", 5))):
        with pytest.raises(DataError, match=r"gz.csv: not a readable CSV: line 1 is not UTF-8 text \(invalid start"):
            read()


def test_a_csv_that_is_not_utf8_names_its_first_bad_line_read_whole_or_in_a_part(tmp_path):
    frame = synthetic.generate(seed=1, rows=200, frauds=4).astype(str)
    frame.loc[150, "V2"] = "caf\u00e9"  # as a Latin-1 export writes it: one 0xe9 byte
    (tmp_path / "latin.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))
    for part in (None, (1, 2)):
        with pytest.raises(DataError, match=r"latin.csv: not a readable CSV: line 152 is not UTF-8 text .* 0xe9\)"):
            list(io.read_csv_chunks(tmp_path / "latin.csv", 50, part=part))


def test_split_with_a_count_per_class():
    labels = np.array([0] * 179 + [1] * 21)
    data = dataset(np.arange(400.0).reshape(200, 2), np.eye(2)[labels], ("a", "b"))
    train, test = transforms.split(jax.random.key(0), (3, 2), data)
    assert test.class_counts.tolist() == [3, 2] and train.class_counts.tolist() == [176, 19]
    assert transforms.split(jax.random.key(0), np.int64(20), data)[1].class_counts.tolist() == [18, 2]
    for bad in ([5, 500], [5, -3], [5], [5, 3, 7]):
        with pytest.raises(ConfigError, match=r":test-size .*: give a row count for each of the 2 classes"):
            transforms.split(jax.random.key(0), bad, data)


def test_a_bad_cell_after_blank_lines_is_the_same_data_row_read_whole_or_in_a_part(tmp_path):
    path = tmp_path / "blanks.csv"
    frame = synthetic.generate(seed=5, rows=100, frauds=5).astype(str)
    frame.loc[90, "V7"] = "oops"
    lines = frame.to_csv(index=False).splitlines(True)
    path.write_text("".join(lines[:10] + ["\n"] * 5 + lines[10:]))  # blank lines before both halves' rows
    messages = []
    for part in (None, (1, 2)):
        with pytest.raises(DataError, match=r"column V7, data row 91 \(line 97 of the file\)") as err:
            list(io.read_csv_chunks(path, 10, part=part))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
