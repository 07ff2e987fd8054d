"""Data that does not fit on the device: an epoch fed from host memory in chunks of K steps trains exactly
as the one-program epoch does."""

import jax
import numpy as np
import pytest

from fpml import edn, losses, network, optim, train
from fpml.data import stream
from fpml.errors import ConfigError

NET = edn.loads("""[{:type :input :size 29} {:type :linear->relu :size 8} {:type :dropout :keep 0.8}
                    {:type :linear :size 2} {:type :softmax}]""")


@pytest.fixture(scope="module")
def parts(small_split):
    return small_split(seed=6, rows=3_000, frauds=60, test_rows=800)


def run(parts, steps_per_call):
    train_part, test_part = parts
    net = network.build(NET)
    return train.train_n(
        net,
        optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}")),
        losses.resolve_loss("auto", net),
        train_part,
        stream.class_balanced(train_part.labels),
        train.classification_test_fn(net, test_part),
        key=jax.random.key(3),
        epoch_count=3,
        epoch_size=2_000,
        batch_size=50,
        steps_per_call=steps_per_call,
    )


def test_chunked_epochs_match_the_in_memory_epoch(parts):
    whole, chunked = run(parts, None), run(parts, 8)
    for a, b in zip(
        jax.tree.leaves(jax.device_get(whole.state)), jax.tree.leaves(jax.device_get(chunked.state)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [r.best for r in whole.history] == [r.best for r in chunked.history]
    np.testing.assert_allclose([r.loss for r in whole.history], [r.loss for r in chunked.history], rtol=1e-6)


def test_chunk_size_must_divide_the_epoch(parts):
    with pytest.raises(ConfigError, match=":steps-per-call 7 does not divide the 40 steps"):
        run(parts, 7)
