"""The supervisor: start and wire the actors, watch them, report restarts, fail what cannot recover, drain.

    source (1 per stream) ──frames──▶ dispatcher ──batches──▶ inference pool (replicas)
        ▲                                  │
        └──────────── acks ─── output (1 per stream: reorder, track, publish) ◀──results──┘

Every actor is started with ``max_restarts`` (``supervision.max_restarts``): Ray restarts a
process that died, and the actors recover by themselves (sources resend what is not yet
published, outputs resume from their checkpoint, the dispatcher re-runs a batch whose replica
died). The supervisor only watches: it notices a restart (the actor answers from another
process), tells the streams concerned with a ``restarted`` status event and keeps a
:class:`~pipeline.stats.RestartRecord`; when an actor is dead for good (restarts exhausted), it
ends the streams that depended on it with an error naming the actor and the cause, and the
others go on. Every call it makes is guarded: the driver never dies with a traceback.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.dispatcher import Dispatcher
from actors.inference import InferenceWorker
from actors.names import RunNames, kv_del
from actors.output import OutputWorker
from actors.source import SourceWorker
from pipeline.config import PipelineConfig, StreamConfig
from pipeline.errors import InferenceError, SinkError
from pipeline.messages import StreamStatus
from pipeline.sinks.factory import sinks_need_frames
from pipeline.stats import DispatcherStats, OutputStats, ReplicaInfo, RestartRecord, SourceStats

log = logging.getLogger(__name__)

# Seconds to wait for the model to load on every replica (a first COCO download can take minutes).
_READY_TIMEOUT_S = 600.0
# Seconds a statistics call may take before the actor counts as unresponsive for this poll.
_STATS_TIMEOUT_S = 2.0
# Seconds to wait for an output to answer at start or write an end message.
_CALL_TIMEOUT_S = 30.0


@dataclass
class Watched:
    """One actor under watch."""

    kind: str  # "source", "output", "dispatcher", "inference[i]"
    stream_id: str | None  # None for the shared actors
    handle: Any
    pid: int | None = None
    down_since: float | None = None
    down_pid: int | None = None
    dead: str | None = None  # why it is gone for good

    @property
    def label(self) -> str:
        return f"{self.kind} of stream {self.stream_id!r}" if self.stream_id else self.kind


@dataclass
class StreamState:
    config: StreamConfig
    source: Watched
    output: Watched
    source_stats: SourceStats | None = None
    output_stats: OutputStats | None = None
    error: str | None = None  # set by the supervisor when the stream failed for good
    aborted: bool = False
    restarts: list[RestartRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.aborted or (self.output_stats is not None and self.output_stats.ended)


class Supervisor:
    def __init__(self, config: PipelineConfig, *, on_event: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.names = RunNames(uuid.uuid4().hex[:10])
        self.on_event = on_event or (lambda line: None)
        self.streams: dict[str, StreamState] = {}
        self.replicas: list[Watched] = []
        self.dispatcher: Watched | None = None
        self.dispatcher_stats: DispatcherStats | None = None
        self.restarts: list[RestartRecord] = []
        self.replica_infos: list[ReplicaInfo] = []

    # ---- start -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the pool, the dispatcher and every stream; raises ``InferenceError``/``SinkError`` if one cannot start.

        The sources all wait for one go, so that the streams start together (and share batches)."""
        self._start_pool()
        outputs = {stream.id: self._start_output(stream) for stream in self.config.streams}
        errors = ray.get([o.ready.remote() for o in outputs.values()], timeout=_CALL_TIMEOUT_S)
        if any(errors):
            raise SinkError("; ".join(sorted({e for e in errors if e})))
        for stream in self.config.streams:
            self._start_source(stream, outputs[stream.id])
        ray.get([s.source.handle.go.remote() for s in self.streams.values()], timeout=_CALL_TIMEOUT_S)

    def _options(self, **extra: Any) -> dict[str, Any]:
        return {"max_restarts": self.config.supervision.max_restarts, "max_task_retries": 0, **extra}

    def _start_pool(self) -> None:
        inference = self.config.inference
        worker = ray.remote(InferenceWorker)
        threads = max(1, int(inference.num_cpus)) if inference.num_gpus == 0 else None
        handles = [
            worker.options(**self._options(num_gpus=inference.num_gpus, num_cpus=inference.num_cpus,
                                           name=self.names.inference(i))).remote(self.config.model, num_threads=threads)
            for i in range(inference.replicas)
        ]
        self.replicas = [Watched(f"inference[{i}]", None, h) for i, h in enumerate(handles)]
        ready = ray.get([h.ready.remote() for h in handles], timeout=_READY_TIMEOUT_S)
        errors = sorted({r.error for r in ready if r.error is not None})
        if errors:
            raise InferenceError("; ".join(errors))
        self.replica_infos = ready
        # Every frame in flight is one submit call running in the dispatcher (it returns once the frame's result
        # is handed on): room for every stream's whole window twice (a resend after a restart), and Ray's default.
        in_flight = len(self.config.streams) * self.config.backpressure.max_in_flight_per_stream
        dispatcher = ray.remote(Dispatcher).options(**self._options(
            num_cpus=0, name=self.names.dispatcher(), max_concurrency=max(1000, 2 * in_flight + 100),
        )).remote(inference, self.config.supervision, names=self.names,
                  deliver_frames=sinks_need_frames(self.config.sinks))
        self.dispatcher = Watched("dispatcher", None, dispatcher)

    def _start_output(self, stream: StreamConfig) -> Any:
        return ray.remote(OutputWorker).options(**self._options(num_cpus=0, name=self.names.output(stream.id))).remote(
            stream.id, self.config.sinks, self.config.tracking,
            max_pending=self.config.backpressure.max_in_flight_per_stream, names=self.names,
        )

    def _start_source(self, stream: StreamConfig, output: Any) -> None:
        # Threaded: the stream runs in the actor's own threads while ack(), stop() and stats() answer.
        source = ray.remote(SourceWorker).options(
            **self._options(num_cpus=0, max_concurrency=4, name=self.names.source(stream.id))
        ).remote(stream, self.config.backpressure, self.config.supervision, names=self.names,
                 transfer_format=self.config.inference.transfer_format)
        self.streams[stream.id] = StreamState(stream, Watched("source", stream.id, source),
                                              Watched("output", stream.id, output))

    # ---- watch -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Read every actor's statistics once; notice restarts and deaths and act on them."""
        watched = self._all_watched()
        refs = {id(w): w.handle.stats.options(enable_task_events=False).remote() for w in watched if w.dead is None}
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=_STATS_TIMEOUT_S)
        now = time.time()
        for w in watched:
            ref = refs.get(id(w))
            if ref is None:
                continue
            try:
                stats = ray.get(ref, timeout=0)
            except ray.exceptions.GetTimeoutError:
                ray.cancel(ref)
                self._unavailable(w, now, None)
                continue
            except ray.exceptions.RayError as exc:
                self._unavailable(w, now, exc)
                continue
            self._answered(w, stats, now)

    def _all_watched(self) -> list[Watched]:
        """The actors still worth watching: the shared ones and those of streams not yet done."""
        return self._everything(include_done=False)

    def _answered(self, w: Watched, stats: Any, now: float) -> None:
        pid = stats.pid
        if w.pid is not None and pid != w.pid:
            self._restarted(w, old_pid=w.pid, new_pid=pid, now=now)
        w.pid, w.down_since, w.down_pid = pid, None, None
        if isinstance(stats, SourceStats) and w.stream_id in self.streams:
            self.streams[w.stream_id].source_stats = stats
        elif isinstance(stats, OutputStats) and w.stream_id in self.streams:
            self.streams[w.stream_id].output_stats = stats
        elif isinstance(stats, DispatcherStats):
            self.dispatcher_stats = stats

    def _unavailable(self, w: Watched, now: float, exc: BaseException | None) -> None:
        if w.down_since is None:
            w.down_since, w.down_pid = now, w.pid
            self.on_event(f"{w.label}: not answering ({type(exc).__name__ if exc else 'timeout'}); waiting for Ray to restart it")
        if isinstance(exc, ray.exceptions.ActorDiedError) or self._is_dead(w):
            cause = str(exc).splitlines()[0] if exc is not None else "its process died and no restart is left"
            w.dead = (f"{w.label} died and cannot be restarted (supervision.max_restarts="
                      f"{self.config.supervision.max_restarts} spent): {cause}")
            self.on_event(w.dead)
            self._gone_for_good(w)

    @staticmethod
    def _is_dead(w: Watched) -> bool:
        try:
            import ray._private.state

            # The GCS actor table (ray.util.state would need the dashboard, which local runs do not start).
            state = ray._private.state.actors(w.handle._actor_id.hex())
        except Exception:  # noqa: BLE001 - the actor table is advisory here; a failed query means "unknown"
            return False
        return bool(state) and state.get("State") == "DEAD"

    def _restarted(self, w: Watched, *, old_pid: int, new_pid: int, now: float) -> None:
        detected = w.down_since if w.down_since is not None else now
        stream = self.streams.get(w.stream_id) if w.stream_id else None
        lost = 0
        if stream is not None and w.kind == "source" and stream.source_stats is not None and self._is_live(stream):
            lost = stream.source_stats.unacked  # a live stream cannot send those frames again
        record = RestartRecord(actor=w.kind, stream_id=w.stream_id, at=detected, old_pid=old_pid, new_pid=new_pid,
                               downtime_s=max(0.0, now - detected), lost=lost)
        self.restarts.append(record)
        self.on_event(
            f"{w.label} restarted: pid {old_pid} -> {new_pid}, back {record.downtime_s:.1f} s after it stopped "
            f"answering; {'frames lost: ' + str(lost) if lost else 'unpublished frames are sent again'}"
        )
        if w.kind == "source":
            self._call(w, lambda h: h.go.remote())  # a source that died before its first attach waits for it
        if stream is not None:
            # A stream's own actors say so in the stream themselves, in order with its frames.
            stream.restarts.append(record)
            return
        for s in self.streams.values():
            s.restarts.append(record)
            event = StreamStatus(stream_id=s.config.id, state="restarted", at=detected, actor=w.kind,
                                 reason=f"process {old_pid} died; restarted as {new_pid}",
                                 lost=0, downtime_s=record.downtime_s)
            self._call(s.output, lambda h, e=event: h.status.remote(e))

    def _gone_for_good(self, w: Watched) -> None:
        if w.stream_id is not None:
            self._fail_stream(self.streams[w.stream_id], w.dead or f"{w.label} died")
        elif w.kind == "dispatcher" or all(r.dead for r in self.replicas):
            for stream in self.streams.values():
                self._fail_stream(stream, w.dead or f"{w.label} died")

    def _fail_stream(self, stream: StreamState, error: str) -> None:
        if stream.done:
            return
        stream.error = error
        self._call(stream.source, lambda h: h.stop.remote())
        info = stream.source_stats.info if stream.source_stats else None
        decoded = stream.source_stats.decoded if stream.source_stats else 0
        dropped = stream.source_stats.dropped if stream.source_stats else 0
        output = stream.output
        if output.dead is not None:
            # Write the end message from a fresh output that resumes the dead one's checkpoint.
            replacement = ray.remote(OutputWorker).options(num_cpus=0, max_restarts=0).remote(
                stream.config.id, self.config.sinks, self.config.tracking,
                max_pending=self.config.backpressure.max_in_flight_per_stream, names=self.names,
            )
            output = Watched("output", stream.config.id, replacement)
        failure = StreamStatus(stream_id=stream.config.id, state="failed", at=time.time(), reason=error)
        self._call(output, lambda h: h.status.remote(failure))
        self._call(output, lambda h: h.abort.remote(error, decoded, dropped, info))
        stream.aborted = True
        try:
            stream.output_stats = ray.get(output.handle.stats.remote(), timeout=_CALL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            pass

    def _is_live(self, stream: StreamState) -> bool:
        info = stream.source_stats.info if stream.source_stats else None
        return bool(stream.config.loop or stream.config.realtime or (info is not None and info.live))

    @staticmethod
    def _call(w: Watched, call: Callable[[Any], Any]) -> Any:
        try:
            return ray.get(call(w.handle), timeout=_CALL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            log.warning("%s: call failed: %s", w.label, type(exc).__name__)
            return None

    # ---- control -----------------------------------------------------------------------------
    def request_stop(self) -> None:
        for stream in self.streams.values():
            if not stream.done:
                try:
                    stream.source.handle.stop.remote()
                except ray.exceptions.RayError:
                    pass

    @property
    def all_done(self) -> bool:
        return all(s.done for s in self.streams.values())

    def abandon_undrained(self, drain_timeout_s: float) -> None:
        for stream in self.streams.values():
            if stream.done:
                continue
            published = stream.output_stats.published if stream.output_stats else 0
            self._fail_stream(stream, f"stream {stream.config.id!r}: frames still in flight after "
                                      f"run.drain_timeout_s={drain_timeout_s} (published {published}); "
                                      "the outputs were closed without them")

    def teardown(self) -> None:
        handles = [w.handle for w in self._everything()]
        for stream in self.streams.values():
            if not stream.done:
                self._call(stream.output, lambda h: h.close.remote())
        for handle in handles:
            try:
                ray.kill(handle, no_restart=True)
            except (ray.exceptions.RayError, ValueError):
                pass
        for stream_id in self.streams:
            try:
                kv_del(self.names.checkpoint_key(stream_id))
            except Exception:  # noqa: BLE001 - cleanup of a key in a GCS that may be gone must not fail the run
                pass

    def _everything(self, *, include_done: bool = True) -> list[Watched]:
        out = list(self.replicas) + ([self.dispatcher] if self.dispatcher else [])
        for s in self.streams.values():
            if include_done or not s.done:
                out += [s.source, s.output]
        return out

    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage over the run, summed over every actor that still answers."""
        refs = [w.handle.stats.remote() for w in self._everything() if w.dead is None and w.kind != "dispatcher"]
        totals: dict[str, float] = {}
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=_CALL_TIMEOUT_S)
        for ref in ready:
            try:
                stats = ray.get(ref)
            except ray.exceptions.RayError:
                continue
            for stage, seconds in getattr(stats, "seconds", {}).items():
                totals[stage] = totals.get(stage, 0.0) + seconds
        return totals
