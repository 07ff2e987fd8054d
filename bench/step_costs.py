"""What one training step's pieces cost on CPU: tiny dots against elementwise fusions, in a scanned loop.

Each row times a ``lax.scan`` of 2,000 steps whose step updates a 29 x 20 carry (as a weight update does)
with one of the products a batch-100 dense layer of the fraud network needs, and reports microseconds per
step. The first row (no product) is the loop and update alone; the difference to it is the product's cost.
The last row computes the forward product as 29 fused rank-1 updates (one elementwise kernel) instead of
a dot. One core, as fpml uses for this network. Run: ``.venv/bin/python bench/step_costs.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

STEPS, BATCH, IN, OUT = 2000, 100, 29, 20


def rank1_sum(a, b):
    """``a @ b`` as a sum of ``a.shape[1]`` outer products: elementwise, so XLA fuses it into one kernel."""
    acc = a[:, 0:1] * b[0]
    for k in range(1, a.shape[1]):
        acc = acc + a[:, k : k + 1] * b[k]
    return acc


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    import jax
    from rich.console import Console
    from rich.table import Table

    products = {  # each maps (carry 29x20, batch 100x29) -> a 29x20 term
        "no product (loop + update only)": lambda c, xb: xb[:IN, :OUT],
        "forward x @ w (100x29 @ 29x20)": lambda c, xb: (xb @ c)[:IN],
        "weight grad x.T @ g (29x100 @ 100x20)": lambda c, xb: xb.T @ xb[:, :OUT],
        "input grad g @ w.T (100x20 @ 20x29)": lambda c, xb: (xb[:, :OUT] @ c.T)[:IN, :OUT],
        "forward as 29 fused rank-1 updates": lambda c, xb: rank1_sum(xb, c)[:IN],
    }
    x = jax.random.normal(jax.random.key(0), (STEPS, BATCH, IN))
    w = jax.random.normal(jax.random.key(1), (IN, OUT)) * 0.1
    loops = {}
    for name, product in products.items():

        def loop(w, x, product=product):
            return jax.lax.scan(lambda c, xb: (c * 0.999 + 1e-4 * product(c, xb), None), w, x)[0]

        loops[name] = jax.jit(loop)
        loops[name](w, x).block_until_ready()  # compile
    timings: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(7):  # interleaved, so a slow moment of the machine hits every row alike
        for name, loop in loops.items():
            time.sleep(0.05)
            started = time.perf_counter()
            loop(w, x).block_until_ready()
            timings[name].append(time.perf_counter() - started)
    table = Table("step", "us/step", title=f"scan of {STEPS} steps, jax {jax.__version__}, one core")
    for name, seconds in timings.items():
        table.add_row(name, f"{statistics.median(seconds) / STEPS * 1e6:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
