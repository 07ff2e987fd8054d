"""The ``fpml`` command. Errors print as one line (``fpml: error: ...``) and exit with status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fpml.errors import FpmlError


def _train(args: argparse.Namespace) -> int:
    from fpml import config, runtime
    from pipelines import fraud

    cfg = config.load(args.config, args.overrides)
    runtime.confine_to_cores(runtime.cpu_cores(cfg["cpu-cores"], cfg["network"], cfg["batch-size"]))
    name = Path(args.config).stem
    result = fraud.run(cfg, name, quiet=args.quiet, plain=True if args.plain else None)
    if args.quiet:
        print(result.run_dir / "best.npz")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from fpml import config, network

    cfg = config.load(args.config, args.overrides)
    print(network.describe(network.build(cfg["network"])))
    return 0


def _data(args: argparse.Namespace) -> int:
    from fpml.data import kaggle

    source = kaggle.obtain(args.data, Path(args.data_dir))
    frame = kaggle.load_frame(source)
    frauds = int(frame["Class"].sum())
    print(f"{source.description}: {len(frame):,} rows, {frauds} frauds; cache {source.path.with_suffix('.npz')}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands ``train`` and ``describe``)."""
    top = argparse.ArgumentParser(
        prog="fpml", description="Functional ML pipelines: networks as EDN data, jit-compiled training."
    )
    sub = top.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train a config (configs/NAME.edn or a path)",
        description="Train a network described by an EDN config. Overrides are "
        "key=value with dotted keys and EDN values, e.g. epoch-count=3 "
        "optimizer.learning-rate=1e-4 network.1.size=32 data=data/creditcard.csv",
    )
    train.add_argument("config", help="config name (configs/NAME.edn) or path to an .edn file")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    train.add_argument("--quiet", action="store_true", help="print only the path of the saved network")
    train.add_argument(
        "--plain", action="store_true", help="one plain line per epoch (the default when stdout is not a terminal)"
    )
    train.set_defaults(run=_train)
    describe = sub.add_parser("describe", help="print a config's layer table (shapes, parameter counts)")
    describe.add_argument("config")
    describe.add_argument("overrides", nargs="*", metavar="key=value")
    describe.set_defaults(run=_describe)
    data = sub.add_parser("data", help="obtain, verify and cache the Kaggle credit-card file (make data)")
    data.add_argument("--data", default="kaggle", help="'kaggle' (default) or a CSV path to verify and cache")
    data.add_argument("--data-dir", default="data", help="where the file and its cache live (default: data)")
    data.set_defaults(run=_data)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except FpmlError as err:
        print(f"fpml: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpml: interrupted; the best network so far is in the run folder", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
