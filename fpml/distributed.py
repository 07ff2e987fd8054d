"""Many processes (hosts) on JAX's own engine: ``jax.distributed`` set-up and each process's share of the data.

Every process runs the same program. :func:`initialize` must run before anything touches a device. Each
process then keeps only its shard of the training rows (:func:`process_shard`); the chunked epoch
(``fpml.train.chunked_epoch``) gathers each process's part of every batch from its own shard, and
``jax.make_array_from_process_local_data`` joins the parts into one global batch sharded over all
devices of all processes. Only process 0 writes files.
"""

from __future__ import annotations

import jax
import numpy as np
from jax._src import xla_bridge

from fpml.data.dataset import Dataset
from fpml.data.transforms import take
from fpml.errors import ConfigError


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    """Join a group of ``num_processes`` processes coordinated at ``HOST:PORT`` (CPU collectives: gloo)."""
    if not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id {process_id} must be in 0..{num_processes - 1}")
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("distributed.initialize must run before JAX starts its backend")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)


def process_rows(n_rows: int, process_index: int, process_count: int) -> np.ndarray:
    """The rows process ``process_index`` keeps: every ``process_count``-th, starting at its index."""
    return np.arange(process_index, n_rows, process_count)


def process_shard(data: Dataset, process_index: int | None = None, process_count: int | None = None) -> Dataset:
    """This process's shard of ``data`` (all of it in a single-process run)."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    return data if count == 1 else take(data, process_rows(len(data), index, count))
