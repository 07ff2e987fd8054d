"""Two processes on 127.0.0.1 (2 CPU devices each) train together through jax.distributed: both end with the
same parameters, equal to a single-device run on the same global batches."""

import json
import socket
import subprocess
import sys
from pathlib import Path

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
