"""Training: one compilation per config, determinism, best-not-last, NaN stop, run-folder outputs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fpml import checkpoint, edn, layers, losses, network, optim, train
from fpml.data import stream
from fpml.data.dataset import dataset
from fpml.errors import ConfigError, TrainingDiverged

NET = edn.loads("""[{:type :input :size 29 :id :data} {:type :linear->relu :size 8} {:type :dropout :keep 0.9}
                    {:type :linear :size 2} {:type :softmax :id :label}]""")


@pytest.fixture(scope="module")
def data(small_split):
    return small_split(seed=3, rows=4_000, frauds=80, test_rows=1_000)


def run(data, epochs=3, opt="{:name :adam :learning-rate 0.01}", test_fn=None, **kw):
    train_part, test_part = data
    net = network.build(NET)
    return train.train_n(
        net,
        optim.optimizer(edn.loads(opt)) if isinstance(opt, str) else opt,
        losses.resolve_loss("auto", net),
        train_part,
        stream.class_balanced(train_part.labels),
        test_fn or train.classification_test_fn(net, test_part),
        key=jax.random.key(7),
        epoch_count=epochs,
        epoch_size=2_000,
        batch_size=50,
        **kw,
    )


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_epoch_compiles_once(data):
    train_part, _ = data
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam}"))
    epoch = train.make_epoch(net, losses.resolve_loss("auto", net), opt, epoch_size=1_000, batch_size=50)
    state = train.init_state(net, opt, jax.random.key(0))
    x, y, s = jax.device_put(train_part.x), jax.device_put(train_part.y), stream.class_balanced(train_part.labels)
    for e in range(4):
        state, step_losses = epoch(state, x, y, s, jax.random.key(1), jax.numpy.int32(e))
    assert step_losses.shape == (20,)
    assert epoch._cache_size() == 1


def test_same_key_gives_identical_params_and_metrics(data):
    net, opt = network.build(NET), optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    start = train.init_state(net, opt, jax.random.key(0))
    snapshot = jax.tree.map(np.array, start)
    a, b = run(data, state=start), run(data, state=start)  # the epochs donate a copy, never the caller's arrays
    assert leaves_equal(start, snapshot)
    assert leaves_equal(a.params, b.params)
    assert [r.metrics for r in a.history] == [r.metrics for r in b.history]
    assert [r.loss for r in a.history] == [r.loss for r in b.history]


def test_training_learns(data):
    result = run(data, epochs=4)
    losses_ = [r.loss for r in result.history]
    assert losses_[-1] < losses_[0] * 0.5
    assert result.best.metrics["f-beta"] > 0.6
    assert result.best.metrics["auroc"] > 0.95


def test_returns_and_saves_the_best_epoch_not_the_last(data, tmp_path):
    seen = []
    base = train.classification_test_fn(network.build(NET), data[1])

    def first_two_only(params, best):  # epochs 0 and 1 improve, later epochs never do
        seen.append(jax.device_get(params))
        return train.TestResult(len(seen) <= 2, base(params, best).metrics)

    train_part, _ = data
    net = network.build(NET)
    result = train.train_n(
        net,
        optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}")),
        losses.resolve_loss("auto", net),
        train_part,
        stream.class_balanced(train_part.labels),
        first_two_only,
        key=jax.random.key(7),
        epoch_count=4,
        epoch_size=2_000,
        batch_size=50,
        run_dir=tmp_path,
    )
    assert result.best.epoch == 1
    assert leaves_equal(result.params, seen[1])
    assert not leaves_equal(result.params, seen[3])
    saved = checkpoint.load(tmp_path / "best.npz")
    assert saved.epoch == 1 and leaves_equal(saved.params, seen[1])
    assert checkpoint.load(tmp_path / "last.npz").epoch == 3
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]  # counted as printed
    assert [line["best"] for line in lines] == [True, True, False, False]
    assert {"loss", "precision", "recall", "f-beta", "seconds"} <= set(lines[0])


def test_saved_best_network_predicts_bit_identically(data, tmp_path):
    result = run(data, epochs=2, run_dir=tmp_path)
    saved = checkpoint.load(tmp_path / "best.npz")
    net = network.build(saved.description)
    x = data[1].x
    assert np.array_equal(np.asarray(net.apply(saved.params, x)), np.asarray(net.apply(result.params, x)))


def test_nan_loss_stops_with_epoch_and_step_keeping_the_best(data, tmp_path):
    # 40 steps per epoch; the learning rate explodes at step 45, i.e. epoch 1, step 5.
    opt = (
        "{:name :sgd :learning-rate {:schedule :piecewise-constant :init-value 0.01 :boundaries-and-scales {45 1e38}}}"
    )
    with pytest.raises(TrainingDiverged) as err:
        run(data, epochs=3, opt=opt, run_dir=tmp_path)
    assert err.value.epoch == 1 and err.value.step > 5
    assert str(err.value).startswith(f"loss became nan at epoch 2, step {err.value.step + 1};")  # counted from 1
    assert err.value.result.best.epoch == 0 and np.isnan(err.value.loss)
    assert f"the best network so far (epoch 1) is kept in {tmp_path}/best.npz" in str(err.value)
    assert checkpoint.load(tmp_path / "best.npz").epoch == 0


def nan_update_at(step: int) -> optax.GradientTransformation:
    """SGD whose update at ``step`` (counted over the whole run) is NaN; the loss of that step is still finite."""

    def update(updates, count, params=None):
        scale = jnp.where(count == step, jnp.nan, -0.01)
        return jax.tree.map(lambda u: u * scale, updates), count + 1

    return optax.GradientTransformation(lambda params: jnp.zeros([], jnp.int32), update)


@pytest.mark.parametrize("with_run_dir", [True, False])
def test_parameters_gone_nan_after_the_last_step_stop_training(data, tmp_path, with_run_dir):
    """The last step of epoch 2 (step 80 of 40-step epochs) makes the parameters NaN after its finite loss:
    training stops there, epoch 1 stays the best, saved and in the error's result."""
    run_dir = tmp_path if with_run_dir else None
    with pytest.raises(TrainingDiverged) as err:
        run(data, epochs=3, opt=nan_update_at(79), run_dir=run_dir)
    assert err.value.epoch == 1 and err.value.step is None
    message = str(err.value)
    assert message.startswith("the parameters became NaN or infinite (every step's loss was finite) at epoch 2;")
    kept = f"in {tmp_path}/best.npz" if with_run_dir else "in this error's .result"
    assert f"the best network so far (epoch 1) is kept {kept}" in message
    result = err.value.result
    assert result.best.epoch == 0 and len(result.history) == 1
    one_epoch = run(data, epochs=1, opt=nan_update_at(79))
    assert leaves_equal(result.params, one_epoch.params)
    assert leaves_equal(result.state, one_epoch.state)  # the state to continue from (previous=err.result)
    if with_run_dir:
        saved = checkpoint.load(tmp_path / "best.npz")
        assert saved.epoch == 0 and leaves_equal(saved.params, one_epoch.params)
        assert json.loads((tmp_path / "log.jsonl").read_text())["epoch"] == 1  # one line: epoch 2 never logged


def test_non_finite_test_outputs_stop_training(data):
    """A test function that finds non-finite outputs raises FloatingPointError; train_n names the epoch."""
    train_part, test_part = data
    net = network.build(NET)
    judge = train.classification_test_fn(net, test_part)
    nan_params = jax.tree.map(lambda a: a * jnp.nan, net.init(jax.random.key(0)))
    with pytest.raises(FloatingPointError, match=r"outputs on the test data became NaN or infinite \(1,?000 rows\)"):
        judge(nan_params, None)

    def judge_second_epoch_nan(params, best):
        return judge(params if best is None else nan_params, best)

    with pytest.raises(TrainingDiverged, match=r"^the network's outputs on the test data .* at epoch 2; .*\(epoch 1\)"):
        run(data, test_fn=judge_second_epoch_nan)


def test_a_binary_test_function_rejects_a_network_of_more_outputs(data):
    net = network.build(edn.loads("[{:type :input :size 29} {:type :linear :size 3} {:type :softmax}]"))
    with pytest.raises(ConfigError, match="scores binary classifiers .* the network has 3 outputs"):
        train.classification_test_fn(net, data[1])


def test_epoch_size_must_be_a_multiple_of_batch_size():
    net = network.build(NET)
    with pytest.raises(ConfigError, match="multiple"):
        train.make_epoch(
            net,
            losses.resolve_loss("auto", net),
            optim.optimizer(edn.loads("{:name :adam}")),
            epoch_size=1_001,
            batch_size=50,
        )


def test_an_undefined_metric_is_written_as_json_null(tmp_path):
    """An AUROC with one class is NaN, which JSON lacks: log.jsonl holds null, and reads back."""
    record = train.EpochRecord(
        0, 0.25, {"auroc": float("nan"), "f-beta": np.float32(0.5), "tp": np.int64(3)}, 1.0, True
    )
    line = record.as_json()
    assert json.loads(line) == {
        "epoch": 1,
        "loss": 0.25,
        "seconds": 1.0,
        "best": True,
        "auroc": None,
        "f-beta": 0.5,
        "tp": 3,
    }
    (tmp_path / "log.jsonl").write_text(line + "\n")
    (back,) = train.read_log(tmp_path / "log.jsonl")
    assert back.metrics["auroc"] is None
    assert "nan" in repr(train.TrainResult(None, back, (back,), None))


def _tiny_binary():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(40, int), np.ones(40, int)]
    x = (rng.normal(size=(80, 3)) + labels[:, None]).astype(np.float32)
    data = dataset(x, np.eye(2, dtype=np.float32)[labels], ("a", "b", "c"))
    net = network.build([layers.input(3), layers.linear(2), layers.softmax()])
    return net, data


def test_an_equal_f_beta_is_not_a_new_best():
    """A tie keeps the earlier epoch as the best (Cortex keeps the first of equals too)."""

    net, data = _tiny_binary()
    judge = train.classification_test_fn(net, data)
    params = net.init(jax.random.key(0))
    first = judge(params, None)
    assert first.best
    record = train.EpochRecord(0, 0.5, first.metrics, 0.0, True)
    again = judge(params, record)
    assert again.metrics["f-beta"] == first.metrics["f-beta"]
    assert not again.best  # the same score: the earlier epoch stays the best
    worse = train.EpochRecord(0, 0.5, {**first.metrics, "f-beta": first.metrics["f-beta"] - 1e-6}, 0.0, True)
    assert judge(params, worse).best
