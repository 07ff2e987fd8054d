"""The ``fpml`` command. Errors print as one line (``fpml: error: ...``) and exit with status 2; Ctrl-C
during training exits with 130 after saying where the best network is and how to continue."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fpml.errors import FpmlError, TrainingInterrupted


def _process_flags(args: argparse.Namespace) -> list[str]:
    """``--coordinator/--num-processes/--process-id`` as config overrides."""
    flags = []
    if args.coordinator is not None:
        auto = args.coordinator == "auto"
        flags.append("coordinator=:auto" if auto else f"coordinator={json.dumps(args.coordinator)}")
    flags += [f"num-processes={args.num_processes}"] if args.num_processes is not None else []
    flags += [f"process-id={args.process_id}"] if args.process_id is not None else []
    return flags


def _start(cfg) -> None:
    """Process-level choices, before anything touches a device: join the other processes of a multi-process
    run, then the backend, the compilation cache, and the CPU cores (the I-th process of a host takes the
    I-th block of cores, so that processes sharing a host do not stack on the same ones), and for a small
    network on one core, XLA's own loops for its matrix products."""
    from fpml import distributed, runtime

    process = 0
    if cfg["coordinator"] is not None:
        process = distributed.initialize(
            cfg["coordinator"], cfg["num-processes"], cfg["process-id"], timeout_s=cfg["join-timeout"]
        )
    runtime.select_platform(cfg["platform"])
    runtime.use_compilation_cache(cfg["compile-cache"])
    if cfg["platform"] != "gpu":
        several = cfg["coordinator"] is not None
        cores = runtime.cpu_cores(cfg["cpu-cores"], cfg["network"], cfg["batch-size"], multi_process=several)
        runtime.prepare_cores(cores, cfg["network"], cfg["batch-size"], block=runtime.host_rank(process))


def _train(args: argparse.Namespace) -> int:
    from fpml import config
    from pipelines import fraud

    flags = [f"platform=:{args.device}"] if args.device else []
    cfg = config.load(args.config, [*args.overrides, *flags, *_process_flags(args)])
    _start(cfg)
    result = fraud.run(cfg, Path(args.config).stem, quiet=args.quiet, plain=True if args.plain else None)
    if args.quiet and result.run_dir is not None:  # processes other than 0 of a multi-process run write nothing
        print(result.run_dir / "best.npz")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from pipelines import fraud

    flags = [f"platform=:{args.device}"] if args.device else []
    overrides = [*args.overrides, *flags, *_process_flags(args)]
    _start(fraud.resume_config(args.run_dir, overrides))
    result = fraud.resume(args.run_dir, overrides, quiet=args.quiet, plain=True if args.plain else None)
    if args.quiet and result.run_dir is not None:
        print(result.run_dir / "best.npz")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from fpml import config, network

    cfg = config.load(args.config, args.overrides)
    print(network.describe(network.build(cfg["network"])))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from fpml import progress
    from pipelines import fraud

    report, what = fraud.evaluate(args.run_dir, args.data)
    rows = {
        "data": what,
        "threshold": f"P(class 1) >= {report.threshold:.4g}",
        **{
            (f"F{report.beta:g}" if k == "f-beta" else k): f"{v:.4f}"
            for k, v in report.as_dict().items()
            if k in ("precision", "recall", "f-beta", "auprc", "auroc", "accuracy")
        },
        "confusion (tn fp / fn tp)": str(report.confusion.tolist()),
    }
    progress.output_console().print(progress.summary_table(f"evaluation of {Path(args.run_dir) / 'best.npz'}", rows))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pipelines import fraud

    print(fraud.predict(args.run_dir, args.input, args.output))
    return 0


def _data(args: argparse.Namespace) -> int:
    from fpml.data import kaggle

    source = kaggle.obtain(args.data, Path(args.data_dir))
    frame = kaggle.load_frame(source)
    frauds = int(frame["Class"].sum())
    cache = source.path.with_suffix(".npz")
    cached = f"; cache {cache}" if source.verified else " (checked; only the Kaggle file is cached)"
    print(f"{source.description}: {len(frame):,} rows, {frauds} frauds{cached}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser: ``train``, ``resume``, ``evaluate``, ``predict``, ``describe``, ``data``."""
    top = argparse.ArgumentParser(
        prog="fpml", description="Functional ML pipelines: networks as EDN data, jit-compiled training."
    )
    sub = top.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train a config (configs/NAME.edn or a path)",
        description="Train a network described by an EDN config. Overrides are key=value with dotted keys and "
        "EDN values, e.g. epoch-count=3 optimizer.learning-rate=1e-4 network.1.size=32 data=data/creditcard.csv",
    )
    train.add_argument("config", help="config name (configs/NAME.edn) or path to an .edn file")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    resume = sub.add_parser(
        "resume",
        help="continue an interrupted run in its folder",
        description="Continue a run from its last finished epoch (bit-identical on CPU to "
        "an uninterrupted run). epoch-count=N trains further than the config said.",
    )
    resume.add_argument("run_dir", help="the run folder (runs/NAME-DATE-TIME)")
    resume.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="epoch-count=N trains to N epochs in all; where it runs may change too (devices, cpu-cores, "
        "join-timeout, and the flags below); nothing that changes what is trained",
    )
    for p in (train, resume):
        p.add_argument(
            "--device",
            choices=["cpu", "gpu"],
            help="JAX backend (default: JAX's choice, or the run's for resume); a GPU that cannot be used is an "
            "error, never a silent fallback",
        )
        p.add_argument(
            "--coordinator",
            metavar="HOST:PORT",
            help="train with jax.distributed: the address of process 0 (every process runs the same command with "
            "its own --process-id), or 'auto' to read it, the process count and id from Slurm, Open MPI or "
            "Kubernetes; resume a multi-process run the way it was started",
        )
        p.add_argument("--num-processes", type=int, metavar="N", help="processes taking part (jax.distributed)")
        p.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0..N-1")
        p.add_argument("--quiet", action="store_true", help="print only the path of the saved network")
        p.add_argument("--plain", action="store_true", help="one plain line per epoch (the default off a terminal)")
    train.set_defaults(run=_train)
    resume.set_defaults(run=_resume)
    evaluate = sub.add_parser("evaluate", help="metrics of a run's best network at its threshold")
    evaluate.add_argument("run_dir", help="the run folder (runs/NAME-DATE-TIME)")
    evaluate.add_argument("--data", help="a CSV with the fraud schema (default: the run's own test split)")
    evaluate.set_defaults(run=_evaluate)
    predict = sub.add_parser("predict", help="P(class) and label per row of a CSV, at the run's threshold")
    predict.add_argument("run_dir", help="the run folder (runs/NAME-DATE-TIME)")
    predict.add_argument("input", help="CSV holding the network's feature columns (others are ignored)")
    predict.add_argument("-o", "--output", required=True, help="CSV to write")
    predict.set_defaults(run=_predict)
    describe = sub.add_parser("describe", help="print a config's layer table (shapes, parameter counts)")
    describe.add_argument("config", help="config name (configs/NAME.edn) or path to an .edn file")
    describe.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    describe.set_defaults(run=_describe)
    data = sub.add_parser("data", help="obtain, verify and cache the Kaggle credit-card file (make data)")
    data.add_argument("--data", default="kaggle", help="'kaggle' (default) or a CSV path to check")
    data.add_argument("--data-dir", default="data", help="where the file and its cache live (default: data)")
    data.set_defaults(run=_data)
    for command in (train, resume, evaluate, predict, describe, data):
        command.set_defaults(command_parser=command)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    top = parser()
    args, extra = top.parse_known_args(argv)
    if extra:  # key=value overrides written after an option (``train fraud --plain epoch-count=3``)
        if not hasattr(args, "overrides") or any(item.startswith("-") for item in extra):
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")  # with its own usage
        args.overrides = [*args.overrides, *extra]
    try:
        return args.run(args)
    except TrainingInterrupted as err:
        print(f"fpml: {err}", file=sys.stderr)
        return 130
    except FpmlError as err:
        print(f"fpml: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpml: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``fpml describe fraud | head -3``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141  # 128 + SIGPIPE, as a shell reports a process ended by a broken pipe


if __name__ == "__main__":
    sys.exit(main())
