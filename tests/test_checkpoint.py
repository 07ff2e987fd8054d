"""Checkpoints: bit-identical round trips, optimizer state, damaged/foreign files, atomic writes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from fpml import checkpoint, edn, layers, network, optim
from fpml.errors import CheckpointError

DESCRIPTION = [
    layers.input(5),
    layers.linear_then("relu", 8),
    layers.prelu(),
    layers.dropout(keep=0.9),
    layers.linear(2),
    layers.softmax(),
]


@pytest.fixture(scope="module")
def net():
    return network.build(DESCRIPTION)


@pytest.fixture(scope="module")
def params(net):
    return net.init(jax.random.key(0))


def _x():
    return np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)


def _leaves_identical(a, b) -> None:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def test_round_trip_is_bit_identical(tmp_path, net, params):
    cfg = edn.freeze({"batch-size": 10, "network": list(net.description)})
    path = checkpoint.save(
        tmp_path / "ckpt.npz", net.description, params, epoch=7, metrics={"f-beta": 0.5, "auprc": 0.25}, config=cfg
    )
    assert path == tmp_path / "ckpt.npz" and path.is_file()
    ckpt = checkpoint.load(path)
    assert sorted(ckpt.params) == sorted(params)
    _leaves_identical(ckpt.params, params)
    x = _x()
    before = np.asarray(net.apply(params, x))
    after = np.asarray(net.apply(ckpt.params, x))
    assert before.tobytes() == after.tobytes()
    assert ckpt.epoch == 7
    assert ckpt.metrics == {"f-beta": 0.5, "auprc": 0.25}
    assert ckpt.config == cfg
    assert ckpt.description == net.description
    assert ckpt.opt_state is None
    # the stored description rebuilds the same network
    rebuilt = network.build(ckpt.description)
    assert rebuilt.description == net.description
    assert np.asarray(rebuilt.apply(ckpt.params, x)).tobytes() == before.tobytes()
    checkpoint.check_params(ckpt, rebuilt)  # no error


def test_layer_ids_with_a_slash_round_trip(tmp_path):
    """EDN keywords may have a namespace (:enc/out); the id is everything before the parameter's name."""
    description = edn.loads("[{:type :input :size 3} {:type :linear :size 2 :id :enc/out} {:type :softmax}]")
    named = network.build(description)
    params = named.init(jax.random.key(0))
    ckpt = checkpoint.check_params(checkpoint.load(checkpoint.save(tmp_path / "c.npz", description, params)), named)
    assert sorted(ckpt.params) == ["enc/out"]
    _leaves_identical(ckpt.params, params)


def test_repr_counts_epochs_from_one_as_the_log_does(tmp_path, net, params):
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, epoch=0))
    assert repr(ckpt).startswith("Checkpoint(epoch 1, ")


def test_opt_state_round_trip(tmp_path, net, params):
    opt = optax.adam(1e-2)
    state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = opt.update(grads, state, params)  # non-trivial mu, nu and count
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params, opt_state=state, epoch=1)
    ckpt = checkpoint.load(path)
    assert ckpt.opt_state is not None and len(ckpt.opt_state) == len(jax.tree.leaves(state))
    restored = checkpoint.restore_opt_state(ckpt, opt.init(ckpt.params))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    _leaves_identical(restored, state)
    # the restored state continues exactly like the original
    u1, _ = opt.update(grads, state, params)
    u2, _ = opt.update(grads, restored, ckpt.params)
    _leaves_identical(u1, u2)


def test_opt_state_from_another_optimizer_is_rejected(tmp_path, net, params):
    state = optax.adam(1e-2).init(params)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=state))
    template = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9)).init(params)
    assert len(jax.tree.leaves(template)) != len(ckpt.opt_state)
    with pytest.raises(CheckpointError, match="optimizer"):
        checkpoint.restore_opt_state(ckpt, template)


@pytest.mark.parametrize(
    "saved_with, restored_with",
    [
        (optax.sgd(0.1, momentum=0.9), optax.rmsprop(0.1)),  # the same number of arrays: one per parameter
        (optax.sgd(0.1, momentum=0.9), optax.adagrad(0.1)),
        (optax.adam(0.1), optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))),
    ],
)
def test_opt_state_of_the_same_size_from_another_optimizer_is_rejected(
    tmp_path, net, params, saved_with, restored_with
):
    state = saved_with.init(params)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=state))
    with pytest.raises(CheckpointError, match=r"saved by another optimizer \(\w+State.*; this optimizer has \w+State"):
        checkpoint.restore_opt_state(ckpt, restored_with.init(params))


def test_opt_state_for_other_parameters_is_rejected(tmp_path, net, params):
    opt = optax.adam(0.1)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=opt.init(params)))
    with pytest.raises(CheckpointError, match=r"saved for other parameters than the network's \(ScaleByAdamState"):
        checkpoint.restore_opt_state(ckpt, opt.init({"other": params["linear-1"]}))


def test_opt_state_saved_array_by_array_before_optimizers_were_flat_is_converted(tmp_path, net, params):
    """A run saved when fpml's Adam kept one state array per parameter array continues with the flat one, as
    it would have continued with the old: the same state, raveled as ``optax.flatten`` does."""
    old = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))  # fpml's Adam, clipped, before
    new = optim.optimizer({"name": "adam", "learning-rate": 0.1, "clip-global-norm": 1.0})
    grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
    _, state = old.update(grads, old.init(params), params)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=state))
    for saved in (ckpt, ckpt._replace(opt_state_structure=None)):  # also when another JAX version wrote it
        restored = checkpoint.restore_opt_state(saved, new.init(params))
        assert jax.tree.structure(restored) == jax.tree.structure(new.init(params))
        adam_old, adam_new = state[1][0], restored[1][0]
        assert adam_new.count == adam_old.count == 1
        for field in ("mu", "nu"):
            np.testing.assert_array_equal(getattr(adam_new, field), ravel_pytree(getattr(adam_old, field))[0])
        (u_old, _), (u_new, _) = old.update(grads, state, params), new.update(grads, restored, params)
        for got, want in zip(jax.tree.leaves(u_new), jax.tree.leaves(u_old), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    other = optax.sgd(0.1, momentum=0.9)  # another optimizer's state, saved array by array: still refused
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "s.npz", net.description, params, opt_state=other.init(params)))
    refused = r"another optimizer \(TraceState \+ EmptyState; this optimizer has EmptyState \+ ScaleByAdamState"
    with pytest.raises(CheckpointError, match=refused):
        checkpoint.restore_opt_state(ckpt, new.init(params))
    with pytest.raises(CheckpointError, match=r"has \d+ arrays, the optimizer needs 3: was it saved with another"):
        checkpoint.restore_opt_state(ckpt._replace(opt_state_structure=None), new.init(params))


def test_opt_state_with_other_shapes_is_rejected_without_a_saved_structure(tmp_path, net, params):
    """Checkpoints written before the structure was saved are still checked array by array."""
    opt = optax.adam(0.1)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=opt.init(params)))
    other = jax.tree.map(lambda a: jnp.zeros((a.shape[0] + 1, *a.shape[1:])), params)
    with pytest.raises(CheckpointError, match=r"array 1 is float32\[.*\], the optimizer needs float32\["):
        checkpoint.restore_opt_state(ckpt._replace(opt_state_structure=None), opt.init(other))


def test_the_structure_is_compared_only_under_the_jax_version_that_wrote_it(tmp_path, net, params):
    path = checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=optax.adam(0.1).init(params))
    assert checkpoint.load(path).opt_state_structure.startswith("PyTreeDef(")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, "jax_version": np.array("0.0.1")})  # another JAX may print trees differently
    ckpt = checkpoint.load(path)
    assert ckpt.opt_state_structure is None
    restored = checkpoint.restore_opt_state(ckpt, optax.adam(0.1).init(params))  # the arrays still checked
    _leaves_identical(restored, optax.adam(0.1).init(params))


def test_opt_state_holding_a_prng_key_round_trips(tmp_path, net, params):
    """optax's noisy SGD keeps a typed PRNG key in its state: saved as key data, restored as the same key."""
    opt = optax.noisy_sgd(0.1, key=jax.random.key(7))
    grads = jax.tree.map(jnp.ones_like, params)
    _, state = opt.update(grads, opt.init(params), params)
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "c.npz", net.description, params, opt_state=state))
    restored = checkpoint.restore_opt_state(ckpt, opt.init(ckpt.params))
    u1, _ = opt.update(grads, state, params)
    u2, _ = opt.update(grads, restored, ckpt.params)
    _leaves_identical(u1, u2)  # the same noise: the key came back


def test_a_file_lacking_entries_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, format=np.array(checkpoint.FORMAT_VERSION))
    with pytest.raises(CheckpointError, match="damaged: it lacks description, config, metrics, epoch"):
        checkpoint.load(path)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path, net, params, keep):
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params, epoch=2)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as info:
        checkpoint.load(path)
    assert "ckpt.npz" in str(info.value)


def test_garbage_and_missing_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError):
        checkpoint.load(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")


def _rewrite(path, **changes):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_wrong_format_version(tmp_path, net, params, version):
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params)
    _rewrite(path, format=np.array(version))
    with pytest.raises(CheckpointError, match="version") as info:
        checkpoint.load(path)
    assert str(version) in str(info.value)


def test_missing_format_version(tmp_path, net, params):
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params)
    _rewrite(path, format=None)
    with pytest.raises(CheckpointError, match="version"):
        checkpoint.load(path)


def test_damaged_description(tmp_path, net, params):
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params)
    _rewrite(path, description=np.array("[{:type :input"))
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_check_params_rejects_checkpoint_of_another_network(tmp_path, net, params):
    ckpt = checkpoint.load(checkpoint.save(tmp_path / "ckpt.npz", net.description, params))
    other_width = network.build(
        [
            layers.input(5),
            layers.linear_then("relu", 9),
            layers.prelu(),
            layers.dropout(keep=0.9),
            layers.linear(2),
            layers.softmax(),
        ]
    )
    with pytest.raises(CheckpointError, match="linear-1"):
        checkpoint.check_params(ckpt, other_width)
    other_input = network.build([layers.input(6), *DESCRIPTION[1:]])
    with pytest.raises(CheckpointError):
        checkpoint.check_params(ckpt, other_input)
    extra_layer = network.build([*DESCRIPTION[:-1], layers.linear(2), layers.softmax()])
    with pytest.raises(CheckpointError, match="linear-3"):
        checkpoint.check_params(ckpt, extra_layer)
    fewer_layers = network.build([layers.input(5), layers.linear_then("relu", 8), layers.linear(2)])
    with pytest.raises(CheckpointError, match="prelu-1"):
        checkpoint.check_params(ckpt, fewer_layers)
    checkpoint.check_params(ckpt, network.build(DESCRIPTION))  # the same network passes


def test_save_leaves_no_temp_files(tmp_path, net, params):
    for epoch in range(3):
        checkpoint.save(tmp_path / "ckpt.npz", net.description, params, epoch=epoch)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    assert checkpoint.load(tmp_path / "ckpt.npz").epoch == 2


def test_save_creates_missing_folders(tmp_path, net, params):
    path = checkpoint.save(tmp_path / "a" / "b" / "ckpt.npz", net.description, params)
    assert checkpoint.load(path).epoch == 0


@pytest.mark.parametrize("partial_write", [False, True])
def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, net, params, partial_write):
    path = checkpoint.save(tmp_path / "ckpt.npz", net.description, params, epoch=1, metrics={"f-beta": 0.3})
    old_bytes = path.read_bytes()
    new_params = net.init(jax.random.key(1))

    def failing_savez(handle, **arrays):
        if partial_write:
            handle.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, net.description, new_params, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    ckpt = checkpoint.load(path)
    assert ckpt.epoch == 1 and ckpt.metrics == {"f-beta": 0.3}
    _leaves_identical(ckpt.params, params)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # the temp file was removed
