"""Pure loss functions and per-layer weight penalties.

A :class:`Loss` says which output it consumes: ``logits`` (the network's output before a final
softmax/logistic, for numerically stable cross-entropies) or ``outputs``.

>>> import jax.numpy as jnp
>>> float(mean_squared_error(jnp.array([[1.0, 2.0]]), jnp.array([[1.0, 0.0]]))[0])
4.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fpml.errors import ConfigError, did_you_mean, one_of
from fpml.network import Network, Params


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example cross-entropy of one-hot (or soft) ``labels`` against ``softmax(logits)``."""
    return optax.softmax_cross_entropy(logits, labels)


def targets(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """The labels an output is compared with: one-hot labels of two classes against a single output
    (P(class 1), a ``:logistic`` head of size 1) are their class-1 column; any other labels as they are.

    >>> targets(jnp.zeros((2, 1)), jnp.array([[1.0, 0.0], [0.0, 1.0]])).tolist()
    [[0.0], [1.0]]
    """
    return labels[..., 1:] if outputs.shape[-1] == 1 and labels.shape[-1] == 2 else labels


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example binary cross-entropy of 0/1 ``labels`` against ``sigmoid(logits)``, summed over outputs."""
    return optax.sigmoid_binary_cross_entropy(logits, targets(logits, labels)).sum(axis=-1)


def mean_squared_error(outputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example squared error summed over outputs."""
    return jnp.sum((outputs - targets(outputs, labels)) ** 2, axis=-1)


class Loss(NamedTuple):
    """A per-example loss and the network output it takes (``"logits"`` or ``"outputs"``)."""

    fn: Callable[[jax.Array, jax.Array], jax.Array]
    takes: str
    head: str | None  # the final activation it requires, or None for any


LOSSES: Mapping[str, Loss] = {
    "softmax-cross-entropy": Loss(softmax_cross_entropy, "logits", "softmax"),
    "binary-cross-entropy": Loss(binary_cross_entropy, "logits", "logistic"),
    "mse": Loss(mean_squared_error, "outputs", None),
}

_DEFAULT_FOR_HEAD = {"softmax": "softmax-cross-entropy", "logistic": "binary-cross-entropy", None: "mse"}


def resolve_loss(name: str, network: Network) -> Loss:
    """The named loss (``auto`` picks it from the network's final layer, as Cortex does) checked against it."""
    name = _DEFAULT_FOR_HEAD[network.head] if name == "auto" else name
    if name not in LOSSES:
        raise ConfigError(f":loss {name!r} is unknown{did_you_mean(name, LOSSES)}; allowed: auto, {one_of(LOSSES)}")
    loss = LOSSES[name]
    if loss.head is not None and loss.head != network.head:
        raise ConfigError(
            f":loss :{name} needs a network ending in a :{loss.head} layer, this one ends in "
            f":{network.description[-1]['type']}"
        )
    return loss


def weighted(loss: Loss, class_weights: Sequence[float]) -> Loss:
    """``loss`` with each example's term multiplied by the weight of its (one-hot) class: one weight per
    class, also for a single-output network of two classes."""
    weights = jnp.asarray(class_weights, jnp.float32)
    return loss._replace(fn=lambda out, labels: loss.fn(out, labels) * (labels @ weights))


def weight_penalty(description: Sequence[Mapping]) -> Callable[[Params], jax.Array]:
    """``params -> l1 * sum|w| + l2/2 * sum(w^2)`` over the layers whose maps set ``:l1``/``:l2``."""
    terms = [
        (str(layer["id"]), float(layer.get("l1", 0.0)), float(layer.get("l2", 0.0)))
        for layer in description
        if layer.get("l1") or layer.get("l2")
    ]

    def penalty(params: Params) -> jax.Array:
        total = jnp.zeros((), jnp.float32)
        for layer_id, l1, l2 in terms:
            w = params[layer_id]["w"]
            total = total + l1 * jnp.abs(w).sum() + 0.5 * l2 * jnp.square(w).sum()
        return total

    return penalty


def objective(network: Network, loss: Loss) -> Callable[..., jax.Array]:
    """``(params, x, y, key) -> scalar``: mean training loss over the batch plus the weight penalties."""
    forward = network.logits if loss.takes == "logits" else network.apply
    penalty = weight_penalty(network.description)

    def value(params: Params, x: jax.Array, y: jax.Array, key: jax.Array) -> jax.Array:
        return loss.fn(forward(params, x, key=key, train=True), y).mean() + penalty(params)

    return value
