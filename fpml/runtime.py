"""Process-level choices that must be made before JAX starts its backend: the platform, the compilation
cache, how many CPU cores to use, and how XLA compiles a small network's matrix products.

XLA's CPU runtime sizes its thread pool from the cores the process may run on, when the backend starts.
For small networks the pool's hand-offs cost more than the arithmetic they share: measured on a 2-core
machine (``bench/cpu_cores.py``, ``docs/performance.md``), a network of the fraud network's size trains
~1.5x faster at batch 100 confined to one core, while a 29-256-256-2 network is faster on both. So
``:auto`` confines the process to one core when a training step is under ~10 MFLOP and no GPU plugin is
installed. Such a process also compiles its matrix products as XLA's own loops (:func:`use_inline_dots`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
from jax._src import xla_bridge

from fpml.errors import ConfigError
from fpml.files import unwritable_folder
from fpml.layers import LAYER_TYPES

ONE_CORE_BELOW_FLOPS = 1e7


def step_flops(description: Sequence[Mapping], batch_size: int) -> float:
    """Rough FLOPs of one training step of a dense network: 6 x batch x weights (forward + backward)."""
    weights, width = 0, None
    for layer in description:
        if LAYER_TYPES[layer["type"]].has_size:
            if width is not None and layer["type"] != "input":
                weights += width * layer["size"]
            width = layer["size"]
    return 6.0 * batch_size * weights


def is_small_step(description: Sequence[Mapping], batch_size: int) -> bool:
    """Whether a training step is under :data:`ONE_CORE_BELOW_FLOPS`: small enough that one core runs it
    faster than several, and its products suit XLA's own loops."""
    return step_flops(description, batch_size) < ONE_CORE_BELOW_FLOPS


def _gpu_plugin_installed() -> bool:
    return any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm_plugin"))


def cpu_cores(
    setting: object, description: Sequence[Mapping], batch_size: int, *, multi_process: bool = False
) -> int | None:
    """How many cores to confine the process to (``None``: leave it as it is) for a ``:cpu-cores`` setting.

    ``:auto`` leaves a process of a multi-process run on every core: such processes may
    share a host, and how many do is not known here.
    """
    available = len(os.sched_getaffinity(0))
    if setting == "all":
        return None
    if setting == "auto":
        small = is_small_step(description, batch_size)
        return 1 if small and not multi_process and available > 1 and not _gpu_plugin_installed() else None
    if isinstance(setting, int) and not isinstance(setting, bool) and setting > 0:
        return min(setting, available)
    raise ConfigError(f":cpu-cores must be :auto, :all or a positive integer, got {setting!r}")


def cores_for(allowed: Sequence[int], count: int, block: int = 0) -> list[int]:
    """Block ``block`` of ``count`` cores among the ``allowed`` ones, wrapping round: processes 0, 1, ... of a
    host given their index get different cores while there are enough.

    >>> cores_for([0, 1, 2, 3], 2, block=1), cores_for([0, 1, 2, 3], 2, block=2), cores_for([4, 5], 1, block=3)
    ([2, 3], [0, 1], [5])
    """
    allowed = sorted(allowed)
    start = block * count % len(allowed)
    return [allowed[(start + i) % len(allowed)] for i in range(min(count, len(allowed)))]


def confine_to_cores(count: int | None, block: int = 0) -> None:
    """Let this process (every thread it has started so far, and so every later one) run on ``count`` of
    its allowed cores (:func:`cores_for` block ``block``). Must run before JAX's backend starts."""
    if count is None:
        return
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("confine_to_cores must be called before JAX starts its backend (before any jax array)")
    cores = cores_for(os.sched_getaffinity(0), count, block)
    threads = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]
    for thread in threads:  # e.g. jax.distributed's and numpy's threads, started already
        try:
            os.sched_setaffinity(int(thread), cores)
        except OSError:
            pass  # the thread has ended meanwhile


#: The XLA flag naming the operations XLA's CPU backend hands to YNNPACK as fusions; empty turns them off.
YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"

#: XLA CPU flags that compile small matrix products as XLA's own tiled loops instead of calls into YNNPACK
#: (its default) or multi-threaded Eigen; see :func:`use_inline_dots`.
INLINE_DOT_FLAGS = ("--xla_cpu_multi_thread_eigen=false", f"{YNN_FUSION_FLAG}=")

#: The JAX release series whose XLA these flags were measured with (the one fpml requires and is tested
#: with). XLA stops the process at start on a flag it does not know, so fpml run under another release
#: (from a source tree, say) trains without them.
INLINE_DOTS_JAX = (0, 10)


def inline_dots(cores: int | None, description: Sequence[Mapping], batch_size: int) -> bool:
    """Whether to :func:`use_inline_dots`: in a process that runs on one core (``cores`` from :func:`cpu_cores`,
    ``None`` for all it has), for a small network (a training step under :data:`ONE_CORE_BELOW_FLOPS`), under
    the JAX release the flags are known in (:data:`INLINE_DOTS_JAX`)."""
    one_core = (cores if cores is not None else len(os.sched_getaffinity(0))) == 1
    known_flags = tuple(jax.__version_info__[:2]) == INLINE_DOTS_JAX
    return one_core and known_flags and is_small_step(description, batch_size)


def use_inline_dots() -> None:
    """Have XLA compile small matrix products as its own tiled loops (:data:`INLINE_DOT_FLAGS`).

    A library call costs several microseconds however small the product; a loop compiled for the shapes
    costs about the arithmetic. With :func:`fpml.layers.affine`'s gradient, written for such loops, the
    fraud network trains ~1.3x faster on one core (``docs/performance.md``). The price: products over many
    rows (inference on a whole table) run ~1.3x slower, and Eigen no longer shares a product between cores,
    so it is meant for one core. Must run before JAX starts its backend; a flag the ``XLA_FLAGS``
    environment variable sets already is left as it is.
    """
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("use_inline_dots must be called before JAX starts its backend (before any jax array)")
    given = _xla_flags()
    extra = [flag for flag in INLINE_DOT_FLAGS if flag.partition("=")[0] not in given]
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *extra]).strip()


def _xla_flags() -> dict[str, str]:
    """The ``XLA_FLAGS`` environment variable as flag -> value (unquoted; the last one where a flag repeats)."""
    pairs = (flag.partition("=") for flag in os.environ.get("XLA_FLAGS", "").split())
    return {name: value.strip("'\"") for name, _, value in pairs}


def ynnpack_products() -> bool:
    """Whether XLA's CPU backend in this process runs matrix products as YNNPACK fusions (its default): not
    where ``XLA_FLAGS`` gives :data:`YNN_FUSION_FLAG` an empty value (:func:`use_inline_dots` does). Read
    from the environment, as XLA read it when its backend started."""
    return _xla_flags().get(YNN_FUSION_FLAG) != ""


def prepare_cores(cores: int | None, description: Sequence[Mapping], batch_size: int, *, block: int = 0) -> None:
    """Set up the process's CPU as ``fpml train`` does, before JAX starts its backend: confine it to ``cores``
    (:func:`confine_to_cores`, the ``block``-th block), and for a small network on one core have XLA compile
    its matrix products as its own loops (:func:`inline_dots`, :func:`use_inline_dots`)."""
    confine_to_cores(cores, block=block)
    if inline_dots(cores, description, batch_size):
        use_inline_dots()


#: Where cluster launchers say which of a host's processes this is.
HOST_RANK_VARIABLES = ("SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


def host_rank(process_id: int) -> int:
    """This process's index among the processes of its host, for :func:`confine_to_cores`: what Slurm or
    Open MPI says, else ``process_id`` (right where each host runs consecutive process ids)."""
    for name in HOST_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return process_id


#: Compilations shorter than this are not worth a cache file (JAX's own default is 1 s; the fraud network's
#: parameter initialisers and split shuffles take 0.3-1 s each, its epoch 2.5-3.5 s).
CACHE_MIN_COMPILE_SECONDS = 0.2


def use_compilation_cache(folder: str | None) -> None:
    """Keep compiled XLA programs in ``folder`` (JAX's persistent cache): a later run skips compiling them.

    ``None`` leaves JAX as it is, as does a ``JAX_COMPILATION_CACHE_DIR`` set in the environment.
    """
    if folder is None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    path = Path(folder).expanduser()
    why = unwritable_folder(path)
    if why is not None:  # an unusable cache only costs compile time: say so once, and train without it
        print(f"fpml: warning: :compile-cache {folder} cannot be used ({why}); compiling without it", file=sys.stderr)
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)


def select_platform(platform: str) -> None:
    """Make JAX use ``"cpu"`` or ``"gpu"`` (``"auto"``: its own choice, a GPU when one is usable).

    Must run before JAX starts its backend. Asking for a GPU where none is usable is an error that says
    why, never a silent fallback to the CPU.
    """
    if platform == "auto":
        return
    if platform not in ("cpu", "gpu"):
        raise ConfigError(f":platform must be :auto, :cpu or :gpu, got {platform!r}")
    if xla_bridge.backends_are_initialized():
        raise RuntimeError("select_platform must be called before JAX starts its backend (before any jax array)")
    if platform == "gpu" and not _gpu_plugin_installed():
        raise ConfigError(
            "a GPU was asked for but JAX's CUDA wheels are not installed: run make setup-gpu "
            "(pip install -e '.[cuda]'), or train on the CPU with --device cpu"
        )
    jax.config.update("jax_platforms", "cpu" if platform == "cpu" else "cuda")
    if platform == "gpu":
        try:
            jax.devices()
        except (RuntimeError, AssertionError) as err:  # JAX reports a failed CUDA start either way
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(
                f"a GPU was asked for but JAX cannot use one ({reason}); JAX's CUDA wheels are installed, so "
                "check the NVIDIA driver with nvidia-smi, or train on the CPU with --device cpu"
            ) from None
