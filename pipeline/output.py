"""One stream's output: reorder, drop repeats, track, publish to the sinks, and remember where it is.

:class:`StreamOutput` is what the per-stream output actor holds (no Ray in here): results come in
any order, possibly twice (a source sends its unacknowledged frames again after a downstream
actor died), and leave exactly once, in ``seq`` order, to every sink. Status events are written
in order with the frames. After each published batch :attr:`StreamOutput.checkpoint` says where
the stream is, so that an output that died can be rebuilt by :meth:`StreamOutput.attach` with
``checkpoint=`` and go on without publishing a frame twice or reusing a track id.

Life cycle: ``attach(info)`` by the stream's source (again after each restart of the source or
of the output), ``push(...)`` results, ``status(event)`` events, ``finish(end)`` when the source
ended (the end goes out after its last frame) or ``abort(error)`` when the stream cannot go on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import MaskstreamError, SinkError
from pipeline.frames import Pixels
from pipeline.messages import FrameResult, StreamEnd, StreamInfo, StreamStatus
from pipeline.reorder import ReorderBuffer, ReorderError
from pipeline.sinks.base import Sink
from pipeline.stats import LatencyWindow, RateMeter, StageClock
from pipeline.tracking import ByteTracker

log = logging.getLogger(__name__)

# Seconds a buffering sink (Redis) may take to deliver what it holds before the end message goes out.
FLUSH_BEFORE_END_S = 10.0
# Track ids are reserved this many at a time: the checkpoint that says "no id below N is handed out again" is
# saved once per block instead of once per new track. An output rebuilt after a crash skips the rest of the
# block: ids stay unique within a stream, not dense.
TRACK_ID_BLOCK = 64


class OutputError(MaskstreamError):
    """The output was used out of order (a push before attach, a checkpoint that does not parse)."""


@dataclass(frozen=True)
class OutputCheckpoint:
    """Where a stream's output is, enough to rebuild it after its actor died.

    - ``next_seq``: every frame below it was published to every sink.
    - ``next_index``: the decoded-frame index after the last published frame (a live source that
      restarts numbers on from here).
    - ``next_track_id``: the next track id to hand out (ids are never reused within a stream).
    - ``epoch``: the last source incarnation attached; the next attach gets ``epoch + 1``.
    - ``published`` / ``failed_frames``: frames published (with an error) over the whole run.
    - ``statuses``: status events written, by state; ``ended``: the end message is out.
    - ``saved_at``: wall-clock time the checkpoint was saved (a restarted actor's downtime is at least
      the time since).
    - ``info``: the stream's ``StreamInfo`` fields once a source attached (a rebuilt output resumes its
      sinks with it, also when it only has to write the end message).
    """

    next_seq: int = 0
    next_index: int = 0
    next_track_id: int = 1
    epoch: int = -1
    published: int = 0
    failed_frames: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    info: dict[str, Any] | None = None
    saved_at: float = 0.0

    def to_bytes(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> "OutputCheckpoint":
        try:
            raw = json.loads(data)
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise OutputError(f"output checkpoint is not valid: {data[:120]!r}: {exc}") from exc


@dataclass(frozen=True)
class Attached:
    """The output's answer to a source that attaches: send frames numbered from ``next_seq`` in ``epoch``."""

    epoch: int
    next_seq: int
    next_index: int
    resumed: bool  # True when the output continued an earlier incarnation's outputs


@dataclass(frozen=True)
class Delivered:
    """One result with the frame's pixels (``None`` when no sink needs them)."""

    result: FrameResult
    image: Pixels | None = None


def assign_track_ids(tracker: ByteTracker, result: FrameResult) -> FrameResult:
    """Run the tracker on one frame's instances and return the result with their track ids."""
    instances = result.instances
    boxes = np.array([i.box for i in instances], dtype=np.float32).reshape(-1, 4)
    scores = np.array([i.score for i in instances], dtype=np.float32)
    labels = np.array([i.label for i in instances], dtype=np.int64)
    masks = [i.mask.to_coco() for i in instances]
    ids = tracker.update(boxes, scores, labels, masks)
    tracked = tuple(dataclasses.replace(inst, track_id=tid) for inst, tid in zip(instances, ids, strict=True))
    return dataclasses.replace(result, instances=tracked)


class StreamOutput:
    """Reorders, deduplicates, tracks and publishes one stream's results (see the module docstring).

    - ``sinks``: the stream's sinks by name, not yet started; ``tracker``: ``None`` turns tracking off.
    - ``max_pending``: results that may wait for an earlier ``seq`` (frames in flight of the stream).
    - ``checkpoint``: given when this output replaces one that died; its sinks are then resumed,
      not started, and frames below ``checkpoint.next_seq`` are never published again.
    - ``on_reserve``: called with the checkpoint (a new block of ``TRACK_ID_BLOCK`` track ids reserved,
      old ``next_seq``) when tracking gave out an id beyond the last block and before any sink sees it,
      so that an output rebuilt after a crash in between never hands out an id already published.
      The owner saves it.
    """

    def __init__(
        self,
        stream_id: str,
        sinks: dict[str, Sink],
        tracker: ByteTracker | None,
        *,
        max_pending: int,
        checkpoint: OutputCheckpoint | None = None,
        on_reserve: Callable[[OutputCheckpoint], None] | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.sinks = sinks
        self.tracker = tracker
        self.max_pending = max_pending
        self.resuming = checkpoint is not None
        self._state = checkpoint or OutputCheckpoint()
        self.on_reserve = on_reserve
        self._reserved_track_id = self._state.next_track_id
        if tracker is not None:
            tracker.next_track_id = self._state.next_track_id
        self.sink_errors: dict[str, str] = {}
        self._sink_next: dict[str, int] = {}  # first seq each sink still needs
        self._reorder: ReorderBuffer[Delivered] = ReorderBuffer(max_pending=max_pending, first_seq=self._state.next_seq)
        self._statuses: list[StreamStatus] = []  # waiting for their frame
        self._opened = False
        self.end: StreamEnd | None = None
        self.ended = self._state.ended
        self.repeats = 0  # results dropped because their frame was already published or waiting
        self.stale = 0  # results dropped because an older source incarnation sent them
        self.latency = LatencyWindow()
        self.rate = RateMeter()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.clock = StageClock()

    # ---- state ---------------------------------------------------------------------------------
    @property
    def checkpoint(self) -> OutputCheckpoint:
        state = self._state
        if self.tracker is not None:
            next_track_id = max(self._reserved_track_id, self.tracker.next_track_id)
            state = dataclasses.replace(state, next_track_id=next_track_id)
        return state

    @property
    def next_seq(self) -> int:
        return self._state.next_seq

    @property
    def pending(self) -> int:
        return self._reorder.pending

    # ---- protocol ------------------------------------------------------------------------------
    def attach(self, info: StreamInfo) -> Attached:
        """A source (re)starts: open the sinks once, forget results waiting from an older incarnation."""
        if not self._opened and not self.ended:
            self._open_sinks(info)
            self._opened = True
        self._state = dataclasses.replace(self._state, epoch=self._state.epoch + 1, info=dataclasses.asdict(info))
        self._reorder = ReorderBuffer(max_pending=self.max_pending, first_seq=self._state.next_seq)
        if self._opened:
            self._flush_statuses(self._state.next_seq)
        return Attached(epoch=self._state.epoch, next_seq=self._state.next_seq,
                        next_index=self._state.next_index, resumed=self.resuming)

    def push(self, delivered: list[Delivered]) -> int:
        """Accept results in any order; publish what is now in order. Returns how many frames were published."""
        published = 0
        for item in delivered:
            meta = item.result.meta
            if self.ended:
                self.repeats += 1
                continue
            if not self._opened or meta.epoch != self._state.epoch:
                self.stale += 1
                continue
            if meta.seq < self._state.next_seq or self._reorder.has(meta.seq):
                self.repeats += 1
                continue
            with self.clock.stage("track"):
                try:
                    released = self._reorder.push(meta.seq, item)
                except ReorderError:  # more waiting than the window allows: the source sends it again
                    self.repeats += 1
                    continue
                released = [dataclasses.replace(d, result=self._track(d.result)) for d in released]
            self._reserve_track_ids()
            for ready in released:
                self._publish(ready)
            published += len(released)
        self.relay_sink_events()
        self._maybe_end()
        return published

    def _reserve_track_ids(self) -> None:
        if self.tracker is None or self.on_reserve is None or self.tracker.next_track_id <= self._reserved_track_id:
            return
        self._reserved_track_id = self.tracker.next_track_id + TRACK_ID_BLOCK
        self.on_reserve(self.checkpoint)

    def relay_sink_events(self) -> None:
        """Write a sink's own status events (the Redis sink's outages) to the other sinks and count them.

        The sink that raised an event has already placed it in its own output, in order."""
        for name, sink in self.sinks.items():
            take = getattr(sink, "take_events", None)
            if not callable(take):
                continue
            for event in take():
                self._write_status(dataclasses.replace(event, seq=self._state.next_seq), skip=name)

    def status(self, event: StreamStatus) -> None:
        """Write ``event`` before frame ``event.seq``: now, if that frame is next or already out, else when
        it comes. Events due before the same frame keep their order; an output rebuilt after a crash keeps
        them until its sinks are open."""
        position = len(self._statuses)
        while position > 0 and self._statuses[position - 1].seq > event.seq:
            position -= 1
        self._statuses.insert(position, event)
        if self._opened:
            self._flush_statuses(self._state.next_seq)

    def _flush_statuses(self, seq: int) -> None:
        """Write the waiting events due before frame ``seq``, in the order they came."""
        while self._statuses and self._statuses[0].seq <= seq:
            self._write_status(dataclasses.replace(self._statuses.pop(0), seq=seq))

    def finish(self, end: StreamEnd) -> None:
        """The source ended after ``end.frames`` frames; the end message goes out after the last of them."""
        self.end = end
        self._maybe_end()

    def abort(self, error: str, *, decoded: int = 0, dropped: int = 0, info: StreamInfo | None = None) -> None:
        """The stream cannot go on: write the end message with ``error`` now, after what was published.

        ``info``: the stream's, when known; an output that replaces a dead one needs it to resume its
        sinks (without it they would start a new run's files)."""
        if self.ended:
            return
        if info is None and self._state.info is not None:
            info = StreamInfo(**self._state.info)
        if not self._opened and info is not None:
            self._open_sinks(info)
            self._opened = True
        self.end = StreamEnd(stream_id=self.stream_id, frames=self._state.next_seq, decoded=decoded,
                             dropped=dropped, error=error)
        self._write_end()

    def close(self) -> None:
        for name, sink in self.sinks.items():
            try:
                sink.close()
            except SinkError as exc:
                self.sink_errors.setdefault(name, str(exc))
        if self.finished_at is None:
            self.finished_at = time.time()

    # ---- internals -----------------------------------------------------------------------------
    def _open_sinks(self, info: StreamInfo) -> None:
        for name, sink in self.sinks.items():
            try:
                with self.clock.stage(name):
                    if self.resuming:
                        first = sink.resume(info)
                        self._sink_next[name] = self._state.next_seq if first is None else first
                    else:
                        sink.start(info)
                        self._sink_next[name] = 0
            except SinkError as exc:
                self._sink_failed(name, "start", exc)
        # The checkpoint decides where the stream goes on: a sink ahead of it (its process died between
        # the write and the checkpoint) skips what it has; a sink behind it (a Redis restarted without
        # persistence lost its history) misses those frames: the source no longer holds them.

    def _track(self, result: FrameResult) -> FrameResult:
        if result.error is None and self.tracker is not None:
            return assign_track_ids(self.tracker, result)
        return result

    def _publish(self, item: Delivered) -> None:
        result = item.result
        seq = result.meta.seq
        self._flush_statuses(seq)
        for name, sink in self.sinks.items():
            if name in self.sink_errors or seq < self._sink_next.get(name, 0):
                continue
            try:
                with self.clock.stage(name):
                    sink.write(result, item.image if sink.needs_image else None)
            except SinkError as exc:
                self._sink_failed(name, f"write of frame {result.meta.index}", exc)
        now = time.time()
        if self.started_at is None:
            self.started_at = now
        self.latency.add(now - result.meta.captured_at)
        self.rate.tick(time.monotonic())
        self._state = dataclasses.replace(
            self._state,
            next_seq=seq + 1,
            next_index=result.meta.index + 1,
            published=self._state.published + 1,
            failed_frames=self._state.failed_frames + (result.error is not None),
        )

    def _write_status(self, event: StreamStatus, *, skip: str | None = None) -> None:
        for name, sink in self.sinks.items():
            if name in self.sink_errors or not self._opened or name == skip:
                continue
            try:
                sink.status(event)
            except SinkError as exc:
                self._sink_failed(name, f"status {event.state}", exc)
        counts = dict(self._state.statuses)
        counts[event.state] = counts.get(event.state, 0) + 1
        self._state = dataclasses.replace(self._state, statuses=counts)

    def _maybe_end(self) -> None:
        if self.end is None or self.ended or self._state.next_seq < self.end.frames:
            return
        self._write_end()

    def _write_end(self) -> None:
        if self.end is None:
            return
        for sink in self.sinks.values():  # a buffering sink delivers first, so that its events precede the end
            flush = getattr(sink, "flush", None)
            if callable(flush):
                flush(FLUSH_BEFORE_END_S)
        self.relay_sink_events()
        for event in self._statuses:
            self._write_status(dataclasses.replace(event, seq=self._state.next_seq))
        self._statuses.clear()
        # A sink resumed ahead of the checkpoint (its process died between the write and the checkpoint)
        # already holds frames past next_seq: the end counts what the furthest sink published.
        published = max([self._state.next_seq, *self._sink_next.values()])
        end = dataclasses.replace(self.end, frames=published)
        self.end = end
        for name, sink in self.sinks.items():
            if name in self.sink_errors:
                continue
            try:
                sink.end(end)
            except SinkError as exc:
                self._sink_failed(name, "end", exc)
        self.ended = True
        self._state = dataclasses.replace(self._state, ended=True)
        self.close()

    def _sink_failed(self, name: str, what: str, exc: SinkError) -> None:
        self.sink_errors[name] = str(exc)
        log.error("stream %r: %s sink switched off after %s failed: %s", self.stream_id, name, what, exc)

    def fps(self) -> float:
        if self.finished_at is None or self.started_at is None:
            return self.rate.rate(time.monotonic())
        elapsed = self.finished_at - self.started_at
        published = self._state.published
        return (published - 1) / elapsed if elapsed > 0 and published > 1 else 0.0

    def sink_stats(self) -> dict[str, Any]:
        """Each sink's own statistics where it has a ``stats()`` (the Redis sink's outage counters)."""
        out: dict[str, Any] = {}
        for name, sink in self.sinks.items():
            stats = getattr(sink, "stats", None)
            if callable(stats):
                value = stats()
                out[name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out
