"""The credit-card fraud pipeline of the Cortex post, as a chain of fpml's pure functions.

    CSV (the real Kaggle file, or the synthetic generator) -> log1p columns -> drop Time
    -> features + one-hot labels -> stratified split (test, then validation) -> standardize
    -> augment the positives -> class-balanced stream -> train_n with an F-beta test function -> best network

Run it with ``make train CONFIG=fraud`` or ``fpml train fraud [key=value ...]``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import toolz
from rich.console import Console

from fpml import edn, losses, metrics, network, optim, progress, train
from fpml.data import kaggle, stream, synthetic, transforms
from fpml.data.dataset import Dataset
from fpml.errors import ConfigError
from fpml.files import write_text

INIT_KEY, TRAIN_KEY, AUGMENT_KEY = 2, 3, 4
VALIDATION_SPLIT = 1


class Prepared(NamedTuple):
    """Training, validation (or ``None``) and test data, and a sentence saying where the data came from."""

    train: Dataset
    validation: Dataset | None
    test: Dataset
    source: str


def load_frame(cfg: Mapping, *, quiet: bool = False):
    """The raw table named by ``:data``: the Kaggle file, a CSV path, or the synthetic generator."""
    if cfg["data"] == "synthetic":
        s = {"rows": synthetic.ROWS, "frauds": synthetic.FRAUDS, "seed": 0, **cfg["synthetic"]}
        frame = synthetic.generate(seed=s["seed"], rows=s["rows"], frauds=s["frauds"])
        return frame, f"synthetic data (fpml.data.synthetic, seed {s['seed']}, {s['rows']} rows, {s['frauds']} frauds)"
    source = kaggle.obtain(cfg["data"], Path(cfg["data-dir"]), quiet=quiet)
    return kaggle.load_frame(source, cfg["label"]), source.description


def prepare(cfg: Mapping, *, quiet: bool = False) -> Prepared:
    """Load -> log1p -> drop columns -> one-hot -> split -> (standardize) -> (augment the training positives)."""
    frame, source = load_frame(cfg, quiet=quiet)
    data = toolz.pipe(
        frame,
        transforms.log1p_columns(cfg["log1p-columns"]),
        transforms.drop_columns(cfg["drop-columns"]),
        transforms.to_dataset(cfg["label"]),
    )
    split_key = jax.random.key(int(cfg["split-seed"]))
    train_part, test_part = transforms.split(split_key, cfg["test-size"], data)
    validation = None
    if cfg["validation-size"] is not None:
        train_part, validation = transforms.split(
            jax.random.fold_in(split_key, VALIDATION_SPLIT), cfg["validation-size"], train_part
        )
    if cfg["standardize"]:
        scale = transforms.standardize(transforms.fit_standardizer(train_part))
        train_part, test_part = scale(train_part), scale(test_part)
        validation = validation if validation is None else scale(validation)
    if cfg["augment"] is not None:
        a = {"target-share": 0.5, "scale": 5000.0, "scale-rule": "euclidean-norm", **cfg["augment"]}
        key = jax.random.fold_in(jax.random.key(int(cfg["seed"])), AUGMENT_KEY)
        train_part = transforms.augment_positives(key, a["target-share"], a["scale"], a["scale-rule"], train_part)
    return Prepared(train_part, validation, test_part, source)


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/NAME-YYYYmmdd-HHMMSS`` (with a suffix if that exists already), created."""
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


class RunResult(NamedTuple):
    """What a run produced: its folder, the training result, the test report at the threshold in force."""

    run_dir: Path
    result: train.TrainResult
    test_report: metrics.Report
    test_probs: np.ndarray
    data: Prepared


def run(
    cfg: Mapping, name: str, *, quiet: bool = False, plain: bool | None = None, console: Console | None = None
) -> RunResult:
    """Train the configured network on the fraud data; save the best network and the log in a run folder."""
    console = console or Console()
    key = jax.random.key(int(cfg["seed"]))
    net = network.build(cfg["network"])
    loss = losses.resolve_loss(cfg["loss"], net)
    if cfg["class-weights"] is not None:
        loss = losses.weighted(loss, cfg["class-weights"])
    optimizer = optim.optimizer(cfg["optimizer"])
    data = prepare(cfg, quiet=quiet)
    if cfg["batch-size"] > len(data.train):
        raise ConfigError(f":batch-size {cfg['batch-size']} is larger than the {len(data.train)} training rows")
    run_dir = new_run_dir(cfg["run-dir"], name)
    write_text(run_dir / "config.edn", edn.pretty(cfg) + "\n")
    write_text(run_dir / "data.txt", data.source + "\n")
    judge = data.validation if data.validation is not None else data.test
    tune = cfg["threshold"] == "tune"
    if not quiet:
        devices = jax.device_count()
        console.print(
            f"[bold]fpml[/] {name}: {data.source}\nbackend {jax.default_backend()} ({devices} device"
            f"{'s' if devices > 1 else ''}); train {data.train!r}; test {data.test!r}; epochs judged on the "
            + ("validation set " + repr(data.validation) if data.validation is not None else "test set (as the post)"),
            highlight=False,
        )
        console.print(network.describe(net), highlight=False)
    train_stream = (
        stream.class_balanced(data.train.labels)
        if cfg["stream"] == "class-balanced"
        else stream.shuffled(len(data.train))
    )
    test_fn = train.classification_test_fn(net, judge, threshold=None if tune else cfg["threshold"], beta=cfg["beta"])
    with progress.epoch_display(
        cfg["epoch-count"], cfg["epoch-size"], quiet=quiet, plain=plain, console=console
    ) as on_epoch:
        result = train.train_n(
            net,
            optimizer,
            loss,
            data.train,
            train_stream,
            test_fn,
            key=jax.random.fold_in(key, TRAIN_KEY),
            epoch_count=cfg["epoch-count"],
            epoch_size=cfg["epoch-size"],
            batch_size=cfg["batch-size"],
            state=train.init_state(net, optimizer, jax.random.fold_in(key, INIT_KEY)),
            run_dir=run_dir,
            config=cfg,
            on_epoch=on_epoch,
        )
    threshold = result.best.metrics["threshold"]
    probs = np.asarray(jax.jit(net.apply)(result.params, data.test.x))[:, -1]
    report = metrics.report(data.test.labels, probs, threshold, cfg["beta"])
    write_text(run_dir / "test.json", progress.json_line({"data": data.source, **report.as_dict()}))
    if not quiet:
        console.print(summary(cfg, result, report, data, run_dir))
    return RunResult(run_dir, result, report, probs, data)


def summary(cfg: Mapping, result: train.TrainResult, report: metrics.Report, data: Prepared, run_dir: Path):
    """The end-of-run table: best epoch, test-set metrics at the threshold in force, where it was saved."""
    chosen = "tuned on the validation set" if cfg["threshold"] == "tune" else "from the config"
    return progress.summary_table(
        f"best network: epoch {result.best.epoch + 1} of {cfg['epoch-count']}; test set",
        {
            "data": data.source,
            "test set": f"{len(data.test)} rows, {int(data.test.labels.sum())} positives",
            "threshold": f"P(fraud) >= {report.threshold:.4g} ({chosen})",
            "precision": f"{report.precision:.4f}",
            "recall": f"{report.recall:.4f}",
            f"F{cfg['beta']:g}": f"{report.f_beta:.4f}",
            "AUPRC / AUROC": f"{report.auprc:.4f} / {report.auroc:.4f}",
            "confusion (tn fp / fn tp)": str(report.confusion.tolist()),
            "training time": f"{sum(r.seconds for r in result.history):.1f} s (compile and evaluation included)",
            "saved": f"{run_dir / 'best.npz'} (log: {run_dir / 'log.jsonl'})",
        },
    )
