"""The layer catalogue: gradients, numerics, dropout, initialisation, ids, describe, constructors."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from fpml import edn, layers, network
from fpml.errors import ConfigError
from fpml.layers import LAYER_TYPES

GRAD_TYPES = [name for name in LAYER_TYPES if name != "input"]
STOCHASTIC = {"dropout", "multiplicative-dropout"}


def _layer_map(name: str) -> dict:
    spec = LAYER_TYPES[name]
    entry = {"type": name}
    if spec.has_size:
        entry["size"] = 4
    if name == "dropout":
        entry["keep"] = 0.8
    return entry


def _x(rows: int = 6, width: int = 5, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(rows, width))
    return np.sign(z) * (np.abs(z) + 0.1)  # keep inputs away from the kinks of relu/prelu at 0


def _to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


def test_grad_types_cover_the_catalogue():
    assert set(GRAD_TYPES) | {"input"} == set(LAYER_TYPES)
    assert len(GRAD_TYPES) >= 15


GRAD_CASES = [(name, False) for name in GRAD_TYPES] + [(name, True) for name in sorted(STOCHASTIC)]


@pytest.mark.parametrize(("name", "train"), GRAD_CASES)
def test_gradients_wrt_params_and_inputs(name, train):
    net = network.build([{"type": "input", "size": 5}, _layer_map(name), {"type": "linear", "size": 3}])
    key = jax.random.key(3)
    with jax.enable_x64(True):
        params = _to64(net.init(jax.random.key(0)))
        x = jnp.asarray(_x(), jnp.float64)

        def f(p, xs):
            y = net.apply(p, xs, key=key, train=train)
            return jnp.sum(jnp.sin(y) * jnp.arange(1, y.shape[-1] + 1))

        out = f(params, x)
        assert out.dtype == jnp.float64 and jnp.isfinite(out)
        check_grads(f, (params, x), order=1, modes=["rev"], atol=1e-5, rtol=1e-5, eps=1e-6)
        # the gradient w.r.t. the input must not be identically zero (the layer passes signal through)
        gx = jax.grad(f, argnums=1)(params, x)
        assert float(jnp.abs(gx).sum()) > 0


# ----------------------------------------------------------------------------------- activation numerics


def _activation_net(name: str, width: int = 7):
    return network.build([layers.input(width), layers.activation(name)])


def test_activation_numerics_match_numpy():
    x = np.random.default_rng(1).normal(scale=3.0, size=(9, 7)).astype(np.float32)
    params = {}
    out = {
        name: np.asarray(_activation_net(name).apply(params, x))
        for name in ("relu", "tanh", "logistic", "swish", "softmax")
    }
    np.testing.assert_allclose(out["relu"], np.maximum(x, 0), rtol=1e-6)
    np.testing.assert_allclose(out["tanh"], np.tanh(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logistic"], 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["swish"], x / (1 + np.exp(-x.astype(np.float64))), rtol=1e-5, atol=1e-6)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out["softmax"], e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["softmax"].sum(axis=1), 1.0, rtol=1e-6)
    assert (out["softmax"] > 0).all()


def test_softmax_head_rows_sum_to_one_and_logits_skip_it():
    net = network.build([layers.input(5), layers.linear(3), layers.softmax()])
    params = net.init(jax.random.key(0))
    x = _x(10)
    probs = np.asarray(net.apply(params, x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert net.head == "softmax"
    logits = np.asarray(net.logits(params, x))
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits)), probs, rtol=1e-6)


def test_prelu_uses_its_slope():
    net = network.build([layers.input(3), layers.prelu(0.1)])
    params = net.init(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(params["prelu-1"]["alpha"]), np.full(3, 0.1, np.float32))
    x = np.array([[-2.0, 0.0, 3.0]], np.float32)
    np.testing.assert_allclose(np.asarray(net.apply(params, x)), [[-0.2, 0.0, 3.0]], rtol=1e-6)


# ---------------------------------------------------------------------------------------------- dropout


def test_dropout_keep_semantics():
    net = network.build([layers.input(1000), layers.dropout(keep=0.9)])
    x = np.ones((200, 1000), np.float32)
    y = np.asarray(net.apply({}, x, key=jax.random.key(0), train=True))
    dropped = np.mean(y == 0)
    assert 0.095 < dropped < 0.105  # 200,000 units: std of the share ~0.0007
    survivors = y[y != 0]
    np.testing.assert_allclose(survivors, 1 / 0.9, rtol=1e-6)
    assert y.mean() == pytest.approx(1.0, abs=0.01)  # inverted dropout keeps the expectation


def test_dropout_is_identity_when_not_training():
    net = network.build([layers.input(50), layers.dropout(keep=0.5)])
    x = _x(20, 50).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(net.apply({}, x, train=False)), x)
    np.testing.assert_array_equal(np.asarray(net.apply({}, x, key=jax.random.key(1))), x)


def test_dropout_rate_equals_keep():
    by_rate = network.build([layers.input(300), layers.dropout(rate=0.1)])
    by_keep = network.build([layers.input(300), layers.dropout(keep=0.9)])
    x = np.ones((40, 300), np.float32)
    key = jax.random.key(5)
    a = np.asarray(by_rate.apply({}, x, key=key, train=True))
    b = np.asarray(by_keep.apply({}, x, key=key, train=True))
    np.testing.assert_array_equal(a, b)
    assert 0.07 < np.mean(a == 0) < 0.13


def test_dropout_needs_exactly_one_of_keep_and_rate():
    with pytest.raises(ConfigError, match="keep"):
        network.build([layers.input(3), {"type": "dropout"}])
    with pytest.raises(ConfigError, match="keep"):
        network.build([layers.input(3), {"type": "dropout", "keep": 0.5, "rate": 0.5}])


def test_dropout_same_key_same_mask_different_key_different_mask():
    net = network.build([layers.input(100), layers.dropout(keep=0.5)])
    x = np.ones((10, 100), np.float32)
    a = np.asarray(net.apply({}, x, key=jax.random.key(1), train=True))
    b = np.asarray(net.apply({}, x, key=jax.random.key(1), train=True))
    c = np.asarray(net.apply({}, x, key=jax.random.key(2), train=True))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_training_a_dropout_network_without_key_is_an_error():
    net = network.build([layers.input(3), layers.dropout(keep=0.5)])
    with pytest.raises(ValueError, match="key"):
        net.apply({}, np.ones((2, 3), np.float32), train=True)


def test_multiplicative_dropout_mean_one_given_variance():
    net = network.build([layers.input(1000), layers.multiplicative_dropout(0.25)])
    x = np.ones((100, 1000), np.float32)
    y = np.asarray(net.apply({}, x, key=jax.random.key(0), train=True))
    assert y.mean() == pytest.approx(1.0, abs=0.01)
    assert y.var() == pytest.approx(0.25, rel=0.03)
    np.testing.assert_array_equal(np.asarray(net.apply({}, x, train=False)), x)


# ------------------------------------------------------------------------------------------ initialisation


def _w_std(description) -> float:
    net = network.build(description)
    params = net.init(jax.random.key(0))
    return float(np.asarray(params["linear-1"]["w"]).std())


FAN_IN, FAN_OUT = 400, 1600
HE = np.sqrt(2 / FAN_IN)
GLOROT = np.sqrt(2 / (FAN_IN + FAN_OUT))
LECUN = np.sqrt(1 / FAN_IN)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ([layers.activation("relu")], HE),
        ([layers.activation("gelu")], HE),
        ([layers.activation("swish")], HE),
        ([layers.prelu()], HE),
        ([layers.activation("selu")], LECUN),
        ([layers.activation("tanh")], GLOROT),
        ([layers.activation("logistic")], GLOROT),
        ([], GLOROT),
        ([layers.dropout(keep=0.9), layers.activation("relu")], HE),  # dropout is looked through
    ],
)
def test_linear_init_follows_next_activation(after, expected):
    std = _w_std([layers.input(FAN_IN), layers.linear(FAN_OUT), *after])
    assert std == pytest.approx(expected, rel=0.03)


def test_composite_linear_layers_init():
    assert _w_std([layers.input(FAN_IN), layers.linear_then("relu", FAN_OUT)]) == pytest.approx(HE, rel=0.03)
    tanh_std = _w_std([layers.input(FAN_IN), layers.linear_then("tanh", FAN_OUT)])
    assert tanh_std == pytest.approx(GLOROT, rel=0.03)


def test_explicit_init_wins():
    std = _w_std([layers.input(FAN_IN), layers.linear(FAN_OUT, init="glorot"), layers.activation("relu")])
    assert std == pytest.approx(GLOROT, rel=0.03)


def test_bias_starts_at_zero():
    net = network.build([layers.input(5), layers.linear_then("relu", 4)])
    params = net.init(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(params["linear-1"]["b"]), np.zeros(4, np.float32))
    assert params["linear-1"]["w"].dtype == jnp.float32


# ------------------------------------------------------------------------------------------- ids, params


def test_auto_ids_and_params_keyed_by_id():
    net = network.build(
        [
            layers.input(5),
            layers.linear(4),
            layers.activation("relu"),
            layers.linear_then("relu", 3),
            layers.dropout(keep=0.9),
            layers.linear(2),
            layers.activation("relu"),
        ]
    )
    ids = [str(layer["id"]) for layer in net.description]
    assert ids == ["input-1", "linear-1", "relu-1", "linear-2", "dropout-1", "linear-3", "relu-2"]
    params = net.init(jax.random.key(0))
    assert sorted(params) == ["linear-1", "linear-2", "linear-3"]
    assert params["linear-1"]["w"].shape == (5, 4)
    assert params["linear-2"]["w"].shape == (4, 3)
    assert params["linear-3"]["w"].shape == (3, 2)
    assert net.apply(params, _x(7)).shape == (7, 2)


def test_explicit_ids_are_kept_and_must_be_unique():
    net = network.build([layers.input(5, id="data"), layers.linear(4, id="hidden"), layers.linear(2)])
    # an auto id numbers a layer among all layers of its type, so naming one layer renames no other
    assert [str(layer["id"]) for layer in net.description] == ["data", "hidden", "linear-2"]
    assert sorted(net.init(jax.random.key(0))) == ["hidden", "linear-2"]
    with pytest.raises(ConfigError, match="duplicate"):
        network.build([layers.input(5), layers.linear(4, id="a"), layers.linear(2, id="a")])


def test_ids_are_keywords_that_read_back_from_edn():
    plain = network.normalize([{"type": "input", "size": 3, "id": "data"}, {"type": "linear", "size": 2}])
    assert type(plain[0]["id"]) is edn.Keyword and edn.dumps(plain[0]) == "{:type :input :id :data :size 3}"
    ok = network.normalize(edn.loads('[{:type :input :size 3 :id :enc/in} {:type :linear :size 2 :id "-x?"}]'))
    assert [str(layer["id"]) for layer in ok] == ["enc/in", "-x?"]
    for bad in ['"my layer"', '""', "3", '"a{b"', "nil", '":enc"', '"3d"', '"-3"', '"#a"', '"a/b/c"', '"a@b"']:
        with pytest.raises(ConfigError) as err:
            network.normalize(edn.loads(f"[{{:type :input :size 3 :id {bad}}} {{:type :linear :size 2}}]"))
        assert str(err.value).endswith(f":id must be a keyword like :data, got {bad}")


def _shapes(params):
    return {lid: {n: tuple(v.shape) for n, v in p.items()} for lid, p in params.items()}


def test_adding_a_layer_leaves_other_params_unchanged_in_shape():
    base = [layers.input(5, id="in"), layers.linear(4, id="a"), layers.linear(2, id="b")]
    more = [
        layers.input(5, id="in"),
        layers.linear(4, id="a"),
        layers.linear_then("relu", 4, id="extra"),
        layers.dropout(keep=0.9),
        layers.linear(2, id="b"),
    ]
    s1 = _shapes(network.build(base).init(jax.random.key(0)))
    s2 = _shapes(network.build(more).init(jax.random.key(0)))
    assert set(s2) == set(s1) | {"extra"}
    for lid in s1:
        assert s1[lid] == s2[lid]
    # auto ids: appending at the end leaves earlier ids and shapes alone
    a = _shapes(network.build([layers.input(5), layers.linear(4), layers.linear(3)]).init(jax.random.key(0)))
    b = _shapes(
        network.build(
            [layers.input(5), layers.linear(4), layers.linear(3), layers.activation("relu"), layers.linear(2)]
        ).init(jax.random.key(0))
    )
    assert {k: b[k] for k in a} == a and set(b) == {"linear-1", "linear-2", "linear-3"}


def test_same_key_same_params_different_key_different_params():
    net = network.build([layers.input(5), layers.linear_then("relu", 4), layers.prelu(), layers.linear(2)])
    p1, p2 = net.init(jax.random.key(7)), net.init(jax.random.key(7))
    p3 = net.init(jax.random.key(8))
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert not np.array_equal(np.asarray(p1["linear-1"]["w"]), np.asarray(p3["linear-1"]["w"]))
    # a rebuilt network gives the same params for the same key
    again = network.build([layers.input(5), layers.linear_then("relu", 4), layers.prelu(), layers.linear(2)])
    np.testing.assert_array_equal(
        np.asarray(again.init(jax.random.key(7))["linear-2"]["w"]), np.asarray(p1["linear-2"]["w"])
    )


def test_describe_total_equals_param_sizes():
    net = network.build(
        [
            layers.input(5),
            layers.linear_then("relu", 8),
            layers.prelu(),
            layers.dropout(keep=0.9),
            layers.linear(6),
            layers.activation("tanh"),
            layers.linear(2),
            layers.softmax(),
        ]
    )
    params = net.init(jax.random.key(0))
    size = sum(int(np.asarray(leaf).size) for leaf in jax.tree.leaves(params))
    assert size == (5 * 8 + 8) + 8 + (8 * 6 + 6) + (6 * 2 + 2)
    text = network.describe(net)
    total_line = text.splitlines()[-1]
    assert total_line.startswith("total")
    assert int(re.findall(r"\d+", total_line)[-1]) == size
    rows = network.summary(net)
    assert sum(r.param_count for r in rows) == size
    assert [r.layer_id for r in rows] == [str(layer["id"]) for layer in net.description]
    by_id = {r.layer_id: r for r in rows}
    assert by_id["linear-1"].param_shapes == {"w": (5, 8), "b": (8,)}
    assert by_id["linear-3"].output_shape == (2,)


# ------------------------------------------------------------------------------------------ constructors


EDN_TEXT = """
[{:type :input :size 5}
 {:type :linear->relu :size 4 :l2 0.01}
 {:type :dropout :keep 0.9}
 {:type :prelu :alpha 0.2}
 {:type :multiplicative-dropout :variance 0.3}
 {:type :linear->tanh :size 3 :init :he :id :hidden}
 {:type :swish}
 {:type :linear :size 2 :l1 0.001}
 {:type :softmax}]
"""


def test_constructors_build_the_same_network_as_edn():
    built = [
        layers.input(5),
        layers.linear_then("relu", 4, l2=0.01),
        layers.dropout(keep=0.9),
        layers.prelu(0.2),
        layers.multiplicative_dropout(0.3),
        layers.linear_then("tanh", 3, init="he", id="hidden"),
        layers.activation("swish"),
        layers.linear(2, l1=0.001),
        layers.softmax(),
    ]
    from_py = network.build(built)
    from_edn = network.build(edn.loads(EDN_TEXT))
    assert from_py.description == from_edn.description
    assert edn.dumps(from_py.description) == edn.dumps(from_edn.description)
    assert (from_py.head, from_py.input_size, from_py.output_size) == (from_edn.head, 5, 2)
    p1, p2 = from_py.init(jax.random.key(0)), from_edn.init(jax.random.key(0))
    assert _shapes(p1) == _shapes(p2)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    x = _x(4)
    np.testing.assert_array_equal(np.asarray(from_py.apply(p1, x)), np.asarray(from_edn.apply(p2, x)))
    key = jax.random.key(9)
    np.testing.assert_array_equal(
        np.asarray(from_py.apply(p1, x, key=key, train=True)), np.asarray(from_edn.apply(p2, x, key=key, train=True))
    )


def test_constructor_maps_are_plain_layer_maps():
    assert layers.linear(20) == edn.loads("{:type :linear :size 20}")
    assert layers.dropout(rate=0.2) == edn.loads("{:type :dropout :rate 0.2}")
    head = edn.loads("{:type :linear->softmax :size 3 :id :out}")
    assert layers.linear_then("softmax", 3, id="out") == head
    assert layers.multiplicative_dropout() == edn.loads("{:type :multiplicative-dropout :variance 0.5}")
    assert isinstance(layers.linear(2)["type"], edn.Keyword)


def test_a_softmax_over_one_output_is_refused():
    """It is always 1: the loss and every gradient would be 0 and the network would never learn."""
    with pytest.raises(ConfigError, match=r"network layer 2 \(softmax-1\): a softmax over 1 output .* :logistic"):
        network.build([layers.input(5), layers.linear(1), layers.softmax()])
    assert network.build([layers.input(5), layers.linear(1), layers.activation("logistic")]).output_size == 1


def test_selu_and_gelu_match_their_formulas():
    """selu and gelu (JAX's tanh form) against their formulas in float64."""
    x = np.random.default_rng(1).normal(scale=3.0, size=(9, 7)).astype(np.float32)
    selu = np.asarray(network.build([layers.input(7), layers.activation("selu")]).apply({}, x))
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(selu, scale * np.where(x64 > 0, x64, alpha * np.expm1(x64)), rtol=1e-5, atol=1e-6)
    gelu = np.asarray(network.build([layers.input(7), layers.activation("gelu")]).apply({}, x))
    ref = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))  # jax's default (tanh)
    np.testing.assert_allclose(gelu, ref, rtol=1e-4, atol=1e-5)


def test_dropout_keep_zero_and_rate_one_are_refused():
    """keep 0 (rate 1) would drop every unit and divide by 0; keep 1 is allowed."""
    with pytest.raises(ConfigError, match="keep"):
        network.build([layers.input(3), layers.dropout(keep=0.0)])
    with pytest.raises(ConfigError, match="rate"):
        network.build([layers.input(3), layers.dropout(rate=1.0)])
    network.build([layers.input(3), layers.dropout(keep=1.0)])  # the upper bound is allowed


def test_parents_may_only_name_the_previous_layer():
    """A network is a chain: :parents may name only the layer before, never a branch or a skip."""
    ok = [layers.input(3), layers.linear(4), {"type": "linear", "size": 2, "parents": ["linear-1"]}]
    assert [str(layer["id"]) for layer in network.normalize(ok)] == ["input-1", "linear-1", "linear-2"]
    branch = [layers.input(3), layers.linear(4), {"type": "linear", "size": 2, "parents": ["input-1", "linear-1"]}]
    with pytest.raises(ConfigError, match="branch"):
        network.normalize(branch)
    skip = [layers.input(3), layers.linear(4), {"type": "linear", "size": 2, "parents": ["input-1"]}]
    with pytest.raises(ConfigError, match="branch"):
        network.normalize(skip)
    with pytest.raises(ConfigError, match="not an earlier layer"):
        network.normalize([layers.input(3), {"type": "linear", "size": 2, "parents": ["nope"]}])


def test_logits_of_a_headless_network_are_its_outputs():
    """Without a softmax/logistic head, ``logits`` is the whole network, last layer included."""
    for description in (
        [layers.input(3), layers.linear(2)],
        [layers.input(3), layers.linear_then("relu", 4), layers.linear(2), layers.activation("tanh")],
    ):
        net = network.build(description)
        assert net.head is None
        params = net.init(jax.random.key(0))
        x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(net.logits(params, x)), np.asarray(net.apply(params, x)))


def test_a_linear_layer_before_another_linear_takes_glorot_init():
    """A linear layer's init follows its own activation: before another sized layer it has none (Glorot),
    whatever activation comes two layers on."""
    fan_in, fan_out = 400, 1600
    net = network.build([layers.input(fan_in), layers.linear(fan_out), layers.linear(8), layers.activation("relu")])
    std = float(np.asarray(net.init(jax.random.key(0))["linear-1"]["w"]).std())
    assert std == pytest.approx(np.sqrt(2 / (fan_in + fan_out)), rel=0.03)  # glorot, not he (0.0707)


# ------------------------------------------------------------------------------------------------- affine


def _plain_affine(x, w, b):
    return x @ w + b


@pytest.mark.parametrize("x_shape", [(5,), (6, 5), (2, 3, 5), (130, 5)])  # the last: more rows than small
def test_affine_has_the_derivatives_of_x_at_w_plus_b(x_shape):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x, w, b = (jnp.asarray(rng.normal(size=s)) for s in (x_shape, (5, 4), (4,)))

        def f(fn):
            return jax.jit(lambda x, w, b: jnp.sum(jnp.tanh(fn(x, w, b)) * jnp.arange(1.0, 5.0)))

        np.testing.assert_allclose(layers.affine(x, w, b), _plain_affine(x, w, b), rtol=1e-12)
        grads = jax.grad(f(layers.affine), (0, 1, 2))(x, w, b), jax.grad(f(_plain_affine), (0, 1, 2))(x, w, b)
        for got, want in zip(*grads, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(  # forward mode, and second order through the custom rule
            jax.hessian(f(layers.affine), 1)(x, w, b), jax.hessian(f(_plain_affine), 1)(x, w, b), rtol=1e-9, atol=1e-12
        )
        check_grads(f(layers.affine), (x, w, b), order=2, modes=["rev"], atol=1e-6, rtol=1e-6, eps=1e-5)
        batched = jax.vmap(jax.grad(f(layers.affine), 1), (0, None, None))(jnp.stack([x, 2 * x]), w, b)
        np.testing.assert_allclose(batched[1], jax.grad(f(_plain_affine), 1)(2 * x, w, b), rtol=1e-10, atol=1e-12)


def test_affine_takes_what_x_at_w_plus_b_takes():
    """Integer inputs (no tangent), a bias of another shape, no features: the general form's derivatives."""
    x, w, b = jnp.arange(6).reshape(2, 3), jnp.ones((3, 4)), jnp.zeros(4)
    for args in ((x, w, b), (x * 1.0, w, jnp.float32(1.0)), (x * 1.0, w, jnp.ones((1, 4))), (x * 1.0, w, b + x[:, :1])):
        got = jax.grad(lambda w, a=args: jnp.sum(layers.affine(a[0], w, a[2]) ** 2))(w)
        np.testing.assert_allclose(got, jax.grad(lambda w, a=args: jnp.sum(_plain_affine(a[0], w, a[2]) ** 2))(w))
    assert jax.grad(lambda w: layers.affine(jnp.ones((2, 0)), w, b).sum())(jnp.ones((0, 4))).shape == (0, 4)


def _dots_and_reductions(fn, hidden: int = 20) -> tuple[list[tuple[str, str]], int]:
    """The contracting dimensions of every product in the compiled gradient of a 29-``hidden``-10-2
    network's loss through ``fn``, and how many reductions it has."""
    keys = jax.random.split(jax.random.key(0), 4)
    sizes = [(29, hidden), (hidden, 10), (10, 2)]
    params = [(jax.random.normal(k, s), jnp.zeros(s[1])) for k, s in zip(keys, sizes, strict=False)]

    def loss(params, x):
        for i, (w, b) in enumerate(params):
            x = fn(x, w, b)
            x = jax.nn.relu(x) if i < len(params) - 1 else x
        return jnp.sum(x**2)

    text = jax.jit(jax.grad(loss)).lower(params, jax.random.normal(keys[3], (100, 29))).compile().as_text()
    dots = re.findall(r" dot\(.*?lhs_contracting_dims=\{(\d+)\}, rhs_contracting_dims=\{(\d+)\}", text)
    return dots, len(re.findall(r" reduce\(", text))


def test_affine_gradient_is_row_major_products_with_the_bias_inside():
    """Every product of the compiled gradient contracts the left operand's columns with the right one's rows
    (what XLA's tiled CPU loops take), and no bias needs a reduction of its own; plain autodiff of
    ``x @ w + b`` has neither."""
    dots, reductions = _dots_and_reductions(layers.affine)
    assert dots == [("1", "0")] * 8 and reductions == 0  # 3 forward, 3 weight (+ bias), 2 input gradients
    plain_dots, plain_reductions = _dots_and_reductions(_plain_affine)
    assert len(plain_dots) == 8 and set(plain_dots) != {("1", "0")} and plain_reductions == 3
    # a layer of more than SMALL_PRODUCT outputs keeps autodiff's form (its products go to the libraries)
    big_dots, big_reductions = _dots_and_reductions(layers.affine, hidden=layers.SMALL_PRODUCT + 1)
    assert set(big_dots) != {("1", "0")} and big_reductions >= 1


def test_affine_row_major_gradient_is_lowered_for_the_cpu_only():
    """Other backends (GPU, TPU) keep autodiff's products, with no explicit transposes: chosen per platform
    when the program is lowered, so a program exported here for CUDA has no ``optimization_barrier``."""
    grad = jax.jit(jax.grad(lambda w, x: layers.affine(x, w, jnp.zeros(3)).sum()))
    args = jnp.ones((5, 3)), jnp.ones((4, 5))
    text = {p: jax.export.export(grad, platforms=[p])(*args).mlir_module() for p in ("cpu", "cuda", "tpu")}
    assert "optimization_barrier" in text["cpu"]
    assert "optimization_barrier" not in text["cuda"] and "optimization_barrier" not in text["tpu"]


# ------------------------------------------------------------------------ inference on widened layers


def _sizes(description) -> list[int]:
    widened = network.widened(network.normalize(description))
    return [layer["size"] for layer in widened if LAYER_TYPES[layer["type"]].has_size]


def test_widened_rounds_small_hidden_linear_layers_up_to_16_units():
    fraud = [
        layers.input(29),
        layers.linear_then("relu", 20),
        layers.dropout(keep=0.9),
        layers.linear_then("relu", 10),
        layers.linear(2),
        layers.softmax(),
    ]
    assert _sizes(fraud) == [29, 32, 16, 2]
    tanh_dropout = [layers.input(4), layers.linear(5), layers.activation("tanh"), layers.dropout(rate=0.5)]
    assert _sizes([*tanh_dropout, layers.linear(3)]) == [4, 16, 3]
    # kept: a layer feeding a softmax (it would sum over the padded units), the last linear layer, layers
    # with an input or output over SMALL_PRODUCT (bound by arithmetic), widths that are multiples of 16
    assert _sizes([layers.input(4), layers.linear_then("softmax", 5), layers.linear(3)]) == [4, 5, 3]
    assert _sizes([layers.input(4), layers.linear(5), layers.softmax(), layers.linear(3)]) == [4, 5, 3]
    assert _sizes([layers.input(200), layers.linear(100), layers.linear(2)]) == [200, 100, 2]
    assert _sizes([layers.input(29), layers.linear(130), layers.linear(2)]) == [29, 130, 2]
    assert _sizes([layers.input(29), layers.linear(128), layers.linear(100), layers.linear(2)]) == [29, 128, 112, 2]


ROWS = network.WIDEN_FROM_ROWS


def _widths(jaxpr_text: str, rows: int) -> set[int]:
    return {int(w) for w in re.findall(rf"f32\[{rows},(\d+)\]", jaxpr_text)}


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "swish", "selu", "gelu", "prelu"])
def test_inference_through_widened_layers_equals_the_network(monkeypatch, activation):
    """At inference on the CPU with YNNPACK, ``apply`` runs :func:`network.widened` on padded params: the
    same outputs and gradients as the network itself (XLA_FLAGS with YNNPACK off takes that path), also
    where an input is infinite."""
    description = [
        layers.input(6),
        layers.linear(5),
        {"type": activation},
        layers.dropout(keep=0.5),
        layers.multiplicative_dropout(0.3),
        layers.linear(3),
        layers.softmax(),
    ]
    net = network.build(description)
    init = net.init(jax.random.key(0))
    leaves, tree = jax.tree.flatten(init)
    noise = [np.random.default_rng(i).normal(size=leaf.shape).astype(np.float32) for i, leaf in enumerate(leaves)]
    params = jax.tree.unflatten(tree, [leaf + n for leaf, n in zip(leaves, noise, strict=True)])  # biases not 0
    x = _x(rows=ROWS, width=6).astype(np.float32)
    x_inf = x.copy()
    x_inf[0, 0], x_inf[1, 2] = np.inf, -np.inf  # each padded unit copies a real one: no inf * 0 = NaN

    def run(net):
        def loss(p):
            return jnp.sum(net.apply(p, x) * jnp.arange(3.0)) + jnp.sum(net.logits(p, x) ** 2)

        width = _widths(str(jax.make_jaxpr(net.apply)(params, x)), ROWS)
        outputs = np.asarray(net.apply(params, x)), net.logits(params, x), np.asarray(net.apply(params, x_inf))
        return width, *outputs, jax.grad(loss)(params)

    width, *wide = run(net)
    assert 16 in width
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    width, *plain = run(network.build(description))  # a new network: JAX caches what it traced
    assert 16 not in width
    np.testing.assert_allclose(wide[0], plain[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wide[1], plain[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wide[2], plain[2], rtol=1e-5, atol=1e-6)  # NaN where the network has NaN
    if activation in ("tanh", "logistic"):
        assert np.isfinite(plain[2]).all()  # they take an infinite sum to a finite value
    assert jax.tree.map(jnp.shape, wide[3]) == jax.tree.map(jnp.shape, params)
    for a, b in zip(jax.tree.leaves(wide[3]), jax.tree.leaves(plain[3]), strict=True):  # float32 sums: to scale
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * float(np.abs(b).max()))


def test_widened_inference_matches_numpy_and_runs_only_at_inference_on_the_cpu():
    net = network.build([layers.input(4), layers.linear_then("relu", 6), layers.linear(2), layers.softmax()])
    params = {"linear-1": {"w": np.full((4, 6), 0.1, np.float32), "b": np.arange(6, dtype=np.float32) - 2}}
    params["linear-2"] = {"w": np.arange(12, dtype=np.float32).reshape(6, 2) / 10, "b": np.float32([0.5, -0.5])}
    x = _x(rows=ROWS, width=4).astype(np.float32)
    logits = np.maximum(x @ params["linear-1"]["w"] + params["linear-1"]["b"], 0) @ params["linear-2"]["w"]
    e = np.exp(logits + params["linear-2"]["b"])
    np.testing.assert_allclose(jax.jit(net.apply)(params, x), e / e.sum(axis=1, keepdims=True), rtol=1e-5)
    assert 16 in _widths(str(jax.make_jaxpr(net.apply)(params, x)), ROWS)
    training = jax.make_jaxpr(lambda p: net.apply(p, x, train=True))(params)
    assert 16 not in _widths(str(training), ROWS)
    few = x[: network.WIDEN_FROM_ROWS - 1]  # where padding the params costs more than it saves
    assert 16 not in _widths(str(jax.make_jaxpr(net.apply)(params, few)), len(few))
    # chosen when the program is lowered: a program exported for CUDA multiplies by the 6-unit weights
    export = {p: jax.export.export(jax.jit(net.apply), platforms=[p]) for p in ("cpu", "cuda")}
    exported = {p: fn(params, x).mlir_module() for p, fn in export.items()}
    wide = f"tensor<{ROWS}x16xf32>"
    assert wide in exported["cpu"] and wide not in exported["cuda"]
    # params of other shapes go the network's own way, and fail as it does
    bad = {**params, "linear-2": {"w": np.ones((5, 2), np.float32), "b": np.zeros(2, np.float32)}}
    with pytest.raises(TypeError, match="dot_general"):
        net.apply(bad, x)
