"""Keyed counter-hash bits (fpml.hashing) and the dropout masks made from them: uniform, independent, seeded."""

import jax
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
