"""Checkpoints: network description (EDN) + params + optimizer state + metrics + format version, in one
``.npz`` file written atomically. Loading gives bit-identical parameters.

>>> import jax, tempfile, pathlib
>>> from fpml import layers, network
>>> net = network.build([layers.input(3), layers.linear(2)])
>>> params = net.init(jax.random.key(0))
>>> path = save(pathlib.Path(tempfile.mkdtemp()) / "net.npz", net.description, params, epoch=4)
>>> ckpt = load(path)
>>> ckpt.epoch, bool((ckpt.params["linear-1"]["w"] == params["linear-1"]["w"]).all())
(4, True)
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fpml import edn, network
from fpml.errors import CheckpointError, ConfigError
from fpml.files import atomic_write

FORMAT_VERSION = 1


class Checkpoint(NamedTuple):
    """What a checkpoint holds. ``opt_state`` is the list of optimizer-state leaves (see :func:`restore_opt_state`)
    and ``opt_state_structure`` JAX's text of their tree (``None`` when written by another JAX version, or
    before fpml saved it); ``epoch`` is an index from 0 (printed from 1, as the log and the command line count)."""

    description: Any
    params: dict[str, dict[str, np.ndarray]]
    opt_state: list[np.ndarray] | None
    epoch: int
    metrics: Mapping[str, Any]
    config: Any
    opt_state_structure: str | None = None

    def __repr__(self) -> str:
        count = sum(int(np.size(v)) for p in self.params.values() for v in p.values())
        shown = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in self.metrics.items()
            if k in ("loss", "precision", "recall", "f-beta", "auprc", "threshold")
        }
        return (
            f"Checkpoint(epoch {self.epoch + 1}, {count} parameters in {len(self.params)} layers, "
            f"optimizer state {'saved' if self.opt_state else 'absent'}, metrics {shown})\n"
            f"{edn.pretty(self.description)}"
        )


def save(
    path: str | Path,
    description: Sequence[Mapping],
    params: Mapping,
    *,
    opt_state: Any = None,
    epoch: int = 0,
    metrics: Mapping[str, Any] | None = None,
    config: Mapping | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_VERSION),
        "description": np.array(edn.dumps(description)),
        "config": np.array(edn.dumps(config) if config is not None else ""),
        "metrics": np.array(json.dumps(dict(metrics or {}))),
        "epoch": np.array(epoch),
    }
    for layer_id, leaves in jax.device_get(params).items():
        for name, value in leaves.items():
            arrays[f"params/{layer_id}/{name}"] = np.asarray(value)
    if opt_state is not None:
        arrays["opt_state_structure"] = np.array(str(jax.tree.structure(opt_state)))  # JAX's text of it:
        arrays["jax_version"] = np.array(jax.__version__)  # compared only under the same JAX version
        for i, leaf in enumerate(jax.tree.leaves(opt_state)):
            arrays[f"opt_state/{i:05d}"] = np.asarray(jax.device_get(_key_data(leaf)))
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)
    return Path(path)


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a damaged or foreign file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {key: z[key] for key in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} is damaged or not an fpml checkpoint ({err})") from None
    version = int(data["format"]) if "format" in data else None
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version}; this fpml reads version {FORMAT_VERSION}"
        )
    missing = [k for k in ("description", "config", "metrics", "epoch") if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} is damaged: it lacks {', '.join(missing)}")
    params: dict[str, dict[str, np.ndarray]] = {}
    for key, value in data.items():
        if key.startswith("params/"):
            layer_id, name = key.removeprefix("params/").rsplit("/", 1)  # an id may hold "/" (:enc/out)
            params.setdefault(layer_id, {})[name] = value
    leaves = [data[k] for k in sorted(k for k in data if k.startswith("opt_state/"))]
    structure = str(data["opt_state_structure"]) if "opt_state_structure" in data else None
    if structure is not None and str(data.get("jax_version", "")) != jax.__version__:
        structure = None  # another JAX may print a tree structure differently: the arrays are still checked
    try:
        description = edn.loads(str(data["description"]), f"{path} description")
        config = edn.loads(str(data["config"]), f"{path} config") if str(data["config"]) else None
    except ConfigError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    return Checkpoint(
        description,
        params,
        leaves or None,
        int(data["epoch"]),
        json.loads(str(data["metrics"])),
        config,
        structure,
    )


def check_params(ckpt: Checkpoint, net: network.Network, source: str = "checkpoint") -> Checkpoint:
    """``ckpt``, or :class:`CheckpointError` unless ``ckpt.params`` has exactly the shapes ``net`` expects."""
    expected = jax.eval_shape(net.init, jax.random.key(0))
    want = {(lid, n): tuple(v.shape) for lid, p in expected.items() for n, v in p.items()}
    have = {(lid, n): tuple(v.shape) for lid, p in ckpt.params.items() for n, v in p.items()}
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            raise CheckpointError(
                f"{source}: parameter {key[0]}/{key[1]} has shape {have.get(key)} but the network needs {want.get(key)}"
            )
    return ckpt


def _key_data(leaf: Any) -> Any:
    """A PRNG key leaf (as optax's noisy SGD keeps) as its raw key data; any other leaf as it is."""
    is_key = hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
    return jax.random.key_data(leaf) if is_key else leaf


def _state_types(structure: str) -> str:
    """The optax state types named in a tree structure's text, for messages."""
    return " + ".join(re.findall(r"\b([A-Z]\w*State)\b", structure)) or structure[:80]


def _flat_from_per_array(ckpt: Checkpoint, template: Any) -> list | None:
    """The leaves of an optimizer state saved array by array (one state array per parameter array, as fpml
    kept every optimizer's before its element-wise ones updated one flat vector: ``optim.flatten_small``), laid
    out as ``template``'s flat vectors, in ``optax.flatten``'s order (the parameters' leaves, raveled and
    concatenated); ``None`` when ``ckpt``'s state is not ``template``'s saved array by array."""
    params = jax.tree.leaves(ckpt.params)
    size = sum(np.size(p) for p in params)

    def is_flat(leaf: Any) -> bool:
        return np.ndim(leaf) == 1 and np.size(leaf) == size and _key_data(leaf) is leaf

    per_array = jax.tree.map(lambda leaf: ckpt.params if is_flat(leaf) else leaf, template)
    structure, saved = jax.tree.structure(per_array), ckpt.opt_state or []
    known = ckpt.opt_state_structure is None or ckpt.opt_state_structure == str(structure)
    if structure == jax.tree.structure(template) or not known or len(saved) != structure.num_leaves:
        return None
    leaves, rest = [], iter(saved)
    for leaf in jax.tree.leaves(template):
        if not is_flat(leaf):
            leaves.append(next(rest))
            continue
        parts = [next(rest) for _ in params]
        if [np.shape(part) for part in parts] != [np.shape(p) for p in params]:
            return None
        leaves.append(np.concatenate([np.ravel(part) for part in parts]))
    return leaves


def restore_opt_state(ckpt: Checkpoint, template: Any) -> Any:
    """``ckpt``'s optimizer state, rebuilt on ``template`` (``optimizer.init(params)`` of the optimizer that
    will continue it). A state saved by another optimizer (its tree structure, compared when the checkpoint
    was written under this JAX version), or with other array shapes or dtypes, is a :class:`CheckpointError`.
    A state fpml saved array by array before its element-wise optimizers kept one flat vector is converted
    to that vector (the same optimizer state, laid out as ``optax.flatten`` keeps it)."""
    structure, leaves = jax.tree.structure(template), ckpt.opt_state or []
    converted = _flat_from_per_array(ckpt, template)
    if converted is not None:
        leaves = converted
    elif ckpt.opt_state_structure is not None and ckpt.opt_state_structure != str(structure):
        saved, needed = _state_types(ckpt.opt_state_structure), _state_types(str(structure))
        raise CheckpointError(
            f"checkpoint optimizer state was saved by another optimizer ({saved}; this optimizer has {needed})"
            if saved != needed
            else f"checkpoint optimizer state was saved for other parameters than the network's ({saved})"
        )
    wanted = jax.tree.leaves(template)
    if len(wanted) != len(leaves):
        raise CheckpointError(
            f"checkpoint optimizer state has {len(leaves)} arrays, the optimizer needs {len(wanted)}: was it "
            "saved with another optimizer?"
        )
    restored = []
    for i, (want, have) in enumerate(zip(wanted, leaves, strict=True)):
        raw = _key_data(want)
        shape, dtype = np.shape(raw), (raw.dtype if hasattr(raw, "dtype") else np.asarray(raw).dtype)
        if (shape, dtype) != (have.shape, have.dtype):
            raise CheckpointError(
                f"checkpoint optimizer state array {i} is {have.dtype}{list(have.shape)}, the optimizer needs "
                f"{dtype}{list(shape)}"
            )
        restored.append(jax.random.wrap_key_data(have, impl=jax.random.key_impl(want)) if raw is not want else have)
    return jax.tree.unflatten(structure, restored)
