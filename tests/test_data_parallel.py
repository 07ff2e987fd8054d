"""Data parallelism on JAX's own engine: 8 CPU devices (a separate process) train like 1 device."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fpml import train
from fpml.errors import ConfigError

HERE = Path(__file__).resolve().parent


def test_eight_devices_match_one_and_compile_once():
    out = subprocess.run(
        [sys.executable, str(HERE / "multidevice" / "check_data_parallel.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8
    assert result["caches"] == {"1": 1, "8": 1}
    # the chunked epoch compiles each of its programs once (the chunk, the stream's indices), in epoch 0
    assert "jit(chunk)" in result["chunked_compiles"], result["chunked_compiles"]
    assert len(set(result["chunked_compiles"])) == len(result["chunked_compiles"]), result["chunked_compiles"]
    assert result["chunked_compiles_after_epoch_0"] == []
    assert result["max_diff"] < 1e-6 * max(1.0, result["scale"]), result  # observed: 1.2e-7
    assert result["chunked_max_diff"] < 1e-6 * max(1.0, result["scale"]), result
    assert ":batch-size 84 is not divisible by the 8 devices" in result["batch_error"]


def test_mesh_errors_are_clear():
    with pytest.raises(ConfigError, match="xla_force_host_platform_device_count=64"):
        train.data_mesh(64)
    assert train.data_mesh(1).size == 1
