"""Training speed, side by side in one run: fpml's scanned epoch vs a per-step JAX loop, scikit-learn and PyTorch.

Same network (29-20-dropout-10-2 softmax, the Cortex fraud net; scikit-learn's MLPClassifier has no dropout,
one logistic output and its default L2 penalty), same optimizer (Adam 1e-3; PyTorch both with its default
Adam and with ``fused=True``, its fastest on CPU), same class-balanced batches, on fpml's synthetic fraud
data. Contenders are interleaved with pauses so one library's worker threads do not slow the next. Each core
setting (one core: fpml's default for small networks, with XLA's own loops for the matrix products, see
``fpml.runtime``; all cores) runs in its own child process, since XLA fixes its thread pool and flags when it
starts; every contender is measured in both, and ratios are
against PyTorch's fastest setting. Peak memory is measured in one more child process per library.
Run with ``make bench`` (``ARGS="--batch-sizes 100 1000 --rounds 5"``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import toolz
from rich.console import Console
from rich.table import Table

from fpml import edn, losses, network, optim, runtime, train
from fpml.data import stream, synthetic, transforms

NET = edn.loads("""[{:type :input :size 29 :id :data} {:type :linear->relu :size 20} {:type :dropout :keep 0.9}
                    {:type :linear->relu :size 10} {:type :linear :size 2} {:type :softmax :id :label}]""")
EPOCH_SIZE = 200_000
TORCH, TORCH_FUSED = "PyTorch eager", "PyTorch eager, fused Adam"
#: Inference calls timed right after each paused one: the cost of a call whose threads are still awake.
BACK_TO_BACK = 5


def fpml_contender(data, batch_size):
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 1e-3}"))
    epoch = train.make_epoch(net, losses.resolve_loss("auto", net), opt, epoch_size=EPOCH_SIZE, batch_size=batch_size)
    x, y, s = jax.device_put(data.x), jax.device_put(data.y), stream.class_balanced(data.labels)
    key = jax.random.key(0)
    box = {"state": train.init_state(net, opt, jax.random.key(1)), "epoch": 0}
    started = time.perf_counter()
    compiled = epoch.lower(box["state"], x, y, s, key, jnp.int32(0)).compile()
    compile_s = time.perf_counter() - started

    def run_epoch():
        box["state"], step_losses = compiled(box["state"], x, y, s, key, jnp.int32(box["epoch"]))
        step_losses.block_until_ready()
        box["epoch"] += 1

    started = time.perf_counter()
    run_epoch()
    return run_epoch, compile_s, time.perf_counter() - started


def torch_net(*head):
    """The fraud network in PyTorch (dropout 0.1 = fpml's keep 0.9), with optional final layers."""
    import torch

    torch.manual_seed(0)
    layers = (torch.nn.Linear(29, 20), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(20, 10))
    return torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(10, 2), *head)


def torch_contender(data, batch_size, *, fused: bool):
    """A plain PyTorch training loop; ``fused``: Adam's fused CPU kernel (faster here) instead of its default."""
    import torch

    model = torch_net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    x, y = torch.from_numpy(np.array(data.x)), torch.from_numpy(np.array(data.labels))
    s = stream.class_balanced(data.labels)
    indices = torch.from_numpy(np.asarray(stream.epoch_indices(s, jax.random.key(0), 0, EPOCH_SIZE), np.int64))
    batches = indices.reshape(-1, batch_size)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run_epoch():
        model.train()
        for rows in batches:
            opt.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            opt.step()

    started = time.perf_counter()
    run_epoch()  # warm-up, untimed, as fpml's first epoch is
    return run_epoch, None, time.perf_counter() - started


def jit_loop_contender(data, batch_size):
    """The usual JAX loop: one jitted training step, called from Python once per batch."""
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 1e-3}"))
    grad_fn = jax.value_and_grad(losses.objective(net, losses.resolve_loss("auto", net)))

    @partial(jax.jit, donate_argnums=0)
    def step(state, x, y, rows, key, i):
        value, grads = grad_fn(state.params, x[rows], y[rows], jax.random.fold_in(key, i))
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return train.TrainState(optax.apply_updates(state.params, updates), opt_state), value

    x, y = jax.device_put(data.x), jax.device_put(data.y)
    rows = stream.epoch_indices(stream.class_balanced(data.labels), jax.random.key(0), 0, EPOCH_SIZE)
    batches = list(rows.reshape(-1, batch_size))
    box = {"state": train.init_state(net, opt, jax.random.key(1))}
    key = jax.random.key(2)
    started = time.perf_counter()
    step.lower(box["state"], x, y, batches[0], key, 0).compile()
    compile_s = time.perf_counter() - started

    def run_epoch():
        state = box["state"]
        for i, b in enumerate(batches):
            state, value = step(state, x, y, b, key, i)
        value.block_until_ready()
        box["state"] = state

    started = time.perf_counter()
    run_epoch()
    return run_epoch, compile_s, time.perf_counter() - started


def sklearn_contender(data, batch_size):
    """scikit-learn's MLPClassifier (20, 10), adam, fed batch by batch with partial_fit."""
    from sklearn.neural_network import MLPClassifier

    # one Adam step per partial_fit call, on the batch as given (sklearn's default is steps of 200 rows, shuffled)
    model = MLPClassifier(
        (20, 10), solver="adam", learning_rate_init=1e-3, batch_size=batch_size, shuffle=False, random_state=0
    )
    rows = np.asarray(stream.epoch_indices(stream.class_balanced(data.labels), jax.random.key(0), 0, EPOCH_SIZE))
    batches = rows.reshape(-1, batch_size)
    x, labels = np.asarray(data.x), data.labels

    def run_epoch():
        for b in batches:
            model.partial_fit(x[b], labels[b], classes=[0, 1])

    started = time.perf_counter()
    run_epoch()
    return run_epoch, None, time.perf_counter() - started


def fpml_predictor(full):
    """``predict()``: fpml's jitted apply of the network on every row of ``full`` (on the device)."""
    net = network.build(NET)
    params = net.init(jax.random.key(0))
    predict = jax.jit(net.apply)
    x = jax.device_put(full.x)
    return lambda: predict(params, x).block_until_ready()


def timings(run, count: int) -> list[float]:
    """Seconds of each of ``count`` consecutive calls of ``run`` (warm it up first)."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def inference(args, full) -> list[dict]:
    """Predictions for every row of the data set: fpml's jitted apply vs PyTorch's no_grad forward."""
    contenders = {"fpml (jit apply)": fpml_predictor(full)}
    if not args.no_torch:
        import torch

        model = torch_net(torch.nn.Softmax(dim=1)).eval()
        tx = torch.from_numpy(np.array(full.x))

        def torch_predict():
            with torch.no_grad():
                return model(tx)

        contenders["PyTorch no_grad"] = torch_predict
    for run in contenders.values():
        run()  # compile / warm up
    paused: dict[str, list[float]] = {name: [] for name in contenders}
    back_to_back: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(10):
        for name, run in contenders.items():
            time.sleep(args.pause / 4)
            first, *following = timings(run, 1 + BACK_TO_BACK)
            paused[name].append(first)
            back_to_back[name] += following
    return [
        {
            "contender": name,
            "cores": args.cores,
            "rows": len(full),
            "seconds": statistics.median(paused[name]),
            "back_to_back_seconds": statistics.median(back_to_back[name]),
        }
        for name in contenders
    ]


def measure(args) -> dict:
    """Child process: time every contender at every batch size, interleaved."""
    data, train_part = fraud_data()
    rows = []
    for batch_size in args.batch_sizes:
        contenders = {
            "fpml (scanned jit epoch)": fpml_contender(train_part, batch_size),
            "JAX per-step jit loop": jit_loop_contender(train_part, batch_size),
            "scikit-learn partial_fit": sklearn_contender(train_part, batch_size),
        }
        if not args.no_torch:
            contenders[TORCH] = torch_contender(train_part, batch_size, fused=False)
            contenders[TORCH_FUSED] = torch_contender(train_part, batch_size, fused=True)
        epoch_seconds: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (run_epoch, _, _) in contenders.items():
                time.sleep(args.pause)
                epoch_seconds[name] += timings(run_epoch, 1)
        rows += [
            {
                "contender": name,
                "cores": args.cores,
                "batch": batch_size,
                "compile": contenders[name][1],
                "first": contenders[name][2],
                "samples_per_s": EPOCH_SIZE / statistics.median(seconds),
                "best_samples_per_s": EPOCH_SIZE / min(seconds),
            }
            for name, seconds in epoch_seconds.items()
        ]
    return {"training": rows, "inference": inference(args, data)}


def fraud_data():
    """fpml's synthetic fraud data (seed 0) and its training part (all but a 50,000-row test split)."""
    frame = synthetic.generate(seed=0)
    data = toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))
    return data, transforms.split(jax.random.key(1), 50_000, data)[0]


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def memory(library: str) -> dict:
    """Child process: peak memory of one library training one epoch at batch 100 and predicting every row."""
    data, train_part = fraud_data()
    if library == "torch":
        import torch
    loaded = resident_mb()
    if library == "fpml":
        fpml_contender(train_part, 100)[0]()
        net = network.build(NET)
        jax.jit(net.apply)(net.init(jax.random.key(0)), jax.device_put(data.x)).block_until_ready()
    else:
        torch_contender(train_part, 100, fused=True)[0]()
        with torch.no_grad():
            torch_net(torch.nn.Softmax(dim=1)).eval()(torch.from_numpy(np.array(data.x)))
    return {"loaded_mb": loaded, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def versions(no_torch: bool) -> str:
    import sklearn

    names = [f"jax {jax.__version__}", f"scikit-learn {sklearn.__version__}"]
    if not no_torch:
        import torch

        names.append(f"PyTorch {torch.__version__}")
    return ", ".join(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per contender")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between timed calls")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--cores", choices=["1", "all"], help=argparse.SUPPRESS)  # set in child processes
    parser.add_argument("--memory", choices=["fpml", "torch"], help=argparse.SUPPRESS)  # likewise
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(memory(args.memory)))
        return
    if args.cores:
        # as fpml train does, before JAX's backend starts; the largest batch decides for every contender
        runtime.prepare_cores(1 if args.cores == "1" else None, NET, max(args.batch_sizes))
        print(json.dumps(measure(args)))
        return
    console = Console(width=max(Console().width, 132))
    console.print(
        f"data: fpml synthetic fraud data (seed 0, 234,807 training rows); epoch {EPOCH_SIZE:,} samples; "
        f"{versions(args.no_torch)}; {len(os.sched_getaffinity(0))} cores"
    )
    rows, infer = [], []
    for cores in ("1", "all"):
        result = child(["--cores", cores, *sys.argv[1:]])
        rows += result["training"]
        infer += result["inference"]
    table = Table(
        title="training throughput (median and fastest of the timed epochs; compilation and the first epoch "
        "untimed); each ratio is against PyTorch's fastest setting (cores, Adam), median to median and fastest "
        "to fastest"
    )
    columns = ("contender", "cores", "batch", "samples/s", "ms/step", "vs torch", "fastest", "vs torch")
    for column in (*columns, "compile s", "first s"):
        table.add_column(column, justify="left" if column == "contender" else "right")
    for batch_size in args.batch_sizes:
        at_batch = [r for r in rows if r["batch"] == batch_size]
        torch_rows = [r for r in at_batch if r["contender"] in (TORCH, TORCH_FUSED)]
        torch_median = max((r["samples_per_s"] for r in torch_rows), default=None)
        torch_fastest = max((r["best_samples_per_s"] for r in torch_rows), default=None)
        for r in at_batch:
            speed, fastest = r["samples_per_s"], r["best_samples_per_s"]
            table.add_row(
                r["contender"],
                r["cores"],
                str(batch_size),
                f"{speed:,.0f}",
                f"{1000 * batch_size / speed:.3f}",
                f"{speed / torch_median:.1f}x" if torch_median else "-",
                f"{fastest:,.0f}",
                f"{fastest / torch_fastest:.1f}x" if torch_fastest else "-",
                "-" if r["compile"] is None else f"{r['compile']:.2f}",
                f"{r['first']:.2f}",
            )
    console.print(table)
    inference_table = Table(
        title=f"inference on all {infer[0]['rows']:,} rows: median of 10 calls, each after a {args.pause / 4:g} s "
        f"pause, and of the {10 * BACK_TO_BACK} that follow them back to back ({BACK_TO_BACK} after each)"
    )
    columns = ("contender", "cores", "ms", "rows/s", "vs best torch", "back to back ms", "vs best torch")
    for column in columns:
        inference_table.add_column(column, justify="left" if column == "contender" else "right")
    torch_rows = [r for r in infer if r["contender"] == "PyTorch no_grad"]
    torch_best = min((r["seconds"] for r in torch_rows), default=None)
    torch_best_b2b = min((r["back_to_back_seconds"] for r in torch_rows), default=None)
    for r in infer:
        inference_table.add_row(
            r["contender"],
            r["cores"],
            f"{1000 * r['seconds']:.1f}",
            f"{r['rows'] / r['seconds']:,.0f}",
            f"{torch_best / r['seconds']:.1f}x" if torch_best else "-",
            f"{1000 * r['back_to_back_seconds']:.1f}",
            f"{torch_best_b2b / r['back_to_back_seconds']:.1f}x" if torch_best_b2b else "-",
        )
    console.print(inference_table)
    libraries = {"fpml": "fpml", **({} if args.no_torch else {"torch": "PyTorch"})}
    peaks = {name: child(["--memory", library]) for library, name in libraries.items()}
    console.print(
        "peak memory, one process per library on all cores (max RSS; data prepared with fpml, so JAX is loaded in "
        "both; then one epoch at batch 100 and inference on every row): "
        + ", ".join(
            f"{n} {m['peak_mb']:,.0f} MB, {m['peak_mb'] - m['loaded_mb']:,.0f} MB over the data loaded"
            for n, m in peaks.items()
        )
    )


if __name__ == "__main__":
    main()
