"""What a person sees while training: a live rich display on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fpml.train import EpochRecord, json_value


def output_console() -> Console:
    """Rich output for stdout: fitted to a terminal; elsewhere (a log, a pipe) lines are never wrapped or cut."""
    return Console() if sys.stdout.isatty() else Console(width=1_000, soft_wrap=True)


def json_line(record: dict) -> str:
    """One JSON object and a newline (numpy scalars converted; NaN as null, :func:`fpml.train.json_value`)."""
    return json.dumps({k: json_value(v) for k, v in record.items()}, allow_nan=False) + "\n"


def epoch_line(record: EpochRecord, epoch_count: int, samples: int) -> str:
    """One readable line for an epoch: loss, test P/R/F, AUPRC, speed, and a star when it is the best."""
    m = record.metrics
    speed = samples / record.seconds if record.seconds else 0.0
    return (
        f"epoch {record.epoch + 1:>3}/{epoch_count}  loss {record.loss:.4f}  "
        f"P {m['precision']:.3f}  R {m['recall']:.3f}  F{m['beta']:g} {m['f-beta']:.3f}  "
        f"AUPRC {m['auprc']:.3f}  {record.seconds:.2f} s  {speed:,.0f} samples/s" + ("  *best" if record.best else "")
    )


@contextmanager
def epoch_display(
    epoch_count: int,
    samples_per_epoch: int,
    *,
    quiet: bool = False,
    plain: bool | None = None,
    console: Console | None = None,
    done: int = 0,
) -> Iterator[Callable[[EpochRecord], None]]:
    """Yield an ``on_epoch`` callback: a live bar on a terminal, plain lines when stdout is not one.

    ``quiet`` prints nothing per epoch.
    """
    console = console or output_console()
    plain = (not sys.stdout.isatty()) if plain is None else plain
    if quiet:
        yield lambda record: None
        return
    if plain:
        yield lambda record: print(epoch_line(record, epoch_count, samples_per_epoch), flush=True)
        return
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("epochs", total=epoch_count, completed=done, status="compiling the epoch...")

        def on_epoch(record: EpochRecord) -> None:
            bar.console.print(
                epoch_line(record, epoch_count, samples_per_epoch),
                style="green" if record.best else None,
                highlight=False,
            )
            bar.update(task, advance=1, status=f"loss {record.loss:.4f}  F {record.metrics['f-beta']:.3f}")

        yield on_epoch


def summary_table(title: str, rows: dict[str, str]) -> Table:
    """A two-column table for end-of-run summaries."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, value)
    return table
