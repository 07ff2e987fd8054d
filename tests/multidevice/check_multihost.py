"""One of two processes (127.0.0.1, 2 CPU devices each) training together with jax.distributed.

Usage: check_multihost.py PROCESS_ID PORT OUT.json. Each process keeps its shard of the training rows;
batches are joined across processes. Process 0 also replays the same global batches in a plain
single-device loop and records how far the two results are apart. Both processes also train on a mesh of
one device each (``:devices 2``) and check the mesh errors of counts that do not split.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

from fpml import distributed  # noqa: E402

PROCESS, PORT, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
distributed.initialize(f"127.0.0.1:{PORT}", 2, PROCESS)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import toolz  # noqa: E402

from fpml import edn, losses, network, optim, train  # noqa: E402
from fpml.data import stream, synthetic, transforms  # noqa: E402
from fpml.errors import ConfigError  # noqa: E402

NET = edn.loads("""[{:type :input :size 29} {:type :linear->relu :size 8} {:type :dropout :keep 0.8}
                    {:type :linear :size 2} {:type :softmax}]""")
EPOCHS, EPOCH_SIZE, BATCH, K = 2, 800, 40, 5


def main() -> None:
    frame = synthetic.generate(seed=7, rows=3_000, frauds=60)
    data = toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))
    full_train, test = transforms.split(jax.random.key(0), 600, data)
    stats = transforms.fit_standardizer(full_train)
    full_train, test = transforms.standardize(stats, full_train), transforms.standardize(stats, test)
    local = distributed.process_shard(full_train)
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    loss = losses.resolve_loss("auto", net)
    key = jax.random.key(3)
    init_host = jax.device_get(train.init_state(net, opt, jax.random.key(1)))

    def train_on(mesh):
        result = train.train_n(
            net,
            opt,
            loss,
            local,
            stream.class_balanced(local.labels),
            train.classification_test_fn(net, test),
            key=key,
            epoch_count=EPOCHS,
            epoch_size=EPOCH_SIZE,
            batch_size=BATCH,
            state=init_host,
            mesh=mesh,
            steps_per_call=K,
        )
        return jax.device_get(result.state.params)

    params = train_on(train.data_mesh(jax.device_count()))
    half = train.data_mesh(2)  # the first device of each process
    params_half = train_on(half)
    report = {
        "process": PROCESS,
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "local_rows": len(local),
        "params": jax.tree.map(lambda a: np.asarray(a).tolist(), params),
        "half_mesh": [[d.process_index, d.id] for d in half.devices.flat],
        "first_local_device": [jax.local_devices()[0].process_index, jax.local_devices()[0].id],
        "max_diff_half_mesh": max_diff(params, params_half),
        "mesh_errors": [mesh_error(n) for n in (3, 6)],
    }
    if PROCESS == 0:
        report["max_diff_vs_single"] = replay(net, opt, loss, full_train, key, init_host, params)
    with open(OUT, "w") as handle:
        json.dump(report, handle)


def replay(net, opt, loss, full_train, key, init, params) -> float:
    """The same global batches (each process's part, side by side) in a plain loop on one device."""
    shards = [distributed.process_shard(full_train, p, 2) for p in range(2)]
    step = jax.jit(train._step_fn(net, loss, opt, None))
    state = jax.tree.map(jnp.asarray, init)
    for epoch in range(EPOCHS):
        parts = []
        for p, shard in enumerate(shards):
            s = stream.class_balanced(shard.labels)
            rows = np.asarray(stream.epoch_indices(s, train.process_stream_key(key, p, 2), epoch, EPOCH_SIZE // 2))
            parts.append(rows.reshape(-1, BATCH // 2))
        noise = train._noise_key(key, jnp.int32(epoch))
        for i in range(EPOCH_SIZE // BATCH):
            xb = np.concatenate([shards[p].x[parts[p][i]] for p in range(2)])
            yb = np.concatenate([shards[p].y[parts[p][i]] for p in range(2)])
            state, _ = step(state, xb, yb, jax.random.fold_in(noise, i))
    return max_diff(jax.device_get(state.params), params)


def max_diff(a, b) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def mesh_error(devices: int) -> str:
    try:
        train.data_mesh(devices)
    except ConfigError as err:
        return str(err)
    return "no error"


if __name__ == "__main__":
    main()
