"""Wire the actors into a running graph and drive it to the end.

    source (1 per stream) ──refs──▶ dispatcher ──batches──▶ inference pool (replicas)
                                        │
                                        └──results──▶ tracker (1 per stream) ──▶ sinks (1 per stream)

The driver only sends small messages (configs, metadata, statistics): frames go from each
source into the object store once and are read zero-copy by the inference and sink actors.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import ray
from rich.console import Console
from rich.markup import escape

from actors.dispatcher import Dispatcher
from actors.inference import InferenceWorker
from actors.sink import SinkWorker
from actors.source import SourceWorker
from actors.tracker import TrackerWorker
from pipeline.config import PipelineConfig, StreamConfig
from pipeline.errors import DecodeError, InferenceError, SinkError
from pipeline.messages import StreamEnd, StreamInfo
from pipeline.progress import ProgressDisplay, summary_table
from pipeline.stats import StreamSummary, cost_per_frame_ms

# Seconds between two polls of the actors' statistics: often enough for a live progress bar.
_POLL_S = 0.5
# Seconds to wait for the model to load on every replica (a first COCO download can take minutes).
_READY_TIMEOUT_S = 600.0


@dataclass
class RunReport:
    summaries: list[StreamSummary]
    stopped_by_signal: bool = False
    batching: dict[str, Any] = field(default_factory=dict)
    # Milliseconds per published frame spent in each stage, summed over all actors (see stage_costs).
    cost_ms: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 only when every stream ended cleanly (or was stopped on request and drained); else 1."""
        if any(s.error is not None for s in self.summaries):
            return 1
        return 0


@dataclass
class _Stream:
    config: StreamConfig
    source: Any
    tracker: Any
    sink: Any
    info: StreamInfo | None = None
    run_ref: Any = None
    end: StreamEnd | None = None
    error: str | None = None
    source_stats: dict[str, Any] = field(default_factory=dict)
    sink_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return bool(self.sink_stats.get("ended"))


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


class PipelineRunner:
    def __init__(self, config: PipelineConfig, *, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console(stderr=True)
        self.streams: dict[str, _Stream] = {}
        self.replicas: list[Any] = []
        self.dispatcher: Any = None
        self._stop_requested = threading.Event()
        self._signals = 0
        self._started_s = time.monotonic()

    # ---- public -------------------------------------------------------------------------------
    def run(self) -> RunReport:
        started_ray = connect_ray(self.config)
        previous = self._install_signal_handlers()
        try:
            self._start_pool()
            self._start_streams()
            self._started_s = time.monotonic()
            with ProgressDisplay(self.console, enabled=self.config.run.progress,
                                 status_interval_s=self.config.run.status_interval_s) as progress:
                for stream in self.streams.values():
                    if stream.info is not None:
                        progress.add_stream(stream.config.id, stream.info.total_frames)
                self._drive(progress)
            report = self._report()
        finally:
            self._restore_signal_handlers(previous)
            self._teardown()
            if started_ray:
                ray.shutdown()
        self.console.print(summary_table(report.summaries))
        if report.batching.get("batches"):
            b = report.batching
            self.console.print(
                f"batches: {b['batches']}, mean size {b['mean_batch_size']:.2f}, "
                f"{b['cross_stream_batches']} with frames of several streams, {b['failed_batches']} failed",
                highlight=False,
            )
        if report.cost_ms:
            self.console.print(format_costs(report.cost_ms, report.wall_s, sum(s.published for s in report.summaries)),
                               highlight=False, soft_wrap=True)
        for summary in report.summaries:
            if summary.error is not None:
                self.console.print(f"[red]error:[/red] {escape(summary.error)}", highlight=False, soft_wrap=True)
        return report

    def request_stop(self) -> None:
        """Stop the sources; frames in flight are finished, videos closed, end messages sent."""
        if self._stop_requested.is_set():
            return
        self._stop_requested.set()
        for stream in self.streams.values():
            if stream.run_ref is not None:
                stream.source.stop.remote()

    # ---- start ----------------------------------------------------------------------------------
    def _start_pool(self) -> None:
        inference = self.config.inference
        worker = ray.remote(InferenceWorker).options(
            num_gpus=inference.num_gpus,
            num_cpus=inference.num_cpus,
            # A replica that crashes (out of memory, lost node) is restarted and its batch retried once.
            max_restarts=3,
            max_task_retries=1,
        )
        threads = max(1, int(inference.num_cpus)) if inference.num_gpus == 0 else None
        self.replicas = [worker.remote(self.config.model, num_threads=threads) for _ in range(inference.replicas)]
        ready = ray.get([r.ready.remote() for r in self.replicas], timeout=_READY_TIMEOUT_S)
        errors = sorted({r["error"] for r in ready if "error" in r})
        if errors:
            raise InferenceError("; ".join(errors))
        first = ready[0]
        self.console.print(
            f"inference pool: {len(self.replicas)} x {first['arch']} on {first['device']} ({first['weights']}, {first['classes']} classes)",
            highlight=False,
        )
        self.dispatcher = ray.remote(Dispatcher).options(num_cpus=0).remote(
            self.replicas, inference, self.config.backpressure
        )

    def _start_streams(self) -> None:
        max_pending = self.config.backpressure.max_in_flight_per_stream + self.config.inference.max_batch_size
        for stream_cfg in self.config.streams:
            sink = ray.remote(SinkWorker).options(num_cpus=0).remote(stream_cfg.id, self.config.sinks)
            tracker = ray.remote(TrackerWorker).options(num_cpus=0).remote(
                stream_cfg.id, self.config.tracking, sink, max_pending=max_pending
            )
            # Threaded: run() blocks for the whole stream while stop() and stats() still answer.
            source = ray.remote(SourceWorker).options(num_cpus=0, max_concurrency=4).remote(
                stream_cfg, self.dispatcher, self.config.backpressure, self.config.inference.transfer_format
            )
            self.streams[stream_cfg.id] = _Stream(config=stream_cfg, source=source, tracker=tracker, sink=sink)
        sink_ready = ray.get([s.sink.ready.remote() for s in self.streams.values()])
        errors = sorted({r["error"] for r in sink_ready if "error" in r})
        if errors:
            raise SinkError("; ".join(errors))
        ray.get([self.dispatcher.register_stream.remote(s.config.id, s.tracker) for s in self.streams.values()])
        opened = [(s, s.source.open.remote()) for s in self.streams.values()]
        for stream, ref in opened:
            try:
                stream.info = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), DecodeError) else None
                stream.error = str(cause) if cause is not None else f"stream {stream.config.id!r}: {exc}"
                self.console.print(f"[red]error:[/red] {escape(stream.error)}", highlight=False, soft_wrap=True)
                end = StreamEnd(stream_id=stream.config.id, frames=0, error=stream.error)
                stream.end = end
                ray.get(stream.sink.end.remote(end))
                continue
            ray.get(stream.sink.start.remote(stream.info))
        for stream in self.streams.values():
            if stream.info is not None:
                stream.run_ref = stream.source.run.remote()
        if self._stop_requested.is_set():
            self.request_stop()

    # ---- drive --------------------------------------------------------------------------------
    def _drive(self, progress: ProgressDisplay) -> None:
        drain_deadline: float | None = None
        while True:
            self._poll()
            progress.update(self._progress_rows())
            if all(s.done for s in self.streams.values()):
                return
            sources_done = all(s.run_ref is None or s.end is not None for s in self.streams.values())
            if sources_done and drain_deadline is None:
                drain_deadline = time.monotonic() + self.config.run.drain_timeout_s
            if drain_deadline is not None and time.monotonic() > drain_deadline:
                self._abandon_undrained()
                return
            time.sleep(_POLL_S)

    def _poll(self) -> None:
        live = [s for s in self.streams.values() if not s.done]
        sink_refs = [s.sink.stats.remote() for s in live]
        source_refs = [s.source.stats.remote() for s in live if s.run_ref is not None]
        for stream, stats in zip(live, ray.get(sink_refs), strict=True):
            stream.sink_stats = stats
        for stream, stats in zip([s for s in live if s.run_ref is not None], ray.get(source_refs), strict=True):
            stream.source_stats = stats
        for stream in live:
            if stream.run_ref is None or stream.end is not None:
                continue
            finished, _ = ray.wait([stream.run_ref], timeout=0)
            if not finished:
                continue
            try:
                stream.end = ray.get(stream.run_ref)
            except ray.exceptions.RayError as exc:
                stream.error = f"stream {stream.config.id!r}: the source actor failed: {exc}"
                submitted = int(stream.source_stats.get("submitted", 0))
                stream.end = StreamEnd(stream_id=stream.config.id, frames=submitted, error=stream.error)
                ray.get(stream.tracker.finish.remote(stream.end))

    def _abandon_undrained(self) -> None:
        for stream in self.streams.values():
            if stream.done:
                continue
            published = int(stream.sink_stats.get("published", 0))
            submitted = stream.end.frames if stream.end is not None else published
            stream.error = (
                f"stream {stream.config.id!r}: {submitted - published} frames still in flight after "
                f"run.drain_timeout_s={self.config.run.drain_timeout_s}; the outputs were closed without them"
            )
            end = StreamEnd(stream_id=stream.config.id, frames=published, error=stream.error)
            ray.get(stream.sink.end.remote(end))
            stream.sink_stats = ray.get(stream.sink.stats.remote())

    def _progress_rows(self) -> dict[str, dict[str, Any]]:
        rows = {}
        for sid, s in self.streams.items():
            rows[sid] = {
                "published": s.sink_stats.get("published", 0),
                "fps": s.sink_stats.get("fps", 0.0),
                "latency_p50_ms": s.sink_stats.get("latency_p50_ms"),
                "latency_p99_ms": s.sink_stats.get("latency_p99_ms"),
                "decoded": s.source_stats.get("decoded", 0),
                "dropped": s.source_stats.get("dropped", 0),
            }
        return rows

    # ---- end ----------------------------------------------------------------------------------
    def _report(self) -> RunReport:
        summaries = []
        for stream in self.streams.values():
            sink = stream.sink_stats
            end = stream.end
            errors = [e for e in (stream.error, end.error if end else None, sink.get("end_error")) if e]
            errors += [f"{name} sink: {msg}" for name, msg in sink.get("sink_errors", {}).items()]
            if sink.get("failed_frames"):
                errors.append(f"{sink['failed_frames']} frames failed inference")
            summaries.append(
                StreamSummary(
                    stream_id=stream.config.id,
                    decoded=end.decoded if end else int(stream.source_stats.get("decoded", 0)),
                    processed=int(sink.get("published", 0)) - int(sink.get("failed_frames", 0)),
                    dropped=end.dropped if end else int(stream.source_stats.get("dropped", 0)),
                    published=int(sink.get("published", 0)),
                    failed_frames=int(sink.get("failed_frames", 0)),
                    fps=float(sink.get("fps", 0.0)),
                    latency_p50_ms=sink.get("latency_p50_ms"),
                    latency_p99_ms=sink.get("latency_p99_ms"),
                    error="; ".join(dict.fromkeys(errors)) or None,
                )
            )
        batching = ray.get(self.dispatcher.stats.remote()) if self.dispatcher is not None else {}
        published = sum(s.published for s in summaries)
        return RunReport(summaries=summaries, stopped_by_signal=self._stop_requested.is_set(), batching=batching,
                         cost_ms=cost_per_frame_ms(self._stage_seconds(), published),
                         wall_s=time.monotonic() - self._started_s)

    def _stage_seconds(self) -> dict[str, float]:
        """Seconds per stage over the run: decode and put (sources), get and model (inference),
        track (trackers), fetch and one entry per sink (sinks)."""
        refs = [r.stats.remote() for r in self.replicas]
        refs += [h.stats.remote() for s in self.streams.values() for h in (s.source, s.tracker, s.sink)]
        totals: dict[str, float] = {}
        for stats in ray.get(refs):
            for stage, seconds in stats.get("seconds", {}).items():
                totals[stage] = totals.get(stage, 0.0) + seconds
        return totals

    def _teardown(self) -> None:
        handles = [h for s in self.streams.values() for h in (s.source, s.tracker, s.sink)]
        handles += self.replicas + ([self.dispatcher] if self.dispatcher is not None else [])
        for stream in self.streams.values():
            if not stream.done:
                try:
                    ray.get(stream.sink.close.remote(), timeout=30)
                except ray.exceptions.RayError:
                    pass
        for handle in handles:
            ray.kill(handle)

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
