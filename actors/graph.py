"""The driver: start Ray, let the supervisor run the actor graph, show progress, print the summary.

The supervisor (``actors.supervisor``) starts, wires, watches and drains the actors; this module
only drives it and displays what it reports. The driver never dies with a traceback: a fault of
an actor ends at worst that actor's streams, with their end messages and summary rows written.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Callable
from types import FrameType
from typing import Any

import ray
from rich.console import Console
from rich.markup import escape

from actors.supervisor import StreamState, Supervisor
from pipeline.config import PipelineConfig
from pipeline.progress import ProgressDisplay, summary_table
from pipeline.stats import DispatcherStats, RestartRecord, StreamSummary, cost_per_frame_ms

# Seconds between two polls of the actors' statistics: often enough for a live progress bar.
_POLL_S = 0.5


@dataclass
class RunReport:
    summaries: list[StreamSummary]
    stopped_by_signal: bool = False
    batching: DispatcherStats | None = None
    restarts: list[RestartRecord] = field(default_factory=list)
    # Milliseconds per published frame spent in each stage, summed over all actors (see stage_seconds).
    cost_ms: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 only when every stream ended cleanly (or was stopped on request and drained); else 1."""
        if any(s.error is not None for s in self.summaries):
            return 1
        return 0


def connect_ray(config: PipelineConfig) -> bool:
    """Start a local Ray or join a cluster; returns True when this call started Ray (and so must stop it)."""
    if ray.is_initialized():
        return False
    if config.ray.address is None:
        # address="local": always a new local instance, never an unrelated cluster found on this machine.
        ray.init(address="local", num_cpus=config.ray.num_cpus, namespace=config.ray.namespace, include_dashboard=False,
                 configure_logging=False, log_to_driver=True)
    else:
        import actors
        import pipeline

        # Ship this package's code to the cluster so that workers run the same version as the driver.
        # Folder paths, not module objects: Ray Client and Ray Jobs cannot pickle or copy modules.
        folders = [os.path.dirname(pipeline.__file__), os.path.dirname(actors.__file__)]
        ray.init(address=config.ray.address, namespace=config.ray.namespace, runtime_env={"py_modules": folders})
    return True


PIPELINE_STAGES = ("put", "get", "track", "fetch", "redis", "jsonl")


def format_costs(cost_ms: dict[str, float], wall_s: float, frames: int) -> str:
    """One line: wall time per frame, then per-frame milliseconds of decoding, the model, the pipeline's own
    stages (object store put/get, tracking, Redis, JSON Lines), and the annotated video."""
    pipeline_ms = sum(cost_ms.get(s, 0.0) for s in PIPELINE_STAGES)
    parts = ", ".join(f"{s} {cost_ms[s]:.2f}" for s in PIPELINE_STAGES if s in cost_ms)
    wall = f"wall {1000 * wall_s / frames:.1f} ms/frame ({frames / wall_s:.1f} frames/s); " if frames and wall_s else ""
    return (
        f"cost per frame: {wall}decode {cost_ms.get('decode', 0.0):.2f} ms, model {cost_ms.get('model', 0.0):.2f} ms, "
        f"pipeline {pipeline_ms:.2f} ms ({parts}), video {cost_ms.get('video', 0.0):.2f} ms"
    )


@dataclass
class RunHooks:
    """Callbacks around the streaming part of a run, for benchmarks that time it: ``started`` once every actor
    is up and the sources were told to go; ``drained`` when the streams ended, before any actor is stopped."""

    started: Callable[[], None] = lambda: None
    drained: Callable[[], None] = lambda: None


class PipelineRunner:
    def __init__(self, config: PipelineConfig, *, console: Console | None = None, hooks: RunHooks | None = None) -> None:
        self.config = config
        self.console = console or Console(stderr=True)
        self.hooks = hooks or RunHooks()
        self.supervisor = Supervisor(config, on_event=self._event)
        self._stop_requested = threading.Event()
        self._signals = 0
        self._started_s = time.monotonic()

    # ---- public -------------------------------------------------------------------------------
    def run(self) -> RunReport:
        started_ray = connect_ray(self.config)
        previous = self._install_signal_handlers()
        try:
            self.supervisor.start()
            self._print_pool()
            if self._stop_requested.is_set():
                self.supervisor.request_stop()
            self._started_s = time.monotonic()
            self.hooks.started()
            with ProgressDisplay(self.console, enabled=self.config.run.progress,
                                 status_interval_s=self.config.run.status_interval_s) as progress:
                self._drive(progress)
            report = self._report()
            self.hooks.drained()
        finally:
            self._restore_signal_handlers(previous)
            self.supervisor.teardown()
            if started_ray:
                ray.shutdown()
        self._print_report(report)
        return report

    def request_stop(self) -> None:
        """Stop the sources; frames in flight are finished, videos closed, end messages sent."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        self.supervisor.request_stop()

    # ---- drive --------------------------------------------------------------------------------
    def _drive(self, progress: ProgressDisplay) -> None:
        drain_deadline: float | None = None
        shown: set[str] = set()
        while True:
            self.supervisor.poll()
            for sid, stream in self.supervisor.streams.items():
                info = stream.source_stats.info if stream.source_stats else None
                if info is not None and sid not in shown:
                    progress.add_stream(sid, info.total_frames)
                    shown.add(sid)
            progress.update(self._progress_rows())
            if self.supervisor.all_done:
                return
            draining = all(s.done or (s.source_stats is not None and s.source_stats.draining)
                           for s in self.supervisor.streams.values())
            if (draining or self._stop_requested.is_set()) and drain_deadline is None:
                drain_deadline = time.monotonic() + self.config.run.drain_timeout_s
            if drain_deadline is not None and time.monotonic() > drain_deadline:
                self.supervisor.abandon_undrained(self.config.run.drain_timeout_s)
                return
            time.sleep(_POLL_S)

    def _progress_rows(self) -> dict[str, dict[str, Any]]:
        rows = {}
        for sid, s in self.supervisor.streams.items():
            out, src = s.output_stats, s.source_stats
            rows[sid] = {
                "published": out.published if out else 0,
                "fps": out.fps if out else 0.0,
                "latency_p50_ms": out.latency_p50_ms if out else None,
                "latency_p99_ms": out.latency_p99_ms if out else None,
                "decoded": src.decoded if src else 0,
                "dropped": src.dropped if src else 0,
                "restarts": len(s.restarts),
                "reconnects": (out.statuses.get("recovered", 0) if out else 0),
            }
        return rows

    def _event(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.console.print(f"[yellow]{stamp} {escape(line)}[/yellow]", highlight=False, soft_wrap=True)

    # ---- end ----------------------------------------------------------------------------------
    def _report(self) -> RunReport:
        summaries = [self._summary(s) for s in self.supervisor.streams.values()]
        published = sum(s.published for s in summaries)
        return RunReport(summaries=summaries, stopped_by_signal=self._stop_requested.is_set(),
                         batching=self.supervisor.dispatcher_stats, restarts=list(self.supervisor.restarts),
                         cost_ms=cost_per_frame_ms(self.supervisor.stage_seconds(), published),
                         wall_s=time.monotonic() - self._started_s)

    @staticmethod
    def _summary(stream: StreamState) -> StreamSummary:
        out, src = stream.output_stats, stream.source_stats
        errors = [e for e in (stream.error, out.end_error if out else None, src.error if src else None) if e]
        if out is not None:
            errors += [f"{name} sink: {msg}" for name, msg in out.sink_errors.items()]
            if out.failed_frames:
                errors.append(f"{out.failed_frames} frames failed inference")
        statuses = out.statuses if out else {}
        return StreamSummary(
            stream_id=stream.config.id,
            decoded=src.decoded if src else 0,
            processed=(out.published - out.failed_frames) if out else 0,
            dropped=src.dropped if src else 0,
            published=out.published if out else 0,
            failed_frames=out.failed_frames if out else 0,
            fps=out.fps if out else 0.0,
            latency_p50_ms=out.latency_p50_ms if out else None,
            latency_p99_ms=out.latency_p99_ms if out else None,
            error="; ".join(dict.fromkeys(errors)) or None,
            restarts=len(stream.restarts),
            reconnects=statuses.get("recovered", 0),
            stalls=statuses.get("stalled", 0),
            undelivered=sum(int(v.get("undelivered", 0)) for v in (out.sinks.values() if out else [])
                            if isinstance(v, dict)),
        )

    def _print_pool(self) -> None:
        kinds = Counter(info.describe() for info in self.supervisor.replica_infos)
        for description, count in kinds.items():
            self.console.print(f"inference pool: {count} x {description}", highlight=False, soft_wrap=True)

    def _print_report(self, report: RunReport) -> None:
        self.console.print(summary_table(report.summaries))
        b = report.batching
        if b is not None and b.batches:
            self.console.print(
                f"batches: {b.batches}, mean size {b.mean_batch_size:.2f}, {b.cross_stream_batches} with frames of "
                f"several streams, {b.failed_batches} failed, {b.retried_batches} run again after a replica died",
                highlight=False,
            )
        for r in report.restarts:
            where = f" (stream {r.stream_id})" if r.stream_id else ""
            self.console.print(
                f"restart: {r.actor}{where} at {time.strftime('%H:%M:%S', time.localtime(r.at))}, pid {r.old_pid} -> "
                f"{r.new_pid}, down {r.downtime_s:.1f} s, frames lost {r.lost}", highlight=False)
        if report.cost_ms:
            self.console.print(format_costs(report.cost_ms, report.wall_s, sum(s.published for s in report.summaries)),
                               highlight=False, soft_wrap=True)
        for summary in report.summaries:
            if summary.error is not None:
                self.console.print(f"[red]error:[/red] {escape(summary.error)}", highlight=False, soft_wrap=True)

    # ---- signals ------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            raise KeyboardInterrupt  # a second Ctrl-C: stop waiting for the drain
        self.console.print(f"{signal.Signals(signum).name}: stopping the sources, finishing the frames in flight…")
        self.request_stop()
