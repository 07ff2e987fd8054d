"""Shared test fixtures. Scripts under tests/multidevice/ run in their own processes (they set XLA_FLAGS
before JAX starts); pytest must not import them."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jax
import pytest
import toolz

from fpml.data import synthetic, transforms

collect_ignore_glob = ["multidevice/*"]


def standardized_split(seed: int, rows: int, frauds: int, test_rows: int):
    """Synthetic fraud data -> drop Time -> one-hot -> stratified split -> standardized: ``(train, test)``."""
    frame = synthetic.generate(seed=seed, rows=rows, frauds=frauds)
    data = toolz.pipe(frame, transforms.drop_columns(["Time"]), transforms.to_dataset("Class"))
    train_part, test_part = transforms.split(jax.random.key(0), test_rows, data)
    scale = transforms.standardize(transforms.fit_standardizer(train_part))
    return scale(train_part), scale(test_part)


@pytest.fixture(scope="session")
def small_split():
    """The factory :func:`standardized_split`, for module-scoped fixtures of small training runs."""
    return standardized_split


ROOT = Path(__file__).resolve().parents[1]


class Fpml:
    """``fpml ARGS`` in ``cwd``, each command in its own process forked from one that has imported fpml
    (``fork_server.py``): as ``python -m fpml`` runs it, without ~2 s of imports per command."""

    def __init__(self) -> None:
        server = [sys.executable, str(Path(__file__).with_name("fork_server.py"))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.server = subprocess.Popen(
            server, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __call__(self, *args: str, cwd: str | Path = ROOT) -> subprocess.CompletedProcess:
        self.server.stdin.write(json.dumps({"argv": list(args), "cwd": str(cwd)}) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:  # the server itself died: say so, rather than fail to parse an empty reply
            raise RuntimeError(f"the fpml fork server exited with status {self.server.wait(timeout=10)}")
        reply = json.loads(line)
        return subprocess.CompletedProcess(["fpml", *args], reply["status"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


@pytest.fixture(scope="session")
def fpml() -> Iterator[Fpml]:
    """Runs ``fpml ARGS`` (in ``cwd``, the repository root by default) as :class:`Fpml` does."""
    runner = Fpml()
    yield runner
    runner.close()
