"""Using a finished run: ``evaluate`` reproduces the run's own test report, ``predict`` scores a CSV chunk by
chunk with the numbers of the network applied to the whole file (to float rounding)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fpml import config, metrics
from fpml.data import kaggle, synthetic, transforms
from fpml.errors import CheckpointError, DataError
from pipelines import fraud

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "data=:synthetic",
    "synthetic={:rows 6000 :frauds 60 :seed 2}",
    "test-size=1500",
    "epoch-count=2",
    "epoch-size=2000",
    "batch-size=50",
    'log1p-columns=["Amount"]',
    "standardize=true",
    "augment=nil",
    "threshold=0.5",
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return fraud.run(config.load("fraud", [*SMALL, f"run-dir={runs}"]), "small", quiet=True)


@pytest.fixture(scope="module")
def new_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "new.csv"
    synthetic.generate(seed=9, rows=1_003, frauds=20).to_csv(path, index=False)
    return path


def test_evaluate_reproduces_the_runs_test_report(finished):
    report, what = fraud.evaluate(finished.run_dir)
    assert "the run's test set" in what
    assert report.as_dict() == finished.test_report.as_dict()


def test_predict_in_chunks_matches_the_network_on_the_whole_file(finished, new_rows, tmp_path):
    whole = fraud.predict(finished.run_dir, new_rows, tmp_path / "whole.csv", chunk_rows=5_000)
    chunked = fraud.predict(finished.run_dir, new_rows, tmp_path / "chunked.csv", chunk_rows=100)
    out = pd.read_csv(chunked)
    # the same rows, to float rounding (XLA's kernels for another batch shape may round differently, and
    # blocks of 1,000 rows or more run the widened network: network.WIDEN_FROM_ROWS)
    np.testing.assert_allclose(out.to_numpy(), pd.read_csv(whole).to_numpy(), rtol=1e-5, atol=1e-9)
    model = fraud.load_model(finished.run_dir)
    expected = fraud.score(model, pd.read_csv(new_rows))
    assert list(out.columns) == ["P(Class=0)", "P(Class=1)", "predicted Class"] and len(out) == 1_003
    np.testing.assert_allclose(out[["P(Class=0)", "P(Class=1)"]].to_numpy(), expected, rtol=1e-5, atol=1e-7)
    threshold = model.inference["threshold"]
    assert out["predicted Class"].tolist() == metrics.label(out["P(Class=1)"].to_numpy(), threshold).tolist()


def test_new_rows_get_exactly_the_training_preprocessing(finished, new_rows):
    """The bytes the network sees for a CSV row at inference equal the bytes training gave it."""
    cfg = config.load(str(finished.run_dir / "config.edn"))
    trained = transforms.standardize(finished.data.standardizer, fraud.features(cfg, pd.read_csv(new_rows)))
    model = fraud.load_model(finished.run_dir)
    assert fraud._rows(model, pd.read_csv(new_rows)).tobytes() == np.asarray(trained.x).tobytes()


def test_evaluate_on_a_csv_scores_every_row_in_chunks(finished, new_rows):
    report, what = fraud.evaluate(finished.run_dir, str(new_rows), chunk_rows=64)
    assert str(new_rows) in what
    assert report.confusion.sum() == 1_003 and report.confusion[1].sum() == 20
    whole, _ = fraud.evaluate(finished.run_dir, str(new_rows), chunk_rows=5_000)
    assert whole.confusion.tolist() == report.confusion.tolist()
    assert whole.auprc == pytest.approx(report.auprc, abs=1e-6)


def test_evaluate_on_a_csv_ignores_columns_the_network_does_not_use(finished, new_rows, tmp_path):
    frame = pd.read_csv(new_rows)
    other = tmp_path / "other.csv"
    frame.drop(columns=["Time"]).assign(id=range(len(frame))).to_csv(other, index=False)
    assert (
        fraud.evaluate(finished.run_dir, str(other))[0].as_dict()
        == fraud.evaluate(finished.run_dir, str(new_rows))[0].as_dict()
    )


def test_predict_from_the_command_line(finished, new_rows, tmp_path, fpml):
    out = fpml("predict", str(finished.run_dir), str(new_rows), "-o", str(tmp_path / "p.csv"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "p.csv")
    assert len(pd.read_csv(tmp_path / "p.csv")) == 1_003


def test_evaluate_and_resume_refuse_a_csv_changed_since_training(tmp_path):
    """The run's splits are rebuilt from the CSV by row position: other rows (here the same rows shuffled)
    would put training rows in the test split. The run folder keeps the file's sha256 (sha256sum's format),
    and the file checked is the one the run's config.edn names (it may have moved)."""
    csv = tmp_path / "data.csv"
    synthetic.generate(seed=2, rows=6_000, frauds=60).to_csv(csv, index=False)
    on_csv = [f"data={csv}", *(o for o in SMALL if not o.startswith(("data=", "synthetic=")))]
    run = fraud.run(config.load("fraud", [*on_csv, "epoch-count=1", f"run-dir={tmp_path / 'runs'}"]), "csv", quiet=True)
    stamp = run.run_dir / fraud.DATA_SHA256
    assert stamp.read_text() == f"{kaggle.sha256_of(csv)}  {csv.resolve()}\n"
    assert fraud.evaluate(run.run_dir)[0].as_dict() == run.test_report.as_dict()
    moved = tmp_path / "moved.csv"  # the same bytes elsewhere, config.edn pointed at them
    shutil.copy(csv, moved)
    config_edn = run.run_dir / "config.edn"
    original = config_edn.read_text()
    config_edn.write_text(original.replace(str(csv.resolve()), str(moved.resolve())))
    assert fraud.evaluate(run.run_dir)[0].as_dict() == run.test_report.as_dict()
    pd.read_csv(moved).sample(frac=1.0, random_state=0).to_csv(moved, index=False)  # same rows, new order
    with pytest.raises(DataError, match=rf"^evaluate: {moved.resolve()} is not the file .* trained on .* --data"):
        fraud.evaluate(run.run_dir)
    with pytest.raises(DataError, match=r"^resume: .* is not the file .* it cannot be resumed on other data"):
        fraud.resume(run.run_dir, ["epoch-count=2"], quiet=True)
    assert fraud.evaluate(run.run_dir, str(moved))[1].startswith("CSV file")  # scoring a file stays possible
    config_edn.write_text(original)
    stamp.write_text("")
    with pytest.raises(CheckpointError, match=rf"^{stamp} is damaged: it holds no sha256"):
        fraud.evaluate(run.run_dir)


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda record: [], "expected a JSON object, got list"),
        (lambda record: {**record, "threshold": "high"}, "'threshold' missing or malformed"),
        (lambda record: {**record, "mean": record["mean"][:-1]}, "'mean' missing or malformed"),
        (lambda record: {k: v for k, v in record.items() if k != "features"}, "'features', 'mean', 'std' missing"),
    ],
)
def test_a_damaged_inference_record_is_a_checkpoint_error(finished, tmp_path, damage, needle):
    run = shutil.copytree(finished.run_dir, tmp_path / "run")
    record = json.loads((run / "inference.json").read_text())
    (run / "inference.json").write_text(json.dumps(damage(record)))
    with pytest.raises(CheckpointError, match=f"^{run / 'inference.json'} is damaged: .*{needle}"):
        fraud.load_model(run)


def test_score_names_the_feature_columns_a_frame_lacks(finished, new_rows):
    model = fraud.load_model(finished.run_dir)
    frame = pd.read_csv(new_rows)
    assert fraud.score(model, frame).shape == (len(frame), 2)
    with pytest.raises(DataError, match=r"^the rows: missing column\(s\) V3, Amount; scoring needs "):
        fraud.score(model, frame.drop(columns=["V3", "Amount"]))


def test_evaluate_scores_a_file_of_one_class(finished, tmp_path):
    """Training needs both classes; scoring does not: a file of normal rows only gives its false positives."""
    normal = tmp_path / "normal.csv"
    frame = synthetic.generate(seed=9, rows=1_003, frauds=20)
    frame[frame["Class"] == 0].to_csv(normal, index=False)
    report, _ = fraud.evaluate(finished.run_dir, str(normal))
    (tn, fp), (fn, tp) = report.confusion.tolist()
    assert tn + fp == 983 and fn == tp == 0
    assert report.recall == 0.0 and np.isnan(report.auroc)
