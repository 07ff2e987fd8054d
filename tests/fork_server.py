"""Runs ``fpml`` commands for the bad-input table, each in a fresh child process forked from this one.

This process imports fpml once (Python, JAX, pandas and rich take ~2 s to import, which ~90 commands would
pay again each); every command then runs ``fpml.cli.main`` in its own forked child, where JAX's backend
starts as in ``python -m fpml``. Nothing here starts JAX's backend, so the children start clean.

Protocol: one JSON request per line on stdin, ``{"argv": [...], "cwd": "..."}``; one JSON reply per line
on stdout, ``{"status": int, "stdout": str, "stderr": str}`` (status -N: killed by signal N).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback

import fpml.cli
import pipelines.fraud  # noqa: F401  (the commands' heavy imports, done once)

TIMEOUT_S = 300


def _child(argv: list[str], cwd: str, out: int, err: int) -> None:
    """Run the command as ``python -m fpml`` would, then leave without running the parent's clean-up."""
    status = 1
    try:
        os.chdir(cwd)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.argv = ["fpml", *argv]
        status = fpml.cli.main(argv)
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:  # as the interpreter would: the traceback on stderr, status 1
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status or 0)


def run(argv: list[str], cwd: str) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(argv, cwd, out.fileno(), err.fileno())
        deadline = time.monotonic() + TIMEOUT_S
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                done = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return {
            "status": os.waitstatus_to_exitcode(done[1]),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.write(json.dumps(run(request["argv"], request["cwd"])) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
