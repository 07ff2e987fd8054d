"""Cheap keyed randomness: a counter-based 32-bit hash, seeded from a JAX PRNG key.

``jax.random`` (threefry) is the source of every key; where a step needs many random bits (a dropout
mask per training step, a shuffle per epoch), hashing a counter with a seed drawn from that key is
several times cheaper on CPU than drawing every bit with threefry, and just as deterministic: the same
key gives the same bits, on any device count (the counter is the element's global position).

>>> import jax
>>> bits = uniform_bits(jax.random.key(0), (2, 3))
>>> bits.shape, bits.dtype
((2, 3), dtype('uint32'))
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def mix32(x: jax.Array) -> jax.Array:
    """``lowbias32``: a 32-bit integer hash with good avalanche (every input bit flips ~half the output bits)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform uint32 bits of ``shape``: each element's position hashed twice with two seeds from ``key``."""
    seed = jax.random.bits(key, (2,), jnp.uint32)
    counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    return mix32(mix32(counter ^ seed[0]) + seed[1])
