"""What the driver shows while it runs: a bar per finite stream, status lines for live streams, a summary."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.stats import StreamSummary


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class ProgressDisplay:
    """Bars for finite streams when the output is a terminal; plain status lines otherwise and for live streams."""

    def __init__(self, console: Console, *, enabled: bool, status_interval_s: float) -> None:
        self.console = console
        self.bars = enabled and console.is_terminal
        self.status_interval_s = status_interval_s
        self._next_status = time.monotonic() + status_interval_s
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.1f} fps  p50 {task.fields[p50]} ms"),
            TimeElapsedColumn(),
            console=console,
            disable=not self.bars,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "ProgressDisplay":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def add_stream(self, stream_id: str, total: int | None) -> None:
        if total is not None:
            self._tasks[stream_id] = self._progress.add_task(stream_id, total=total, fps=0.0, p50="-")

    def update(self, rows: dict[str, dict[str, Any]]) -> None:
        """``rows``: per stream, at least published, fps, latency_p50_ms, decoded, dropped."""
        for stream_id, row in rows.items():
            task = self._tasks.get(stream_id)
            if task is not None:
                self._progress.update(task, completed=row["published"], fps=row["fps"], p50=_ms(row["latency_p50_ms"]))
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + self.status_interval_s
        for stream_id, row in rows.items():
            if self.bars and stream_id in self._tasks:
                continue
            self.console.print(
                f"{stream_id}: {row['published']} frames  {row['fps']:.1f} fps  latency p50 {_ms(row['latency_p50_ms'])} ms"
                f"  p99 {_ms(row['latency_p99_ms'])} ms  dropped {row['dropped']}"
                f"  restarts {row.get('restarts', 0)}  reconnects {row.get('reconnects', 0)}",
                highlight=False,
                markup=False,
            )


def summary_table(summaries: Sequence[StreamSummary]) -> Table:
    table = Table(title="maskstream run summary")
    columns = ("stream", "decoded", "processed", "dropped", "published", "failed", "fps", "p50 ms", "p99 ms",
               "restarts", "reconnects", "stalls", "undelivered", "status")
    for column in columns:
        table.add_column(column, justify="left" if column in ("stream", "status") else "right")
    for s in summaries:
        table.add_row(
            s.stream_id,
            str(s.decoded),
            str(s.processed),
            str(s.dropped),
            str(s.published),
            str(s.failed_frames),
            f"{s.fps:.1f}",
            _ms(s.latency_p50_ms),
            _ms(s.latency_p99_ms),
            str(s.restarts),
            str(s.reconnects),
            str(s.stalls),
            str(s.undelivered),
            "ok" if s.error is None else "[red]failed[/red]",
        )
    return table
