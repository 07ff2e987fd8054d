"""Data larger than memory: a CSV read in chunks into memory-mapped files gives the same bytes, and the
same trained network, as the whole table read into memory."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from fpml import config
from fpml.data import storage, synthetic, transforms
from fpml.data.dataset import dataset
from fpml.errors import DataError
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
