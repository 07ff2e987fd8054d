"""Keyed counter-hash bits (fpml.hashing) and the dropout masks made from them: uniform, independent, seeded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from fpml import hashing, layers, network


def bits(seed, shape):
    return np.asarray(hashing.uniform_bits(jax.random.key(seed), shape))


def test_same_key_same_bits_other_key_other_bits():
    assert np.array_equal(bits(0, (50, 20)), bits(0, (50, 20)))
    assert np.mean(bits(0, (50, 20)) == bits(1, (50, 20))) < 0.01


def test_bits_are_uniform_and_every_bit_is_balanced():
    u = bits(3, (200_000,)).astype(np.float64) / 2.0**32
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    raw = bits(4, (200_000,))
    ones = [(raw >> b & 1).mean() for b in range(32)]
    assert max(abs(p - 0.5) for p in ones) < 0.01


def test_neighbouring_elements_are_uncorrelated():
    u = bits(5, (400, 500)).astype(np.float64) / 2.0**32
    for a, b in ((u[:, :-1], u[:, 1:]), (u[:-1, :], u[1:, :])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.01


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_dropout_keeps_the_right_share_independently(keep):
    net = network.build([layers.input(1_000), layers.dropout(keep=keep)])
    x = np.ones((200, 1_000), np.float32)
    kept = np.asarray(net.apply({}, x, key=jax.random.key(7), train=True)) != 0
    assert abs(kept.mean() - keep) < 0.01
    both = (kept[:, :-1] & kept[:, 1:]).mean()
    assert abs(both - keep * keep) < 0.01
    other = np.asarray(net.apply({}, x, key=jax.random.key(8), train=True)) != 0
    assert abs((kept & other).mean() - keep * keep) < 0.01


M32 = 0xFFFFFFFF


def lowbias32(x: int) -> int:
    """Chris Wellons' lowbias32 in plain Python integers: an independent reference for ``mix32``."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def test_mix32_is_lowbias32():
    xs = [0, 1, 2, 12345, 0x80000000, M32]
    assert np.asarray(hashing.mix32(jnp.asarray(xs, jnp.uint32))).tolist() == [lowbias32(x) for x in xs]


def test_uniform_bits_hash_each_position_twice_with_the_keys_two_words():
    key = jax.random.key(0)
    s0, s1 = (int(v) for v in np.asarray(jax.random.bits(key, (2,), jnp.uint32)))
    got = np.asarray(hashing.uniform_bits(key, (2, 3))).ravel().tolist()
    assert got == [lowbias32((lowbias32(i ^ s0) + s1) & M32) for i in range(6)]


def test_one_input_bit_flips_about_half_the_output_bits():
    x = np.random.default_rng(0).integers(0, 2**32, 2_000, dtype=np.uint64).astype(np.uint32)
    base = np.asarray(hashing.mix32(jnp.asarray(x)))
    for bit in (0, 7, 16, 31):
        flipped = np.asarray(hashing.mix32(jnp.asarray(x ^ np.uint32(1 << bit))))
        changed = np.unpackbits((base ^ flipped).view(np.uint8)).reshape(len(x), 32).sum(axis=1)
        assert 15.5 < changed.mean() < 16.5
