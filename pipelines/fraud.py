"""The credit-card fraud pipeline of the Cortex post, as a chain of fpml's pure functions.

    CSV (or the synthetic generator) -> drop Time -> features + one-hot labels -> stratified split
    -> (standardize) -> class-balanced stream -> train_n with an F-beta test function -> best network

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
from fpml.data import io, stream, synthetic, transforms
from fpml.data.dataset import Dataset
from fpml.files import write_text

SPLIT_KEY, INIT_KEY, TRAIN_KEY = 1, 2, 3


class Prepared(NamedTuple):
    """Training and test data, and a sentence saying where the data came from."""

    train: Dataset
    test: Dataset
    source: str


def load_frame(cfg: Mapping):
    """The raw table named by ``:data``: the synthetic generator, or a CSV with the fraud schema."""
    if cfg["data"] == "synthetic":
        s = {"rows": synthetic.ROWS, "frauds": synthetic.FRAUDS, "seed": 0, **cfg["synthetic"]}
        frame = synthetic.generate(seed=s["seed"], rows=s["rows"], frauds=s["frauds"])
        return frame, f"synthetic data (fpml.data.synthetic, seed {s['seed']}, {s['rows']} rows, {s['frauds']} frauds)"
    return io.read_csv(cfg["data"], label=cfg["label"]), f"CSV file {cfg['data']}"


def prepare(cfg: Mapping, key: jax.Array) -> Prepared:
    """Load, drop columns, one-hot, split (and standardize with training statistics)."""
    frame, source = load_frame(cfg)
    data = toolz.pipe(frame, transforms.drop_columns(cfg["drop-columns"]), transforms.to_dataset(cfg["label"]))
    train_part, test_part = transforms.split(key, cfg["test-size"], data)
    if cfg["standardize"]:
        stats = transforms.fit_standardizer(train_part)
        train_part, test_part = (transforms.standardize(stats, d) for d in (train_part, test_part))
    return Prepared(train_part, test_part, source)


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
    run_dir: Path
    result: train.TrainResult
    test_report: metrics.Report
    source: str


def run(
    cfg: Mapping, name: str, *, quiet: bool = False, plain: bool | None = None, console: Console | None = None
) -> RunResult:
    """Train the configured network on the fraud data; save the best network and the log in a run folder."""
    console = console or Console()
    key = jax.random.key(int(cfg["seed"]))
    net = network.build(cfg["network"])
    loss = losses.resolve_loss(cfg["loss"], net)
    optimizer = optim.optimizer(cfg["optimizer"])
    data = prepare(cfg, jax.random.fold_in(key, SPLIT_KEY))
    if cfg["batch-size"] > len(data.train):
        from fpml.errors import ConfigError

        raise ConfigError(f":batch-size {cfg['batch-size']} is larger than the {len(data.train)} training rows")
    run_dir = new_run_dir(cfg["run-dir"], name)
    write_text(run_dir / "config.edn", edn.pretty(cfg) + "\n")
    write_text(run_dir / "data.txt", data.source + "\n")
    if not quiet:
        console.print(
            f"[bold]fpml[/] {name}: {data.source}; backend {jax.default_backend()} "
            f"({jax.device_count()} device{'s' if jax.device_count() > 1 else ''})",
            highlight=False,
        )
        console.print(f"train {data.train!r}, test {data.test!r}", highlight=False)
        console.print(network.describe(net), highlight=False)
    train_stream = (
        stream.class_balanced(data.train.labels)
        if cfg["stream"] == "class-balanced"
        else stream.shuffled(len(data.train))
    )
    test_fn = train.classification_test_fn(net, data.test, threshold=cfg["threshold"], beta=cfg["beta"])
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
    probs = np.asarray(jax.jit(net.apply)(result.params, data.test.x))[:, -1]
    report = metrics.report(data.test.labels, probs, cfg["threshold"], cfg["beta"])
    if not quiet:
        console.print(
            progress.summary_table(
                f"best network: epoch {result.best.epoch + 1} of {cfg['epoch-count']}",
                {
                    "data": data.source,
                    "test set": f"{len(data.test)} rows, {int(data.test.labels.sum())} positives",
                    "threshold": f"P(fraud) >= {cfg['threshold']}",
                    "precision": f"{report.precision:.4f}",
                    "recall": f"{report.recall:.4f}",
                    f"F{cfg['beta']:g}": f"{report.f_beta:.4f}",
                    "AUPRC / AUROC": f"{report.auprc:.4f} / {report.auroc:.4f}",
                    "confusion (tn fp / fn tp)": str(report.confusion.tolist()),
                    "training time": f"{sum(r.seconds for r in result.history):.1f} s (compile included)",
                    "saved": f"{run_dir / 'best.npz'} (log: {run_dir / 'log.jsonl'})",
                },
            )
        )
    return RunResult(run_dir, result, report, data.source)
