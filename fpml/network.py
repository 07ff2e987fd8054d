"""A network description (a vector of layer maps) -> a :class:`Network` of plain composed functions.

>>> import jax
>>> from fpml import layers
>>> net = build([layers.input(3), layers.linear_then("relu", 4), layers.linear(2), layers.softmax()])
>>> params = net.init(jax.random.key(0))
>>> sorted(params)
['linear-1', 'linear-2']
>>> net.apply(params, jax.numpy.ones((5, 3))).shape
(5, 2)
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import toolz
from pyrsistent import PMap, PVector, pmap, pvector

from fpml import edn, runtime
from fpml.edn import Keyword
from fpml.errors import ConfigError, did_you_mean, one_of
from fpml.layers import LAYER_TYPES, REQUIRED, SMALL_PRODUCT, Layer

Params = dict[str, Any]
HEADS = ("softmax", "logistic")


class Stage(NamedTuple):
    """One compiled step of a network: the layer map it came from and its :class:`Layer`."""

    layer_id: str
    layer: Layer
    owns_params: bool


class Network(NamedTuple):
    """A compiled network. ``description`` is the normalised data; the rest are pure functions of it.

    - ``init(key) -> params``: a dict of per-layer parameters keyed by layer id.
    - ``apply(params, x, *, key=None, train=False) -> y``: the network's output.
    - ``logits(...)``: the same, stopping before a final softmax/logistic (``head``), for stable losses.

    At inference on :data:`WIDEN_FROM_ROWS` rows or more on XLA's CPU backend with YNNPACK, ``apply`` and
    ``logits`` run the :func:`widened` network on padded params: the same outputs to float rounding, faster.
    """

    description: PVector
    init: Callable[[jax.Array], Params]
    apply: Callable[..., jax.Array]
    logits: Callable[..., jax.Array]
    head: str | None
    input_size: int
    output_size: int

    def __repr__(self) -> str:
        return edn.pretty(self.description)


# ------------------------------------------------------------------------------------------ normalisation


def _where(index: int, layer: Mapping) -> str:
    name = layer.get("id") or layer.get("type")
    return f"network layer {index} ({name})"


def _check_layer(index: int, layer: Any) -> PMap:
    if not isinstance(layer, Mapping):
        raise ConfigError(
            f"network layer {index}: expected a map like {{:type :linear :size 10}}, got {edn.dumps(layer)[:60]}"
        )
    kind = layer.get("type")
    if kind is None:
        raise ConfigError(f"network layer {index}: missing :type (one of {one_of(LAYER_TYPES)})")
    if not isinstance(kind, str) or kind not in LAYER_TYPES:
        raise ConfigError(
            f"network layer {index}: unknown layer type {edn.dumps(kind)}{did_you_mean(kind, LAYER_TYPES)}; "
            f"known types: {one_of(LAYER_TYPES)}"
        )
    spec = LAYER_TYPES[kind]
    allowed = {"type", "id", "parents", *spec.keys} if kind != "input" else {"type", "id", *spec.keys}
    for key in layer:
        if key not in allowed:
            raise ConfigError(
                f"{_where(index, layer)}: unknown key {edn.dumps(Keyword(str(key)))} for a :{kind} layer"
                f"{did_you_mean(key, allowed)}; allowed: {one_of(':' + k for k in allowed)}"
            )
    if "id" in layer and not _is_keyword_name(layer["id"]):
        raise ConfigError(f"{_where(index, layer)}: :id must be a keyword like :data, got {edn.dumps(layer['id'])}")
    for key, (check, default) in spec.keys.items():
        if key not in layer:
            if default is REQUIRED:
                raise ConfigError(f"{_where(index, layer)}: :{kind} needs :{key}")
            continue
        complaint = check(layer[key])
        if complaint:
            raise ConfigError(f"{_where(index, layer)}: :{key} {complaint}, got {edn.dumps(layer[key])}")
    if kind == "dropout" and ("keep" in layer) == ("rate" in layer):
        raise ConfigError(f"{_where(index, layer)}: give exactly one of :keep (probability to keep a unit) or :rate")
    ids = {"id": Keyword(layer["id"])} if "id" in layer else {}  # "data" from Python is the keyword :data
    return pmap({**layer, "type": Keyword(kind), **ids})


#: An EDN keyword's name (the spec's symbol rules): it starts with a non-digit (and ``-``, ``+`` or ``.``
#: are not followed by a digit), holds letters, digits and ``.*+!-_?$%&=<>:#``, and has at most one
#: ``/`` between a namespace and a name.
_SYMBOL = r"(?:[A-Za-z*!_?$%&=<>]|[-+.](?![0-9]))[A-Za-z0-9.*+!\-_?$%&=<>:#]*"
_KEYWORD_NAME = re.compile(rf"{_SYMBOL}(?:/{_SYMBOL})?")


def _is_keyword_name(value: object) -> bool:
    """Whether ``value`` (a keyword, or a string from Python) names a keyword as EDN writes it."""
    return isinstance(value, str) and _KEYWORD_NAME.fullmatch(value) is not None


def normalize(description: Sequence[Mapping]) -> PVector:
    """Validate a description and give every layer an ``:id`` (``linear-1``, ``relu-1``... where missing).

    Raises :class:`ConfigError` naming the layer, the key, the bad value and what is allowed.
    """
    if isinstance(description, str | Mapping) or not isinstance(description, Sequence):
        raise ConfigError(f"network: expected a vector of layer maps, got {edn.dumps(description)[:60]}")
    layers = [_check_layer(i, layer) for i, layer in enumerate(description)]
    if not layers or layers[0]["type"] != "input":
        raise ConfigError("network: the first layer must be {:type :input :size N}")
    for i, layer in enumerate(layers[1:], start=1):
        if layer["type"] == "input":
            raise ConfigError(f"network layer {i}: only the first layer may be an :input layer")
    if len(layers) == 1:
        raise ConfigError("network: needs at least one layer after the input layer")
    counts: Counter[str] = Counter()
    named = []
    for layer in layers:
        base = str(layer["type"]).split("->")[0]
        counts[base] += 1
        named.append(layer if "id" in layer else layer.set(Keyword("id"), Keyword(f"{base}-{counts[base]}")))
    seen = Counter(str(layer["id"]) for layer in named)
    duplicates = sorted(i for i, n in seen.items() if n > 1)
    if duplicates:
        raise ConfigError(f"network: duplicate layer id {', '.join(':' + d for d in duplicates)}; ids must be unique")
    for index, layer in enumerate(named[1:], start=1):
        _check_parents(index, layer, [str(earlier["id"]) for earlier in named[:index]])
    return pvector(named)


def _check_parents(index: int, layer: Mapping, earlier: list[str]) -> None:
    """``:parents`` (Cortex's wiring key) must name earlier layers; fpml wires networks in sequence."""
    if "parents" not in layer:
        return
    parents = layer["parents"]
    if not isinstance(parents, Sequence) or isinstance(parents, str) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(f"{_where(index, layer)}: :parents must be a vector of layer ids, got {edn.dumps(parents)}")
    for parent in parents:
        if parent not in earlier:
            raise ConfigError(
                f"{_where(index, layer)}: :parents names :{parent}, which is not an earlier layer"
                f"{did_you_mean(parent, earlier)}; earlier layers: {', '.join(':' + e for e in earlier)}"
            )
    if list(parents) != earlier[-1:]:
        raise ConfigError(
            f"{_where(index, layer)}: :parents {edn.dumps(parents)} would branch the network; fpml wires layers in "
            f"sequence, so :parents may only name the previous layer (:{earlier[-1]})"
        )


# ------------------------------------------------------------------------------------------------ compile


def _options(layer: Mapping) -> dict[str, Any]:
    spec = LAYER_TYPES[layer["type"]]
    return {key: layer.get(key, None if default is REQUIRED else default) for key, (_, default) in spec.keys.items()}


def _next_activation(layers: Sequence[Mapping], index: int) -> str | None:
    for layer in layers[index + 1 :]:
        activation = LAYER_TYPES[layer["type"]].activation
        if activation or LAYER_TYPES[layer["type"]].has_size:
            return activation
    return None


def _stages(layers: PVector) -> list[Stage]:
    stages = []
    for index, layer in enumerate(layers):
        built = LAYER_TYPES[layer["type"]].build(_options(layer), _next_activation(layers, index))
        stages.extend(Stage(str(layer["id"]), part, owns_params=(j == 0)) for j, part in enumerate(built))
    return stages


def _init_fn(stages: Sequence[Stage], input_size: int) -> Callable[[jax.Array], Params]:
    def init(key: jax.Array) -> Params:
        shape: tuple[int, ...] = (input_size,)
        params = {}
        for index, stage in enumerate(stages):
            shape, p = stage.layer.init(jax.random.fold_in(key, index), shape)
            if p is not None:
                params[stage.layer_id] = p
        return params

    return init


def _apply_fn(stages: Sequence[Stage]) -> Callable[..., jax.Array]:
    stochastic = any(stage.layer.stochastic for stage in stages)

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        if train and stochastic and key is None:
            raise ValueError("apply(..., train=True) needs a PRNG key: the network has dropout layers")
        steps = [
            partial(
                stage.layer.apply,
                params.get(stage.layer_id) if stage.owns_params else None,
                key=None if key is None else jax.random.fold_in(key, index),
                train=train,
            )
            for index, stage in enumerate(stages)
        ]
        return toolz.pipe(x, *steps)

    return apply


#: XLA's CPU backend runs a product over many rows through YNNPACK fastest when the product's output width
#: is a multiple of this: the fraud network's inference on 284,807 rows, 15.5-15.9 -> 13.2-13.5 ms on 2
#: cores with its hidden layers of 20 and 10 as 32 and 16 (``docs/performance.md``, item 6).
WIDTH_MULTIPLE = 16

#: Fewer rows than this are scored by the network as it is: padding the parameters costs a few
#: microseconds a call, more than widening saves on a batch of 100 rows (118 -> 124 us; 1,000 rows:
#: 215 -> 205 us, 10,000: 1.24 -> 1.05 ms).
WIDEN_FROM_ROWS = 1000


def _widens(layers: Sequence[Mapping], index: int) -> bool:
    sized = [i for i, layer in enumerate(layers) if LAYER_TYPES[layer["type"]].has_size]
    later = [i for i in sized if i > index]
    if index not in sized or index == 0 or not later:
        return False
    through_next = layers[index : later[0]]  # the layer and the activations between it and the next linear
    if any(LAYER_TYPES[layer["type"]].activation == "softmax" for layer in through_next):
        return False
    in_size = layers[max(i for i in sized if i < index)]["size"]
    return max(in_size, layers[index]["size"]) <= SMALL_PRODUCT


def widened(layers: PVector) -> PVector:
    """``layers`` (normalised) with each small hidden linear layer's ``:size`` rounded up to a multiple of
    :data:`WIDTH_MULTIPLE`: what :class:`Network`'s ``apply`` runs at inference on XLA's CPU backend with
    YNNPACK, on :data:`WIDEN_FROM_ROWS` rows or more.

    With its parameters padded to the new shapes (each padded unit a copy of the layer's last unit, the
    next linear layer's weights from it zero), the widened network computes the same outputs, to float
    rounding; only a hidden unit whose value is infinite (a network overflowing float32) makes its copy's
    zero-weighted term NaN. A linear layer is widened when another linear layer follows with no softmax in
    between (the softmax would sum over the padded units) and its input and output are at most
    :data:`~fpml.layers.SMALL_PRODUCT` wide (a larger product is bound by its arithmetic, which padding
    only adds to).

    >>> from fpml import layers
    >>> net = normalize([layers.input(29), layers.linear_then("relu", 20), layers.linear(2)])
    >>> [layer["size"] for layer in widened(net)]
    [29, 32, 2]
    """
    return pvector(
        layer.set("size", -(-layer["size"] // WIDTH_MULTIPLE) * WIDTH_MULTIPLE) if _widens(layers, index) else layer
        for index, layer in enumerate(layers)
    )


def _padded(array: jax.Array, like: jax.ShapeDtypeStruct) -> jax.Array:
    """A layer's parameter padded to a widened layer's shape: rows for inputs from padded units are zero, the
    padded units themselves (the last axis) copies of the last real one. A padded unit of zeros would be
    NaN where an input is infinite (``inf * 0``), which the next layer would spread to every output."""
    rows = [(0, wide - narrow) for narrow, wide in zip(jnp.shape(array)[:-1], like.shape[:-1], strict=True)]
    units = (0, like.shape[-1] - jnp.shape(array)[-1])
    return jnp.pad(jnp.pad(array, [*rows, (0, 0)]), [(0, 0)] * len(rows) + [units], mode="edge")


def _inference_fn(
    plain: Callable[..., jax.Array], wide: Callable[..., jax.Array], shapes: tuple[Params, Params]
) -> Callable[..., jax.Array]:
    """``plain``, except at inference on :data:`WIDEN_FROM_ROWS` rows or more on XLA's CPU backend with
    YNNPACK: ``wide`` (:func:`widened`) on the parameters padded (:func:`_padded`) from ``shapes[0]`` to
    ``shapes[1]``. Parameters of other shapes go ``plain``'s way (and fail as it fails)."""
    plain_shapes, wide_shapes = shapes

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
        few_rows = math.prod(jnp.shape(x)[:-1]) < WIDEN_FROM_ROWS
        if train or few_rows or jax.tree.map(jnp.shape, params) != plain_shapes or not runtime.ynnpack_products():
            return plain(params, x, key=key, train=train)

        def on_cpu() -> jax.Array:
            return wide(jax.tree.map(_padded, params, wide_shapes), x)

        return jax.lax.platform_dependent(cpu=on_cpu, default=lambda: plain(params, x))

    return apply


def build(description: Sequence[Mapping]) -> Network:
    """Validate and compile a description into a :class:`Network`."""
    layers = normalize(description)
    stages = _stages(layers)
    last = LAYER_TYPES[layers[-1]["type"]].activation
    head = last if last in HEADS else None
    input_size = layers[0]["size"]
    init = _init_fn(stages, input_size)
    output_size = jax.eval_shape(lambda: _apply_fn(stages)(init(jax.random.key(0)), jnp.zeros((1, input_size)))).shape[
        -1
    ]
    if head == "softmax" and output_size < 2:
        raise ConfigError(
            f"{_where(len(layers) - 1, layers[-1])}: a softmax over {output_size} output is always 1 and learns "
            "nothing; give :size 2 or more, or use :logistic for one output"
        )
    apply, logits = _apply_fn(stages), _apply_fn(stages[:-1] if head else stages)
    wide_layers = widened(layers)
    if wide_layers != layers:
        wide_stages = _stages(wide_layers)
        shapes = (
            jax.tree.map(jnp.shape, jax.eval_shape(lambda: init(jax.random.key(0)))),
            jax.eval_shape(lambda: _init_fn(wide_stages, input_size)(jax.random.key(0))),
        )
        apply = _inference_fn(apply, _apply_fn(wide_stages), shapes)
        logits = _inference_fn(logits, _apply_fn(wide_stages[:-1] if head else wide_stages), shapes)
    return Network(
        description=layers,
        init=init,
        apply=apply,
        logits=logits,
        head=head,
        input_size=input_size,
        output_size=output_size,
    )


# ----------------------------------------------------------------------------------------------- describe


class LayerRow(NamedTuple):
    """One row of :func:`summary`."""

    layer_id: str
    type: str
    output_shape: tuple[int, ...]
    param_shapes: Mapping[str, tuple[int, ...]]
    param_count: int


def summary(network: Network) -> tuple[LayerRow, ...]:
    """Per-layer ids, types, output shapes and parameter shapes/counts (computed abstractly, no FLOPs)."""
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    rows = []
    width = network.input_size
    for layer in network.description:
        p = shapes.get(str(layer["id"]), {})
        width = layer.get("size", width) if LAYER_TYPES[layer["type"]].has_size else width
        pshapes = {name: tuple(leaf.shape) for name, leaf in p.items()}
        count = sum(math.prod(s) for s in pshapes.values())
        rows.append(LayerRow(str(layer["id"]), str(layer["type"]), (width,), pshapes, count))
    return tuple(rows)


def describe(network: Network) -> str:
    """The layer table as text: id, type, output shape, parameter shapes, count, and the total.

    >>> from fpml import layers
    >>> print(describe(build([layers.input(3), layers.linear(2)])))  # doctest: +NORMALIZE_WHITESPACE
    layer      type     output   parameters        count
    input-1    input    (3,)                           0
    linear-1   linear   (2,)     b (2,), w (3, 2)      8
    total                                              8
    """
    rows = summary(network)
    table = [("layer", "type", "output", "parameters", "count")]
    for row in rows:
        params = ", ".join(f"{name} {shape}" for name, shape in sorted(row.param_shapes.items()))
        table.append((row.layer_id, row.type, str(row.output_shape), params, str(row.param_count)))
    table.append(("total", "", "", "", str(sum(row.param_count for row in rows))))
    widths = [max(len(r[i]) for r in table) for i in range(5)]

    def line(row: tuple[str, ...]) -> str:
        cells = zip(row, widths, strict=True)
        return "   ".join(c.rjust(w) if i == 4 else c.ljust(w) for i, (c, w) in enumerate(cells))

    lines = [line(r) for r in table]
    return "\n".join(line.rstrip() for line in lines)
