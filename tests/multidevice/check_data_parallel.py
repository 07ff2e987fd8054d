"""Run in its own process (XLA_FLAGS set before JAX starts): 8-device data-parallel training equals 1-device.

Prints one JSON line: max parameter difference, compile-cache sizes, recompilations, device count.
"""

import json
import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import numpy as np  # noqa: E402
import toolz  # noqa: E402

from fpml import edn, losses, network, optim, train  # noqa: E402
from fpml.data import stream, synthetic, transforms  # noqa: E402
from fpml.errors import ConfigError  # noqa: E402

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax.monitoring's event for each XLA compilation
NET = edn.loads("""[{:type :input :size 29} {:type :linear->relu :size 16} {:type :dropout :keep 0.8}
                    {:type :linear->relu :size 8} {:type :linear :size 2} {:type :softmax}]""")


def main() -> None:
    frame = synthetic.generate(seed=5, rows=4_000, frauds=80)
    data = toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))
    train_part, _ = transforms.split(jax.random.key(0), 1_000, data)
    train_part = transforms.standardize(transforms.fit_standardizer(train_part), train_part)
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    loss = losses.resolve_loss("auto", net)
    s = stream.class_balanced(train_part.labels)
    results, caches = {}, {}
    for devices in (1, 8):
        mesh = None if devices == 1 else train.data_mesh(devices)
        epoch = train.make_epoch(net, loss, opt, epoch_size=1_600, batch_size=80, mesh=mesh)
        state, x, y, st = train.replicate(
            (train.init_state(net, opt, jax.random.key(1)), train_part.x, train_part.y, s), mesh
        )
        for e in range(3):
            state, _ = epoch(state, x, y, st, jax.random.key(2), jax.numpy.int32(e))
        results[devices], caches[devices] = jax.device_get(state.params), epoch._cache_size()
        sharding = state.params["linear-1"]["w"].sharding
        if devices == 8:
            assert len(sharding.device_set) == 8 and sharding.is_fully_replicated
    # fed from host memory in chunks of 5 steps, each batch split over the 8 devices as it is placed
    mesh = train.data_mesh(8)
    chunked = train.chunked_epoch(net, loss, opt, epoch_size=1_600, batch_size=80, steps_per_call=5, mesh=mesh)
    state, st = train.replicate((train.init_state(net, opt, jax.random.key(1)), s), mesh)
    x, y = np.asarray(train_part.x), np.asarray(train_part.y)
    compiles, epoch_now = [], [0]  # (epoch, program) of each XLA compilation of the chunked epoch

    def on_event(event, _seconds, fun_name="", **_):
        if event == COMPILE_EVENT:
            compiles.append((epoch_now[0], fun_name))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    for e in range(3):
        epoch_now[0] = e
        state, _ = chunked(state, x, y, st, jax.random.key(2), jax.numpy.int32(e))
    results["8 chunked"] = jax.device_get(state.params)
    try:
        train.make_epoch(net, loss, opt, epoch_size=1_680, batch_size=84, mesh=train.data_mesh(8))
        batch_error = None
    except ConfigError as err:
        batch_error = str(err)
    diff, chunked_diff = (
        max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(jax.tree.leaves(results[1]), jax.tree.leaves(results[other]), strict=True)
        )
        for other in (8, "8 chunked")
    )
    scale = max(float(np.max(np.abs(a))) for a in jax.tree.leaves(results[1]))
    print(
        json.dumps(
            {
                "max_diff": diff,
                "chunked_max_diff": chunked_diff,
                "scale": scale,
                "caches": caches,
                "chunked_compiles": [name for _, name in compiles],
                "chunked_compiles_after_epoch_0": [name for e, name in compiles if e > 0],
                "devices": jax.device_count(),
                "batch_error": batch_error,
            }
        )
    )


if __name__ == "__main__":
    main()
