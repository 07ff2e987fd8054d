"""Two processes on 127.0.0.1 (2 CPU devices each) train together through jax.distributed: both end with the
same parameters, equal to a single-device run on the same global batches."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve().parent / "multidevice" / "check_multihost.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_as_one(tmp_path):
    port = str(free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(p), port, str(tmp_path / f"{p}.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in (0, 1)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    first, second = (json.loads((tmp_path / f"{p}.json").read_text()) for p in (0, 1))
    assert first["processes"] == 2 and first["devices"] == 4
    assert first["local_rows"] + second["local_rows"] == 2_400  # each process kept only its shard
    assert first["params"] == second["params"]
    assert first["max_diff_vs_single"] < 1e-5


def test_two_processes_from_the_command_line(tmp_path):
    port = str(free_port())
    small = [
        "data=:synthetic",
        "synthetic={:rows 6000 :frauds 60 :seed 2}",
        "test-size=1500",
        "epoch-size=2000",
        "batch-size=40",
        "epoch-count=2",
        "augment=nil",
        "threshold=0.5",
        "steps-per-call=10",
        f"run-dir={tmp_path}",
    ]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fpml",
                "train",
                "fraud",
                *small,
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(p),
                "--quiet",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (0, 1)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    (run,) = tmp_path.iterdir()  # one run folder, written by process 0 only
    # gloo (C++) announces its connections on stdout; fpml's own output is the last line
    last_lines = [out.strip().splitlines()[-1] if out.strip() else "" for out, _ in outputs]
    assert last_lines[0] == str(run / "best.npz") and "best.npz" not in outputs[1][0]
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    assert {"best.npz", "last.npz", "inference.json", "training.png"} <= {p.name for p in run.iterdir()}


def test_multi_process_flags_come_together():
    out = subprocess.run(
        [sys.executable, "-m", "fpml", "train", "fraud", "data=:synthetic", "--coordinator", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "needs all of --coordinator, --num-processes, --process-id" in out.stderr
