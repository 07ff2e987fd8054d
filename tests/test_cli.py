"""The fpml command end to end, on small synthetic data: a run folder, clean one-line errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from fpml import checkpoint, config
from fpml.data import synthetic

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "data=:synthetic",
    "synthetic={:rows 6000 :frauds 60 :seed 2}",
    "test-size=1500",
    "epoch-count=2",
    "epoch-size=2000",
    "batch-size=50",
]


def test_train_writes_a_run_folder(tmp_path, fpml):
    out = fpml("train", "fraud", *SMALL, f"run-dir={tmp_path}", "--plain")
    assert out.returncode == 0, out.stderr
    assert "epoch   1/2" in out.stdout and "epoch   2/2" in out.stdout
    assert "synthetic data" in out.stdout
    assert "backend cpu: training on" in out.stdout  # which backend and devices, said at start
    (run,) = tmp_path.iterdir()
    assert {"best.npz", "last.npz", "log.jsonl", "config.edn", "data.txt"} <= {p.name for p in run.iterdir()}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(0.0 <= e["recall"] <= 1.0 for e in log)
    saved_cfg = config.from_text((run / "config.edn").read_text())
    assert saved_cfg["epoch-count"] == 2 and saved_cfg["test-size"] == 1500
    assert checkpoint.load(run / "best.npz").description == saved_cfg["network"]


def test_quiet_prints_only_the_saved_path(tmp_path, fpml):
    out = fpml("train", "fraud", *SMALL, "epoch-count=1", f"run-dir={tmp_path}", "--quiet")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("best.npz") and len(out.stdout.strip().splitlines()) == 1


def test_a_second_run_reuses_the_compilation_cache(tmp_path):
    """The second run loads every program the first one cached (which ones: those that took over
    :compile-cache's threshold to compile, so it varies with the machine's load) and trains the same."""
    cache, logs, hits = tmp_path / "cache", [], []
    for n in (1, 2):
        out = subprocess.run(
            [sys.executable, "-m", "fpml", "train", "fraud", *SMALL, f"run-dir={tmp_path / str(n)}"]
            + [f"compile-cache={cache}", "--quiet"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
            env={**os.environ, "JAX_LOG_COMPILES": "1"},  # JAX then logs each cache hit as a warning
        )
        assert out.returncode == 0, out.stderr
        if n == 1:
            cached = {p.name.removesuffix("-cache") for p in cache.iterdir()}
            assert any(name.startswith("jit_epoch-") for name in cached), "the epoch program was not cached"
        hits.append(set(re.findall(r"Persistent compilation cache hit for '\w+' with key '([^']+)'", out.stderr)))
        (run,) = (tmp_path / str(n)).iterdir()
        logs.append([json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()])
    assert hits[0] == set() and hits[1] == cached
    assert logs[0] == logs[1]


def test_a_run_on_relative_paths_is_usable_from_any_folder(tmp_path, fpml):
    work = tmp_path / "work"
    work.mkdir()
    synthetic.generate(seed=2, rows=6000, frauds=60).to_csv(work / "data.csv", index=False)
    small = [o for o in SMALL if not o.startswith(("data=", "synthetic="))]
    out = fpml("train", str(ROOT / "configs/fraud.edn"), "data=data.csv", *small, "run-dir=runs", "--quiet", cwd=work)
    assert out.returncode == 0, out.stderr
    (run,) = (work / "runs").iterdir()
    saved = config.from_text((run / "config.edn").read_text())
    assert saved["data"] == str(work / "data.csv") and saved["data-dir"] == str(work / "data")
    evaluated = fpml("evaluate", str(run), cwd=tmp_path)  # from another folder: the run's own test split
    assert evaluated.returncode == 0, evaluated.stderr
    assert "the run's test set" in evaluated.stdout and "F1 " in evaluated.stdout  # beta 1 names its F


def test_describe_prints_the_layer_table(fpml):
    out = fpml("describe", "fraud")
    assert out.returncode == 0
    assert "linear-1" in out.stdout and "832" in out.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "nosuchconfig"], "unknown config 'nosuchconfig'"),
        (["train", "fraudd"], "did you mean 'fraud'"),
        (["train", "fraud", "epoch-cout=3"], "did you mean 'epoch-count'"),
        (["train", "fraud", "epoch-count=[1"], "EDN syntax error"),
        (["train", "fraud", "epoch-count=-1"], ":epoch-count must be a positive integer, got -1"),
        (["train", "fraud", "optimizer.name=:adamm"], "unknown"),
        (["train", "fraud", "network.1.size=0"], ":size must be a positive integer, got 0"),
        (["train", "fraud", "data=/no/such/file.csv"], "/no/such/file.csv does not exist"),
        (["train", "fraud", "join-timeout=0"], ":join-timeout must be a number > 0, got 0"),
        (["train", "fraud", "join-timeout=1e10"], ":join-timeout must be at most 604800"),
    ],
)
def test_bad_input_is_one_clean_line(args, needle, tmp_path, fpml):
    out = fpml(*args, f"run-dir={tmp_path}") if args[0] == "train" and len(args) > 2 else fpml(*args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "wheels, needle",
    [
        (False, "a GPU was asked for but JAX's CUDA wheels are not installed: run make setup-gpu"),
        (True, "a GPU was asked for but JAX cannot use one ("),
    ],
)
def test_a_gpu_that_cannot_be_used_is_one_clean_line_not_a_fallback(wheels, needle, tmp_path):
    argv = ["train", "fraud", *SMALL, f"run-dir={tmp_path}", "--device", "gpu"]
    code = (
        "from fpml import cli, runtime\n"
        f"runtime._gpu_plugin_installed = lambda: {wheels}\n"
        f"raise SystemExit(cli.main({argv!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # no usable GPU, even where one is
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"fpml: error: {needle}"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not any(tmp_path.iterdir())  # nothing trained on the CPU instead


def test_overrides_may_follow_options(tmp_path, fpml):
    out = fpml("train", "fraud", "--quiet", *SMALL, "epoch-count=1", f"run-dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert len(train_log(out.stdout)) == 1
    bad = fpml("train", "fraud", "--quiet", "--bogus")
    assert bad.returncode == 2 and "unrecognized arguments: --bogus" in bad.stderr
    assert bad.stderr.startswith("usage: fpml train ")  # the usage of the command typed, not the top level


def train_log(stdout: str) -> list[str]:
    return (Path(stdout.strip()).parent / "log.jsonl").read_text().splitlines()


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """``fpml describe fraud | head -n 0``: no BrokenPipeError traceback, the shell's status for SIGPIPE."""
    child = subprocess.Popen(
        [sys.executable, "-m", "fpml", "describe", "fraud"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    child.stdout.close()  # long before the layer table is printed (the child is still importing)
    assert child.wait(timeout=120) == 141
    assert child.stderr.read() == b""


def test_an_unusable_compile_cache_is_one_warning_and_training_goes_on(tmp_path, monkeypatch, capsys):
    from fpml import runtime

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    (tmp_path / "a-file").write_text("")
    before = jax.config.jax_compilation_cache_dir
    runtime.use_compilation_cache(str(tmp_path / "a-file"))
    assert capsys.readouterr().err == (
        f"fpml: warning: :compile-cache {tmp_path / 'a-file'} cannot be used (it is a file, not a folder); "
        "compiling without it\n"
    )
    assert jax.config.jax_compilation_cache_dir == before
