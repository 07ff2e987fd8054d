"""The fraud pipeline on small synthetic data: split sizes, standardization order, augmentation, tuned threshold."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import toolz

from fpml import config, metrics, network
from fpml.data import synthetic, transforms
from fpml.errors import DataError
from pipelines import fraud

CONFIG = """
{:network [{:type :input :size 29 :id :data} {:type :linear->relu :size 8} {:type :linear :size 2}
           {:type :softmax :id :label}]
 :data :synthetic
 :synthetic {:rows 6000 :frauds 60 :seed 1}
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
 :run-dir "RUN_DIR"}
"""

ROWS, FRAUDS = 6000, 60


def cfg_for(run_dir="runs"):
    return config.from_text(CONFIG.replace("RUN_DIR", str(run_dir)))


@pytest.fixture(scope="module")
def cfg():
    return cfg_for()


@pytest.fixture(scope="module")
def prepared(cfg):
    return fraud.prepare(cfg, quiet=True)


def stratified(test_rows: int, counts: tuple[int, int]) -> tuple[int, int]:
    """Per-class test rows as transforms.split computes them: round(test_rows * share)."""
    n = sum(counts)
    return tuple(int(round(test_rows * c / n)) for c in counts)


def by_hand(cfg):
    """The pipeline's steps before augmentation, spelled out.

    Returns (standardized train, validation, test, the standardizer, raw train, raw validation).
    """
    frame = synthetic.generate(seed=1, rows=ROWS, frauds=FRAUDS)
    data = toolz.pipe(
        frame,
        transforms.log1p_columns(["Amount"]),
        transforms.drop_columns(["Time"]),
        transforms.to_dataset("Class"),
    )
    key = jax.random.key(0)  # :split-seed defaults to 0
    train_part, test_part = transforms.split(key, 1500, data)
    train_part, validation = transforms.split(jax.random.fold_in(key, fraud.VALIDATION_SPLIT), 1000, train_part)
    stats = transforms.fit_standardizer(train_part)
    scale = transforms.standardize(stats)
    return scale(train_part), scale(validation), scale(test_part), stats, train_part, validation


def test_sizes_and_class_counts(prepared):
    test_counts = stratified(1500, (ROWS - FRAUDS, FRAUDS))
    assert test_counts == (1485, 15)
    train_counts = (ROWS - FRAUDS - test_counts[0], FRAUDS - test_counts[1])
    validation_counts = stratified(1000, train_counts)
    assert validation_counts == (990, 10)
    remaining = (train_counts[0] - validation_counts[0], train_counts[1] - validation_counts[1])
    assert remaining == (3465, 35)

    assert len(prepared.test) == 1500 and prepared.test.class_counts.tolist() == list(test_counts)
    assert len(prepared.validation) == 1000
    assert prepared.validation.class_counts.tolist() == list(validation_counts)
    # training: the negatives as split, the positives augmented up to a 50/50 balance
    assert prepared.train.class_counts.tolist() == [remaining[0], remaining[0]]
    assert len(prepared.train) == 2 * remaining[0]
    assert prepared.train.x.shape[1] == 29 and "Time" not in prepared.train.features
    assert "synthetic" in prepared.source and "seed 1" in prepared.source


def test_validation_and_test_hold_no_augmented_rows(cfg, prepared):
    train_std, validation_std, test_std, *_ = by_hand(cfg)
    np.testing.assert_array_equal(prepared.test.x, test_std.x)
    np.testing.assert_array_equal(prepared.test.y, test_std.y)
    np.testing.assert_array_equal(prepared.validation.x, validation_std.x)
    np.testing.assert_array_equal(prepared.validation.y, validation_std.y)
    assert prepared.test.class_counts[1] == 15 and prepared.validation.class_counts[1] == 10
    # the augmented rows are all in the training set, after its original rows
    n = len(train_std)
    np.testing.assert_array_equal(prepared.train.x[:n], train_std.x)
    np.testing.assert_array_equal(prepared.train.y[:n], train_std.y)
    assert (prepared.train.labels[n:] == 1).all()
    assert len(prepared.train) - n == 3465 - 35


def test_standardization_fitted_on_the_training_part_before_augmentation(cfg, prepared):
    _, _, _, stats, raw_train, raw_validation = by_hand(cfg)
    n = len(raw_train)
    original = prepared.train.x[:n].astype(np.float64)
    # the pre-augmentation training rows are exactly standardized ...
    np.testing.assert_allclose(original.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(original.std(axis=0), 1.0, atol=1e-4)
    # ... by statistics of those rows alone: not of the augmented set, not of train + validation
    augmented_mean = prepared.train.x.astype(np.float64).mean(axis=0)
    assert np.abs(augmented_mean).max() > 0.5  # half the augmented rows are (shifted) frauds
    with_validation = np.concatenate([raw_train.x, raw_validation.x]).astype(np.float64)
    assert np.abs(with_validation.mean(axis=0) - stats.mean).max() > 1e-3
    manual = (raw_train.x - stats.mean) / stats.std
    np.testing.assert_array_equal(prepared.train.x[:n], manual.astype(np.float32))


def test_prepare_is_deterministic(cfg, prepared):
    again = fraud.prepare(cfg, quiet=True)
    for a, b in ((prepared.train, again.train), (prepared.validation, again.validation), (prepared.test, again.test)):
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()
    assert prepared.source == again.source


@pytest.mark.parametrize("source", ["synthetic", "kaggle"])
def test_a_source_named_on_the_command_line_stays_a_source_in_the_run_folder(source, tmp_path, monkeypatch):
    """``data=synthetic`` (a plain string, not :synthetic) reads the generator; the run folder's config must
    not turn it into the file ``$PWD/synthetic``, which evaluate and resume would then look for."""
    cfg = config.from_text(CONFIG.replace(":data :synthetic", f':data "{source}"'))  # as data={source} gives
    monkeypatch.chdir(tmp_path)
    assert fraud._with_absolute_paths(cfg)["data"] == source
    assert fraud._with_absolute_paths(cfg.set("data", "x.csv"))["data"] == str(tmp_path / "x.csv")


def test_every_class_needs_training_rows_and_balanced_batches_need_them_in_every_process():
    data = np.array([900, 12])
    fraud.check_training_classes(np.array([[400, 5], [420, 4]]), True, data)  # fine
    fraud.check_training_classes(np.array([[400, 0], [420, 9]]), False, data)  # shuffled batches: fine
    with pytest.raises(DataError, match=r"^the training set \(820 rows\) holds no rows of class 1 \(the data: class"):
        fraud.check_training_classes(np.array([[400, 0], [420, 0]]), False, data)
    with pytest.raises(DataError, match=r"^process 0's part of the training rows holds no rows of class 1, and each"):
        fraud.check_training_classes(np.array([[400, 0], [420, 9]]), True, data)


def test_run_with_a_tuned_threshold(tmp_path):
    cfg = cfg_for(tmp_path)
    result = fraud.run(cfg, "tuned", quiet=True)
    best = result.result.best
    tuned = best.metrics["threshold"]
    assert result.test_report.threshold == tuned
    assert tuned != 0.5
    assert 0.0 < tuned <= 1.0
    # the threshold is the best-F1 one on the VALIDATION set, for the best epoch's network
    net = network.build(cfg["network"])
    validation = result.data.validation
    val_probs = np.asarray(jax.jit(net.apply)(result.result.params, validation.x))[:, -1]
    assert metrics.best_threshold(validation.labels, val_probs, cfg["beta"])[0] == tuned
    assert best.metrics["f-beta"] == pytest.approx(metrics.best_threshold(validation.labels, val_probs)[1])
    # the test report is taken at that threshold
    expected = metrics.report(result.data.test.labels, result.test_probs, tuned, cfg["beta"])
    assert result.test_report.as_dict() == pytest.approx(expected.as_dict())
    assert len(result.test_probs) == len(result.data.test) == 1500
    # and the run folder records it
    assert result.run_dir.parent == tmp_path
    recorded = json.loads((result.run_dir / "test.json").read_text())
    assert recorded["threshold"] == tuned
    assert recorded["precision"] == pytest.approx(result.test_report.precision)
    assert recorded["recall"] == pytest.approx(result.test_report.recall)
    assert len(result.result.history) == 2
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["threshold"] for r in log] == [r.metrics["threshold"] for r in result.result.history]
    assert (result.run_dir / "best.npz").is_file()


def test_a_single_logistic_output_learns_the_fraud_class(tmp_path):
    """One output P(fraud) before a :logistic trains on the class-1 column of the one-hot labels."""
    net = "[{:type :input :size 29 :id :data} {:type :linear->relu :size 8} {:type :linear->logistic :size 1}]"
    text = CONFIG.replace("RUN_DIR", str(tmp_path)).replace(CONFIG.split(":network ")[1].split("\n :data")[0], net)
    cfg = config.from_text(text.replace(":epoch-count 2", ":epoch-count 3 :class-weights [1 2]"))
    result = fraud.run(cfg, "logistic", quiet=True)
    assert result.test_probs.ndim == 1
    # observed 0.90 (draws of 2026-11-29); a label-blind loss gives ~0.5
    assert metrics.auroc(result.data.test.labels, result.test_probs) > 0.8


def test_resume_rewrites_the_best_epochs_inference_record_before_training(tmp_path, monkeypatch):
    """A hard stop between an epoch's checkpoints and its inference.json leaves the record missing or
    stale; resume writes the best epoch's record again before it trains."""
    done = fraud.run(cfg_for(tmp_path), "hard-stop", quiet=True)
    expected = (done.run_dir / "inference.json").read_text()
    (done.run_dir / "inference.json").unlink()

    def stop(*args, **kwargs):
        raise RuntimeError("stopped before the first epoch")

    monkeypatch.setattr(fraud.train, "train_n", stop)
    with pytest.raises(RuntimeError, match="stopped before"):
        fraud.resume(done.run_dir, ["epoch-count=3"], quiet=True)
    assert (done.run_dir / "inference.json").read_text() == expected


@pytest.mark.parametrize("chunk_rows", [None, 2_000])
def test_a_csv_whose_label_column_has_another_name(tmp_path, chunk_rows):
    frame = synthetic.generate(seed=3, rows=6_000, frauds=60)
    frame.rename(columns={"Class": "Fraud"}).to_csv(tmp_path / "renamed.csv", index=False)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    common = ["test-size=1500", f"data-dir={tmp_path}", f"chunk-rows={'nil' if chunk_rows is None else chunk_rows}"]
    common += [] if chunk_rows is None else ["steps-per-call=10"]
    renamed = fraud.prepare(config.load("fraud", [f"data={tmp_path / 'renamed.csv'}", "label=Fraud", *common]))
    plain = fraud.prepare(config.load("fraud", [f"data={tmp_path / 'plain.csv'}", *common]))
    assert np.array_equal(renamed.train.x, plain.train.x) and np.array_equal(renamed.test.y, plain.test.y)
