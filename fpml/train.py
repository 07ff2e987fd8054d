"""Training: a whole epoch is one jit-compiled XLA program (``lax.scan`` over its batches).

``train_n`` is Cortex's ``train-n``: run ``epoch_count`` epochs from an infinite stream, call a test
function after each with the new parameters and the best epoch so far, keep (and save) the best network,
and return it -- not the last one.

Batches are always full: the stream is infinite, so an epoch is exactly ``epoch_size / batch_size``
full batches (``epoch_size`` must be a multiple of ``batch_size``). Evaluation runs on the whole test
array in one call; a memory-mapped test set is scored in blocks of one shape, the last padded with zero
rows whose scores are dropped.

Keys: ``key`` is split by ``fold_in`` into a stream key and a noise key. The stream shuffles class ``c``
afresh on every pass ``p`` through it, with the permutation keyed by ``fold_in(fold_in(stream_key, c), p)``;
epoch ``e`` takes the next ``epoch_size / classes`` positions of each class's sequence
(:mod:`fpml.data.stream`). Step ``s`` of epoch ``e`` gets the dropout key ``fold_in(fold_in(noise_key, e), s)``.
Same key, same bytes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from fpml import checkpoint, distributed, losses, metrics
from fpml.data import storage
from fpml.data.dataset import Dataset
from fpml.data.stream import Stream, epoch_indices
from fpml.errors import CheckpointError, ConfigError, TrainingDiverged, TrainingInterrupted, nearest_divisor
from fpml.files import uninterrupted, write_text
from fpml.network import Network, Params

STREAM_KEY, NOISE_KEY = 0, 1


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree, donated to each epoch call)."""

    params: Params
    opt_state: optax.OptState


class EpochRecord(NamedTuple):
    """One epoch's outcome: mean training loss, test metrics, wall-clock seconds, whether it is the best.

    ``epoch`` is the epoch's index (from 0: the number its keys are folded with); what is printed, plotted
    and written to ``log.jsonl`` counts from 1.
    """

    epoch: int
    loss: float
    metrics: Mapping[str, Any]
    seconds: float
    best: bool

    def as_json(self) -> str:
        record = {"epoch": self.epoch + 1, "loss": self.loss, "seconds": round(self.seconds, 4), "best": self.best}
        return json.dumps({k: json_value(v) for k, v in {**record, **self.metrics}.items()}, allow_nan=False)


def json_value(value: Any) -> Any:
    """``value`` as JSON holds it: numpy scalars as Python numbers, NaN and infinities (an AUROC with one
    class, say) as ``null``, which JSON has and ``NaN`` is not."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


class TestResult(NamedTuple):
    """What a test function returns: is this epoch the best so far, and its metrics."""

    best: bool
    metrics: Mapping[str, Any]


#: ``test_fn(params, best_so_far) -> TestResult``; ``best_so_far`` is ``None`` after the first epoch.
#: ``params`` are the epoch's own buffers, which the next epoch donates: copy them (``jax.device_get``)
#: to keep them. A test function that finds the network's outputs non-finite raises ``FloatingPointError``,
#: and training stops as when the loss diverges.
TestFn = Callable[[Params, EpochRecord | None], TestResult]


class TrainResult(NamedTuple):
    """The best parameters and their epoch, every epoch's record, and the final state (to resume from)."""

    params: Params
    best: EpochRecord
    history: tuple[EpochRecord, ...]
    state: TrainState

    def __repr__(self) -> str:
        keys = ("precision", "recall", "f-beta", "auprc")
        lines = [f"{'epoch':>5}  {'loss':>8}  " + "  ".join(f"{k:>9}" for k in keys) + "  best"]
        for r in self.history:
            values = (r.metrics.get(k) for k in keys)  # None: undefined (null in log.jsonl)
            cells = "  ".join(f"{float('nan') if v is None else v:9.4f}" for v in values)
            lines.append(f"{r.epoch + 1:>5}  {r.loss:8.4f}  {cells}  {'*' if r.best else ''}")
        best = f"epoch {self.best.epoch + 1}" if self.best else "none"
        return f"TrainResult(best: {best} of {len(self.history)})\n" + "\n".join(lines)


def init_state(network: Network, optimizer: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh parameters from ``key`` and the optimizer's initial state."""
    params = network.init(key)
    return TrainState(params, optimizer.init(params))


def _by_process(devices: Sequence[jax.Device]) -> list[list[jax.Device]]:
    """``devices`` grouped by the process they belong to, in process order."""
    return [[d for d in devices if d.process_index == p] for p in sorted({d.process_index for d in devices})]


def usable_devices(devices: Sequence[jax.Device] | None = None) -> int:
    """How many of ``devices`` (default: every device JAX sees) a data mesh can use: all of them, or with
    several processes as many from each as the process with the fewest has, since each process feeds an
    equal part of every batch to its own devices."""
    groups = _by_process(jax.devices() if devices is None else devices)
    return len(groups) * min(len(group) for group in groups)


def data_mesh(devices: int) -> Mesh:
    """A 1-D mesh of ``devices`` devices along the ``data`` axis (data parallelism): the first ones, or with
    several processes (``jax.distributed``) the first ``devices / processes`` of each process, since every
    process feeds an equal part of each batch to its own devices."""
    available, processes = jax.devices(), jax.process_count()
    if processes == 1:
        if devices > len(available):
            raise ConfigError(
                f":devices {devices} asked for, JAX sees {len(available)} {available[0].platform} device(s); on "
                f"CPU, XLA_FLAGS=--xla_force_host_platform_device_count={devices} set before JAX starts makes "
                f"{devices}"
            )
        return jax.make_mesh((devices,), ("data",), (AxisType.Auto,), devices=available[:devices])
    if devices % processes:
        raise ConfigError(
            f":devices {devices} does not split over the {processes} processes (each feeds the same number of "
            f"devices): give a multiple of {processes}, or :all"
        )
    own = _by_process(available)
    per_process, fewest = devices // processes, min(range(processes), key=lambda p: len(own[p]))
    if per_process > len(own[fewest]):
        raise ConfigError(
            f":devices {devices} needs {per_process} devices in each of the {processes} processes, and process "
            f"{fewest} has {len(own[fewest])}"
        )
    chosen = [d for devices_of_one in own for d in devices_of_one[:per_process]]
    return jax.make_mesh((devices,), ("data",), (AxisType.Auto,), devices=chosen)


def _step_fn(network: Network, loss: losses.Loss, optimizer: optax.GradientTransformation, mesh: Mesh | None):
    """``step(state, xb, yb, key) -> (state, loss)``: one optimizer step on one batch (sharded on a mesh)."""
    if mesh is None:
        shard = lambda a: a  # noqa: E731
    else:
        shard = partial(jax.lax.with_sharding_constraint, shardings=NamedSharding(mesh, PartitionSpec("data")))
    grad_fn = jax.value_and_grad(losses.objective(network, loss))

    def step(state: TrainState, xb: jax.Array, yb: jax.Array, key: jax.Array) -> tuple[TrainState, jax.Array]:
        value, grads = grad_fn(state.params, shard(xb), shard(yb), key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt_state), value

    return step


def check_sizes(epoch_size: int, batch_size: int, mesh: Mesh | None) -> None:
    """An epoch is whole batches, and a batch splits evenly over the devices of ``mesh``."""
    if epoch_size % batch_size:
        raise ConfigError(f":epoch-size {epoch_size} is not a multiple of :batch-size {batch_size}")
    if mesh is not None and batch_size % mesh.size:
        fits = nearest_divisor(epoch_size, batch_size, step=mesh.size)
        hint = f" (try :batch-size {fits})" if fits else ""
        raise ConfigError(f":batch-size {batch_size} is not divisible by the {mesh.size} devices of the mesh{hint}")


def _noise_key(key: jax.Array, epoch_index: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(key, NOISE_KEY), epoch_index)


def _step_keys(noise: jax.Array, steps: jax.Array) -> jax.Array:
    """``fold_in(noise, s)`` for every step ``s``, in one vectorised call before the scan (cheaper than a
    threefry call inside every step)."""
    return jax.vmap(jax.random.fold_in, (None, 0))(noise, steps)


def make_epoch(
    network: Network,
    loss: losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    epoch_size: int,
    batch_size: int,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """``epoch(state, x, y, stream, key, epoch) -> (state, per-step losses)`` as one jitted XLA program.

    ``x``/``y`` are the whole training arrays (on device); batches are gathered inside the scan from the
    stream's indices. ``epoch`` is traced, so every epoch reuses one compilation. ``state`` is donated.

    With a ``mesh`` (see :func:`data_mesh`) every batch is sharded along its ``data`` axis while the
    parameters and optimizer state stay replicated; XLA inserts the gradient all-reduce. Place the
    arguments with :func:`replicate` first.
    """
    check_sizes(epoch_size, batch_size, mesh)
    steps = epoch_size // batch_size
    step = _step_fn(network, loss, optimizer, mesh)

    def epoch(state: TrainState, x, y, stream: Stream, key: jax.Array, epoch_index: jax.Array):
        rows = epoch_indices(stream, jax.random.fold_in(key, STREAM_KEY), epoch_index, epoch_size)
        noise = _noise_key(key, epoch_index)

        def body(state: TrainState, inputs):
            step_key, batch = inputs
            return step(state, x[batch], y[batch], step_key)

        return jax.lax.scan(body, state, (_step_keys(noise, jnp.arange(steps)), rows.reshape(steps, batch_size)))

    return jax.jit(epoch, donate_argnums=0)


def make_chunk(
    network: Network,
    loss: losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """``chunk(state, xb, yb, key, epoch, first_step) -> (state, per-step losses)``: K steps in one jitted call.

    For data that does not fit on the device: ``xb``/``yb`` hold the K batches (K x batch x features),
    gathered on the host. Steps use the same keys as :func:`make_epoch`'s, so an epoch fed chunk by chunk
    trains exactly as the one-program epoch does. Compiled once per chunk shape.
    """
    step = _step_fn(network, loss, optimizer, mesh)

    def chunk(state: TrainState, xb, yb, key: jax.Array, epoch_index: jax.Array, first_step: jax.Array):
        noise = _noise_key(key, epoch_index)

        def body(state: TrainState, inputs):
            step_key, xs, ys = inputs
            return step(state, xs, ys, step_key)

        return jax.lax.scan(body, state, (_step_keys(noise, first_step + jnp.arange(xb.shape[0])), xb, yb))

    return jax.jit(chunk, donate_argnums=0)


def process_stream_key(key: jax.Array, process_index: int, process_count: int) -> jax.Array:
    """The stream key of one process: the run's, folded with the process index when there are several."""
    return distributed.process_key(jax.random.fold_in(key, STREAM_KEY), process_index, process_count)


def chunked_epoch(
    network: Network,
    loss: losses.Loss,
    optimizer: optax.GradientTransformation,
    *,
    epoch_size: int,
    batch_size: int,
    steps_per_call: int,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """The epoch of :func:`make_epoch` fed from host memory, ``steps_per_call`` batches per compiled call.

    ``x``/``y`` stay on the host (numpy); only the stream's indices are computed on the device. While the
    device runs one chunk (dispatch is asynchronous), the host gathers the next.

    With several processes (``jax.distributed``), ``x``/``y``/``stream`` are this process's shard: each
    process draws ``batch_size / processes`` rows of every batch from its own stream, and the parts are
    joined into global batches sharded over the ``mesh`` (which must span every process's devices).
    """
    check_sizes(epoch_size, batch_size, mesh)
    steps = epoch_size // batch_size
    if steps % steps_per_call:
        raise ConfigError(f":steps-per-call {steps_per_call} does not divide the {steps} steps of an epoch")
    processes, index = jax.process_count(), jax.process_index()
    if processes > 1 and (mesh is None or batch_size % processes):
        raise ConfigError(
            f"training on {processes} processes needs a mesh over their devices and a :batch-size "
            f"divisible by {processes}"
        )
    local_batch = batch_size // processes
    chunk = make_chunk(network, loss, optimizer, mesh=mesh)
    indices = jax.jit(
        lambda s, key, e: epoch_indices(s, process_stream_key(key, index, processes), e, steps * local_batch)
    )

    def place(local: np.ndarray) -> jax.Array:  # a chunk of batches, each batch split over the mesh's devices
        if mesh is None:
            return jax.device_put(local)
        sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
        if processes == 1:
            return jax.device_put(local, sharding)
        return jax.make_array_from_process_local_data(sharding, local, (local.shape[0], batch_size, *local.shape[2:]))

    def epoch(state: TrainState, x: np.ndarray, y: np.ndarray, stream: Stream, key: jax.Array, epoch_index):
        rows = np.asarray(indices(stream, key, epoch_index)).reshape(steps // steps_per_call, steps_per_call, -1)
        step_losses = []
        for c, part in enumerate(rows):
            state, values = chunk(
                state, place(x[part]), place(y[part]), key, epoch_index, jnp.int32(c * steps_per_call)
            )
            step_losses.append(values)
        return state, jnp.concatenate(step_losses)

    return epoch


def replicate(tree: Any, mesh: Mesh | None, *, copy: bool = False) -> Any:
    """``tree`` on the default device, or replicated on every device of ``mesh``; with ``copy``, in new
    buffers even where ``tree`` is there already (for a state the epoch will donate)."""
    alias = False if copy else None
    where = None if mesh is None else NamedSharding(mesh, PartitionSpec())
    return jax.device_put(tree, where, may_alias=alias)


def apply_padded(apply: Callable[[Params, Any], jax.Array], params: Params, x: np.ndarray, rows: int) -> np.ndarray:
    """``apply(params, x)`` on ``x`` padded with zero rows to ``rows`` rows, then cut back: every block of data
    scored this way has one shape, so a jitted ``apply`` compiles once."""
    return np.asarray(apply(params, np.pad(x, ((0, rows - len(x)), (0, 0)))))[: len(x)]


def probabilities(network: Network, data: Dataset) -> Callable[[Params], np.ndarray]:
    """``params -> P(positive class)`` for every row of ``data`` (the last output column).

    Data in memory goes to the device once; memory-mapped data is read block by block, the last block
    padded to the same shape so that the network compiles once.
    """
    predict = jax.jit(network.apply)
    if data.spill_dir is None:
        x = jax.device_put(data.x)
        return lambda params: np.asarray(predict(params, x))[:, -1]
    rows = min(storage.BLOCK_ROWS, len(data))

    def blockwise(params: Params) -> np.ndarray:
        blocks = storage.row_blocks(len(data), rows)
        return np.concatenate([apply_padded(predict, params, data.x[s], rows)[:, -1] for s in blocks])

    return blockwise


def classification_test_fn(
    network: Network, data: Dataset, *, threshold: float | None = 0.5, beta: float = 1.0
) -> TestFn:
    """Judge an epoch by F-beta on ``data`` at ``threshold`` on P(positive); best = higher than the best so far.

    ``threshold=None`` tunes it: each epoch is scored at the threshold that maximises its F-beta on
    ``data`` (recorded in the metrics) -- pass validation data then, never the test set.
    """
    if network.output_size > 2:
        raise ConfigError(
            f"classification_test_fn scores binary classifiers (P(positive) is the last output); the network "
            f"has {network.output_size} outputs"
        )
    predict, y_true = probabilities(network, data), data.labels

    def test_fn(params: Params, best: EpochRecord | None) -> TestResult:
        probs = predict(params)
        bad = int(np.count_nonzero(~np.isfinite(probs)))
        if bad:
            raise FloatingPointError(f"the network's outputs on the test data became NaN or infinite ({bad} rows)")
        at = threshold if threshold is not None else metrics.best_threshold(y_true, probs, beta)[0]
        report = metrics.report(y_true, probs, at, beta)
        return TestResult(best is None or report.f_beta > best.metrics["f-beta"], report.as_dict())

    return test_fn


def _all_finite(tree: Any) -> bool:
    return all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(tree))


def _first_bad_step(step_losses: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(step_losses))
    return int(bad[0]) if bad.size else None


def train_n(
    network: Network,
    optimizer: optax.GradientTransformation,
    loss: losses.Loss,
    train: Dataset,
    stream: Stream,
    test_fn: TestFn,
    *,
    key: jax.Array,
    epoch_count: int,
    epoch_size: int,
    batch_size: int,
    state: TrainState | None = None,
    previous: TrainResult | None = None,
    run_dir: str | Path | None = None,
    config: Mapping | None = None,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
    mesh: Mesh | None = None,
    steps_per_call: int | None = None,
) -> TrainResult:
    """Train until ``epoch_count`` epochs in all and return the best network by ``test_fn``.

    ``state`` starts a fresh run from given parameters; ``previous`` (a :class:`TrainResult`, e.g. from
    :func:`resume_from`) continues one: its final state, best epoch and history carry on, and because every
    key derives from the epoch number, the continued run is bit-identical to an uninterrupted one on CPU.

    ``steps_per_call`` keeps the training data on the host and feeds each epoch in chunks of that many
    steps (:func:`chunked_epoch`), for data that does not fit on the device; results are the same.

    With ``run_dir``, the best checkpoint (``best.npz``), the latest one (``last.npz``) and the per-epoch
    log (``log.jsonl``: one JSON object per epoch) are written there atomically after every epoch.
    ``on_epoch(record)`` is called after each epoch's files are written. A non-finite loss, non-finite
    parameters after an epoch, or non-finite test outputs raise :class:`TrainingDiverged` with the epoch
    (and the step, for the loss); Ctrl-C raises :class:`TrainingInterrupted` once the epoch's files and
    ``on_epoch`` are done. Either way what was saved stays, and the error's ``result`` is the run up to its
    last finished epoch (``previous=err.result`` continues it).
    """
    sizes = {"epoch_size": epoch_size, "batch_size": batch_size, "mesh": mesh}
    if steps_per_call is None:
        epoch_fn = make_epoch(network, loss, optimizer, **sizes)
    else:
        epoch_fn = chunked_epoch(network, loss, optimizer, steps_per_call=steps_per_call, **sizes)
    if previous is not None:
        state, history = previous.state, list(previous.history)
        best = previous.best
        best_state = TrainState(previous.params, None) if best is not None else None
    else:
        state = state if state is not None else init_state(network, optimizer, jax.random.fold_in(key, 2))
        history, best, best_state = [], None, None
    state = replicate(state, mesh, copy=True)  # the epochs donate it: never the caller's own arrays
    if steps_per_call is None:  # the data and the stream live on the device(s); else on the host, per process
        stream, x, y = replicate((stream, train.x, train.y), mesh)
    else:
        x, y = train.x, train.y
    writer = run_dir is not None and jax.process_index() == 0  # one process writes for all
    run_dir = Path(run_dir) if run_dir is not None else None
    epoch = len(history)

    last_state = previous.state if previous is not None else None  # after the last finished epoch

    def so_far() -> TrainResult | None:
        """The run up to its last finished epoch, for a stopped run's error (``previous=`` continues it)."""
        return TrainResult(best_state.params, best, tuple(history), last_state) if best_state else None

    def diverged(epoch: int, what: str, step: int | None = None, loss: float | None = None) -> TrainingDiverged:
        best_epoch = best.epoch if best else None
        return TrainingDiverged(
            epoch, what, step=step, loss=loss, best_epoch=best_epoch, run_dir=run_dir, result=so_far()
        )

    def finish(record: EpochRecord, host_state: TrainState, new_best: TrainState | None) -> None:
        with uninterrupted():  # Ctrl-C waits for the epoch's files, and for those on_epoch writes
            if writer:
                _save_epoch(run_dir, network, host_state, record, new_best, config, history)
            on_epoch(record)

    try:
        for epoch in range(len(history), epoch_count):
            started = time.perf_counter()
            state, step_losses = epoch_fn(state, x, y, stream, key, jnp.int32(epoch))
            step_losses = np.asarray(step_losses)
            host_state = jax.device_get(state)  # the next epoch donates ``state``: this copy is what is kept
            bad = _first_bad_step(step_losses)
            if bad is not None:
                raise diverged(epoch, f"loss became {step_losses[bad]}", step=bad, loss=float(step_losses[bad]))
            if not _all_finite(host_state.params):  # the last steps' updates, after their (finite) losses
                raise diverged(epoch, "the parameters became NaN or infinite (every step's loss was finite)")
            try:
                result = test_fn(host_state.params if jax.process_count() > 1 else state.params, best)
            except FloatingPointError as err:
                raise diverged(epoch, str(err)) from None
            seconds = time.perf_counter() - started
            record = EpochRecord(epoch, float(step_losses.mean()), dict(result.metrics), seconds, bool(result.best))
            with uninterrupted():  # the run so far (``so_far()``) is never half updated
                history.append(record)
                last_state = host_state
                if record.best:
                    best, best_state = record, host_state
            # a failed write on process 0 stops every process, not only process 0
            distributed.agreed(finish, record, host_state, best_state if record.best else None)
    except KeyboardInterrupt:
        raise TrainingInterrupted(epoch, best.epoch if best else None, run_dir, so_far()) from None
    return TrainResult(best_state.params if best_state else None, best, tuple(history), state)


def _save_epoch(
    run_dir: Path,
    network: Network,
    state: TrainState,
    record: EpochRecord,
    best_state: TrainState | None,
    config: Mapping | None,
    history: list[EpochRecord],
) -> None:
    def save(name: str, s: TrainState) -> None:
        checkpoint.save(
            run_dir / name,
            network.description,
            s.params,
            opt_state=s.opt_state,
            epoch=record.epoch,
            metrics={"loss": record.loss, **record.metrics},
            config=config,
        )

    # Ctrl-C waits until the epoch's files have all landed. A harder stop (kill, power) between two writes
    # leaves a folder resume_from still reads: the log first, then last.npz, then best.npz.
    with uninterrupted():
        write_text(run_dir / "log.jsonl", "".join(r.as_json() + "\n" for r in history))
        save("last.npz", state)
        if best_state is not None:
            save("best.npz", best_state)


def read_log(path: str | Path) -> tuple[EpochRecord, ...]:
    """The epoch records of a ``log.jsonl`` (epochs counted from 1; a log whose first epoch is 0, written
    before fpml counted them from 1, is read as such)."""
    entries = [json.loads(line) for line in Path(path).read_text().splitlines()]
    first = 1 if entries and entries[0]["epoch"] != 0 else 0
    records = []
    for entry in entries:
        epoch, loss, seconds, best = (entry.pop(k) for k in ("epoch", "loss", "seconds", "best"))
        records.append(EpochRecord(epoch - first, loss, entry, seconds, best))
    return tuple(records)


def resume_from(run_dir: str | Path, network: Network, optimizer: optax.GradientTransformation) -> TrainResult:
    """The state of an interrupted run, read from its folder, to pass to :func:`train_n` as ``previous``."""
    run_dir = Path(run_dir)
    last = checkpoint.check_params(checkpoint.load(run_dir / "last.npz"), network, str(run_dir / "last.npz"))
    history = tuple(r for r in read_log(run_dir / "log.jsonl") if r.epoch <= last.epoch)
    if len(history) != last.epoch + 1:
        raise CheckpointError(f"{run_dir}: log.jsonl holds {len(history)} epochs, last.npz is epoch {last.epoch + 1}")
    best_record = next((r for r in reversed(history) if r.best), None)
    if best_record is None:
        raise CheckpointError(f"{run_dir}: log.jsonl marks no epoch as the best")
    if best_record.epoch == last.epoch:  # the best is the last epoch (its best.npz may not have landed)
        best_params = last.params
    else:
        best = checkpoint.check_params(checkpoint.load(run_dir / "best.npz"), network, str(run_dir / "best.npz"))
        if best.epoch != best_record.epoch:
            raise CheckpointError(
                f"{run_dir}: best.npz is epoch {best.epoch + 1}, but log.jsonl's best epoch is {best_record.epoch + 1}"
            )
        best_params = best.params
    template = optimizer.init(jax.tree.map(jnp.asarray, last.params))
    state = TrainState(jax.tree.map(jnp.asarray, last.params), checkpoint.restore_opt_state(last, template))
    return TrainResult(best_params, best_record, history, state)
