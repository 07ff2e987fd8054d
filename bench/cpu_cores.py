"""Where one core beats all cores: fpml's scanned epoch by network width and batch size, per core setting.

Each (network, batch, cores) cell runs in its own child process, since XLA sizes its CPU thread pool when
its backend starts. Random data of the fraud shape (234,807 x 29). Run: ``.venv/bin/python bench/cpu_cores.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CELLS = [(20, 100), (20, 1000), (256, 100), (256, 1000), (1024, 1000)]


def child(hidden: int, batch: int, cores: str) -> None:
    if cores == "1":
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fpml import edn, losses, network, optim, train
    from fpml.data import stream

    net = network.build(
        edn.loads(
            f"[{{:type :input :size 29}} {{:type :linear->relu :size {hidden}}} "
            f"{{:type :linear->relu :size {hidden}}} {{:type :linear :size 2}} {{:type :softmax}}]"
        )
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((234_807, 29)).astype(np.float32)
    labels = (rng.random(len(x)) < 0.002).astype(int)
    y = np.eye(2, dtype=np.float32)[labels]
    opt = optim.optimizer(edn.loads("{:name :adam}"))
    epoch_size = 50_000 if hidden > 100 else 200_000
    epoch = train.make_epoch(net, losses.resolve_loss("auto", net), opt, epoch_size=epoch_size, batch_size=batch)
    state, s, key = train.init_state(net, opt, jax.random.key(0)), stream.class_balanced(labels), jax.random.key(1)
    state, out = epoch(state, x, y, s, key, jnp.int32(0))
    out.block_until_ready()
    times = []
    for e in range(1, 4):
        started = time.perf_counter()
        state, out = epoch(state, x, y, s, key, jnp.int32(e))
        out.block_until_ready()
        times.append(time.perf_counter() - started)
    print(json.dumps(epoch_size / min(times)))


def main() -> None:
    if len(sys.argv) == 4:
        child(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
        return
    print(f"{'network':<16}{'batch':>7}{'all cores':>14}{'1 core':>14}{'1 core / all':>14}")
    for hidden, batch in CELLS:
        speeds = {}
        for cores in ("all", "1"):
            out = subprocess.run(
                [sys.executable, __file__, str(hidden), str(batch), cores], capture_output=True, text=True, check=True
            )
            speeds[cores] = json.loads(out.stdout.strip().splitlines()[-1])
        name = f"29-{hidden}-{hidden}-2"
        ratio = speeds["1"] / speeds["all"]
        print(f"{name:<16}{batch:>7}{speeds['all']:>14,.0f}{speeds['1']:>14,.0f}{ratio:>13.2f}x")


if __name__ == "__main__":
    main()
