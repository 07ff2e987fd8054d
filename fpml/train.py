"""Training: a whole epoch is one jit-compiled XLA program (``lax.scan`` over its batches).

``train_n`` is Cortex's ``train-n``: run ``epoch_count`` epochs from an infinite stream, call a test
function after each with the new parameters and the best epoch so far, keep (and save) the best network,
and return it -- not the last one.

Batches are always full: the stream is infinite, so an epoch is exactly ``epoch_size / batch_size``
full batches (``epoch_size`` must be a multiple of ``batch_size``). Evaluation runs on the whole test
array in one call, so there is no partial batch anywhere.

Keys: ``key`` is split by ``fold_in`` into a stream key and a noise key; epoch ``e`` uses
``fold_in(stream_key, e)``-derived permutations and step ``s`` of it the dropout key
``fold_in(fold_in(noise_key, e), s)``. Same key, same bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fpml import checkpoint, losses, metrics
from fpml.data.dataset import Dataset
from fpml.data.stream import Stream, epoch_indices
from fpml.errors import ConfigError, TrainingDiverged
from fpml.files import write_text
from fpml.network import Network, Params

STREAM_KEY, NOISE_KEY = 0, 1


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree, donated to each epoch call)."""

    params: Params
    opt_state: optax.OptState


class EpochRecord(NamedTuple):
    """One epoch's outcome: mean training loss, test metrics, wall-clock seconds, whether it is the best."""

    epoch: int
    loss: float
    metrics: Mapping[str, Any]
    seconds: float
    best: bool

    def as_json(self) -> str:
        return json.dumps(
            {
                "epoch": self.epoch,
                "loss": self.loss,
                "seconds": round(self.seconds, 4),
                "best": self.best,
                **self.metrics,
            }
        )


class TestResult(NamedTuple):
    """What a test function returns: is this epoch the best so far, and its metrics."""

    best: bool
    metrics: Mapping[str, Any]


#: ``test_fn(params, best_so_far) -> TestResult``; ``best_so_far`` is ``None`` after the first epoch.
TestFn = Callable[[Params, EpochRecord | None], TestResult]


class TrainResult(NamedTuple):
    """The best parameters and their epoch, every epoch's record, and the final state (to resume from)."""

    params: Params
    best: EpochRecord
    history: tuple[EpochRecord, ...]
    state: TrainState


def init_state(network: Network, optimizer: optax.GradientTransformation, key: jax.Array) -> TrainState:
    """Fresh parameters from ``key`` and the optimizer's initial state."""
    params = network.init(key)
    return TrainState(params, optimizer.init(params))


def make_epoch(
    network: Network, loss: losses.Loss, optimizer: optax.GradientTransformation, *, epoch_size: int, batch_size: int
) -> Callable[..., tuple[TrainState, jax.Array]]:
    """``epoch(state, x, y, stream, key, epoch) -> (state, per-step losses)`` as one jitted XLA program.

    ``x``/``y`` are the whole training arrays (on device); batches are gathered inside the scan from the
    stream's indices. ``epoch`` is traced, so every epoch reuses one compilation. ``state`` is donated.
    """
    if epoch_size % batch_size:
        raise ConfigError(f":epoch-size {epoch_size} is not a multiple of :batch-size {batch_size}")
    steps = epoch_size // batch_size
    grad_fn = jax.value_and_grad(losses.objective(network, loss))

    def epoch(state: TrainState, x, y, stream: Stream, key: jax.Array, epoch_index: jax.Array):
        rows = epoch_indices(stream, jax.random.fold_in(key, STREAM_KEY), epoch_index, epoch_size)
        noise = jax.random.fold_in(jax.random.fold_in(key, NOISE_KEY), epoch_index)

        def step(state: TrainState, inputs):
            i, batch = inputs
            value, grads = grad_fn(state.params, x[batch], y[batch], jax.random.fold_in(noise, i))
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            return TrainState(optax.apply_updates(state.params, updates), opt_state), value

        return jax.lax.scan(step, state, (jnp.arange(steps), rows.reshape(steps, batch_size)))

    return jax.jit(epoch, donate_argnums=0)


def classification_test_fn(
    network: Network, data: Dataset, *, threshold: float | None = 0.5, beta: float = 1.0
) -> TestFn:
    """Judge an epoch by F-beta on ``data`` at ``threshold`` on P(positive); best = higher than the best so far.

    ``threshold=None`` tunes it: each epoch is scored at the threshold that maximises its F-beta on
    ``data`` (recorded in the metrics) -- pass validation data then, never the test set.
    """
    predict = jax.jit(network.apply)
    x, y_true = jax.device_put(data.x), data.labels

    def test_fn(params: Params, best: EpochRecord | None) -> TestResult:
        probs = np.asarray(predict(params, x))[:, -1]
        at = threshold if threshold is not None else metrics.best_threshold(y_true, probs, beta)[0]
        report = metrics.report(y_true, probs, at, beta)
        return TestResult(best is None or report.f_beta > best.metrics["f-beta"], report.as_dict())

    return test_fn


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
    start_epoch: int = 0,
    run_dir: str | Path | None = None,
    config: Mapping | None = None,
    on_epoch: Callable[[EpochRecord], None] = lambda record: None,
) -> TrainResult:
    """Train for ``epoch_count`` epochs and return the best network by ``test_fn``.

    With ``run_dir``, the best checkpoint (``best.npz``), the latest one (``last.npz``) and the per-epoch
    log (``log.jsonl``: one JSON object per epoch) are written there atomically after every epoch.
    A non-finite loss raises :class:`TrainingDiverged` with the epoch and step; what was saved stays.
    """
    epoch_fn = make_epoch(network, loss, optimizer, epoch_size=epoch_size, batch_size=batch_size)
    state = state if state is not None else init_state(network, optimizer, jax.random.fold_in(key, 2))
    x, y = jax.device_put(train.x), jax.device_put(train.y)
    run_dir = Path(run_dir) if run_dir is not None else None
    history: list[EpochRecord] = []
    best, best_state = None, None
    for epoch in range(start_epoch, start_epoch + epoch_count):
        started = time.perf_counter()
        state, step_losses = epoch_fn(state, x, y, stream, key, jnp.int32(epoch))
        step_losses = np.asarray(step_losses)
        bad = _first_bad_step(step_losses)
        if bad is not None:
            raise TrainingDiverged(epoch, bad, float(step_losses[bad]))
        result = test_fn(state.params, best)
        record = EpochRecord(
            epoch, float(step_losses.mean()), dict(result.metrics), time.perf_counter() - started, bool(result.best)
        )
        history.append(record)
        host_state = jax.device_get(state)
        if record.best:
            best, best_state = record, host_state
        if run_dir is not None:
            _save_epoch(run_dir, network, host_state, record, best_state if record.best else None, config, history)
        on_epoch(record)
    return TrainResult(best_state.params, best, tuple(history), state)


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

    if best_state is not None:
        save("best.npz", best_state)
    save("last.npz", state)
    write_text(run_dir / "log.jsonl", "".join(r.as_json() + "\n" for r in history))
