"""Many processes (hosts) on JAX's own engine: ``jax.distributed`` set-up and each process's share of the data.

Every process runs the same program. :func:`initialize` must run before anything touches a device. Each
process then reads and prepares only its own part of the data (:func:`process_slice` of the rows, or
its byte range of a CSV: ``fpml.data.io.part_bytes``), exchanging only statistics and the held-out
rows (:func:`all_rows`); the chunked epoch (``fpml.train.chunked_epoch``) draws each process's part of
every batch from its own shard, and ``jax.make_array_from_process_local_data`` joins the parts into one
global batch sharded over the mesh's devices of all processes. Only process 0 writes files.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import jax
import numpy as np
from jax._src import clusters, xla_bridge
from jax.experimental import multihost_utils

from fpml.data.dataset import Dataset
from fpml.data.transforms import take
from fpml.errors import CheckpointError, ConfigError, DataError, FpmlError

T = TypeVar("T")


#: Seconds a process waits to reach the coordinator and the others, as ``jax.distributed.initialize``'s default.
JOIN_TIMEOUT_S = 300
#: The longest wait (a week; JAX takes its timeout as a 32-bit integer).
MAX_JOIN_TIMEOUT_S = 7 * 24 * 3600
#: JAX's own timeout is set this much later than fpml's, so that fpml's clear error comes first.
JAX_TIMEOUT_MARGIN_S = 30


def initialize(
    coordinator: str,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: float = JOIN_TIMEOUT_S,
) -> int:
    """Join a group of processes coordinated at ``HOST:PORT`` (CPU collectives: gloo).

    ``coordinator="auto"`` reads the address, process count and id as ``jax.distributed.initialize``'s
    cluster detection does: Slurm (``SLURM_JOB_ID``, ``SLURM_STEP_NODELIST``, ``SLURM_NTASKS``, ``SLURM_PROCID``,
    ``SLURM_LOCALID``), Open MPI 4 (``OMPI_MCA_orte_hnp_uri``, ``OMPI_COMM_WORLD_SIZE``,
    ``OMPI_COMM_WORLD_RANK``) or Kubernetes (an indexed Job: ``JOB_COMPLETION_INDEX``, with the ``kubernetes``
    package installed). Under Slurm and Open MPI JAX then gives each process one GPU, the one of its rank on
    the host (``JAX_LOCAL_DEVICE_IDS`` overrides it). Returns this process's id (known before the backend
    starts). The start-up failures ``jax.distributed`` would crash on (process 0's port taken, a coordinator
    not reachable) are checked first (:func:`check_coordinator`), also for the address ``"auto"`` finds.
    When the processes have not all joined within ``timeout_s`` (a wrong process count, a process that did
    not start), this process ends with one line on stderr and exit status 2, before JAX's runtime would
    abort it with a C++ trace, which Python cannot catch.
    """
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("distributed.initialize must run before JAX starts its backend")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax_timeout = int(timeout_s) + JAX_TIMEOUT_MARGIN_S
    deadline = time.monotonic() + timeout_s
    detected = coordinator == "auto"
    if detected:
        reading = f"this process waited {timeout_s:g} s (:join-timeout) to read the coordinator from the cluster"
        with _stop_after(timeout_s, f"{reading} (:coordinator :auto)"):
            coordinator, num_processes, process_id = _detect_cluster(jax_timeout)
    named = " (:coordinator :auto)" if detected else ""
    if num_processes is None or process_id is None or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"coordinator {coordinator}{named} needs a process count and a process id in 0..count-1, "
            f"got count {num_processes} and id {process_id}"
        )
    check_coordinator(coordinator, process_id, deadline - time.monotonic(), detected=detected)
    advice = "task of the job started" if detected else "process started, with the same :coordinator and :num-processes"
    stop = _stop_after(
        deadline - time.monotonic(),
        f"process {process_id} of {num_processes} waited {timeout_s:g} s (:join-timeout) for the processes to "
        f"join at the coordinator {coordinator}{named}: check that every {advice}",
    )
    with stop:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=jax_timeout)
    return process_id


def _detect_cluster(timeout_s: int) -> tuple[str, int, int]:
    """The coordinator address, process count and this process's id that ``jax.distributed`` reads from the
    cluster's environment (Slurm, Open MPI, Kubernetes; the address from ``JAX_COORDINATOR_ADDRESS`` where it
    is set, as JAX does), read here first so that :func:`check_coordinator` can test the address before JAX
    joins it (a taken port would crash JAX's runtime)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Kubernetes environment detected", UserWarning)
            address, count, process_id, _ = clusters.ClusterEnv.auto_detect_unset_distributed_params(
                os.environ.get("JAX_COORDINATOR_ADDRESS"), None, None, None, None, timeout_s
            )
        if address is None or count is None or process_id is None:
            raise ValueError("no coordinator address, process count or process id found")
    except Exception as err:  # noqa: BLE001 -- no cluster found, or one JAX cannot read: one line, not a trace
        raise ConfigError(f":coordinator :auto {_detection_failure(err)}") from None
    return address, count, process_id


@contextmanager
def _stop_after(timeout_s: float, message: str) -> Iterator[None]:
    """End the process with ``message`` on one line (exit status 2) if the block is still running after
    ``timeout_s``: JAX's join blocks in C++, where no Python exception can reach it."""

    def stop() -> None:
        sys.stderr.write(f"fpml: error: {message}\n")
        sys.stderr.flush()
        os._exit(2)

    timer = threading.Timer(max(timeout_s, 0.0), stop)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _detection_failure(err: Exception) -> str:
    reason = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    if isinstance(err, KeyError):
        reason = f"{reason} is not set"
    if not isinstance(err, ValueError):
        return f"could not read this cluster's settings ({reason}); see docs/scaling.md"
    if os.environ.get("KUBERNETES_SERVICE_HOST") and importlib.util.find_spec("kubernetes") is None:
        return (
            "runs in Kubernetes but the kubernetes package JAX reads the cluster with is not installed: "
            "pip install -e '.[k8s]'"
        )
    return (
        f"found no cluster environment (Slurm, Open MPI 4 or Kubernetes) to read the coordinator, process "
        f'count and id from ({reason}); give :coordinator "HOST:PORT" with :num-processes and :process-id instead'
    )


def _reason(err: OSError) -> str:
    if isinstance(err, socket.gaierror) or not err.errno:
        return err.strerror or str(err)
    return os.strerror(err.errno)


#: How to mend a coordinator address, where it was given (``:coordinator``) or read from the cluster.
_PORT_HINT = {False: "choose a free port in :coordinator", True: "set JAX_COORDINATOR_PORT to a free port"}
_ADDRESS_HINT = {
    False: "give process 0's host name or address in :coordinator",
    True: "set JAX_COORDINATOR_ADDRESS to process 0's host and a free port",
}


def _port(text: str, where: str, hint: str) -> int:
    if not (text.isdigit() and 0 < int(text) < 65536):
        raise ConfigError(f"{where} has no port in 1..65535 (got {text!r}): {hint}")
    return int(text)


def check_coordinator(
    coordinator: str, process_id: int, timeout_s: float = JOIN_TIMEOUT_S, *, detected: bool = False
) -> None:
    """Fail with a clear error where ``jax.distributed`` would end the process with a crash (or a 300 s wait
    and then a crash).

    Process 0 runs the coordinator: its port must be free on this host (where ``JAX_COORDINATOR_BIND_ADDRESS``
    says, else on every address) and the coordinator's address must lead back to this host, since process 0
    connects to it too. The other processes wait up to about ``timeout_s`` for the coordinator to accept
    connections (process 0 not started, a wrong address, a firewall). ``detected``: the address was read
    from the cluster (``:coordinator :auto``), so the errors say which environment variable mends it.
    """
    host, _, port = coordinator.rpartition(":")
    address = (host.strip("[]"), _port(port, f"the coordinator address {coordinator!r}", _PORT_HINT[detected]))
    if process_id == 0:
        bind = os.environ.get("JAX_COORDINATOR_BIND_ADDRESS")
        bind_host, _, bind_port = bind.rpartition(":") if bind else ("", ":", port)
        if bind:
            bind_port = str(_port(bind_port, f"JAX_COORDINATOR_BIND_ADDRESS {bind!r}", "give it as HOST:PORT"))
        try:
            dual = not bind_host and socket.has_dualstack_ipv6()
            family = socket.AF_INET6 if dual or ":" in bind_host else socket.AF_INET
            server = socket.create_server((bind_host.strip("[]"), int(bind_port)), family=family, dualstack_ipv6=dual)
        except OSError as err:
            raise ConfigError(
                f"process 0 cannot open the coordinator's port {bind_port} on this host ({_reason(err)}): "
                + _PORT_HINT[detected]
            ) from None
        with server:
            try:
                socket.create_connection(address, timeout=5).close()
            except OSError as err:
                raise ConfigError(
                    f"the coordinator address {coordinator} does not lead to process 0's host ({_reason(err)}): "
                    + _ADDRESS_HINT[detected]
                ) from None
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(address, timeout=2).close()
            return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"process {process_id} could not reach the coordinator {coordinator} in "
                    f"{round(max(timeout_s, 0), 1):g} s ({_reason(err)}): is process 0 running there, and can this "
                    "host reach that address?"
                ) from None
            time.sleep(0.5)


def process_slice(n_rows: int, process_index: int, process_count: int) -> slice:
    """The contiguous rows process ``process_index`` of ``process_count`` keeps (sizes differ by at most one).

    >>> [process_slice(10, p, 3) for p in range(3)]
    [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    return slice(n_rows * process_index // process_count, n_rows * (process_index + 1) // process_count)


def process_shard(data: Dataset, process_index: int | None = None, process_count: int | None = None) -> Dataset:
    """This process's shard of ``data`` (:func:`process_slice`; all of it in a single-process run)."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    rows = process_slice(len(data), index, count)
    return data if count == 1 else take(data, np.arange(rows.start, rows.stop))


def process_key(key: jax.Array, process_index: int, process_count: int) -> jax.Array:
    """``key`` folded with the process index when there are several processes (each draws its own numbers),
    ``key`` itself in one process (so a one-process run draws what it always drew)."""
    return key if process_count == 1 else jax.random.fold_in(key, process_index)


def all_rows(array: np.ndarray) -> np.ndarray:
    """Every process's rows of ``array``, concatenated in process order; the array itself in one process.

    Processes may hold different numbers of rows. The bytes travel unchanged (``jax.experimental.
    multihost_utils.process_allgather`` over a ``uint8`` view), so float64 statistics keep their
    precision even where JAX computes in float32. Every process must call it, in the same order.
    """
    array = np.ascontiguousarray(array)
    if jax.process_count() == 1:
        return array
    counts = multihost_utils.process_allgather(np.array([len(array)], np.int64).view(np.uint32))
    counts = np.ascontiguousarray(counts).view(np.int64).ravel()
    row_bytes = array.reshape(len(array), int(np.prod(array.shape[1:]))).view(np.uint8)
    padded = np.zeros((max(int(counts.max()), 1), row_bytes.shape[1]), np.uint8)
    padded[: len(array)] = row_bytes
    gathered = multihost_utils.process_allgather(padded)
    rows = np.concatenate([part[:n] for part, n in zip(gathered, counts, strict=True)])
    return rows.view(array.dtype).reshape(-1, *array.shape[1:])


#: Bytes of an error message that :func:`agreed` passes between processes.
MESSAGE_BYTES = 4096


def agreed(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on this process, its failure shared: when it raises on any process (bad data in
    one process's part, a full disk or an unwritable folder on one host), the failing process raises its
    error and every other process an fpml error naming it, so none is left waiting in a collective. ``fn``
    must not use collectives. Every process must call it, in the same order.
    """
    if jax.process_count() == 1:
        return fn(*args, **kwargs)
    try:
        result, error, report = fn(*args, **kwargs), None, b""
    except Exception as err:  # noqa: BLE001 -- shared, then raised again below
        result, error, report = None, err, f"{type(err).__name__}:{err}".encode()[:MESSAGE_BYTES]
    reports = all_rows(np.frombuffer(report.ljust(MESSAGE_BYTES, b"\0"), np.uint8)[None])
    for process, row in enumerate(reports):
        if row.any():
            if process == jax.process_index():
                raise error
            kind, _, message = row.tobytes().rstrip(b"\0").decode(errors="replace").partition(":")
            cls = SHARED_ERRORS.get(kind)
            where = f"process {process} of {jax.process_count()}"
            raise cls(f"{where}: {message}") if cls else FpmlError(f"{where} failed: {kind}: {message}")
    return result


#: Errors that :func:`agreed` raises on the other processes as they are (others become an ``FpmlError``).
SHARED_ERRORS = {cls.__name__: cls for cls in (ConfigError, DataError, CheckpointError)}
