"""Where one core beats all cores: fpml's scanned epoch by network width and batch size, per core setting.

XLA sizes its CPU thread pool when its backend starts, so every measurement is a child process confined
(or not) before JAX starts, with ``fpml.runtime.prepare_cores`` as ``fpml train`` does it (on one core a
small network's products also become XLA's own loops). The two core
settings alternate, child by child (``--repeats`` children each), and each child reports the median of its
timed epochs after an untimed compiling one; a cell's figure is the median over its children. Random data of
the fraud shape (234,807 x 29). Run: ``.venv/bin/python bench/cpu_cores.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CELLS = [(20, 100), (20, 1000), (256, 100), (256, 1000), (1024, 1000)]
TIMED_EPOCHS = 3


def child(hidden: int, batch: int, cores: str) -> float:
    """Median samples/s of fpml's epoch for a 29-hidden-hidden-2 network, in this (fresh) process."""
    from fpml import edn, runtime

    description = edn.loads(
        f"[{{:type :input :size 29}} {{:type :linear->relu :size {hidden}}} "
        f"{{:type :linear->relu :size {hidden}}} {{:type :linear :size 2}} {{:type :softmax}}]"
    )
    runtime.prepare_cores(1 if cores == "1" else None, description, batch)  # as fpml train does
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fpml import losses, network, optim, train
    from fpml.data import stream

    net = network.build(description)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((234_807, 29)).astype(np.float32)
    labels = (rng.random(len(x)) < 0.002).astype(int)
    y = np.eye(2, dtype=np.float32)[labels]
    opt = optim.optimizer(edn.loads("{:name :adam}"))
    epoch_size = 50_000 if hidden > 100 else 200_000
    epoch = train.make_epoch(net, losses.resolve_loss("auto", net), opt, epoch_size=epoch_size, batch_size=batch)
    state, s, key = train.init_state(net, opt, jax.random.key(0)), stream.class_balanced(labels), jax.random.key(1)
    x, y = jax.device_put(x), jax.device_put(y)
    state, out = epoch(state, x, y, s, key, jnp.int32(0))
    out.block_until_ready()
    times = []
    for e in range(1, TIMED_EPOCHS + 1):
        started = time.perf_counter()
        state, out = epoch(state, x, y, s, key, jnp.int32(e))
        out.block_until_ready()
        times.append(time.perf_counter() - started)
    return epoch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="child processes per cell and core setting")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # hidden batch cores, in a child process
    args = parser.parse_args()
    if args.child:
        hidden, batch, cores = args.child
        print(json.dumps(child(int(hidden), int(batch), cores)))
        return
    print(f"samples/s, median over {args.repeats} alternating child processes of each one's median epoch")
    print(f"{'network':<16}{'batch':>7}{'all cores':>14}{'1 core':>14}{'1 core / all':>14}{'range':>16}")
    for hidden, batch in CELLS:
        speeds: dict[str, list[float]] = {"all": [], "1": []}
        for _ in range(args.repeats):
            for cores in speeds:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(hidden), str(batch), cores],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                speeds[cores].append(json.loads(out.stdout.strip().splitlines()[-1]))
        every, one = statistics.median(speeds["all"]), statistics.median(speeds["1"])
        pairs = [a / b for a, b in zip(speeds["1"], speeds["all"], strict=True)]
        spread = f"{min(pairs):.2f}-{max(pairs):.2f}x"
        print(f"{f'29-{hidden}-{hidden}-2':<16}{batch:>7}{every:>14,.0f}{one:>14,.0f}{one / every:>13.2f}x{spread:>16}")


if __name__ == "__main__":
    main()
