"""The credit-card fraud pipeline of the Cortex post, as a chain of fpml's pure functions.

    CSV (the real Kaggle file, or the synthetic generator) -> log1p columns -> drop Time
    -> features + one-hot labels -> stratified split (test, then validation) -> standardize
    -> augment the positives -> class-balanced stream -> train_n with an F-beta test function -> best network

Run it with ``make train CONFIG=fraud`` or ``fpml train fraud [key=value ...]``.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import optax
import pandas as pd
import toolz
from rich.console import Console

from fpml import checkpoint, config, distributed, edn, losses, metrics, network, optim, plots, progress, train
from fpml.data import io, kaggle, storage, stream, synthetic, transforms
from fpml.data.dataset import Dataset, dataset
from fpml.errors import CheckpointError, ConfigError, DataError
from fpml.files import atomic_write, write_text

INIT_KEY, TRAIN_KEY, AUGMENT_KEY, OPTIMIZER_KEY = 2, 3, 4, 5
VALIDATION_SPLIT = 1


def build_optimizer(cfg: Mapping) -> optax.GradientTransformation:
    """The config's optimizer; one that draws noise (``:noisy-sgd``) is keyed by the run's ``:seed``."""
    return optim.optimizer(cfg["optimizer"], key=jax.random.fold_in(jax.random.key(int(cfg["seed"])), OPTIMIZER_KEY))


class Prepared(NamedTuple):
    """Training, validation (or ``None``) and test data, where the data came from, and the feature scaling."""

    train: Dataset
    validation: Dataset | None
    test: Dataset
    source: str
    standardizer: transforms.Standardizer | None


def load_frame(cfg: Mapping, *, quiet: bool = False) -> tuple[pd.DataFrame, str]:
    """The raw table named by ``:data`` (the Kaggle file, a CSV path, or the synthetic generator) and its source."""
    if cfg["data"] == "synthetic":
        s = config.filled(cfg["synthetic"], config.SYNTHETIC_KEYS)
        frame = synthetic.generate(seed=s["seed"], rows=s["rows"], frauds=s["frauds"])
        return frame, f"synthetic data (fpml.data.synthetic, seed {s['seed']}, {s['rows']} rows, {s['frauds']} frauds)"
    source = kaggle.obtain(cfg["data"], Path(cfg["data-dir"]), quiet=quiet)
    return kaggle.load_frame(source, cfg["label"], cfg["log1p-columns"]), source.description


def features(cfg: Mapping, frame: pd.DataFrame) -> Dataset:
    """The table -> log1p columns -> drop columns -> features and one-hot labels."""
    return toolz.pipe(
        frame,
        transforms.log1p_columns(cfg["log1p-columns"]),
        transforms.drop_columns(cfg["drop-columns"]),
        transforms.to_dataset(cfg["label"]),
    )


def load_data(cfg: Mapping, *, quiet: bool = False, part: tuple[int, int] = (0, 1)) -> tuple[Dataset, str]:
    """The table named by ``:data`` as features and labels, and where it came from.

    With ``:chunk-rows N`` the CSV is read N rows at a time, each chunk goes through :func:`features`,
    and the rows are kept in memory-mapped files in ``:data-dir`` (data larger than host memory).
    ``part=(index, count)`` reads only that part of the rows (process ``index`` of ``count``): a CSV's
    byte range (``fpml.data.io.part_bytes``), or a contiguous slice of the synthetic table.
    """
    chunk_rows, (index, count) = cfg["chunk-rows"], part
    if chunk_rows is None and count == 1:
        frame, source = load_frame(cfg, quiet=quiet)
        return features(cfg, frame), source
    if cfg["data"] == "synthetic":  # the generator is in memory; it is still fed through in chunks
        frame, source = load_frame(cfg, quiet=quiet)
        frame = frame.iloc[distributed.process_slice(len(frame), index, count)]
        frames = (frame.iloc[s] for s in storage.row_blocks(len(frame), chunk_rows or max(len(frame), 1)))
    else:
        found = kaggle.obtain(cfg["data"], Path(cfg["data-dir"]), quiet=quiet)
        frames = kaggle.load_chunks(found, chunk_rows, cfg["label"], part if count > 1 else None, cfg["log1p-columns"])
        source = found.description
    frames = iter(frames)
    first = next(frames, None)
    if count > 1 and (first is None or first.empty):
        raise DataError(f"process {index} of {count} found no rows in its part of {source}: too few rows for {count}")
    frames = frames if first is None else itertools.chain([first], frames)
    data = transforms.concatenate((features(cfg, f) for f in frames), None if chunk_rows is None else cfg["data-dir"])
    if chunk_rows is not None:
        source += f", read {chunk_rows} rows at a time into memory-mapped files"
    return data, source


def prepare(cfg: Mapping, *, quiet: bool = False) -> Prepared:
    """Load -> features -> split -> (standardize with training statistics) -> (augment the training positives).

    In a multi-process run (``jax.distributed``) each process reads and prepares only its own part of the
    rows (:func:`load_data`): it splits its part (its share of ``:test-size``/``:validation-size``, with
    the split key folded with its index), the standardizer and the augmentation use statistics merged over
    all processes, and the test and validation rows are gathered on every process to judge epochs. Its
    training rows are its shard of the training data.
    """
    part = (jax.process_index(), jax.process_count())
    data, source = distributed.agreed(load_data, cfg, quiet=quiet, part=part)  # local steps are agreed on
    per_process = distributed.all_rows(data.class_counts[None, :])  # rows of each class, per process
    if part[1] > 1:
        source += f"; {part[1]} processes, each reading its own part: {', '.join(map(str, per_process.sum(1)))} rows"
    split_key = jax.random.key(int(cfg["split-seed"]))
    train_part, test_part = _split_part(split_key, cfg["test-size"], data, per_process, part, "test-size")
    validation = None
    if cfg["validation-size"] is not None:
        key = jax.random.fold_in(split_key, VALIDATION_SPLIT)
        counts = distributed.all_rows(train_part.class_counts[None])  # per process and class
        train_part, validation = _split_part(key, cfg["validation-size"], train_part, counts, part, "validation-size")
    test_part, validation = _gathered(test_part), validation if validation is None else _gathered(validation)
    for held_out, key in ((test_part, "test-size"), (validation, "validation-size")):
        if held_out is not None and (held_out.class_counts == 0).any():
            raise DataError(
                f"the {key.split('-')[0]} set ({len(held_out)} rows) holds no rows of class "
                f"{int(np.flatnonzero(held_out.class_counts == 0)[0])} (the data: {_counts(per_process.sum(0))}); "
                f"it cannot judge a classifier: make :{key} larger"
            )
    trained = distributed.all_rows(train_part.class_counts[None])  # per process and class
    check_training_classes(trained, cfg["stream"] == "class-balanced", per_process.sum(0))
    stats = transforms.fit_standardizer(_all_moments(transforms.moments(train_part.x))) if cfg["standardize"] else None
    if stats is not None:
        scale = transforms.standardize(stats)
        train_part, test_part, validation = distributed.agreed(
            lambda: (scale(train_part), scale(test_part), validation if validation is None else scale(validation))
        )
    if cfg["augment"] is not None:
        a = config.filled(cfg["augment"], config.AUGMENT_KEYS)
        key = distributed.process_key(jax.random.fold_in(jax.random.key(int(cfg["seed"])), AUGMENT_KEY), *part)
        train_part = _augment_part(key, a, train_part, part, trained)
    return Prepared(train_part, validation, test_part, source, stats)


def check_training_classes(trained: np.ndarray, balanced: bool, data_counts: np.ndarray) -> None:
    """Every class must have training rows (``trained``: rows per process and class) and, for class-balanced
    batches, which each process draws from its own rows, rows in every process's part."""
    if (trained.sum(0) == 0).any():
        raise DataError(
            f"the training set ({int(trained.sum())} rows) holds no rows of class "
            f"{int(np.flatnonzero(trained.sum(0) == 0)[0])} (the data: {_counts(data_counts)}): "
            "make :test-size (and :validation-size) smaller"
        )
    if balanced and (trained == 0).any():
        process, label = (int(i) for i in np.argwhere(trained == 0)[0])
        raise DataError(
            f"process {process}'s part of the training rows holds no rows of class {label}, and each process "
            "draws its class-balanced batches from its own part: give every part rows of every class "
            "(shuffle the file's rows), or use fewer processes"
        )


def _split_part(
    key: jax.Array, size: int | float, data: Dataset, counts: np.ndarray, part: tuple[int, int], name: str
) -> tuple[Dataset, Dataset]:
    """This process's part of a stratified split of all processes' rows (``:test-size`` or
    ``:validation-size``), ``counts`` being every process's rows per class: each class's test rows are
    counted as one process would count them, then apportioned to the processes by their rows of it."""
    index, count = part
    if count == 1:
        return transforms.split(key, size, data, name)
    members = counts.sum(axis=0)
    wanted = transforms.stratified_counts(size, members, name)  # as one process takes them
    before, upto = counts[:index].sum(axis=0), counts[: index + 1].sum(axis=0)
    shares = [
        w * int(upto[c]) // m - w * int(before[c]) // m if m else 0
        for c, (w, m) in enumerate(zip(wanted, members.tolist(), strict=True))
    ]
    return distributed.agreed(transforms.split, distributed.process_key(key, *part), shares, data, name)


def _gathered(data: Dataset) -> Dataset:
    """Every process's rows of ``data``, on every process (in memory)."""
    if jax.process_count() == 1:
        return data
    return dataset(distributed.all_rows(data.x), distributed.all_rows(data.y), data.features)


def _all_moments(m: transforms.Moments) -> transforms.Moments:
    """The moments of every process's rows, merged in process order (``m`` itself in one process)."""
    parts = distributed.all_rows(np.concatenate([[m.count], m.mean, m.m2])[None, :])
    width = len(m.mean)
    merged = [transforms.Moments(int(p[0]), p[1 : 1 + width], p[1 + width :]) for p in parts]
    return merged[0] if len(merged) == 1 else toolz.reduce(transforms.merge_moments, merged)


def _augment_part(key: jax.Array, a: Mapping, data: Dataset, part: tuple[int, int], counts: np.ndarray) -> Dataset:
    """:func:`transforms.augment_positives` over all processes: planned with merged statistics, each process
    adding the copies of its own positives (every positive of every process copied equally often). ``counts``:
    every process's training rows per class."""
    if part[1] == 1:
        return transforms.augment_positives(key, a["target-share"], a["scale"], a["scale-rule"], data)
    positives = _all_moments(transforms.moments(data.x[data.labels == 1]))
    plan = transforms.plan_augmentation(
        a["target-share"], a["scale"], a["scale-rule"], int(counts[:, 0].sum()), positives
    )
    total, before, mine = int(counts[:, 1].sum()), int(counts[: part[0], 1].sum()), int(counts[part[0], 1])
    # new row j copies positive j % total; this process holds positives [before, before + mine)
    extra = plan.extra // total * mine + min(max(plan.extra % total - before, 0), mine)
    return distributed.agreed(transforms.add_noisy_positives, key, plan._replace(extra=extra), data)


def _counts(class_counts: np.ndarray) -> str:
    return ", ".join(f"class {c}: {n}" for c, n in enumerate(class_counts))


def check_fits(cfg: Mapping, data: Prepared) -> None:
    """The network must take the data's features and give one output per class; a batch must fit the data and
    split evenly over the devices."""
    net, features, classes = network.build(cfg["network"]), data.train.features, data.train.y.shape[1]
    if net.input_size != len(features):
        raise ConfigError(
            f":network's input layer has :size {net.input_size}, but the data has {len(features)} feature "
            f"columns ({', '.join(features[:3])}, ...): make it {len(features)} or change :drop-columns"
        )
    if net.output_size != classes and not (net.output_size == 1 and classes == 2 and net.head == "logistic"):
        raise ConfigError(
            f":network gives {net.output_size} outputs, but the data has {classes} classes: its last "
            f"linear layer needs :size {classes}" + (" (or 1 before a :logistic)" if classes == 2 else "")
        )
    train_rows = int(distributed.all_rows(np.array([len(data.train)])).sum())  # of every process
    if cfg["batch-size"] > train_rows:
        raise ConfigError(f":batch-size {cfg['batch-size']} is larger than the {train_rows} training rows")
    train.check_sizes(cfg["epoch-size"], cfg["batch-size"], _mesh(cfg))
    if jax.process_count() > 1 and cfg["steps-per-call"] is None:
        raise ConfigError("training on several processes feeds each epoch in chunks: set :steps-per-call")


def _mesh(cfg: Mapping) -> jax.sharding.Mesh | None:
    """The data mesh of ``:devices`` (``:auto``: one device alone, every usable device of every process in a
    multi-process run), or ``None`` for one device."""
    several, setting = jax.process_count() > 1, cfg["devices"]
    if setting == "auto":
        setting = "all" if several else 1
    devices = train.usable_devices() if setting == "all" else setting
    return train.data_mesh(devices) if devices > 1 or several else None


def new_run_dir(root: str | Path, name: str) -> Path:
    """``root/NAME-YYYYmmdd-HHMMSS`` (with a suffix if that exists already), created."""
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    try:
        path.mkdir(parents=True)
    except OSError as err:
        raise ConfigError(f":run-dir {root}: cannot create the run folder {path} ({err.strerror})") from None
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
    """Train the configured network on the fraud data; save the best network, log and plots in a run folder."""
    data = prepare(cfg, quiet=quiet)
    check_fits(cfg, data)
    run_dir = distributed.agreed(lambda: _start_run_dir(cfg, name, data) if jax.process_index() == 0 else None)
    if run_dir is None:  # a process other than 0: only process 0 writes and talks
        return _train(cfg, name, data, None, None, quiet=True, plain=plain, console=console)
    return _train(cfg, name, data, run_dir, None, quiet=quiet, plain=plain, console=console)


def _start_run_dir(cfg: Mapping, name: str, data: Prepared) -> Path:
    """A new run folder holding the config and where the data came from."""
    run_dir = new_run_dir(cfg["run-dir"], name)
    write_text(run_dir / "config.edn", edn.pretty(_with_absolute_paths(cfg)) + "\n")
    write_text(run_dir / "data.txt", data.source + "\n")
    if cfg["data"] not in config.DATA_SOURCES:  # a CSV of the user's: evaluate checks it is still the same
        csv = Path(cfg["data"]).resolve()
        write_text(run_dir / DATA_SHA256, f"{kaggle.sha256_of(csv)}  {csv}\n")  # as sha256sum writes it
    return run_dir


#: In a run folder trained on a CSV path: the file's sha256 (``sha256sum -c`` reads it).
DATA_SHA256 = "data.sha256"


def check_data_unchanged(run_dir: Path, cfg: Mapping, doing: str) -> None:
    """The CSV that ``cfg`` (the run's config) names must be the file the run trained on: ``evaluate`` and
    ``resume`` rebuild the run's splits from it by row position. Runs without a ``data.sha256`` (the
    generator, the verified Kaggle file, or made before fpml wrote one) are not checked."""
    stamp = Path(run_dir) / DATA_SHA256
    if cfg["data"] in config.DATA_SOURCES or not stamp.is_file():
        return
    recorded = next(iter(stamp.read_text().split()), "")
    if not re.fullmatch(r"[0-9a-f]{64}", recorded):
        raise CheckpointError(f"{stamp} is damaged: it holds no sha256")
    csv = Path(cfg["data"])
    if not csv.is_file() or kaggle.sha256_of(csv) != recorded:
        hint = "score a CSV with --data instead" if doing == "evaluate" else "it cannot be resumed on other data"
        raise DataError(
            f"{doing}: {csv} is not the file {run_dir} trained on (its sha256 differs from {DATA_SHA256}'s, or it "
            f"is gone), so the run's splits cannot be rebuilt from it; {hint}"
        )


def _with_absolute_paths(cfg: Mapping) -> Mapping:
    """``cfg`` with :data (a CSV path) and :data-dir absolute, so a run folder is usable from any folder."""
    data = cfg["data"] if cfg["data"] in config.DATA_SOURCES else str(Path(cfg["data"]).resolve())
    return cfg.set("data", data).set("data-dir", str(Path(cfg["data-dir"]).resolve()))


def resume(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    quiet: bool = False,
    plain: bool | None = None,
    console: Console | None = None,
) -> RunResult:
    """Continue an interrupted run in its folder (``epoch-count=N`` may extend it); bit-identical on CPU."""
    run_dir = Path(run_dir)
    cfg = resume_config(run_dir, overrides)
    if (cfg["coordinator"] is None) != (jax.process_count() == 1):
        raise ConfigError(
            f"resume: {run_dir} trained on "
            + ("one process" if cfg["coordinator"] is None else "several processes (jax.distributed)")
            + f", and this is {jax.process_count()} process(es); resume it the way it was started"
        )
    net, optimizer = network.build(cfg["network"]), build_optimizer(cfg)
    previous = distributed.agreed(train.resume_from, run_dir, net, optimizer)  # every process reads the folder
    if len(previous.history) >= cfg["epoch-count"]:
        raise ConfigError(
            f"resume: {run_dir} already ran {len(previous.history)} epochs (:epoch-count {cfg['epoch-count']}); "
            f"pass epoch-count=N with N > {len(previous.history)} to train further"
        )
    distributed.agreed(check_data_unchanged, run_dir, cfg, "resume")
    data = prepare(cfg, quiet=quiet)
    check_fits(cfg, data)
    writer = jax.process_index() == 0
    distributed.agreed(lambda: write_text(run_dir / "config.edn", edn.pretty(cfg) + "\n") if writer else None)
    if not writer:  # only process 0 writes and talks
        return _train(cfg, run_dir.name, data, None, previous, quiet=True, plain=plain, console=console)
    return _train(cfg, run_dir.name, data, run_dir, previous, quiet=quiet, plain=plain, console=console)


#: Config keys that say where a run executes rather than what it trains: a resume may set them.
PLACEMENT_KEYS = ("coordinator", "num-processes", "process-id")
#: Keys a resume may set without changing the batches: the backend, the devices, the CPU cores and how long
#: processes wait to join (results then equal the straight run's to float tolerance, as data parallelism
#: does, not bit for bit).
HARDWARE_KEYS = ("platform", "devices", "cpu-cores", "join-timeout")


def resume_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> Mapping:
    """The config to resume ``run_dir`` with: its own, plus ``epoch-count``, the hardware (``platform``, from
    ``--device``; ``devices``; ``cpu-cores``; ``join-timeout``) and the process placement.

    A run started on several processes resumes on several (each with its ``process-id``), one started on
    one process on one: the data shards and streams depend on it.
    """
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"resume: run folder {run_dir} does not exist")
    keys = [k.partition("=")[0] for k in overrides]
    for key in keys:
        if key not in ("epoch-count", *HARDWARE_KEYS, *PLACEMENT_KEYS):
            raise ConfigError(
                f"resume: only epoch-count may change when resuming a run (and where it runs: "
                f"{', '.join((*HARDWARE_KEYS, *PLACEMENT_KEYS))}), not {key!r}"
            )
    saved = config.load(str(Path(run_dir) / "config.edn"))
    placed = any(k in PLACEMENT_KEYS for k in keys)
    if saved["coordinator"] is not None and not placed:
        raise ConfigError(
            f"resume: {run_dir} trained on several processes (jax.distributed); resume it on them: run "
            "fpml resume RUN --coordinator HOST:PORT --num-processes N --process-id I on each (or --coordinator auto)"
        )
    if saved["coordinator"] is None and placed:
        raise ConfigError(f"resume: {run_dir} trained in one process; resume it without --coordinator")
    cleared = [f"{k}=nil" for k in PLACEMENT_KEYS] if placed else []  # this start's placement, not the first's
    return config.load(str(Path(run_dir) / "config.edn"), [*cleared, *overrides])


def _train(
    cfg: Mapping,
    name: str,
    data: Prepared,
    run_dir: Path,
    previous: train.TrainResult | None,
    *,
    quiet: bool,
    plain: bool | None,
    console: Console | None,
) -> RunResult:
    console = console or progress.output_console()
    key = jax.random.key(int(cfg["seed"]))
    net = network.build(cfg["network"])
    loss = losses.resolve_loss(cfg["loss"], net)
    if cfg["class-weights"] is not None:
        loss = losses.weighted(loss, cfg["class-weights"])
    optimizer = build_optimizer(cfg)
    judge = data.validation if data.validation is not None else data.test
    tune = cfg["threshold"] == "tune"
    mesh = _mesh(cfg)
    if not quiet:
        used = ", ".join(str(d) for d in (jax.devices()[:1] if mesh is None else mesh.devices.flat))
        judged = f"validation set {data.validation!r}" if data.validation is not None else "test set (as the post)"
        resuming = f"; resuming after epoch {len(previous.history)}" if previous else ""
        console.print(
            f"[bold]fpml[/] {name}: {data.source}\nbackend {jax.default_backend()}: training on {used}; "
            f"train {data.train!r}; test {data.test!r}; epochs judged on the {judged}{resuming}",
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
        cfg["epoch-count"],
        cfg["epoch-size"],
        quiet=quiet,
        plain=plain,
        console=console,
        done=len(previous.history) if previous else 0,
    ) as show:

        def record_inference(record: train.EpochRecord | None) -> None:
            if record is not None and record.best and run_dir is not None:  # the best network is usable at once
                record_json = inference_record(cfg, data, record.metrics["threshold"])
                write_text(run_dir / "inference.json", json.dumps(record_json, indent=1) + "\n")

        def on_epoch(record: train.EpochRecord) -> None:
            record_inference(record)
            show(record)

        record_inference(previous.best if previous else None)  # a hard stop may have come before it was written

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
            state=None if previous else train.init_state(net, optimizer, jax.random.fold_in(key, INIT_KEY)),
            previous=previous,
            run_dir=run_dir,
            config=cfg,
            on_epoch=on_epoch,
            mesh=mesh,
            steps_per_call=cfg["steps-per-call"],
        )
    threshold = result.best.metrics["threshold"]
    probs = train.probabilities(net, data.test)(result.params)
    report = metrics.report(data.test.labels, probs, threshold, cfg["beta"])
    if run_dir is None:  # a process other than 0 of a multi-process run
        return RunResult(run_dir, result, report, probs, data)
    write_text(run_dir / "test.json", progress.json_line({"data": data.source, **report.as_dict()}))
    plots.training_curves(result.history, run_dir / "training.png")
    plots.pr_curve(data.test.labels, probs, threshold, run_dir / "precision-recall.png")
    plots.confusion(report.confusion, run_dir / "confusion.png")
    if not quiet:
        console.print(summary(cfg, result, report, data, run_dir))
    return RunResult(run_dir, result, report, probs, data)


def inference_record(cfg: Mapping, data: Prepared, threshold: float) -> dict:
    """What ``evaluate`` and ``predict`` need to treat new rows as the training rows were treated."""
    stats = data.standardizer
    return {
        "features": list(data.train.features),
        "label": cfg["label"],
        "log1p-columns": list(cfg["log1p-columns"]),
        "drop-columns": list(cfg["drop-columns"]),
        "mean": None if stats is None else stats.mean.tolist(),
        "std": None if stats is None else stats.std.tolist(),
        "threshold": threshold,
    }


class Model(NamedTuple):
    """A trained run, loaded for inference: network, best parameters, preprocessing and threshold."""

    network: network.Network
    params: dict
    inference: dict
    config: Mapping


def load_model(run_dir: str | Path) -> Model:
    """The best network of a run folder with what is needed to apply it to new rows."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist")
    if not (run_dir / "inference.json").is_file():
        raise CheckpointError(f"{run_dir} is not an fpml run folder with a finished epoch (no inference.json)")
    ckpt = checkpoint.load(run_dir / "best.npz")
    net = network.build(ckpt.description)
    checkpoint.check_params(ckpt, net, str(run_dir / "best.npz"))
    try:
        inference = json.loads((run_dir / "inference.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{run_dir}/inference.json cannot be read: {err}") from None
    cfg = config.load(str(run_dir / "config.edn"))
    if edn.dumps(net.description) != edn.dumps(cfg["network"]):
        raise CheckpointError(
            f"{run_dir / 'best.npz'} holds a different network than {run_dir / 'config.edn'} describes; "
            "was the checkpoint replaced?"
        )
    _check_inference(inference, run_dir / "inference.json")
    if net.input_size != len(inference["features"]):
        raise CheckpointError(
            f"{run_dir / 'best.npz'}: the network takes {net.input_size} inputs, inference.json lists "
            f"{len(inference['features'])} features"
        )
    return Model(net, ckpt.params, inference, cfg)


def _check_inference(record: object, path: Path) -> None:
    """``record`` must be what :func:`inference_record` writes; else a :class:`CheckpointError` naming ``path``."""

    def names(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    def numbers(value: object, count: int) -> bool:
        ok = isinstance(value, list) and len(value) == count
        return ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)

    if not isinstance(record, dict):
        raise CheckpointError(f"{path} is damaged: expected a JSON object, got {type(record).__name__}")
    features = record.get("features")
    checks = {
        "features": names(features),
        "label": isinstance(record.get("label"), str),
        "log1p-columns": names(record.get("log1p-columns")),
        "drop-columns": names(record.get("drop-columns")),
        "mean": record.get("mean") is None or numbers(record["mean"], len(features or [])),
        "std": record.get("std") is None or numbers(record["std"], len(features or [])),
        "threshold": type(record.get("threshold")) in (int, float) and 0 <= record["threshold"] <= 1,
    }
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise CheckpointError(f"{path} is damaged: {', '.join(repr(k) for k in bad)} missing or malformed")


def score(model: Model, frame: pd.DataFrame) -> np.ndarray:
    """P(class) per row of ``frame`` (rows x classes; ``frame`` holds at least the run's feature columns, raw
    as in the CSV it trained on): what ``predict`` writes, from Python. The predicted class is
    ``score(model, frame)[:, -1] >= model.inference["threshold"]``.
    """
    return np.asarray(model.network.apply(model.params, _rows(model, frame)))


def _rows(model: Model, frame) -> np.ndarray:
    """Feature matrix of new rows, preprocessed as in training."""
    info = model.inference
    frame = io.has_columns(frame, "the rows", list(dict.fromkeys([*info["features"], *info["log1p-columns"]])))
    frame = transforms.log1p_columns(info["log1p-columns"], frame)
    x = frame[info["features"]].to_numpy(np.float32)  # as training's to_dataset does, before standardizing
    if info["mean"] is None:
        return x
    return transforms.standardized(transforms.Standardizer(np.asarray(info["mean"]), np.asarray(info["std"])), x)


#: Rows read, scored and written at a time by :func:`evaluate` on a CSV and :func:`predict`.
SCORING_CHUNK_ROWS = 100_000


def _scored(model: Model, frames: Iterable[pd.DataFrame], chunk_rows: int) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """``(chunk, P(class) per row)`` for each chunk; chunks are padded to ``chunk_rows`` rows (one compilation)."""
    apply = jax.jit(model.network.apply)
    for frame in frames:
        yield frame, train.apply_padded(apply, model.params, _rows(model, frame), chunk_rows)


def evaluate(
    run_dir: str | Path, data_path: str | None = None, *, chunk_rows: int = SCORING_CHUNK_ROWS
) -> tuple[metrics.Report, str]:
    """Test-set metrics of a run's best network at its threshold: on the run's own test split, or on a CSV
    (read ``chunk_rows`` rows at a time)."""
    model = load_model(run_dir)
    threshold = model.inference["threshold"]
    if data_path is None:
        if model.config["coordinator"] is not None:  # its test split is the union of every process's part
            raise ConfigError(
                f"evaluate: {run_dir} trained on several processes, whose test split one process cannot "
                f"rebuild; its test-set metrics are in {Path(run_dir) / 'test.json'}, or pass --data CSV"
            )
        check_data_unchanged(Path(run_dir), model.config, "evaluate")
        data = prepare(model.config, quiet=True)
        probs = train.probabilities(model.network, data.test)(model.params)
        labels, what = data.test.labels, f"the run's test set ({data.source})"
    else:
        source, info = kaggle.obtain(data_path), model.inference
        label = info["label"]
        columns = list(dict.fromkeys([*info["features"], *info["log1p-columns"], label]))
        frames = io.read_csv_chunks(
            source.path,
            chunk_rows,
            columns,
            label,
            ignore_others=True,
            non_negative=info["log1p-columns"],
            both_classes=False,  # a file of one class scores too (AUROC is then undefined: NaN)
        )
        chunks = _scored(model, frames, chunk_rows)
        pairs = [(frame[label].to_numpy(), scores[:, -1]) for frame, scores in chunks]
        labels, probs = (np.concatenate(column) for column in zip(*pairs, strict=True))
        what = source.description
    return metrics.report(labels, probs, threshold, model.config["beta"]), what


def predict(
    run_dir: str | Path, input_csv: str | Path, output_csv: str | Path, *, chunk_rows: int = SCORING_CHUNK_ROWS
) -> Path:
    """Write P(class) per row and the predicted label at the run's threshold (columns ``P(Class=0)``,
    ``P(Class=1)``, ``predicted Class`` for a label column named Class) for every row of ``input_csv``.

    The file is read, scored and written ``chunk_rows`` rows at a time, so it may be larger than memory;
    the output appears atomically at the end.
    """
    if Path(output_csv).is_dir():
        raise DataError(f"predict: the output {output_csv} is a folder; name the CSV file to write")
    if Path(output_csv).exists() and Path(output_csv).resolve() == Path(input_csv).resolve():
        raise DataError(f"predict: the output {output_csv} is the input file; write the predictions elsewhere")
    model = load_model(run_dir)
    info = model.inference
    needed = list(dict.fromkeys([*info["features"], *info["log1p-columns"]]))
    label = info["label"]
    try:
        with atomic_write(output_csv, "w") as handle:
            frames = io.read_feature_chunks(input_csv, needed, chunk_rows, info["log1p-columns"])
            for i, (_, probs) in enumerate(_scored(model, frames, chunk_rows)):
                classes = range(probs.shape[1]) if probs.shape[1] > 1 else [1]  # a logistic head: P(class 1)
                out = pd.DataFrame({f"P({label}={k})": probs[:, j] for j, k in enumerate(classes)})
                out[f"predicted {label}"] = metrics.label(probs[:, -1], info["threshold"])
                out.to_csv(handle, index=False, header=i == 0)
    except OSError as err:  # reading the input raises DataError: this is the output's folder or disk
        raise DataError(f"predict: cannot write {output_csv}: {err.strerror or err}") from None
    return Path(output_csv)


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
