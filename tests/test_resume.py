"""Nothing is lost: resume is bit-identical to an uninterrupted run; Ctrl-C stops cleanly and says how to go on."""

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from fpml import checkpoint, edn, losses, network, optim, train
from fpml.data import stream
from fpml.errors import CheckpointError, TrainingInterrupted
from fpml.files import uninterrupted

ROOT = Path(__file__).resolve().parents[1]
NET = edn.loads("""[{:type :input :size 29} {:type :linear->relu :size 8} {:type :dropout :keep 0.8}
                    {:type :linear :size 2} {:type :softmax}]""")


@pytest.fixture(scope="module")
def parts(small_split):
    return small_split(seed=4, rows=3_000, frauds=60, test_rows=800)


def train_for(parts, epochs, run_dir=None, previous=None, **options):
    train_part, test_part = parts
    net = network.build(NET)
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    return train.train_n(
        net,
        opt,
        losses.resolve_loss("auto", net),
        train_part,
        stream.class_balanced(train_part.labels),
        train.classification_test_fn(net, test_part),
        key=jax.random.key(3),
        epoch_count=epochs,
        epoch_size=1_000,
        batch_size=50,
        run_dir=run_dir,
        previous=previous,
        **options,
    )


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_two_plus_two_epochs_resumed_from_disk_equal_four_straight(parts, tmp_path):
    straight = train_for(parts, 4)
    train_for(parts, 2, run_dir=tmp_path)
    net = network.build(NET)
    previous = train.resume_from(tmp_path, net, optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}")))
    assert len(previous.history) == 2
    resumed = train_for(parts, 4, run_dir=tmp_path, previous=previous)
    assert same(jax.device_get(resumed.state.params), jax.device_get(straight.state.params))
    assert same(jax.device_get(resumed.state.opt_state), jax.device_get(straight.state.opt_state))
    assert same(resumed.params, straight.params)
    assert [r.metrics for r in resumed.history] == [r.metrics for r in straight.history]
    assert resumed.best.epoch == straight.best.epoch
    assert [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert checkpoint.load(tmp_path / "last.npz").epoch == 3


def test_a_hard_stop_between_an_epochs_writes_still_resumes_exactly(parts, tmp_path):
    """Killed (no Ctrl-C grace) after epoch 1's log, or after its last.npz but before its best.npz."""
    straight = train_for(parts, 3)
    assert straight.history[1].best  # epoch 1 improves, so it writes best.npz too
    files = ("log.jsonl", "last.npz", "best.npz")
    after = {}
    for epochs in (1, 2):
        train_for(parts, epochs, run_dir=tmp_path / "run", previous=None if epochs == 1 else resumed_state(tmp_path))
        after[epochs] = {f: (tmp_path / "run" / f).read_bytes() for f in files}
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    for landed in (1, 2):  # epoch 1's first `landed` files, in the order _save_epoch writes them
        run = tmp_path / f"stopped-{landed}"
        run.mkdir()
        for i, f in enumerate(files):
            (run / f).write_bytes(after[2 if i < landed else 1][f])
        previous = train.resume_from(run, network.build(NET), opt)
        assert previous.best.epoch == landed - 1  # with last.npz of epoch 1 landed, epoch 1 is the best
        resumed = train_for(parts, 3, run_dir=run, previous=previous)
        assert same(jax.device_get(resumed.state.params), jax.device_get(straight.state.params)), landed
        assert same(resumed.params, straight.params) and resumed.best.epoch == straight.best.epoch, landed


def resumed_state(tmp_path):
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    return train.resume_from(tmp_path / "run", network.build(NET), opt)


def test_a_best_checkpoint_that_disagrees_with_the_log_is_a_clear_error(parts, tmp_path):
    train_for(parts, 3, run_dir=tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    for entry in log:
        entry["best"] = entry["epoch"] == 1  # the log now says the first epoch is the best; best.npz is a later one
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    with pytest.raises(CheckpointError, match="best.npz is epoch [23], but log.jsonl's best epoch is 1"):
        train.resume_from(tmp_path, network.build(NET), opt)


def test_a_log_written_before_epochs_counted_from_1_still_resumes(parts, tmp_path):
    straight = train_for(parts, 3)
    train_for(parts, 2, run_dir=tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    old = [{**entry, "epoch": entry["epoch"] - 1} for entry in log]  # as fpml wrote it before: 0, 1
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in old))
    opt = optim.optimizer(edn.loads("{:name :adam :learning-rate 0.01}"))
    previous = train.resume_from(tmp_path, network.build(NET), opt)
    assert [r.epoch for r in previous.history] == [0, 1]
    resumed = train_for(parts, 3, previous=previous)
    assert same(jax.device_get(resumed.state.params), jax.device_get(straight.state.params))


def test_continuing_in_memory_equals_straight(parts):
    """Also twice from the same result: train_n donates its own copy of the state, never the caller's."""
    straight, first = train_for(parts, 3), train_for(parts, 1)
    for _ in range(2):
        continued = train_for(parts, 3, previous=first)
        assert same(jax.device_get(continued.state.params), jax.device_get(straight.state.params))


def test_ctrl_c_stops_cleanly_and_resume_finishes(tmp_path, fpml):
    small = [
        "data=:synthetic",
        "synthetic={:rows 6000 :frauds 60 :seed 2}",
        "test-size=1500",
        "epoch-size=20000",
        "batch-size=50",
        f"run-dir={tmp_path}",
        "threshold=0.5",
        "augment=nil",
    ]
    # as from a terminal: SIGINT not ignored, even where this test runs as a shell's background job
    terminal = "import signal, runpy, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    terminal += "sys.argv[0] = 'fpml'; runpy.run_module('fpml', run_name='__main__')"
    proc = subprocess.Popen(
        [sys.executable, "-c", terminal, "train", "fraud", *small, "epoch-count=100000", "--plain"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        logs = list(tmp_path.glob("*/log.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    (run,) = tmp_path.iterdir()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    assert "training interrupted during epoch" in err and f"fpml resume {run}" in err
    done = train.read_log(run / "log.jsonl")
    assert len(done) >= 2 and [r.epoch for r in done] == list(range(len(done)))
    best = checkpoint.load(run / "best.npz")
    assert best.epoch == max((r for r in done if r.best), key=lambda r: r.epoch).epoch
    hardware = ["devices=1", "cpu-cores=1", "--device", "cpu"]  # where it runs may change, not what it trains
    resumed = fpml("resume", str(run), f"epoch-count={len(done) + 2}", *hardware, "--plain")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {len(done)}" in resumed.stdout
    assert len(train.read_log(run / "log.jsonl")) == len(done) + 2
    assert {"training.png", "precision-recall.png", "confusion.png", "inference.json"} <= {
        p.name for p in run.iterdir()
    }


def test_ctrl_c_during_an_epochs_callback_waits_for_it(parts, tmp_path):
    """on_epoch writes files of its own (the pipeline's inference.json): Ctrl-C must not cut it short."""
    written = []

    def on_epoch(record):
        signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came while the callback writes its file
        written.append(record.epoch)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted):
            train_for(parts, 3, run_dir=tmp_path, on_epoch=on_epoch)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert written == [0] and len(train.read_log(tmp_path / "log.jsonl")) == 1


def _interrupt_inside(handler) -> bool:
    """Whether SIGINT raised inside ``uninterrupted()`` (with ``handler`` installed) ends in KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        with uninterrupted():
            signal.raise_signal(signal.SIGINT)
            held_until_the_end = True
        return False
    except KeyboardInterrupt:
        return held_until_the_end
    finally:
        signal.signal(signal.SIGINT, previous)


def test_uninterrupted_delivers_a_held_ctrl_c_as_it_would_have_been():
    assert _interrupt_inside(signal.default_int_handler) is True
    assert _interrupt_inside(signal.SIG_IGN) is False  # a background job's ignored SIGINT stays ignored


def test_an_interrupted_run_without_a_folder_continues_from_the_errors_result(parts):
    """No run folder: the error's ``.result`` holds the run up to its last finished epoch, and continuing
    from it with ``previous=`` is bit-identical to an uninterrupted run."""
    straight = train_for(parts, 3)

    def stop_after_second(record):
        if record.epoch == 1:
            signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as err:
            train_for(parts, 3, on_epoch=stop_after_second)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert re.search(r"epoch 2; the best network so far \(epoch \d\) is kept in this error's \.result$", str(err.value))
    so_far = err.value.result
    assert len(so_far.history) == 2
    continued = train_for(parts, 3, previous=so_far)
    assert same(jax.device_get(continued.state.params), jax.device_get(straight.state.params))
    assert same(continued.params, straight.params) and continued.best.epoch == straight.best.epoch
