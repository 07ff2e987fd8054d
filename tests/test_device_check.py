"""bench/device_check.py, the one script a session lent an accelerator runs there, works (here on 2 CPU devices)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_device_check_reports_speed_and_agreement():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "device_check.py"), "--quick"],
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    report = out.stdout
    assert "- backend cpu: cpu:0, cpu:1" in report and "no accelerator" in report
    for batch in (100, 1000):
        assert re.search(rf"^\| {batch} \| [\d,]+ \| [\d,]+ \| [\d.]+ \|$", report, re.M), report
    assert re.search(r"inference on all 284,807 rows: [\d.]+ ms", report), report
    same_device = [float(d) for d in re.findall(r"matmul precision \w+: largest parameter difference (\S+)", report)]
    assert same_device == [0.0, 0.0], report  # the CPU against itself: bit for bit
    mesh = [float(d) for d in re.findall(r"on all 2 devices \(data-parallel mesh\) vs on one: (\S+)", report)]
    assert len(mesh) == 2 and all(d < 1e-6 for d in mesh), report
    assert re.search(r"compilation included: [\d.]+ s wall-clock", report), report
