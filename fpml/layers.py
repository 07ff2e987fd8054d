"""The layer catalogue: one entry per layer type, and constructors that return layer maps.

A compiled layer is a stax-style pair of pure functions, :class:`Layer`:
``init(key, in_shape) -> (out_shape, params)`` and ``apply(params, x, *, key, train) -> y``.

A layer *type* (``:linear->relu``, ``:dropout``...) is one :class:`LayerType` entry in :data:`LAYER_TYPES`:
the keys it accepts, each with its check and default, and a ``build`` function from those options to
the compiled stages. Adding a layer type is adding one entry here.

Python users describe networks with the constructors at the bottom, which return the same plain maps
EDN gives:

>>> from fpml.edn import dumps
>>> dumps(linear(20, l2=1e-4))
'{:type :linear :size 20 :l2 0.0001}'
>>> dropout(keep=0.9)["keep"]
0.9
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pyrsistent import PMap, pmap

from fpml.edn import Keyword
from fpml.errors import did_you_mean
from fpml.hashing import uniform_bits

Shape = tuple[int, ...]
Params = Any


class Layer(NamedTuple):
    """A compiled layer: pure ``init(key, in_shape) -> (out_shape, params)`` and ``apply(params, x, *, key, train)``."""

    init: Callable[[jax.Array, Shape], tuple[Shape, Params]]
    apply: Callable[..., jax.Array]
    stochastic: bool = False


# ---------------------------------------------------------------------------------------------- primitives

INITIALIZERS: Mapping[str, Callable] = {
    "he": jax.nn.initializers.he_normal(),
    "glorot": jax.nn.initializers.glorot_normal(),
    "lecun": jax.nn.initializers.lecun_normal(),
}

#: Element-wise activations by layer type name.
ACTIVATIONS: Mapping[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "logistic": jax.nn.sigmoid,
    "swish": jax.nn.swish,
    "selu": jax.nn.selu,
    "gelu": jax.nn.gelu,
    "softmax": jax.nn.softmax,
}

#: The weight initialisation a linear layer gets from the activation that follows it.
INIT_FOR_ACTIVATION: Mapping[str, str] = {"relu": "he", "prelu": "he", "swish": "he", "gelu": "he", "selu": "lecun"}


#: A layer whose rows, inputs and outputs are all at most this many gets :func:`affine`'s row-major
#: derivative. XLA's CPU backend compiles a product as its own tiled loop when the summed dimension is at
#: most 128 and one other side at most 32 (the other at most 128); measured on one core with
#: :func:`fpml.runtime.use_inline_dots`, the rewrite paid up to hidden layers of 128 (214 -> 186 us a step).
SMALL_PRODUCT = 128


@jax.custom_jvp
def affine(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """``x @ w + b``, with a derivative whose matrix products XLA's CPU backend runs fastest.

    The value, and every derivative (``grad``, ``jvp``, ``hessian``, ``vmap`` of them), are those of
    ``x @ w + b``; only how the derivative is written differs. Autodiff of ``x @ w`` asks for
    ``x.T @ g`` and ``g @ w.T``: products over a transposed operand, which XLA's CPU backend runs as
    library calls (YNNPACK or Eigen) of several microseconds each, most of a small network's training
    step. For small products (:data:`SMALL_PRODUCT`) the transposes are made here explicitly, behind an
    ``optimization_barrier`` so that XLA does not fold them back into the products, and the bias
    gradient rides in the weight gradient's product (``[x, 1].T @ g`` gives ``[dw; db]``) instead of a
    column sum of its own. With XLA's own tiled loops for small products
    (:func:`fpml.runtime.use_inline_dots`), the fraud network trains ~1.3x faster
    (``docs/performance.md``). Larger products keep autodiff's form, which the libraries run best (the
    explicit transposes cost a 29-256-256-2 network ~10% on two cores), and so does every backend but
    the CPU (chosen when the program is lowered, ``jax.lax.platform_dependent``): GPU libraries take
    transposed operands as they are.

    >>> import jax.numpy as jnp
    >>> affine(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.arange(4.0)).tolist()
    [[3.0, 4.0, 5.0, 6.0], [3.0, 4.0, 5.0, 6.0]]
    """
    return x @ w + b


@affine.defjvp
def _affine_jvp(primals, tangents):
    x, w, b = primals
    dx, dw, db = tangents
    x_term = dx.dtype != jax.dtypes.float0  # an integer x has no tangent

    def autodiff():
        return (dx @ w if x_term else 0) + x @ dw + db

    def row_major():  # for XLA's CPU backend; the others take transposed operands as they are
        rows = x.reshape(-1, x.shape[-1])
        with_ones = jnp.concatenate([rows, jnp.ones_like(rows[:, :1])], axis=1)  # ones sharded as the rows are
        with_ones_t, w_t = jax.lax.optimization_barrier((with_ones.T, w.T))
        dy = with_ones_t.T @ jnp.concatenate([dw, db[None]], axis=0)
        if x_term:
            dy = dy + dx.reshape(rows.shape) @ w_t.T
        return dy.reshape((*x.shape[:-1], w.shape[1]))

    small = x.ndim >= 1 and w.ndim == 2 and b.ndim == 1 and x.shape[-1] > 0 and b.dtype == w.dtype
    if not small or max(x.size // x.shape[-1], *w.shape) > SMALL_PRODUCT:
        return affine(x, w, b), autodiff()
    return affine(x, w, b), jax.lax.platform_dependent(cpu=row_major, default=autodiff)


def dense(size: int, initializer: str) -> Layer:
    """Affine map ``x @ w + b`` (:func:`affine`); ``w`` drawn by the named initializer, ``b`` zero."""

    def init(key, in_shape):
        w = INITIALIZERS[initializer](key, (in_shape[-1], size), jnp.float32)
        return (*in_shape[:-1], size), {"w": w, "b": jnp.zeros((size,), jnp.float32)}

    def apply(params, x, *, key=None, train=False):
        return affine(x, params["w"], params["b"])

    return Layer(init, apply)


def elementwise(fn: Callable[[jax.Array], jax.Array]) -> Layer:
    """A parameter-free layer applying ``fn``."""
    return Layer(lambda key, in_shape: (in_shape, None), lambda params, x, *, key=None, train=False: fn(x))


def prelu_layer(alpha: float) -> Layer:
    """Parametric ReLU with one learned slope per feature, initialised to ``alpha``."""

    def init(key, in_shape):
        return in_shape, {"alpha": jnp.full(in_shape[-1:], alpha, jnp.float32)}

    def apply(params, x, *, key=None, train=False):
        return jnp.where(x >= 0, x, params["alpha"] * x)

    return Layer(init, apply)


def dropout_layer(keep: float) -> Layer:
    """Inverted dropout: at train time keep each unit with probability ``keep`` and scale by ``1/keep``.

    The mask compares hashed bits (:func:`fpml.hashing.uniform_bits`) with ``keep * 2^32``: the fraud
    network trains ~25% faster on CPU than with ``jax.random.bernoulli``, which runs threefry per unit.
    """
    threshold = np.uint32(min(keep * 2.0**32, 2.0**32 - 1))  # numpy: building must not start JAX's backend

    def apply(params, x, *, key=None, train=False):
        if not train or keep == 1.0:
            return x
        return jnp.where(uniform_bits(key, x.shape) < threshold, x / keep, 0.0)

    return Layer(lambda key, in_shape: (in_shape, None), apply, stochastic=True)


def gaussian_dropout_layer(variance: float) -> Layer:
    """Multiplicative Gaussian noise with mean 1 and the given variance, at train time only."""

    def apply(params, x, *, key=None, train=False):
        if not train:
            return x
        return x * (1.0 + jnp.sqrt(variance) * jax.random.normal(key, x.shape, x.dtype))

    return Layer(lambda key, in_shape: (in_shape, None), apply, stochastic=True)


# ------------------------------------------------------------------------------------------------ checks
# A check takes a value and returns a complaint ("must be ...") or None when the value is fine.

Check = Callable[[Any], str | None]


def is_positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    return None if ok else "must be a positive integer"


def is_probability(value: Any) -> str | None:
    ok = _finite(value) and 0.0 < value <= 1.0
    return None if ok else "must be a number in (0, 1]"


def is_rate(value: Any) -> str | None:
    ok = _finite(value) and 0.0 <= value < 1.0
    return None if ok else "must be a number in [0, 1)"


def is_non_negative(value: Any) -> str | None:
    ok = _finite(value) and value >= 0.0
    return None if ok else "must be a number >= 0"


def _finite(value: Any) -> bool:
    try:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    except OverflowError:
        return False


def is_number(value: Any) -> str | None:
    return None if _finite(value) else "must be a finite number"


def is_positive(value: Any) -> str | None:
    ok = _finite(value) and value > 0.0
    return None if ok else "must be a number > 0"


def is_one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"must be one of {', '.join(choices)}{hint}"

    return check


class Key(NamedTuple):
    """One accepted key of a layer type: its check, and its default (``REQUIRED`` when it must be given)."""

    check: Check
    default: Any = None


REQUIRED = object()


class LayerType(NamedTuple):
    """A layer type: the keys it accepts and ``build(options, next_activation) -> tuple[Layer, ...]``.

    ``activation`` names the activation the type ends with (it picks the initialisation of a linear
    layer before it, and marks a softmax/logistic head whose input is the network's logits).
    """

    keys: Mapping[str, Key]
    build: Callable[[Mapping[str, Any], str | None], tuple[Layer, ...]]
    activation: str | None = None
    has_size: bool = False


_LINEAR_KEYS = {
    "size": Key(is_positive_int, REQUIRED),
    "init": Key(is_one_of(*INITIALIZERS), None),
    "l1": Key(is_non_negative, 0.0),
    "l2": Key(is_non_negative, 0.0),
}


def _linear_then(activation: str | None) -> LayerType:
    def build(opts, next_activation):
        follows = activation or next_activation
        layer = dense(opts["size"], opts["init"] or INIT_FOR_ACTIVATION.get(follows, "glorot"))
        return (layer,) if activation is None else (layer, elementwise(ACTIVATIONS[activation]))

    return LayerType(_LINEAR_KEYS, build, activation, has_size=True)


def _activation(name: str) -> LayerType:
    return LayerType({}, lambda opts, nxt: (elementwise(ACTIVATIONS[name]),), name)


def _dropout(opts, next_activation):
    return (dropout_layer(opts["keep"] if opts["rate"] is None else 1.0 - opts["rate"]),)


#: Every layer type fpml knows, by its ``:type`` name.
LAYER_TYPES: Mapping[str, LayerType] = {
    "input": LayerType({"size": Key(is_positive_int, REQUIRED)}, lambda opts, nxt: (), has_size=True),
    "linear": _linear_then(None),
    "linear->relu": _linear_then("relu"),
    "linear->tanh": _linear_then("tanh"),
    "linear->logistic": _linear_then("logistic"),
    "linear->softmax": _linear_then("softmax"),
    **{name: _activation(name) for name in ACTIVATIONS},
    "prelu": LayerType({"alpha": Key(is_number, 0.25)}, lambda opts, nxt: (prelu_layer(opts["alpha"]),), "prelu"),
    "dropout": LayerType({"keep": Key(is_probability, None), "rate": Key(is_rate, None)}, _dropout),
    "multiplicative-dropout": LayerType(
        {"variance": Key(is_positive, 0.5)}, lambda opts, nxt: (gaussian_dropout_layer(opts["variance"]),)
    ),
}


# ------------------------------------------------------------------------------------------ constructors


def _layer(type_name: str, **options: Any) -> PMap:
    entries = {"type": Keyword(type_name)}
    entries.update({k.replace("_", "-"): v for k, v in options.items() if v is not None})
    return pmap(entries)


def input(size: int, *, id: str | None = None) -> PMap:  # noqa: A001 - the Cortex name
    """The input layer: ``size`` features per row."""
    return _layer("input", size=size, id=id and Keyword(id))


def linear(
    size: int, *, id: str | None = None, init: str | None = None, l1: float | None = None, l2: float | None = None
) -> PMap:
    """A fully connected layer of ``size`` units (optional ``l1``/``l2`` weight penalties)."""
    return _layer("linear", size=size, id=id and Keyword(id), init=init and Keyword(init), l1=l1, l2=l2)


def linear_then(activation: str, size: int, **options: Any) -> PMap:
    """A composite ``linear->ACTIVATION`` layer (relu, tanh, logistic or softmax).

    >>> linear_then("relu", 20)["type"]
    :linear->relu
    """
    return linear(size, **options).set("type", Keyword(f"linear->{activation}"))


def activation(name: str, *, id: str | None = None) -> PMap:
    """An activation layer: relu, tanh, logistic, swish, selu, gelu or softmax."""
    return _layer(name, id=id and Keyword(id))


def prelu(alpha: float = 0.25, *, id: str | None = None) -> PMap:
    """Parametric ReLU, slopes initialised to ``alpha``."""
    return _layer("prelu", alpha=alpha, id=id and Keyword(id))


def dropout(*, keep: float | None = None, rate: float | None = None, id: str | None = None) -> PMap:
    """Dropout, given as the probability to ``keep`` a unit (Cortex's meaning) or to drop it (``rate``)."""
    return _layer("dropout", keep=keep, rate=rate, id=id and Keyword(id))


def multiplicative_dropout(variance: float = 0.5, *, id: str | None = None) -> PMap:
    """Gaussian multiplicative noise with mean 1 and ``variance``, at train time only."""
    return _layer("multiplicative-dropout", variance=variance, id=id and Keyword(id))


def softmax(*, id: str | None = None) -> PMap:
    """The softmax output layer."""
    return activation("softmax", id=id)
