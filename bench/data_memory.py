"""Host memory of the fraud data prep: the whole table in memory vs the CSV read in chunks into memory-mapped
files (``:chunk-rows``). Each setting runs ``pipelines.fraud.prepare`` in its own process, which samples its
anonymous memory (``RssAnon`` in /proc/self/status: what the process itself must hold; pages of mapped
files are not in it, the kernel can drop and re-read them) every 20 ms and reports the peak.

    .venv/bin/python bench/data_memory.py                 # fraud on the real file (284,807 rows)
    .venv/bin/python bench/data_memory.py --rows 3000000  # a synthetic CSV of that many rows, written once
                                                          # to data/synthetic-3000000.csv (1.7 GB) and kept
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")


def child(overrides: list[str]) -> None:
    """Prepare the data once, sampling anonymous memory; print the figures as JSON."""
    import threading
    import time

    from fpml import config
    from pipelines import fraud

    cfg = config.load("fraud", overrides)
    before, peak, done = _anon_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _anon_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    data = fraud.prepare(cfg, quiet=True)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    parts = [d for d in (data.train, data.validation, data.test) if d is not None]
    print(
        json.dumps(
            {
                "before": before,
                "peak": max(peak[0], _anon_mb()),
                "after": _anon_mb(),
                "seconds": seconds,
                "data_mb": sum(d.x.nbytes + d.y.nbytes for d in parts) / 2**20,
                "rows": sum(len(d) for d in parts),
            }
        )
    )


def write_csv(path: Path, rows: int, piece: int = 250_000) -> None:
    """A synthetic fraud CSV of ``rows`` rows, written piece by piece (each piece its own seed)."""
    from fpml.data import synthetic
    from fpml.files import atomic_write

    with atomic_write(path, "w") as handle:
        for i, start in enumerate(range(0, rows, piece)):
            n = min(piece, rows - start)
            frame = synthetic.generate(seed=i, rows=n, frauds=max(2, n * 492 // 284_807))
            frame.to_csv(handle, index=False, header=i == 0)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rows",
        type=int,
        help="a synthetic CSV of this many rows instead of the real file: written once to data/synthetic-ROWS.csv "
        "(about 570 bytes a row) and kept there for later runs",
    )
    args = parser.parse_args(argv)
    data, what = [], "the real Kaggle file (configs/fraud.edn)"
    if args.rows is not None:
        rows = args.rows
        path = ROOT / "data" / f"synthetic-{rows}.csv"
        if not path.is_file():
            print(f"writing {path} ({rows:,} rows)...", flush=True)
            write_csv(path, rows)
        data, what = [f"data={path}"], f"{path.name} (synthetic, {rows:,} rows; configs/fraud.edn)"
    settings = {"whole table in memory": [], "chunk-rows=50000": ["chunk-rows=50000", "steps-per-call=200"]}
    table = Table(title=f"fraud data prep of {what}: anonymous memory, MB")
    for column in ("setting", "prepared rows", "prepared arrays", "before", "peak", "after", "seconds"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for name, extra in settings.items():
        out = subprocess.run(
            [sys.executable, __file__, "--child", *data, *extra], cwd=ROOT, capture_output=True, text=True
        )
        if out.returncode:
            table.add_row(name, f"failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        table.add_row(
            name,
            f"{r['rows']:,}",
            f"{r['data_mb']:,.0f}",
            f"{r['before']:,.0f}",
            f"{r['peak']:,.0f}",
            f"{r['after']:,.0f}",
            f"{r['seconds']:.1f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
