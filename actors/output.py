"""One output actor per stream: reorder, track and publish (``pipeline.output.StreamOutput``), checkpointed.

A background thread writes the output's checkpoint to Ray's GCS key-value store after frames were
published (at most every ``_CHECKPOINT_INTERVAL_S``, the newest state each time) and then acknowledges
to the stream's source the frames that checkpoint covers: a frame leaves the source's replay window
only once a saved checkpoint says it is out. When the process dies, Ray restarts it: the new
incarnation finds the checkpoint, resumes its sinks (a sink already past it skips what it has) and
hands out track ids above every id already published (ids are reserved in blocks, saved before use).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import ray

from actors.frame_refs import fetch_frames
from actors.names import HandleCache, RunNames, kv_get, kv_put
from pipeline.config import SinksConfig, TrackingConfig
from pipeline.errors import SinkError
from pipeline.messages import FrameResult, StreamEnd, StreamInfo, StreamStatus
from pipeline.output import Attached, Delivered, OutputCheckpoint, StreamOutput
from pipeline.sinks.factory import build_sinks
from pipeline.stats import OutputStats
from pipeline.tracking.from_config import tracker_from_config

log = logging.getLogger(__name__)

# Acknowledgements sent and not yet confirmed: past this many, wait for the oldest (bounds memory).
_MAX_ACKS_IN_FLIGHT = 64
# The shortest time between two checkpoints of published frames: one GCS write and one acknowledgement for
# every frame published in it instead of for every delivery. It delays only the source's release of frames
# (its window holds max_in_flight_per_stream): 10 ms costs nothing below 100 windows a second.
_CHECKPOINT_INTERVAL_S = 0.01
# After a failed save (the GCS unreachable while it restarts), wait this long before the next try.
_CHECKPOINT_RETRY_S = 0.5


@dataclass(frozen=True)
class Probe:
    """What a source asks when it has waited for acknowledgements: did the output restart, where is it?"""

    incarnation: str
    next_seq: int
    ended: bool


class OutputWorker:
    def __init__(self, stream_id: str, sinks: SinksConfig, tracking: TrackingConfig, *, max_pending: int,
                 names: RunNames) -> None:
        self.stream_id = stream_id
        self.names = names
        self.incarnation = uuid.uuid4().hex[:12]
        self.handles = HandleCache()
        self.init_error: str | None = None
        saved = kv_get(names.checkpoint_key(stream_id))
        checkpoint = OutputCheckpoint.from_bytes(saved) if saved is not None else None
        try:
            built = build_sinks(stream_id, sinks)
        except SinkError as exc:
            built = {}
            self.init_error = str(exc)
        tracker = tracker_from_config(tracking) if tracking.enabled else None
        self._save_lock = threading.Lock()  # one save at a time, each of the newest state: saves never go back
        self._saved_next_seq = 0 if checkpoint is None else checkpoint.next_seq
        self.output = StreamOutput(stream_id, built, tracker, max_pending=max_pending, checkpoint=checkpoint,
                                   on_reserve=lambda _state: self._save())
        if checkpoint is not None and not checkpoint.ended:
            # This process replaces one that died: say so in the stream, in order (before the next frame).
            self.output.status(StreamStatus(
                stream_id=stream_id, state="restarted", at=time.time(), seq=checkpoint.next_seq, actor="output",
                reason=f"the output's process died; restarted as pid {os.getpid()}",
                downtime_s=max(0.0, time.time() - checkpoint.saved_at)))
        self._acks: list[Any] = []
        if checkpoint is None:
            self._save()
        self._published = threading.Event()  # frames were published since the last checkpoint
        self._closed = threading.Event()
        threading.Thread(target=self._checkpoint_loop, name=f"checkpoint-{stream_id}", daemon=True).start()

    def ready(self) -> str | None:
        """``None``, or why the sinks could not be set up."""
        return self.init_error

    def attach(self, info: StreamInfo) -> tuple[Attached, str]:
        attached = self.output.attach(info)
        self._save()
        return attached, self.incarnation

    def push(self, results: list[FrameResult], frame_refs: list[Any] | None = None) -> int:
        """Results of one batch for this stream (any order, maybe repeats), with the frames' references when a
        sink draws on the pixels; returns frames published."""
        needs_image = any(s.needs_image for n, s in self.output.sinks.items() if n not in self.output.sink_errors)
        delivered = [Delivered(result) for result in results]
        if needs_image and frame_refs is not None:
            with self.output.clock.stage("fetch"):
                delivered = self._with_images(results, frame_refs)
        published = self.output.push(delivered)
        if published:
            self._published.set()  # the checkpoint thread saves and acknowledges them
        return published

    def _with_images(self, results: list[FrameResult], frame_refs: list[Any]) -> list[Delivered]:
        """The results with their frames' pixels (an older epoch's without: they are dropped as stale); a frame
        whose object is lost is left out: its source died, and the restarted source sends it again."""
        epoch = self.output.checkpoint.epoch
        current = [i for i, r in enumerate(results) if r.meta.epoch == epoch]
        images = dict(zip(current, fetch_frames([results[i].meta for i in current], [frame_refs[i] for i in current]),
                          strict=True))
        return [Delivered(r, images.get(i)) for i, r in enumerate(results) if i not in images or images[i] is not None]

    def status(self, event: StreamStatus) -> None:
        self.output.status(event)
        self._save()

    def finish(self, end: StreamEnd) -> None:
        self.output.finish(end)
        self._save()

    def abort(self, error: str, decoded: int = 0, dropped: int = 0, info: StreamInfo | None = None) -> None:
        self.output.abort(error, decoded=decoded, dropped=dropped, info=info)
        self._save()

    def probe(self) -> Probe:
        """Where the output is: ``next_seq`` as the last saved checkpoint has it (a source releases what it covers)."""
        return Probe(self.incarnation, self._saved_next_seq, self.output.ended)

    def stats(self) -> OutputStats:
        out = self.output
        state = out.checkpoint
        return OutputStats(
            stream_id=self.stream_id,
            pid=os.getpid(),
            incarnation=self.incarnation,
            published=state.published,
            failed_frames=state.failed_frames,
            next_seq=state.next_seq,
            pending=out.pending,
            repeats=out.repeats,
            fps=out.fps(),
            latency_p50_ms=out.latency.percentile_ms(50),
            latency_p99_ms=out.latency.percentile_ms(99),
            ended=out.ended,
            end_error=None if out.end is None or not out.ended else out.end.error,
            sink_errors=dict(out.sink_errors),
            statuses=dict(state.statuses),
            sinks=out.sink_stats(),
            seconds=dict(out.clock.seconds),
        )

    def close(self) -> None:
        self._closed.set()
        self.output.close()

    def _checkpoint_loop(self) -> None:
        """Save the newest checkpoint whenever frames were published, then acknowledge what it covers. A save
        that fails (the GCS briefly unreachable) is tried again after ``_CHECKPOINT_RETRY_S``: until then the
        frames stay unacknowledged, and the source keeps them."""
        while not self._closed.is_set():
            if not self._published.wait(timeout=1.0):
                continue
            self._published.clear()
            try:
                self._ack(self._save())
            except Exception as exc:  # noqa: BLE001 - this thread must outlive any failure of one save
                log.warning("stream %r: checkpoint not saved (%s: %s); trying again", self.stream_id,
                            type(exc).__name__, exc)
                self._published.set()
                self._closed.wait(_CHECKPOINT_RETRY_S)
            self._closed.wait(_CHECKPOINT_INTERVAL_S)

    def _save(self) -> int:
        """Save the output's state as it is now (taken under the lock: a later save never holds an older state);
        returns the ``next_seq`` saved."""
        with self._save_lock:
            state = dataclasses.replace(self.output.checkpoint, saved_at=time.time())
            kv_put(self.names.checkpoint_key(self.stream_id), state.to_bytes())
            self._saved_next_seq = state.next_seq
            return state.next_seq

    def _ack(self, next_seq: int) -> None:
        """Tell the source that every frame below ``next_seq`` is out (fire and forget; a lost ack is covered by
        the next, or by the source's probe)."""
        source = self.handles.get(self.names.source(self.stream_id))
        if source is None:
            return
        self._acks.append(source.ack.options(enable_task_events=False).remote(next_seq))
        done, self._acks = ray.wait(self._acks, num_returns=len(self._acks), timeout=0)
        if len(self._acks) > _MAX_ACKS_IN_FLIGHT:
            done.append(self._acks.pop(0))
        for ref in done:
            try:
                ray.get(ref, timeout=5)
            except (ray.exceptions.RayError, TimeoutError):  # the source is restarting: it probes instead
                self.handles.forget(self.names.source(self.stream_id))
