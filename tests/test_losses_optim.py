"""Losses against numpy references, weight penalties, and optimizers built from config maps vs optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fpml import edn, layers, losses, network, optim
from fpml.errors import ConfigError

rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((16, 3)).astype(np.float32)
ONE_HOT = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]


def test_softmax_cross_entropy_matches_numpy():
    p = np.exp(LOGITS - LOGITS.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = -(ONE_HOT * np.log(p)).sum(1)
    np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, ONE_HOT), expected, rtol=1e-5)


def test_binary_cross_entropy_matches_numpy_and_is_stable():
    y = (rng.random((16, 1)) < 0.5).astype(np.float32)
    z = LOGITS[:, :1]
    s = 1 / (1 + np.exp(-z))
    expected = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum(1)
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y), expected, rtol=1e-5)
    assert np.isfinite(losses.binary_cross_entropy(jnp.array([[200.0]]), jnp.array([[0.0]]))).all()


def test_mean_squared_error_matches_numpy():
    np.testing.assert_allclose(losses.mean_squared_error(LOGITS, ONE_HOT), ((LOGITS - ONE_HOT) ** 2).sum(1), rtol=1e-6)


def test_auto_loss_follows_the_output_layer_and_mismatches_are_errors():
    soft = network.build([layers.input(3), layers.linear(2), layers.softmax()])
    sig = network.build([layers.input(3), layers.linear_then("logistic", 1)])
    plain = network.build([layers.input(3), layers.linear(1)])
    assert losses.resolve_loss("auto", soft) is losses.LOSSES["softmax-cross-entropy"]
    assert losses.resolve_loss("auto", sig) is losses.LOSSES["binary-cross-entropy"]
    assert losses.resolve_loss("auto", plain) is losses.LOSSES["mse"]
    with pytest.raises(ConfigError, match="needs a network ending in a :softmax layer"):
        losses.resolve_loss("softmax-cross-entropy", plain)
    with pytest.raises(ConfigError, match="did you mean 'mse'"):
        losses.resolve_loss("mes", plain)


def test_objective_uses_logits_of_a_softmax_network():
    net = network.build([layers.input(3), layers.linear(2), layers.softmax()])
    params = net.init(jax.random.key(0))
    x, y = rng.standard_normal((8, 3)).astype(np.float32), np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)]
    value = losses.objective(net, losses.resolve_loss("auto", net))(params, x, y, jax.random.key(1))
    probs = np.asarray(net.apply(params, x))
    np.testing.assert_allclose(value, -(y * np.log(probs)).sum(1).mean(), rtol=1e-5)


def test_a_single_logistic_output_learns_class_one_of_two_class_labels():
    """Two-class one-hot labels against one output: the target is the class-1 column (a broadcast against
    both columns would give a loss that does not depend on the label at all)."""
    net = network.build([layers.input(3), layers.linear_then("logistic", 1)])
    params = net.init(jax.random.key(0))
    x, classes = rng.standard_normal((8, 3)).astype(np.float32), rng.integers(0, 2, 8)
    y = np.eye(2, dtype=np.float32)[classes]
    value = losses.objective(net, losses.resolve_loss("auto", net))(params, x, y, jax.random.key(1))
    p = np.asarray(net.apply(params, x))[:, 0]
    expected = -(classes * np.log(p) + (1 - classes) * np.log(1 - p)).mean()
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    mse = losses.objective(net, losses.LOSSES["mse"])(params, x, y, jax.random.key(1))
    np.testing.assert_allclose(mse, ((p - classes) ** 2).mean(), rtol=1e-5)
    weighted = losses.weighted(losses.resolve_loss("auto", net), [1.0, 10.0])
    per_example = -(classes * np.log(p) + (1 - classes) * np.log(1 - p)) * np.where(classes == 1, 10.0, 1.0)
    np.testing.assert_allclose(losses.objective(net, weighted)(params, x, y, None), per_example.mean(), rtol=1e-5)


def test_l1_and_l2_penalties_attach_to_their_layer_only():
    net = network.build([layers.input(3), layers.linear(4, l2=0.1), layers.linear(2, l1=0.01), layers.softmax()])
    params = net.init(jax.random.key(0))
    w1, w2 = np.asarray(params["linear-1"]["w"]), np.asarray(params["linear-2"]["w"])
    expected = 0.5 * 0.1 * (w1**2).sum() + 0.01 * np.abs(w2).sum()
    np.testing.assert_allclose(losses.weight_penalty(net.description)(params), expected, rtol=1e-5)
    grads = jax.grad(losses.weight_penalty(net.description))(params)
    np.testing.assert_allclose(grads["linear-1"]["w"], 0.1 * w1, rtol=1e-5)
    assert not np.asarray(grads["linear-1"]["b"]).any()


@pytest.mark.parametrize(
    "spec, reference",
    [
        ("{:name :adam :learning-rate 0.01 :b1 0.8}", optax.adam(0.01, b1=0.8)),
        ("{:name :sgd :learning-rate 0.1 :momentum 0.9 :nesterov true}", optax.sgd(0.1, momentum=0.9, nesterov=True)),
        ("{:name :adadelta :learning-rate 1.0 :rho 0.95 :eps 1e-6}", optax.adadelta(1.0, rho=0.95, eps=1e-6)),
        ("{:name :adamw :learning-rate 0.001 :weight-decay 0.01}", optax.adamw(0.001, weight_decay=0.01)),
        ("{:name :rmsprop :learning-rate 0.01}", optax.rmsprop(0.01)),
        (
            "{:name :adam :clip-global-norm 0.5}",
            optax.chain(optax.clip_by_global_norm(0.5), optax.adam(optim.DEFAULT_LEARNING_RATE)),
        ),
        (
            "{:name :sgd :learning-rate {:schedule :cosine-decay :init-value 0.1 :decay-steps 3}}",
            optax.sgd(optax.cosine_decay_schedule(0.1, 3)),
        ),
    ],
)
def test_optimizer_from_config_updates_like_optax(spec, reference):
    built = optim.optimizer(edn.loads(spec))
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    states = built.init(params), reference.init(params)
    for step in range(3):
        grads = {"w": jnp.array([0.5, -1.5, 2.0]) * (step + 1)}
        (u1, s1), (u2, s2) = built.update(grads, states[0], params), reference.update(grads, states[1], params)
        states = s1, s2
        np.testing.assert_allclose(u1["w"], u2["w"], rtol=1e-6)


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("{:name :adma}", "did you mean 'adam'"),
        ("{:name :adam :lerning-rate 0.1}", "did you mean 'learning-rate'"),
        ("{:name :adam :learning-rate -1}", "positive number"),
        ("{:name :adam :learning-rate ##NaN}", "positive number or a schedule map, got nan"),
        ("{:name :adam :learning-rate ##Inf}", "positive number or a schedule map, got inf"),
        ("{:name :adam :b1 ##NaN}", ":b1 must be a finite number"),
        ("{:name :adam :clip-global-norm ##NaN}", "clip-global-norm must be a positive number, got nan"),
        ("{:name :sgd :learning-rate {:schedule :cosine-decay :init-value ##Inf :decay-steps 3}}", "must be finite"),
        ('{:name :adam :b1 "x"}', ":b1 must be a finite number or true/false"),
        ("{:name :adam :clip-global-norm 0}", "clip-global-norm must be a positive number"),
        ("{:name :sgd :learning-rate {:schedule :cosine}}", "did you mean 'cosine-decay'"),
        ("[:adam]", "must be a map"),
    ],
)
def test_bad_optimizer_configs_name_the_problem(spec, needle):
    with pytest.raises(ConfigError, match=needle):
        optim.optimizer(edn.loads(spec))


def test_noisy_sgd_draws_its_noise_from_the_given_key():
    """The run's key seeds optax's noise (not optax's fixed default); a :key in the spec wins."""
    params, grads = {"w": jnp.zeros(4)}, {"w": jnp.ones(4)}

    def first_update(spec, key=None):
        opt = optim.optimizer(edn.loads(spec), key=key)
        return np.asarray(opt.update(grads, opt.init(params), params)[0]["w"])

    spec = "{:name :noisy-sgd :learning-rate 0.1 :eta 1.0}"
    a, b = jax.random.key(1), jax.random.key(2)
    reference = optax.noisy_sgd(0.1, eta=1.0, key=a)
    expected = np.asarray(reference.update(grads, reference.init(params), params)[0]["w"])
    np.testing.assert_array_equal(first_update(spec, a), expected)
    assert not np.array_equal(first_update(spec, a), first_update(spec, b))
    with_own = "{:name :noisy-sgd :learning-rate 0.1 :eta 1.0 :key 3}"
    np.testing.assert_array_equal(first_update(with_own, a), first_update(with_own, b))


def test_binary_cross_entropy_sums_over_output_columns():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 2)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)]
    s = 1 / (1 + np.exp(-z))
    expected = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum(1)
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y), expected, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(optim.ELEMENTWISE - {"noisy-sgd"}))  # noise: one flat draw, not per array
def test_elementwise_optimizers_update_one_flat_vector_exactly_as_per_array(name):
    built, reference = optim.optimizer({"name": name, "learning-rate": 0.01}), optim.OPTIMIZERS[name](0.01)
    params = {"a": {"w": jnp.arange(6.0).reshape(2, 3) - 2, "b": jnp.array([0.5, -1.0, 2.0])}, "c": jnp.array(-3.0)}
    states = built.init(params), reference.init(params)
    assert len(jax.tree.leaves(states[0])) < len(jax.tree.leaves(states[1])) or name in ("sgd", "sign-sgd")
    for step in range(3):
        grads = jax.tree.map(lambda p, k=step + 1: jnp.cos(p * k), params)
        (u1, s1), (u2, s2) = built.update(grads, states[0], params), reference.update(grads, states[1], params)
        states = s1, s2
        for got, want in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        params = optax.apply_updates(params, u1)


def test_only_small_networks_are_updated_as_one_flat_vector():
    """Above FLAT_MAX_PARAMETERS the state stays per array (flattening large ones made steps slower), and
    ``init`` and ``update`` agree on which."""
    built, reference = optim.optimizer({"name": "adam"}), optax.adam(optim.DEFAULT_LEARNING_RATE)
    side = int(optim.FLAT_MAX_PARAMETERS**0.5) + 1
    for params, flat in (({"w": jnp.ones((side - 2, side - 2))}, True), ({"w": jnp.ones((side, side))}, False)):
        state = built.init(params)
        same = jax.tree.structure(state) == jax.tree.structure(reference.init(params))
        assert same is not flat
        updates, state = jax.jit(built.update)(params, state, params)
        np.testing.assert_allclose(updates["w"], reference.update(params, reference.init(params), params)[0]["w"])


def test_optimizers_that_treat_each_array_as_a_whole_stay_per_array():
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    assert optim.PER_ARRAY < set(optim.OPTIMIZERS) and optim.ELEMENTWISE == set(optim.OPTIMIZERS) - optim.PER_ARRAY
    for name in sorted(optim.PER_ARRAY):
        built, reference = optim.optimizer({"name": name}), optim.OPTIMIZERS[name](optim.DEFAULT_LEARNING_RATE)
        assert jax.tree.structure(built.init(params)) == jax.tree.structure(reference.init(params)), name
