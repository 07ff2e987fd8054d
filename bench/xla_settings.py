"""XLA CPU settings fpml leaves at their defaults, measured: the fraud network's epoch (batch 100) and its
inference on every row, per setting and core count.

XLA reads its flags when its backend starts, so every measurement is a child process started with the
setting in its environment and confined (or not) to one core as ``fpml train`` does it. Settings and core
counts alternate child by child (``--repeats`` children each); a child reports the median of its timed
epochs (after an untimed compiling one) and of 10 inference calls, and the table shows the median over its
children. Random data of the fraud shape (284,807 x 29, 0.2% positives).
Run: ``.venv/bin/python bench/xla_settings.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from fpml.runtime import INLINE_DOT_FLAGS

#: Name -> environment variables of the child process.
SETTINGS = {
    "default": {},
    "XNNPACK (--xla_cpu_use_xnnpack=true)": {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"},
    "YNNPACK fusions off (--xla_cpu_experimental_ynn_fusion_type=)": {
        "XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="
    },
    "single-threaded Eigen (--xla_cpu_multi_thread_eigen=false)": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
    "synchronous dispatch (JAX_CPU_ENABLE_ASYNC_DISPATCH=false)": {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"},
    "inline dots (fpml.runtime.INLINE_DOT_FLAGS, fpml's on one core)": {"XLA_FLAGS": " ".join(INLINE_DOT_FLAGS)},
}
BATCH = 100


def child(cores: str) -> dict:
    """Median epoch samples/s and inference seconds of the fraud network in this (fresh) process."""
    from fpml import runtime

    runtime.confine_to_cores(1 if cores == "1" else None)
    import numpy as np
    from train_speed import EPOCH_SIZE, fpml_contender, fpml_predictor, timings

    from fpml.data.dataset import dataset

    rng = np.random.default_rng(0)
    x = rng.standard_normal((284_807, 29)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(rng.random(len(x)) < 0.002).astype(int)]
    data = dataset(x, y, tuple(f"V{i}" for i in range(29)))
    run_epoch, _, _ = fpml_contender(data, BATCH)  # compiled, and one epoch run untimed
    predict = fpml_predictor(data)
    predict()  # compile
    return {
        "samples_per_s": EPOCH_SIZE / statistics.median(timings(run_epoch, 3)),
        "inference_s": statistics.median(timings(predict, 10)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="child processes per setting and core count")
    parser.add_argument("--child", choices=["1", "all"], help=argparse.SUPPRESS)  # cores, in a child process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeats):
        for name, env in SETTINGS.items():
            for cores in ("1", "all"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", cores],
                    env={**os.environ, **env},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results.setdefault((name, cores), []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"fraud network, batch {BATCH}; median over {args.repeats} alternating child processes")
    print(f"{'setting':<62}{'cores':>6}{'samples/s':>12}{'inference ms':>14}")
    for (name, cores), runs in results.items():
        speed = statistics.median(r["samples_per_s"] for r in runs)
        ms = 1000 * statistics.median(r["inference_s"] for r in runs)
        print(f"{name:<62}{cores:>6}{speed:>12,.0f}{ms:>14.1f}")


if __name__ == "__main__":
    main()
