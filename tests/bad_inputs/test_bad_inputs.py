"""Bad input through the ``fpml`` command, one table row per case.

Every case runs the CLI in a subprocess and must: exit with status 2; print exactly one stderr line
starting with ``fpml: error:`` that names the problem (file, key or column, the bad value, what is
allowed, a "did you mean" for typos); print no traceback; and leave every file it could touch as it was.
Before each case a "precious" state is laid out in the case's tmp dir -- a copy of a finished tiny run,
a data folder with a CSV and its ``.npz`` cache, a log -- and after the case every file and folder in the
tmp dir must have the same bytes (sha256), with nothing new (no half-written temp files, no run folder).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fpml import checkpoint, edn
from fpml.data.io import CREDITCARD_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
#: The tiny synthetic run of tests/test_cli.py (~5 s).
SMALL = (
    "data=:synthetic",
    "synthetic={:rows 6000 :frauds 60 :seed 2}",
    "test-size=1500",
    "epoch-count=2",
    "epoch-size=2000",
    "batch-size=50",
)
#: SMALL without the synthetic data, for ``data=<csv>`` cases.
DATA_SMALL = tuple(o for o in SMALL if not o.startswith(("data=", "synthetic=")))
#: Repository folders a failing command must not touch (compared by name, size and mtime).
REPO_DIRS = ("runs", "data", "configs")
KNOWN_CONFIGS = ", ".join(sorted(p.stem for p in (ROOT / "configs").glob("*.edn")))


# ------------------------------------------------------------------------------------------------- inputs

NET = "[{:type :input :size 29} {:type :linear->relu :size 4} {:type :linear :size 2} {:type :softmax}]"


def edn_config(network: str = NET, **settings: str) -> str:
    """A tiny synthetic config as EDN text; ``settings`` (underscores for dashes) add or replace keys."""
    entries = {
        "data": ":synthetic",
        "synthetic": "{:rows 3000 :frauds 60 :seed 2}",
        "test-size": "1000",
        "epoch-count": "1",
        "epoch-size": "1000",
        "batch-size": "50",
    } | {k.replace("_", "-"): v for k, v in settings.items()}
    body = " ".join(f":{k} {v}" for k, v in entries.items())
    return f"{{:network {network}\n {body}}}\n"


def net(*extra_layers: str) -> str:
    """A network vector: the input layer, then ``extra_layers``."""
    return "[" + " ".join(("{:type :input :size 29}", *extra_layers)) + "]"


def fraud_csv(
    rows: int = 40,
    *,
    columns: Sequence[str] = CREDITCARD_COLUMNS,
    header: Sequence[str] | None = None,
    cells: Mapping[tuple[int, str], str] | None = None,
    label: str | None = None,
) -> str:
    """A small CSV with the fraud schema (frauds at data rows 4, 14, ...). ``cells`` replaces the value
    at (data row, 1-based as in the messages, column); ``columns`` picks and orders the columns written."""
    rng = np.random.default_rng(7)
    lines = [",".join(header or columns)]
    for row in range(1, rows + 1):
        values = {c: f"{rng.normal():.4f}" for c in CREDITCARD_COLUMNS}
        values["Time"], values["Amount"] = str(row), f"{abs(rng.normal()) * 80:.2f}"
        values["Class"] = label if label is not None else ("1" if row % 10 == 4 else "0")
        values.update({c: v for (r, c), v in (cells or {}).items() if r == row})
        lines.append(",".join(values.get(c, "1.0") for c in columns))
    return "\n".join(lines) + "\n"


NO_V3 = tuple(c for c in CREDITCARD_COLUMNS if c != "V3")


# ----------------------------------------------------------------------------- damaging the run copy


def truncate(name: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        data = (run / name).read_bytes()
        (run / name).write_bytes(data[: len(data) // 2])

    return damage


def trained_on_log_amounts(run: Path) -> None:
    """The run's inference record as a run with ``:log1p-columns ["Amount"]`` writes it."""
    record = json.loads((run / "inference.json").read_text())
    (run / "inference.json").write_text(json.dumps({**record, "log1p-columns": ["Amount"]}))


def started_on_two_processes(run: Path) -> None:
    """The run's config as a two-process run (jax.distributed) saves it."""
    text = (run / "config.edn").read_text()
    processes = (
        ("coordinator", '"127.0.0.1:1"'),
        ("num-processes", "2"),
        ("process-id", "0"),
        ("steps-per-call", "10"),
    )
    for key, value in processes:
        text = text.replace(f":{key} nil", f":{key} {value}")
    (run / "config.edn").write_text(text)


def format_99(run: Path) -> None:
    with np.load(run / "best.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["format"] = np.array(99)
    with open(run / "best.npz", "wb") as handle:
        np.savez(handle, **arrays)


def _params(*sizes: int) -> dict[str, dict[str, np.ndarray]]:
    """Random parameters of a dense network with layer widths ``sizes`` (linear-1, linear-2, ...)."""
    rng = np.random.default_rng(3)
    return {
        f"linear-{i}": {
            "w": rng.normal(size=(n_in, n_out)).astype(np.float32),
            "b": np.zeros(n_out, np.float32),
        }
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes), start=1)
    }


def params_of_other_network(run: Path) -> None:
    """best.npz keeps the run's description (29-20-10-2) but holds the parameters of a 29-7-10-2 network."""
    description = checkpoint.load(run / "best.npz").description
    checkpoint.save(run / "best.npz", description, _params(29, 7, 10, 2))


def other_network(inputs: int, hidden: int) -> Callable[[Path], None]:
    """best.npz replaced by a consistent checkpoint of a different network (inputs-hidden-2)."""
    description = edn.loads(
        f"[{{:type :input :id :input-1 :size {inputs}}} {{:type :linear->relu :id :linear-1 :size {hidden}}} "
        "{:type :linear :id :linear-2 :size 2} {:type :softmax :id :softmax-1}]"
    )

    def damage(run: Path) -> None:
        checkpoint.save(run / "best.npz", description, _params(inputs, hidden, 2))

    return damage


def remove(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


# ------------------------------------------------------------------------------------------------ table


@dataclass(frozen=True)
class Case:
    """``argv`` and ``needles`` may use {work} (the case's input files), {runs} (run-dir of train cases,
    absent), {run} (the copy of the finished run), {data_dir} (precious data folder), {log} (precious
    log) and {missing} (a path that does not exist)."""

    id: str
    argv: tuple[str, ...]
    needles: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None


def config_case(id: str, text: str, *needles: str) -> Case:
    return Case(id, ("train", "{work}/bad.edn", "run-dir={runs}"), ("{work}/bad.edn", *needles), {"bad.edn": text})


def layer_case(id: str, text: str, *needles: str) -> Case:
    # network and optimizer complaints name the layer and key, but fpml does not prefix them with the file
    return Case(id, ("train", "{work}/bad.edn", "run-dir={runs}"), needles, {"bad.edn": text})


def override_case(id: str, override: str, *needles: str) -> Case:
    return Case(id, ("train", "fraud", override, "run-dir={runs}"), needles)


def data_case(id: str, text: str | None, *needles: str) -> Case:
    files = {} if text is None else {"data.csv": text}
    argv = ("train", "fraud", "data={work}/data.csv", *DATA_SMALL, "run-dir={runs}")
    return Case(id, argv, ("{work}/data.csv", *needles), files)


def chunked_data_case(id: str, text: str, *needles: str) -> Case:
    """A data case read 10 rows at a time into memory-mapped files (in the case's own folder)."""
    argv = ("train", "fraud", "data={work}/data.csv", "data-dir={work}", "chunk-rows=10", "steps-per-call=10")
    return Case(id, (*argv, *DATA_SMALL, "run-dir={runs}"), ("{work}/data.csv", *needles), {"data.csv": text})


def predict_case(id: str, *needles: str, input_csv: str | None = None, out: str = "{work}/out.csv", **kw) -> Case:
    files = {"in.csv": input_csv} if input_csv is not None else {}
    return Case(id, ("predict", "{run}", "{work}/in.csv", "-o", out), needles, files, **kw)


def dropout(keep: str) -> str:
    return edn_config(net(f"{{:type :dropout :keep {keep}}}", "{:type :linear :size 2}"))


CASES = [
    # ------------------------------------------------------------------ EDN config files
    config_case(
        "edn-syntax-unbalanced",
        "{:network [{:type :input :size 29}\n           {:type :linear :size 2]}\n",
        "EDN syntax error",
        "line 2",
        "column 34",
        "']'",
    ),
    config_case(
        "edn-syntax-key-without-value",
        "{:network [{:type :input :size 29}\n           {:type :linear :size}]}\n",
        "EDN syntax error",
        "line 2",
        "column 12",
        "key without a value",
    ),
    layer_case(
        "unknown-layer-type",
        edn_config(net("{:type :lineer :size 2}")),
        "network layer 1",
        ":lineer",
        "did you mean 'linear'",
        "known types: ",
    ),
    layer_case(
        "unknown-layer-key",
        edn_config(net("{:type :linear :size 2 :inti :he}")),
        "network layer 1 (linear)",
        ":inti",
        "did you mean 'init'",
        "allowed: :id, :init",
    ),
    layer_case(
        "size-is-a-string",
        edn_config(net('{:type :linear :size "20"}')),
        "network layer 1 (linear)",
        ":size must be a positive integer",
        'got "20"',
    ),
    layer_case(
        "keep-is-a-keyword",
        dropout(":high"),
        "network layer 1 (dropout)",
        ":keep must be a number in (0, 1]",
        "got :high",
    ),
    layer_case(
        "negative-size",
        edn_config(net("{:type :linear :size -3}")),
        "network layer 1 (linear)",
        ":size must be a positive integer",
        "got -3",
    ),
    layer_case(
        "zero-input-size",
        edn_config("[{:type :input :size 0} {:type :linear :size 2}]"),
        "network layer 0 (input)",
        ":size must be a positive integer",
        "got 0",
    ),
    layer_case("keep-0", dropout("0"), "network layer 1 (dropout)", ":keep must be a number in (0, 1]", "got 0"),
    layer_case("keep-1.5", dropout("1.5"), "network layer 1 (dropout)", ":keep must be a number in (0, 1]", "got 1.5"),
    layer_case(
        "keep-negative", dropout("-0.1"), "network layer 1 (dropout)", ":keep must be a number in (0, 1]", "got -0.1"
    ),
    layer_case(
        "missing-input-layer",
        edn_config("[{:type :linear :size 20} {:type :linear :size 2}]"),
        "network",
        "first layer must be {:type :input :size N}",
    ),
    layer_case(
        "duplicate-ids",
        edn_config(net("{:type :linear->relu :size 4 :id :hidden}", "{:type :linear :size 2 :id :hidden}")),
        "duplicate layer id :hidden",
    ),
    layer_case(
        "parents-names-unknown-id",
        edn_config(
            "[{:type :input :size 29 :id :x} {:type :linear->relu :size 4 :id :h} "
            "{:type :linear :size 2 :parents [:nosuch]}]"
        ),
        "network layer 2",
        ":parents",
        ":nosuch",
    ),
    layer_case(
        "unknown-optimizer",
        edn_config(optimizer="{:name :adma :learning-rate 1e-3}"),
        ":optimizer",
        ":adma",
        "did you mean 'adam'",
        "allowed: ",
        "sgd",
    ),
    layer_case(
        "unknown-optimizer-argument",
        edn_config(optimizer="{:name :adam :learnig-rate 1e-3}"),
        ":optimizer :adam",
        ":learnig-rate",
        "did you mean 'learning-rate'",
        "allowed: :b1, :b2",
    ),
    layer_case(
        "batch-larger-than-data",
        edn_config(synthetic="{:rows 300 :frauds 10 :seed 2}", test_size="100", batch_size="500", epoch_size="1000"),
        ":batch-size 500",
        "200 training rows",
    ),
    config_case(
        "epoch-size-not-multiple-of-batch",
        edn_config(epoch_size="1030"),
        ":epoch-size 1030",
        ":batch-size 50",
        "try 1000",
    ),
    config_case(
        "epoch-size-odd-for-two-classes",
        edn_config(epoch_size="75", batch_size="25"),
        ":epoch-size 75",
        "2 classes",
        ":stream :class-balanced",
        "try 50",
    ),
    config_case(
        "epochs-beyond-int32-positions",
        edn_config(epoch_count="30000", epoch_size="200000", batch_size="100"),
        ":epoch-count 30000",
        ":epoch-size 200000",
        "3,000,000,000 rows per stream",
        "2^31",
    ),
    Case(
        "network-input-vs-data",
        ("train", "fraud", *SMALL, "drop-columns=[]", "run-dir={runs}"),
        (":network's input layer has :size 29", "30 feature columns (Time, V1, V2, ...)", ":drop-columns"),
    ),
    Case(
        "network-outputs-vs-classes",
        ("train", "fraud", *SMALL, "network.4.size=3", "epoch-size=1800", "run-dir={runs}"),  # 3 | 1800
        (":network gives 3 outputs", "2 classes", ":size 2"),
    ),
    Case(
        "run-dir-is-a-file",
        ("train", "fraud", *SMALL, "run-dir={log}"),
        (":run-dir {log}", "cannot create the run folder"),
    ),
    Case(
        "test-set-without-frauds",
        ("train", "fraud", "data={work}/data.csv", *DATA_SMALL, "test-size=0.1", "run-dir={runs}"),
        ("the test set (4 rows) holds no rows of class 1", "class 1: 4", "make :test-size larger"),
        {"data.csv": fraud_csv()},
    ),
    Case(
        "training-set-without-frauds",
        ("train", "fraud", "data={work}/data.csv", *DATA_SMALL, "test-size=0.9", "run-dir={runs}"),
        ("the training set (4 rows) holds no rows of class 1", "make :test-size (and :validation-size) smaller"),
        {"data.csv": fraud_csv()},
    ),
    Case(
        "validation-set-without-frauds",
        ("train", "fraud", "data={work}/data.csv", *DATA_SMALL, "test-size=0.5", "validation-size=2", "run-dir={runs}"),
        ("the validation set (2 rows) holds no rows of class 1", "make :validation-size larger"),
        {"data.csv": fraud_csv()},
    ),
    Case(
        "validation-size-too-large",
        ("train", "fraud", *SMALL, "validation-size=5000", "run-dir={runs}"),
        (":validation-size 5000 leaves no rows",),
    ),
    override_case("unknown-edn-tag", "seed=#foo {}", "an unknown #tag"),
    override_case("layer-nil", "network.1=nil", "network layer 1: expected a map", "got nil"),
    Case(
        "data-log1p-negative",
        ("train", "fraud", "data={work}/data.csv", *DATA_SMALL, 'log1p-columns=["Amount"]', "run-dir={runs}"),
        (
            "{work}/data.csv: column Amount, data row 6 (line 7 of the file): value '-3.5' is negative",
            "(:log1p-columns)",
        ),
        {"data.csv": fraud_csv(cells={(6, "Amount"): "-3.5"})},
    ),
    Case(
        "data-log1p-negative-in-a-later-chunk",
        ("train", "fraud", "data={work}/data.csv", "data-dir={work}", "chunk-rows=10", "steps-per-call=10")
        + (*DATA_SMALL, 'log1p-columns=["Amount"]', "run-dir={runs}"),
        ("{work}/data.csv: column Amount, data row 16 (line 17 of the file): value '-3.5' is negative",),
        {"data.csv": fraud_csv(cells={(16, "Amount"): "-3.5"})},
    ),
    override_case(
        "schedule-missing-argument",
        "optimizer.learning-rate={:schedule :cosine-decay :init-value 1e-3}",
        "schedule :cosine-decay: missing :decay-steps",
    ),
    override_case("data-keyword-typo", "data=:synthtic", ":data must be :kaggle", "did you mean 'synthetic'"),
    override_case("threshold-keyword-typo", "threshold=:tun", ":threshold must be", "did you mean 'tune'"),
    Case(
        "devices-more-than-the-machine-has",
        ("train", "fraud", *SMALL, "devices=3", "run-dir={runs}"),
        (":devices 3 asked for", "xla_force_host_platform_device_count=3"),
    ),
    override_case("devices-keyword-typo", "devices=:al", ":devices must be", "did you mean 'all'"),
    override_case("seed-not-an-integer", "seed=1.5", "override 'seed=1.5': :seed must be an integer in 0..4294967295"),
    override_case("seed-over-32-bits", "seed=4294967296", ":seed must be an integer in 0..4294967295 (a 32-bit seed)"),
    override_case("learning-rate-nan", "optimizer.learning-rate=##NaN", ":learning-rate must be a positive number"),
    override_case("label-transformed", 'log1p-columns=["Class"]', "names the label column 'Class'"),
    override_case("epochs-alias", "epochs=3", "unknown key :epochs (did you mean 'epoch-count'?)"),
    override_case("epoch-size-below-batch", "epoch-size=50", ":epoch-size 50", "try 100"),
    override_case("steps-per-call-not-dividing", "steps-per-call=7", ":steps-per-call 7", "2000 steps", "try 8"),
    Case("config-name-typo", ("train", "fruad"), ("'fruad'", "did you mean 'fraud'", KNOWN_CONFIGS)),
    config_case("config-not-a-map", "[{:type :input :size 29}]\n", "must be an EDN map", "got [{:type :input"),
    config_case(
        "unknown-top-level-key",
        edn_config(epoch_cont="3"),
        "unknown key :epoch-cont",
        "did you mean 'epoch-count'",
        "allowed: :augment",
    ),
    # ------------------------------------------------------------------ command-line overrides
    override_case(
        "override-unknown-nested-key",
        "optimizer.nosuch.x=1",
        "'optimizer.nosuch.x=1'",
        "no key :nosuch",
        ":learning-rate, :name",
    ),
    override_case("override-index-out-of-range", "network.99.size=3", "'network.99.size=3'", "'99'", "6-element"),
    override_case("override-key-typo", "epoch-cont=3", "'epoch-cont=3'", ":epoch-cont", "did you mean 'epoch-count'"),
    override_case("override-unclosed-vector", "epoch-count=[1", "epoch-count", "'[1'", "EDN syntax error", "column"),
    override_case("override-unclosed-map", "epoch-count={:a", "epoch-count", "'{:a'", "EDN syntax error", "column"),
    override_case("override-threshold-2", "threshold=2", ":threshold", "got 2", "(0, 1)", ":tune"),
    override_case("override-chunk-rows-without-steps-per-call", "chunk-rows=1000", ":chunk-rows", ":steps-per-call"),
    override_case("override-coordinator-no-port", "coordinator=hostA", ":coordinator", "hostA", '"HOST:PORT" or :auto'),
    override_case("override-processes-without-coordinator", "num-processes=2", ":num-processes", ":coordinator"),
    Case(
        "override-process-id-out-of-range",
        ("train", "fraud", 'coordinator="127.0.0.1:9"', "num-processes=2", "process-id=2", "run-dir={runs}"),
        (":process-id 2", "0..1"),
    ),
    override_case(
        "override-stream-typo",
        "stream=:balanced",
        ":stream",
        ":balanced",
        "class-balanced, shuffled",
        "did you mean 'class-balanced'",
    ),
    # ------------------------------------------------------------------ data files
    data_case("data-missing-file", None, "does not exist"),
    data_case("data-empty-file", "", "empty"),
    data_case("data-header-only", fraud_csv(0), "header but no rows"),
    data_case(
        "data-wrong-header",
        fraud_csv(header=[c.lower() for c in CREDITCARD_COLUMNS]),
        "missing column(s) Time, V1",
        "unexpected column(s) time, v1",
        "expected the fraud schema Time, V1..V28, Amount, Class",
    ),
    data_case(
        "data-missing-column",
        fraud_csv(columns=NO_V3),
        "missing column(s) V3;",
        "expected the fraud schema Time, V1..V28, Amount, Class",
    ),
    data_case("data-extra-column", fraud_csv(columns=(*CREDITCARD_COLUMNS, "Extra")), "unexpected column(s) Extra;"),
    data_case(
        "data-non-numeric-cell",
        fraud_csv(cells={(7, "V3"): "abc"}),
        "column V3",
        "data row 7",
        "'abc'",
        "not a finite number",
    ),
    data_case("data-nan", fraud_csv(cells={(3, "V5"): "NaN"}), "column V5", "data row 3", "'NaN'", "finite number"),
    data_case("data-inf", fraud_csv(cells={(12, "Amount"): "inf"}), "column Amount", "data row 12", "'inf'"),
    data_case(
        "data-duplicate-column",
        fraud_csv(header=[*CREDITCARD_COLUMNS[:2], "V1", *CREDITCARD_COLUMNS[3:]]),
        "column(s) V1 appear more than once",
    ),
    data_case("data-huge", fraud_csv(cells={(5, "V2"): "1e39"}), "column V2", "data row 5", "'1e39'", "float32"),
    data_case("data-label-2", fraud_csv(cells={(9, "Class"): "2"}), "column Class", "data row 9", "'2'", "0 or 1"),
    data_case("data-single-class", fraud_csv(label="0"), "column Class", "only class 0", "both 0 and 1"),
    chunked_data_case(
        "data-chunked-bad-cell-in-third-chunk",
        fraud_csv(cells={(27, "V3"): "abc"}),
        "column V3",
        "data row 27",
        "'abc'",
    ),
    chunked_data_case("data-chunked-single-class", fraud_csv(label="0"), "column Class", "only class 0"),
    Case(
        "data-kaggle-wrong-sha256",
        ("train", "fraud", "data=:kaggle", "data-dir={data_dir}", *DATA_SMALL, "run-dir={runs}"),
        ("{data_dir}/creditcard.csv", "sha256", "not the Kaggle creditcard.csv"),
    ),
    # ------------------------------------------------------------------ checkpoints: evaluate / predict
    Case("evaluate-truncated-best", ("evaluate", "{run}"), ("{run}/best.npz", "damaged"), prepare=truncate("best.npz")),
    Case(
        "evaluate-format-99",
        ("evaluate", "{run}"),
        ("{run}/best.npz", "format version 99", "reads version 1"),
        prepare=format_99,
    ),
    Case(
        "evaluate-params-do-not-fit-description",
        ("evaluate", "{run}"),
        ("{run}/best.npz", "linear-1/b", "(7,)", "(20,)"),
        prepare=params_of_other_network,
    ),
    predict_case(
        "predict-log1p-negative",
        "{work}/in.csv: column Amount, data row 3 (line 4 of the file): value '-2' is negative",
        input_csv=fraud_csv(cells={(3, "Amount"): "-2"}),
        prepare=trained_on_log_amounts,
    ),
    predict_case(
        "predict-checkpoint-of-other-network-5-inputs",
        "{run}/best.npz",
        input_csv=fraud_csv(),
        prepare=other_network(5, 3),
    ),
    predict_case(
        "predict-checkpoint-of-other-network-same-shape",
        "{run}/best.npz",
        input_csv=fraud_csv(),
        prepare=other_network(29, 3),
    ),
    Case(
        "evaluate-missing-inference-json",
        ("evaluate", "{run}"),
        ("{run}", "inference.json"),
        prepare=remove("inference.json"),
    ),
    predict_case("predict-output-is-a-folder", "{work}", "is a folder", input_csv=fraud_csv(), out="{work}"),
    predict_case(
        "predict-output-inside-a-file",
        "predict: cannot write {work}/in.csv/out.csv:",
        input_csv=fraud_csv(),
        out="{work}/in.csv/out.csv",
    ),
    Case(
        "predict-input-is-a-folder",
        ("predict", "{run}", "{work}", "-o", "{work}/out.csv"),
        ("data file {work} is a folder, not a CSV file",),
    ),
    predict_case(
        "predict-output-is-its-input", "{work}/in.csv", "is the input file", input_csv=fraud_csv(), out="{work}/in.csv"
    ),
    Case(
        "predict-run-dir-does-not-exist",
        ("predict", "{missing}", "{work}/in.csv", "-o", "{work}/out.csv"),
        ("{missing}", "does not exist"),
        {"in.csv": fraud_csv()},
    ),
    predict_case(
        "predict-input-missing-feature",
        "{work}/in.csv",
        "missing column(s) V3;",
        "scoring needs V1",
        input_csv=fraud_csv(columns=NO_V3),
    ),
    predict_case(
        "predict-non-numeric-cell-keeps-existing-output",
        "{work}/in.csv",
        "column V3",
        "data row 7",
        "'abc'",
        input_csv=fraud_csv(cells={(7, "V3"): "abc"}),
        out="{log}",
    ),
    # ------------------------------------------------------------------ resume
    Case("resume-other-key", ("resume", "{run}", "seed=3"), ("only epoch-count may change", "'seed'")),
    Case(
        "resume-finished-run",
        ("resume", "{run}"),
        ("{run}", "already ran 1 epochs (:epoch-count 1)", "epoch-count=N with N > 1"),
    ),
    Case(
        "resume-one-process-run-on-two",
        (
            "resume",
            "{run}",
            "epoch-count=3",
            "--coordinator",
            "127.0.0.1:1",
            "--num-processes",
            "2",
            "--process-id",
            "0",
        ),
        ("{run}", "trained in one process", "without --coordinator"),
    ),
    Case(
        "resume-two-process-run-on-one",
        ("resume", "{run}", "epoch-count=3"),
        ("{run}", "trained on several processes", "--coordinator HOST:PORT --num-processes N --process-id I"),
        prepare=started_on_two_processes,
    ),
    Case(
        "resume-truncated-last",
        ("resume", "{run}", "epoch-count=3"),
        ("{run}/last.npz", "damaged"),
        prepare=truncate("last.npz"),
    ),
]


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fpml) -> Path:
    """One finished tiny run (1 epoch), trained once for the module; cases work on copies of it."""
    root = tmp_path_factory.mktemp("finished")
    out = fpml("train", "fraud", *SMALL, "epoch-count=1", f"run-dir={root}", "--quiet")
    assert out.returncode == 0, out.stderr
    (run,) = root.iterdir()
    return run


def lay_out(tmp_path: Path, finished_run: Path) -> dict[str, Path]:
    """The precious state and the places a case refers to."""
    precious = tmp_path / "precious"
    run = precious / "run"
    shutil.copytree(finished_run, run)
    data_dir = precious / "data"
    data_dir.mkdir()
    (data_dir / "creditcard.csv").write_text(fraud_csv())  # not the Kaggle file: its sha256 differs
    with open(data_dir / "creditcard.npz", "wb") as handle:
        np.savez(handle, sha256=np.array("0" * 64), columns=np.array(CREDITCARD_COLUMNS), values=np.zeros((2, 31)))
    log = precious / "train.log"
    log.write_text("epoch 1: loss 0.25\nepoch 2: loss 0.125\n")
    work = tmp_path / "work"
    work.mkdir()
    return {
        "work": work,
        "runs": tmp_path / "runs",
        "run": run,
        "data_dir": data_dir,
        "log": log,
        "missing": tmp_path / "no-such-run",
    }


def snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256) and folder under ``root``."""
    state = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        state[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return state


def repo_state() -> set[tuple[str, int, int]]:
    """Names, sizes and mtimes under the repository's runs/, data/ and configs/ (no hashing: data/ is big)."""
    state = set()
    for name in REPO_DIRS:
        for path in (ROOT / name).rglob("*"):
            info = path.stat()
            state.add((str(path.relative_to(ROOT)), info.st_size, info.st_mtime_ns))
    return state


def fill(text: str, places: Mapping[str, Path]) -> str:
    for name, path in places.items():
        text = text.replace("{" + name + "}", str(path))
    return text


# -------------------------------------------------------------------------------------------------- tests


def test_the_table_is_large_and_ids_are_unique():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clean_line_and_damages_nothing(case: Case, tmp_path: Path, finished_run: Path, fpml):
    places = lay_out(tmp_path, finished_run)
    for name, text in case.files.items():
        (places["work"] / name).write_text(text)
    if case.prepare is not None:
        case.prepare(places["run"])
    before, repo_before = snapshot(tmp_path), repo_state()

    out = fpml(*(fill(a, places) for a in case.argv))

    shown = f"exit {out.returncode}\nstderr:\n{out.stderr[-3000:]}\nstdout:\n{out.stdout[-1500:]}"
    assert "Traceback" not in out.stdout + out.stderr, shown
    assert out.returncode == 2, shown
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fpml: error: "), shown
    for needle in (fill(n, places) for n in case.needles):
        assert needle in lines[0], f"{needle!r} not in the message\n{shown}"
    after = snapshot(tmp_path)
    assert after == before, {
        "changed": sorted(k for k in before if k in after and after[k] != before[k]),
        "removed": sorted(set(before) - set(after)),
        "new": sorted(set(after) - set(before)),
    }
    assert repo_state() == repo_before, "the repository's runs/, data/ or configs/ changed"
    assert not os.path.exists(places["runs"]), "a failing train command created its run-dir"
