"""Infinite training streams as pure functions of ``(key, epoch)``, computed on device inside ``jit``.

Cortex's ``infinite-class-balanced-dataset``: each class is cycled forever, with a fresh shuffle every
pass through it; the classes are strictly interleaved (A, B, A, B...) and the stream is cut into epochs,
so every epoch -- and, with an even batch size, every batch -- is exactly balanced (with several
processes, each drawing its share of a batch from its own stream: when each share is even). A shuffled
stream is the same with one class: all rows.

Nothing is materialised on the host: :func:`epoch_indices` returns the row indices of one epoch and is
traced into the compiled epoch.

>>> import jax, numpy as np
>>> s = class_balanced(np.array([0, 0, 0, 1, 0]))
>>> idx = np.asarray(epoch_indices(s, jax.random.key(0), 0, 6))
>>> idx[1::2].tolist()  # every second row is the single row of class 1
[3, 3, 3]
>>> len(set(idx[0::2].tolist()))  # class 0 rows are drawn without repeats within a pass
3
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fpml.errors import ConfigError
from fpml.hashing import mix32


class Stream(NamedTuple):
    """Row indices of each class (a pytree of arrays: pass it into ``jit`` as an argument)."""

    classes: tuple[jax.Array, ...]


def class_balanced(labels: np.ndarray) -> Stream:
    """A stream that interleaves every class present in ``labels`` (class index per row)."""
    labels = np.asarray(labels)
    return Stream(tuple(jnp.asarray(np.flatnonzero(labels == c), jnp.int32) for c in np.unique(labels)))


def shuffled(n_rows: int) -> Stream:
    """A stream that cycles through all rows, reshuffled on every pass."""
    return Stream((jnp.arange(n_rows, dtype=jnp.int32),))


FEISTEL_ROUNDS = 6
SMALL_CLASS = 64  # classes of at most this many rows are shuffled by sorting random keys (exactly uniform)


def _radices(n: int) -> tuple[int, int]:
    """``(a, b)`` with ``a * b >= n`` and ``a * b - n < 2a``, ``a = ceil(sqrt(n))``, and not both odd: with
    both odd, a network of an even number of rounds makes only even permutations, and half of all shuffles
    could never occur."""
    a = math.isqrt(n - 1) + 1 if n > 1 else 1
    b = -(-n // a)
    return (a, b + 1) if a % 2 and b % 2 else (a, b)


def _feistel(i: jax.Array, round_keys: jax.Array, radices: tuple[int, int]) -> jax.Array:
    """A keyed bijection of ``[0, a*b)``: a mixed-radix Feistel network (as in FFX format-preserving
    encryption). ``i = left * b + right``; a round maps ``(left, right)`` to ``(right, (left + F(right)) mod a)``
    and swaps the radices, so each round is invertible."""
    a, b = radices
    left, right = i // jnp.uint32(b), i % jnp.uint32(b)
    for r in range(FEISTEL_ROUNDS):
        total = left + mix32(right ^ round_keys[..., r]) % jnp.uint32(a)
        left, right = right, jnp.where(total >= a, total - jnp.uint32(a), total)
        a, b = b, a
    return left * jnp.uint32(b) + right


def permute(i: jax.Array, round_keys: jax.Array, n: int) -> jax.Array:
    """Position ``i`` of a keyed random permutation of ``[0, n)`` (``FEISTEL_ROUNDS`` key words), computed
    element-wise (no sort).

    A Feistel bijection of ``[0, a*b)``, a near-square domain covering ``n`` (:func:`_radices`), restricted
    to ``[0, n)`` by cycle-walking (re-applying it until the value falls below ``n``), is a bijection of
    ``[0, n)``. Fewer than ``2 sqrt(n)`` values lie outside, so the vectorised walk takes 2-3 passes (a
    power-of-two domain, up to 4x too large, took up to ~40 for the fraud data's classes: 22-28 ms an
    epoch against 6-7 ms). A round mixes in only ``log2(a)`` bits, so small ``n`` are not shuffled
    uniformly: the streams shuffle classes of up to :data:`SMALL_CLASS` rows by sorting instead. Sorting
    the majority class costs ~15x more on CPU.
    """
    radices = _radices(n)
    y = _feistel(i.astype(jnp.uint32), round_keys, radices)
    return jax.lax.while_loop(
        lambda y: jnp.any(y >= n), lambda y: jnp.where(y >= n, _feistel(y, round_keys, radices), y), y
    )


def _cycle(key: jax.Array, rows: jax.Array, start: jax.Array, count: int) -> jax.Array:
    """Items ``start .. start+count`` of the endless sequence ``perm_0(rows), perm_1(rows), ...``."""
    n = rows.shape[0]
    position = start + jnp.arange(count)
    first_pass, passes = start // n, count // n + 2  # passes: enough to cover any window of ``count`` items
    keys = jax.vmap(lambda p: jax.random.fold_in(key, p))(first_pass + jnp.arange(passes))
    which, offset = position // n - first_pass, position % n
    if n <= SMALL_CLASS:  # exactly uniform: the order of n random words, one sort per pass
        orders = jax.vmap(lambda k: jnp.argsort(jax.random.bits(k, (n,), jnp.uint32)))(keys)
        return rows[orders[which, offset]]
    round_keys = jax.vmap(lambda k: jax.random.bits(k, (FEISTEL_ROUNDS,), jnp.uint32))(keys)
    return rows[permute(offset, round_keys[which], n).astype(jnp.int32)]


def epoch_indices(stream: Stream, key: jax.Array, epoch: jax.Array | int, epoch_size: int) -> jax.Array:
    """Row indices of epoch ``epoch``: ``epoch_size`` of them, classes interleaved. Pure and jit-friendly."""
    n_classes = len(stream.classes)
    if epoch_size % n_classes:
        raise ConfigError(  # a config error: a run's epoch (or one process's share of it) is the wrong size
            f"an epoch of {epoch_size} rows (per process, in a multi-process run) is not a multiple of the "
            f"{n_classes} classes the stream interleaves"
        )
    per_class = epoch_size // n_classes
    start = jnp.asarray(epoch, jnp.int32) * per_class
    parts = [_cycle(jax.random.fold_in(key, c), rows, start, per_class) for c, rows in enumerate(stream.classes)]
    return jnp.stack(parts, axis=1).reshape(-1)
