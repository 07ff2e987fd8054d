"""Config map -> optax ``GradientTransformation``: any optax optimizer by name, schedules, clipping.

>>> from fpml.edn import loads
>>> opt = optimizer(loads("{:name :sgd :learning-rate 0.1 :momentum 0.9 :nesterov true}"))
>>> type(opt).__name__
'GradientTransformationExtraArgs'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from fpml.errors import ConfigError, did_you_mean, one_of
from fpml.layers import is_number, is_positive

#: The optax optimizers a config may name (kebab-case in EDN: ``:noisy-sgd``).
OPTIMIZERS: Mapping[str, Callable[..., optax.GradientTransformation]] = {
    name.replace("_", "-"): getattr(optax, name)
    for name in (
        "adabelief",
        "adadelta",
        "adafactor",
        "adagrad",
        "adam",
        "adamax",
        "adamaxw",
        "adamw",
        "adan",
        "amsgrad",
        "fromage",
        "lamb",
        "lars",
        "lion",
        "nadam",
        "nadamw",
        "novograd",
        "noisy_sgd",
        "radam",
        "rmsprop",
        "rprop",
        "sgd",
        "sign_sgd",
        "sm3",
        "yogi",
    )
    if hasattr(optax, name)
}

#: The optimizers that treat each parameter array as a whole (per-array norms, trust ratios or factored
#: moments): they update array by array.
PER_ARRAY = frozenset({"adafactor", "fromage", "lamb", "lars", "novograd", "sm3"})

#: The others update each number from its own gradients alone (and global scalars: the step count, a global
#: norm), so for them a small network's parameters are updated as one flat vector (:func:`flatten_small`).
ELEMENTWISE = frozenset(OPTIMIZERS) - PER_ARRAY

#: Up to this many parameters, :func:`flatten_small` updates them as one vector. The fraud network (832) has
#: six arrays that each cost Adam three kernels a step; flat, it trains ~5% faster. Beyond, flattening
#: gains nothing and can cost much: XLA fuses the gradient's products into the concatenation, which made a
#: 29-512-512-2 network's step ~8x slower on two cores.
FLAT_MAX_PARAMETERS = 65_536


def flatten_small(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``inner`` over one flat vector (``optax.flatten``) for up to :data:`FLAT_MAX_PARAMETERS` parameters,
    array by array above: the same updates (for an element-wise ``inner``) in fewer kernels. The choice
    follows the parameters' static shapes, so ``init`` and every ``update`` make the same one."""
    flat, per_array = optax.flatten(inner), optax.with_extra_args_support(inner)

    def pick(tree: Any) -> optax.GradientTransformationExtraArgs:
        return flat if sum(leaf.size for leaf in jax.tree.leaves(tree)) <= FLAT_MAX_PARAMETERS else per_array

    def init(params):
        return pick(params).init(params)

    def update(updates, state, params=None, **extra_args):
        return pick(updates).update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init, update)


#: Learning-rate schedules (``{:schedule :cosine-decay :init-value 1e-3 :decay-steps 10000}``).
SCHEDULES: Mapping[str, Callable[..., optax.Schedule]] = {
    "constant": optax.constant_schedule,
    "linear": optax.linear_schedule,
    "cosine-decay": optax.cosine_decay_schedule,
    "warmup-cosine-decay": optax.warmup_cosine_decay_schedule,
    "exponential-decay": optax.exponential_decay,
    "piecewise-constant": optax.piecewise_constant_schedule,
    "polynomial": optax.polynomial_schedule,
}

DEFAULT_LEARNING_RATE = 1e-3


def _snake(key: str) -> str:
    return str(key).replace("-", "_")


def _call(fn: Callable, args: Mapping[str, Any], where: str) -> Any:
    """Call ``fn`` with kebab-case ``args``, naming any argument it does not take."""
    accepted = inspect.signature(fn).parameters
    for key in args:
        if _snake(key) not in accepted:
            kebab = [p.replace("_", "-") for p in accepted]
            raise ConfigError(
                f"{where}: unknown argument :{key}{did_you_mean(key, kebab)}; allowed: {one_of(':' + k for k in kebab)}"
            )
    given = {_snake(k) for k in args}
    required = [
        name.replace("_", "-")
        for name, p in accepted.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in given
    ]
    if required:
        raise ConfigError(f"{where}: missing {', '.join(':' + r for r in required)}")
    try:
        return fn(**{_snake(k): (dict(v) if isinstance(v, Mapping) else v) for k, v in args.items()})
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as err:
        raise ConfigError(f"{where}: {err}") from None


def schedule(spec: Mapping[str, Any]) -> optax.Schedule:
    """A learning-rate schedule from ``{:schedule NAME ...optax arguments}``."""
    name = spec.get("schedule")
    if name not in SCHEDULES:
        raise ConfigError(
            f"optimizer :learning-rate: unknown :schedule {name!r}{did_you_mean(name, SCHEDULES)}; "
            f"allowed: {one_of(SCHEDULES)}"
        )
    args = {k: v for k, v in spec.items() if k != "schedule"}
    for arg, value in args.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and is_number(value) is not None:
            raise ConfigError(f"optimizer :learning-rate schedule :{name}: :{arg} must be finite, got {value!r}")
    return _call(SCHEDULES[name], args, f"optimizer :learning-rate schedule :{name}")


def optimizer(spec: Mapping[str, Any], *, key: jax.Array | int | None = None) -> optax.GradientTransformation:
    """An optax optimizer from ``{:name :adam :learning-rate 1e-3 ...}``.

    Every key but ``:name`` and ``:clip-global-norm`` is passed to the optax function (kebab-case to
    snake_case). ``:learning-rate`` may be a number or a schedule map and defaults to 1e-3.
    ``:clip-global-norm N`` clips gradients to global norm N first. ``key`` seeds an optimizer that draws
    noise (``:noisy-sgd``) unless the spec gives its own ``:key``; without either, optax's fixed default.
    An optimizer in :data:`ELEMENTWISE` updates a small network's parameters as one flat vector
    (:func:`flatten_small`: the same updates, fewer kernels); its state then holds flat vectors too.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f":optimizer must be a map like {{:name :adam :learning-rate 1e-3}}, got {spec!r}")
    name = spec.get("name")
    if name not in OPTIMIZERS:
        raise ConfigError(
            f":optimizer :name {name!r} is unknown{did_you_mean(name, OPTIMIZERS)}; allowed: {one_of(OPTIMIZERS)}"
        )
    args = {k: v for k, v in spec.items() if k not in ("name", "clip-global-norm")}
    rate = args.get("learning-rate", DEFAULT_LEARNING_RATE)
    if isinstance(rate, Mapping):
        rate = schedule(rate)
    elif is_positive(rate) is not None:
        raise ConfigError(f":optimizer :learning-rate must be a positive number or a schedule map, got {rate!r}")
    for arg, value in args.items():
        if arg != "learning-rate" and not (value is None or isinstance(value, bool) or is_number(value) is None):
            raise ConfigError(f":optimizer :{name}: :{arg} must be a finite number or true/false, got {value!r}")
    accepted = inspect.signature(OPTIMIZERS[name]).parameters
    if "learning_rate" in accepted:
        args["learning-rate"] = rate
    if key is not None and "key" in accepted and "key" not in args:
        args["key"] = key
    transform = _call(OPTIMIZERS[name], args, f":optimizer :{name}")
    clip = spec.get("clip-global-norm")
    if clip is not None:
        if is_positive(clip) is not None:
            raise ConfigError(f":optimizer :clip-global-norm must be a positive number, got {clip!r}")
        transform = optax.chain(optax.clip_by_global_norm(clip), transform)
    return flatten_small(transform) if name in ELEMENTWISE else transform
