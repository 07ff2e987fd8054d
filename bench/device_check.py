"""What fpml does on a machine with an accelerator, in one run (for the one call a lent GPU allows).

Prints, as a markdown report: the backend and devices; for the fraud network (29-20-dropout-10-2, Adam)
on fpml's synthetic data (the real file is not carried to such machines, so every figure here is
synthetic): samples/s of the scanned epoch at batch 100 and 1,000 (median and fastest of the timed
epochs, after compiling, compile time apart), inference on all 284,807 rows (median of 10); the same
3 epochs trained on the default device and on the CPU in this process (largest parameter difference,
at JAX's default matmul precision and at "highest"; 0 where the default device is the CPU); and the
wall-clock of ``fpml train fraud data=:synthetic`` end to end, compilation included. On a machine without
an accelerator it measures the CPU and says so. Run: ``.venv/bin/python bench/device_check.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this process and the end-to-end fpml child share the accelerator: neither takes 75% of its memory up front
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import EPOCH_SIZE, NET, fpml_contender, fpml_predictor, fraud_data, timings  # noqa: E402

from fpml import edn, losses, network, optim, train  # noqa: E402
from fpml.data import stream  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def throughput(data, batch_size: int, rounds: int) -> dict:
    run_epoch, compile_s, _ = fpml_contender(data, batch_size)
    seconds = timings(run_epoch, rounds)
    return {
        "median": EPOCH_SIZE / statistics.median(seconds),
        "fastest": EPOCH_SIZE / min(seconds),
        "compile": compile_s,
    }


def inference_ms(data) -> float:
    predict = fpml_predictor(data)
    predict()  # compile
    return 1000 * statistics.median(timings(predict, 10))


def trained_on(device: jax.Device | None, data, precision: str, devices: int = 1) -> list[np.ndarray]:
    """Parameters after 3 epochs of 16,000 samples (batch 160) on ``device``, or data-parallel over the
    first ``devices`` devices (a mesh; ``device`` None)."""
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 1e-3}"))
    mesh = train.data_mesh(devices) if devices > 1 else None
    epoch = train.make_epoch(net, losses.resolve_loss("auto", net), opt, epoch_size=16_000, batch_size=160, mesh=mesh)
    arrays = (train.init_state(net, opt, jax.random.key(1)), data.x, data.y, stream.class_balanced(data.labels))
    with jax.default_matmul_precision(precision):
        state, x, y, s = train.replicate(arrays, mesh, copy=True) if mesh else jax.device_put(arrays, device)
        for e in range(3):
            state, _ = epoch(state, x, y, s, jax.random.key(0), jnp.int32(e))
        return [np.asarray(leaf) for leaf in jax.tree.leaves(jax.device_get(state.params))]


def largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b, strict=True))


def end_to_end_s(platform: str, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as runs:
        argv = ["train", "fraud", "data=:synthetic", f"epoch-count={epochs}", f"run-dir={runs}", "compile-cache=nil"]
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "fpml", *argv, "--device", platform, "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if run.returncode:
            sys.exit(f"fpml train failed (exit {run.returncode}):\n{run.stderr}")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a check that the script runs)")
    args = parser.parse_args()
    rounds, epochs = (2, 2) if args.quick else (5, 30)
    backend = jax.default_backend()
    accelerated = backend != "cpu"
    print(f"## fpml device check ({time.strftime('%Y-%m-%d %H:%M')}, jax {jax.__version__})\n")
    print(f"- backend {backend}: {', '.join(str(d) for d in jax.devices())}")
    if not accelerated:
        print("- no accelerator: every figure below is the CPU's")
    data, train_part = fraud_data()
    print("- data: fpml's synthetic fraud data (seed 0), 234,807 training rows; epochs of 200,000 samples\n")
    print("| batch | samples/s (median) | fastest | compile s |\n| ---: | ---: | ---: | ---: |")
    for batch_size in (100, 1000):
        t = throughput(train_part, batch_size, rounds)
        print(f"| {batch_size} | {t['median']:,.0f} | {t['fastest']:,.0f} | {t['compile']:.2f} |")
    print(f"\n- inference on all {len(data):,} rows: {inference_ms(data):.1f} ms (median of 10)")
    cpu, device, count = jax.devices("cpu")[0], jax.devices()[0], len(jax.devices())
    for precision in ("default", "highest"):
        here = trained_on(device, train_part, precision)
        diff = largest_difference(here, trained_on(cpu, train_part, precision))
        print(f"- 3 epochs on {device} vs on the CPU, matmul precision {precision}: ", end="")
        print(f"largest parameter difference {diff:.2e}")
        if count > 1:
            diff = largest_difference(here, trained_on(None, train_part, precision, devices=count))
            print(f"- the same on all {count} devices (data-parallel mesh) vs on one: {diff:.2e}")
    platform = "gpu" if accelerated else "cpu"
    command = f"fpml train fraud data=:synthetic epoch-count={epochs} --device {platform}"
    print(f"- `{command}`, compilation included: {end_to_end_s(platform, epochs):.1f} s wall-clock")


if __name__ == "__main__":
    main()
