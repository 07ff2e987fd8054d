"""Two processes on 127.0.0.1 (2 CPU devices each) train together through jax.distributed: both end with the
same parameters, equal to a single-device run on the same global batches."""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import types
from pathlib import Path

import jax
import numpy as np
import pytest

from fpml import checkpoint, config, distributed, runtime, train
from fpml.data import synthetic, transforms
from fpml.errors import ConfigError
from pipelines import fraud

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "multidevice" / "check_multihost.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two(commands, envs=({}, {}), status=0, timeout=300):
    """Run two processes (a command and extra environment each) from the repository root; both must exit with
    ``status`` within ``timeout`` seconds. Returns ``(stdout, stderr)`` of each."""
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for command, env in zip(commands, envs, strict=True)
    ]
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    assert [proc.returncode for proc in procs] == [status, status], outputs
    return outputs


def test_two_processes_train_as_one(tmp_path):
    port = str(free_port())
    _run_two([[sys.executable, str(SCRIPT), str(p), port, str(tmp_path / f"{p}.json")] for p in (0, 1)])
    first, second = (json.loads((tmp_path / f"{p}.json").read_text()) for p in (0, 1))
    assert first["processes"] == 2 and first["devices"] == 4
    assert first["local_rows"] + second["local_rows"] == 2_400  # each process kept only its shard
    assert first["params"] == second["params"]
    assert first["max_diff_vs_single"] < 1e-6, first["max_diff_vs_single"]  # observed: 1.2e-7
    assert [d[0] for d in first["half_mesh"]] == [0, 1]  # :devices 2 takes one device of each process
    assert first["half_mesh"] == [first["first_local_device"], second["first_local_device"]]
    assert first["max_diff_half_mesh"] < 1e-6, first["max_diff_half_mesh"]
    assert first["mesh_errors"] == [
        ":devices 3 does not split over the 2 processes (each feeds the same number of devices): give a "
        "multiple of 2, or :all",
        ":devices 6 needs 3 devices in each of the 2 processes, and process 0 has 2",
    ]


SMALL = [
    "data=:synthetic",
    "synthetic={:rows 6000 :frauds 60 :seed 2}",
    "test-size=1500",
    "epoch-size=2000",
    "batch-size=40",
    "augment=nil",
    "threshold=0.5",
    "steps-per-call=10",
]


def _fpml_two(argvs, envs):
    """Run ``python -m fpml ARGV`` as two processes (per-process arguments and environment); both must succeed.
    Returns fpml's last line of output of each (gloo, in C++, announces its connections on stdout first)."""
    outputs = _run_two(
        [[sys.executable, "-m", "fpml", *argv, "--quiet"] for argv in argvs],
        [{"XLA_FLAGS": "--xla_force_host_platform_device_count=2", **env} for env in envs],
    )
    return [out.strip().splitlines()[-1] if out.strip() else "" for out, _ in outputs]


def _train_two(runs, args, envs, epochs=2):
    """Start ``fpml train fraud`` twice (per-process extra args and environment); check they train as one."""
    argvs = [["train", "fraud", *SMALL, f"epoch-count={epochs}", f"run-dir={runs}", *extra] for extra in args]
    last_lines = _fpml_two(argvs, envs)
    (run,) = runs.iterdir()  # one run folder, written by process 0 only
    assert last_lines[0] == str(run / "best.npz") and "best.npz" not in last_lines[1]
    assert len((run / "log.jsonl").read_text().splitlines()) == epochs
    assert {"best.npz", "last.npz", "inference.json", "training.png"} <= {p.name for p in run.iterdir()}
    return run


def test_a_two_process_run_resumed_on_two_processes_equals_a_straight_one(tmp_path):
    """The straight run starts from config keys and reads its data in chunks into memory-mapped files; the
    interrupted one from the command-line flags (--coordinator, --num-processes, --process-id), in memory,
    and is resumed on two processes. Both train alike; evaluate refuses to rebuild their test split."""
    keys = [f'coordinator="127.0.0.1:{free_port()}"', "num-processes=2", "chunk-rows=1000", f"data-dir={tmp_path}"]
    straight = _train_two(tmp_path / "straight", [[*keys, f"process-id={p}"] for p in (0, 1)], [{}, {}], epochs=3)
    assert ":num-processes 2" in (straight / "config.edn").read_text()
    assert "read 1000 rows at a time into memory-mapped files" in (straight / "data.txt").read_text()

    def flags(port):  # per process
        return [["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(p)] for p in (0, 1)]

    run = _train_two(tmp_path / "resumed", flags(free_port()), [{}, {}], epochs=2)
    last_lines = _fpml_two([["resume", str(run), "epoch-count=3", *f] for f in flags(free_port())], [{}, {}])
    assert last_lines[0] == str(run / "best.npz") and "best.npz" not in last_lines[1]
    losses = [
        [json.loads(line)["loss"] for line in (r / "log.jsonl").read_text().splitlines()] for r in (straight, run)
    ]
    assert losses[0] == losses[1] and len(losses[1]) == 3
    params = [checkpoint.load(r / "last.npz").params for r in (straight, run)]
    assert all(np.array_equal(a, b) for a, b in zip(*map(jax.tree.leaves, params), strict=True))
    with pytest.raises(ConfigError, match=r"trained on several processes, whose test split one process cannot"):
        fraud.evaluate(run)  # one process would rebuild another split, most of it training rows


def _slurm_job_id() -> int:
    """A Slurm job id whose coordinator port (JAX: 61440 + id % 4096) is free here."""
    for job in range(1000, 1000 + 4096):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 61440 + job % 4096))
            except OSError:
                continue
            return job
    raise RuntimeError("no free port in 61440..65535")


def test_two_processes_read_a_slurm_environment(tmp_path):
    """With ``:devices 2`` they train on one device of each process, with ``:cpu-cores 1`` each on its own core."""
    job = str(_slurm_job_id())
    slurm = {"SLURM_JOB_ID": job, "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2"}
    envs = [{**slurm, "SLURM_PROCID": str(p), "SLURM_LOCALID": str(p)} for p in (0, 1)]
    train_then_show_cores = (  # the cores any of the process's threads may run on (gloo's, XLA's, ...)
        "import os, sys; from fpml.cli import main; status = main(sys.argv[1:]); "
        "tasks = [os.sched_getaffinity(int(t)) for t in os.listdir('/proc/self/task')]; "
        "print('cores', sorted(set().union(*tasks))); sys.exit(status)"
    )
    argv = ["train", "fraud", *SMALL, "epoch-count=1", f"run-dir={tmp_path}", "--plain"]
    argv += ["coordinator=:auto", "devices=2", "cpu-cores=1"]
    outputs = _run_two(
        [[sys.executable, "-c", train_then_show_cores, *argv]] * 2,
        [{"XLA_FLAGS": "--xla_force_host_platform_device_count=2", **env} for env in envs],
    )
    (used,) = re.findall(r"training on (.*?);", outputs[0][0])
    assert len(used.split(", ")) == 2, used  # of the 4 devices of the two processes
    allowed = sorted(os.sched_getaffinity(0))
    assert [out.strip().splitlines()[-1] for out, _ in outputs] == [
        f"cores {runtime.cores_for(allowed, 1, block=p)}" for p in (0, 1)
    ]
    (run,) = tmp_path.iterdir()
    assert {"best.npz", "inference.json"} <= {p.name for p in run.iterdir()}


def test_a_mesh_takes_as_many_devices_from_each_process_as_the_one_with_the_fewest_has():
    def devices(*processes):
        return [types.SimpleNamespace(process_index=p) for p in processes]

    assert train.usable_devices(devices(0, 0, 0)) == 3
    assert train.usable_devices(devices(0, 0, 1, 1)) == 4
    assert train.usable_devices(devices(0, 0, 1)) == 2  # not 3: each process feeds an equal share
    assert train.usable_devices(devices(0, 1, 1, 1, 2, 2)) == 3


def test_a_process_s_block_of_cores_follows_its_rank_on_the_host(monkeypatch):
    for name in runtime.HOST_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert runtime.host_rank(5) == 5  # no launcher says otherwise: the process id
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    assert runtime.host_rank(5) == 1
    monkeypatch.setenv("SLURM_LOCALID", "0")  # e.g. ranks dealt round-robin over the hosts
    assert runtime.host_rank(2) == 0


def test_cores_for_gives_each_process_its_own_block():
    assert runtime.cores_for([0, 1, 2, 3], 2, block=0) == [0, 1]
    assert runtime.cores_for([3, 1, 2, 0], 2, block=1) == [2, 3]
    assert runtime.cores_for([0, 1, 2], 2, block=1) == [2, 0]  # wraps round
    assert runtime.cores_for([5, 7], 4, block=1) == [5, 7]  # never more than it has


#: Process 0 of a two-task Slurm job on this host (its coordinator port set by ``JAX_COORDINATOR_PORT``).
SLURM_0 = {
    "SLURM_JOB_ID": "7",
    "SLURM_STEP_NODELIST": "127.0.0.1",
    "SLURM_NTASKS": "2",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
}


def _fpml_train(args, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "KUBERNETES_", "PMI_"))}
    return subprocess.run(
        [sys.executable, "-m", "fpml", "train", "fraud", "data=:synthetic", "steps-per-call=100", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "env, start",
    [
        ({}, ":coordinator :auto found no cluster environment"),
        # Open MPI's URI set but not the rank: JAX raises a KeyError
        ({"OMPI_MCA_orte_hnp_uri": "123.0;tcp://10.0.0.1:5000"}, ":coordinator :auto could not read this cluster's"),
        ({"OMPI_MCA_orte_hnp_uri": "123.0;unix://x"}, ":coordinator :auto could not read this cluster's settings"),
        pytest.param(
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
            ":coordinator :auto runs in Kubernetes but the kubernetes package",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("kubernetes") is not None, reason="the case of the package missing"
            ),
        ),
    ],
)
def test_coordinator_auto_failures_are_one_clean_line(env, start):
    out = _fpml_train(["--coordinator", "auto"], env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"fpml: error: {start}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_process_0_with_its_port_taken_is_one_clean_line():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = _fpml_train(["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"])
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"fpml: error: process 0 cannot open the coordinator's port {port} on this host")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_process_0_with_its_port_taken_under_coordinator_auto_is_one_clean_line():
    """The address :auto reads from the cluster is checked before JAX joins it (JAX's runtime would crash)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = _fpml_train(["--coordinator", "auto"], {**SLURM_0, "JAX_COORDINATOR_PORT": str(port)})
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"fpml: error: process 0 cannot open the coordinator's port {port} on this host (Address already in use): "
        "set JAX_COORDINATOR_PORT to a free port\n"
    )


def test_processes_that_do_not_all_join_stop_with_one_line_after_the_join_timeout():
    port = free_port()
    argv = ["join-timeout=2", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"]
    out = _fpml_train(argv)  # process 1 never starts
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"fpml: error: process 0 of 2 waited 2 s (:join-timeout) for the processes to join at the coordinator "
        f"127.0.0.1:{port}: check that every process started, with the same :coordinator and :num-processes\n"
    )
    out = _fpml_train(["join-timeout=2", "--coordinator", "auto"], {**SLURM_0, "JAX_COORDINATOR_PORT": str(port)})
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        f"fpml: error: process 0 of 2 waited 2 s (:join-timeout) for the processes to join at the coordinator "
        f"127.0.0.1:{port} (:coordinator :auto): check that every task of the job started\n"
    )


def test_process_0_checks_that_the_coordinator_address_leads_to_its_host():
    with pytest.raises(ConfigError, match=r"address no-such-host\.invalid:\d+ does not lead to process 0's host"):
        distributed.check_coordinator(f"no-such-host.invalid:{free_port()}", 0)
    distributed.check_coordinator(f"{socket.gethostname()}:{free_port()}", 0)


def test_a_process_that_cannot_reach_the_coordinator_says_so():
    with pytest.raises(ConfigError, match=r"process 1 could not reach the coordinator 127\.0\.0\.1:\d+ in 0\.5 s"):
        distributed.check_coordinator(f"127.0.0.1:{free_port()}", 1, timeout_s=0.5)
    with socket.create_server(("127.0.0.1", 0)) as listening:
        distributed.check_coordinator(f"127.0.0.1:{listening.getsockname()[1]}", 1, timeout_s=0.5)


def test_a_coordinator_without_a_valid_port_says_which_setting_to_mend(monkeypatch):
    with pytest.raises(ConfigError, match=r"'127\.0\.0\.1:abc' has no port in 1\.\.65535 \(got 'abc'\): set JAX_COORD"):
        distributed.check_coordinator("127.0.0.1:abc", 1, timeout_s=0.5, detected=True)  # JAX_COORDINATOR_PORT=abc
    with pytest.raises(ConfigError, match=r"no port in 1\.\.65535 \(got '99999'\): choose a free port in :coordinator"):
        distributed.check_coordinator("127.0.0.1:99999", 0)
    monkeypatch.setenv("JAX_COORDINATOR_BIND_ADDRESS", "[::]:x")
    with pytest.raises(ConfigError, match=r"JAX_COORDINATOR_BIND_ADDRESS '\[::\]:x' has no port in 1\.\.65535"):
        distributed.check_coordinator(f"127.0.0.1:{free_port()}", 0)


def test_coordinator_auto_reads_jax_coordinator_address_first_as_jax_does(monkeypatch):
    for name, value in {**SLURM_0, "SLURM_STEP_NODELIST": "no-such-host.invalid"}.items():
        monkeypatch.setenv(name, value)
    assert distributed._detect_cluster(10) == ("no-such-host.invalid:61447", 2, 0)  # 61440 + job 7
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:4567")
    assert distributed._detect_cluster(10) == ("127.0.0.1:4567", 2, 0)


def test_process_counts_read_from_the_cluster_are_checked_like_given_ones():
    out = _fpml_train(["--coordinator", "auto"], {**SLURM_0, "SLURM_NTASKS": "0"})
    assert out.returncode == 2, out.stderr
    assert out.stderr == (
        "fpml: error: coordinator 127.0.0.1:61447 (:coordinator :auto) needs a process count and a process id in "
        "0..count-1, got count 0 and id 0\n"
    )


def test_multi_process_flags_come_together():
    out = subprocess.run(
        [sys.executable, "-m", "fpml", "train", "fraud", "data=:synthetic", "--coordinator", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    expected = 'override \'coordinator="127.0.0.1:1"\': :coordinator "127.0.0.1:1" needs :num-processes too'
    assert out.stderr == f"fpml: error: {expected}\n"  # --coordinator is the override that set it


def test_two_processes_each_read_and_prepare_only_their_part(tmp_path):
    """Each process reads its own byte range of the CSV; statistics are merged, held-out rows gathered."""
    csv = tmp_path / "data.csv"
    synthetic.generate(seed=5, rows=4_000, frauds=80).to_csv(csv, index=False)
    port, script = str(free_port()), SCRIPT.with_name("check_sharded_prep.py")
    _run_two([[sys.executable, str(script), str(p), port, str(csv), str(tmp_path / f"{p}.npz")] for p in (0, 1)])
    first, second = (np.load(tmp_path / f"{p}.npz") for p in (0, 1))
    assert "2 processes, each reading its own part" in str(first["source"])
    for key in ("test_x", "test_y", "validation_x", "mean", "std", "augmented_test_x"):
        assert np.array_equal(first[key], second[key]), key  # gathered / merged: the same on both
    assert len(first["test_x"]) == 800 and len(first["validation_x"]) == 300
    # the standardizer is fitted on both processes' training rows together
    mean, std = first["mean"], first["std"]
    raw_train = np.concatenate([p["train_x"].astype(np.float64) * std + mean for p in (first, second)])
    reference = transforms.fit_standardizer(transforms.moments(raw_train))
    np.testing.assert_allclose(mean, reference.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, reference.std, rtol=1e-5)
    # training, validation and test rows are the file's rows, each once
    whole = fraud.load_data(config.load("fraud", [f"data={csv}"]))[0].x
    held = np.concatenate([first["train_x"], second["train_x"], first["test_x"], first["validation_x"]])
    np.testing.assert_allclose(np.sort(held.astype(np.float64) * std + mean, axis=0), np.sort(whole, axis=0), atol=2e-4)
    # augmentation over both: the positives reach half of all training rows, each process copying its own
    counts = first["augmented_counts"] + second["augmented_counts"]
    assert counts[1] == counts[0] and min(first["augmented_counts"][1], second["augmented_counts"][1]) > 0


def _fail_two(args):
    """Start ``fpml train fraud ARGS`` as two processes that must both fail, within seconds, with status 2;
    their stderr."""
    flags = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id"]
    commands = [[sys.executable, "-m", "fpml", "train", "fraud", *args, "--quiet", *flags, str(p)] for p in (0, 1)]
    return [err for _, err in _run_two(commands, status=2, timeout=120)]


def test_bad_data_in_one_process_s_part_stops_every_process_with_its_error(tmp_path):
    """Process 1 alone meets the bad cell; process 0 must not wait for it forever in a collective."""
    frame = synthetic.generate(seed=5, rows=4_000, frauds=80).astype(str)
    frame.loc[3_500, "V7"] = "oops"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    errors = _fail_two([f"data={tmp_path / 'bad.csv'}", "steps-per-call=10"])
    where = r"bad.csv: column V7, data row 3501 \(line 3502 of the file\): value 'oops' is not a finite number"
    assert re.fullmatch(rf"fpml: error: process 1 of 2: .*{where}\n", errors[0]), errors[0]
    assert re.fullmatch(rf"fpml: error: .*{where}\n", errors[1]), errors[1]


def test_a_run_folder_process_0_cannot_create_stops_every_process(tmp_path):
    (tmp_path / "a-file").write_text("")
    errors = _fail_two([*SMALL, f"run-dir={tmp_path / 'a-file' / 'runs'}"])
    cannot = r":run-dir .*a-file/runs: cannot create the run folder .* \(Not a directory\)\n"
    assert re.fullmatch(rf"fpml: error: {cannot}", errors[0]), errors[0]
    assert re.fullmatch(rf"fpml: error: process 0 of 2: {cannot}", errors[1]), errors[1]


def test_process_slices_are_contiguous_cover_every_row_and_differ_by_at_most_one():
    assert [distributed.process_slice(11, p, 3) for p in range(3)] == [slice(0, 3), slice(3, 7), slice(7, 11)]
    for n in range(30):
        for count in range(1, 7):
            parts = [distributed.process_slice(n, p, count) for p in range(count)]
            assert parts[0].start == 0 and parts[-1].stop == n
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
            sizes = [part.stop - part.start for part in parts]
            assert max(sizes) - min(sizes) <= 1


def test_each_process_draws_with_its_own_key():
    key = jax.random.key(3)
    data = lambda k: jax.random.key_data(k).tolist()  # noqa: E731
    assert data(distributed.process_key(key, 0, 2)) != data(distributed.process_key(key, 1, 2))
    assert data(distributed.process_key(key, 1, 2)) == data(jax.random.fold_in(key, 1))
    assert distributed.process_key(key, 0, 1) is key  # one process draws what it always drew


def test_all_rows_gathers_processes_of_different_row_counts(monkeypatch):
    """A second process holding 1 row against this one's 3, faked: its zero padding must not be gathered."""
    other = np.array([[7.0, 8.0]])

    def allgather(x):
        if x.dtype == np.uint32:  # the row counts, int64 viewed as uint32
            return np.stack([x, np.array([len(other)], np.int64).view(np.uint32)])
        theirs = np.zeros_like(x)
        theirs[: len(other)] = other.view(np.uint8).reshape(len(other), -1)
        return np.stack([x, theirs])

    monkeypatch.setattr(distributed.jax, "process_count", lambda: 2)
    monkeypatch.setattr(distributed.multihost_utils, "process_allgather", allgather)
    mine = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(distributed.all_rows(mine), np.r_[mine, other])
