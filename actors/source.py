"""One source actor per stream: decode, put each frame into the object store once, submit it, keep it until published.

The actor drives its stream by itself from a thread started in ``__init__``, so that a source
restarted by Ray after its process died simply carries on: it attaches to the stream's output
(which says which ``seq`` comes next), skips what a file stream already published, and sends
the rest. Every frame stays in a :class:`~pipeline.replay.ReplayWindow` until the output
acknowledges it; when the dispatcher or the output restarted (its incarnation changed), the
frames still in the window are sent again and the output drops what it already has.

Two threads: the decoder fills a bounded ``FrameQueue`` (waits when full for files, drops the
oldest for live streams); the sender puts frames into the object store and submits them while
the window has room. Frames sent together are put as one object (a ``FrameBundle``): a file is
sent in bundles of ``_SUBMIT_BATCH_FRAMES``; a camera or a paced file sends what is decoded as
soon as the decoder has nothing more waiting (a frame never waits for a later one).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import ray

from actors.names import HandleCache, RunNames, kv_get
from pipeline.config import BackpressureConfig, StreamConfig, SupervisionConfig
from pipeline.errors import DecodeError, MaskstreamError
from pipeline.frame_queue import FrameQueue
from pipeline.frames import FrameBundle, TransferFormat, frame_size
from pipeline.messages import FrameMeta, StreamEnd, StreamInfo, StreamStatus
from pipeline.output import Attached, OutputCheckpoint
from pipeline.replay import ReplayWindow
from pipeline.sources import DecodedFrame, FrameSource, is_live_url, open_source
from pipeline.sources.reconnect import ReconnectPolicy
from pipeline.stats import SourceStats, StageClock

# How often a blocked decoder re-checks for stop (seconds): short enough for a prompt Ctrl-C.
_STOP_POLL_S = 0.2
# Seconds to wait for a downstream call before treating the actor as gone (it is probed again later).
_CALL_TIMEOUT_S = 30.0
# Probes in a row without any acknowledgement (and no restart seen) before the window is sent again,
# doubling after each resend up to the second value: with a probe a second, 5 s covers a normal batch
# on a CPU replica; a slower model only costs a repeated inference, never a repeated publication.
_QUIET_PROBES_BEFORE_RESEND = 5
_MAX_QUIET_PROBES = 80
# Frames submitted together, as one object and one call, up to this many (and half the window, so that two
# bundles are in flight): a file waits for this many decoded frames; a live or paced stream sends what it has
# whenever its decoder has nothing more waiting. More per bundle costs memory held until its last frame is out.
_SUBMIT_BATCH_FRAMES = 8


class _Downstream(Exception):
    """Internal: a downstream actor is unavailable (restarting or gone); wait and probe."""


class SourceWorker:
    def __init__(self, stream: StreamConfig, backpressure: BackpressureConfig, supervision: SupervisionConfig, *,
                 names: RunNames, transfer_format: TransferFormat = "rgb") -> None:
        self.stream = stream
        self.dispatcher = ray.get_actor(names.dispatcher())
        self.names = names
        self.handles = HandleCache()
        self.probe_interval_s = supervision.probe_interval_s
        self.live = stream.loop or is_live_url(stream.url) or stream.realtime
        # A camera or a paced file is latency-bound: a decoded frame goes out without waiting for the next one.
        self.low_latency = is_live_url(stream.url) or stream.realtime
        self.queue: FrameQueue[DecodedFrame] = FrameQueue(
            capacity=backpressure.live_queue_frames if self.live else 2, drop_oldest=self.live
        )
        self.window: ReplayWindow[tuple[FrameMeta, Any]] = ReplayWindow(capacity=backpressure.max_in_flight_per_stream)
        self._window_changed = threading.Condition()
        self.transfer_format = transfer_format
        self.info: StreamInfo | None = None
        self.attached: Attached | None = None
        self.index_base = 0  # added to the decoder's frame index (a restarted live stream numbers on)
        self.dropped_base = 0  # frames an earlier incarnation of a live source decoded and never published
        # Connection events wait here for the frames decoded before them: (last index decoded before it, event).
        self._deferred: list[tuple[int, StreamStatus]] = []
        self._status_lock = threading.Lock()
        self._in_hand = False  # the sender holds a frame taken from the queue and not yet in the window
        self._quiet_probes = 0  # probes since the last acknowledgement
        self._resend_after_probes = _QUIET_PROBES_BEFORE_RESEND
        self._last_index = -1
        self.output_incarnation: str | None = None
        self.dispatcher_incarnation: str | None = None
        self._replies: list[Any] = []  # replies of submits not read yet (see _read_replies)
        self._outbox: list[tuple[FrameMeta, Any]] = []  # (meta, pixels) numbered, not yet put nor in the window
        self._submit_batch_frames = max(1, min(_SUBMIT_BATCH_FRAMES, backpressure.max_in_flight_per_stream // 2))
        self._stop = threading.Event()
        self.decoded = 0
        self.submitted = 0
        self.resent = 0
        self.error: str | None = None
        self.draining = False
        self.done = False
        self.clock = StageClock()
        self.source: FrameSource = self._open_source()
        # The first incarnation waits for the supervisor's go (all streams start together); a restarted one goes on.
        self._go = threading.Event()
        saved = kv_get(names.checkpoint_key(stream.id))
        self.restarted_from = OutputCheckpoint.from_bytes(saved) if saved is not None else None
        if self.restarted_from is not None and self.restarted_from.epoch < 0:
            self.restarted_from = None
        if self.restarted_from is not None:
            self._go.set()  # an earlier incarnation attached: this one was restarted
        self._thread = threading.Thread(target=self._main, name=f"source-{stream.id}", daemon=True)
        self._thread.start()

    # ---- remote API --------------------------------------------------------------------------
    def go(self) -> None:
        """Start sending frames (the first incarnation waits for this)."""
        self._go.set()

    def ack(self, next_seq: int) -> None:
        """Every frame below ``next_seq`` is published (cumulative; repeats and reordering are harmless)."""
        with self._window_changed:
            if self.window.ack(next_seq):
                self._quiet_probes = 0
                self._resend_after_probes = _QUIET_PROBES_BEFORE_RESEND
            self._window_changed.notify_all()

    def stop(self) -> None:
        """Stop decoding; frames already decoded are still submitted, published, and the end sent."""
        self._stop.set()
        self.source.stop()

    def stats(self) -> SourceStats:
        return SourceStats(
            stream_id=self.stream.id,
            pid=os.getpid(),
            epoch=-1 if self.attached is None else self.attached.epoch,
            info=self.info,
            decoded=self._decoded_total(),
            submitted=self.submitted,
            resent=self.resent,
            dropped=self.dropped_base + self.queue.dropped,
            unacked=len(self.window),
            error=self.error,
            draining=self.draining,
            done=self.done,
            seconds=dict(self.clock.seconds),
        )

    # ---- the stream --------------------------------------------------------------------------
    def _open_source(self) -> FrameSource:
        stream = self.stream
        return open_source(
            stream.id,
            stream.url,
            realtime=stream.realtime,
            loop=stream.loop,
            max_fps=stream.max_fps,
            open_timeout_s=stream.open_timeout_s,
            read_timeout_s=stream.read_timeout_s,
            options=stream.options,
            transfer=self.transfer_format,
            reconnect=ReconnectPolicy.from_stream_config(stream),
            on_status=self._on_source_status,
        )

    def _main(self) -> None:
        try:
            self.info = self.source.open()
        except MaskstreamError as exc:
            self.error = self._describe(exc)
        if self.info is None:
            self.draining = True
            self._end_without_frames()
            return
        while not self._go.wait(_STOP_POLL_S):
            if self._stop.is_set():
                break
        self._attach()
        decoder = threading.Thread(target=self._decode, name=f"decode-{self.stream.id}", daemon=True)
        decoder.start()
        try:
            skip = 0 if self.live or self.attached is None else self.attached.next_seq
            while (frame := self._next_frame()) is not None:
                self._emit_statuses_before(frame.index)
                if skip > 0:
                    skip -= 1
                    continue
                self._submit(frame)
                self._in_hand = False
        finally:
            self._stop.set()
            self.source.stop()
            decoder.join(timeout=30)
            self.source.close()
        self.draining = True
        self._emit_statuses_before(None)
        self._finish()

    def _describe(self, exc: MaskstreamError) -> str:
        """A ``DecodeError`` already names the stream and the url; any other error gets the stream's id."""
        return str(exc) if isinstance(exc, DecodeError) else f"stream {self.stream.id!r}: {exc}"

    def _end_without_frames(self) -> None:
        """The stream never opened: its output writes just the end message, with the cause."""
        end = StreamEnd(stream_id=self.stream.id, frames=0, decoded=0, dropped=0, error=self.error)
        while not self._call_output(lambda o: o.finish.remote(end)):
            if self._wait_or_stopped():
                return
        self.done = True

    def _attach(self) -> None:
        """First attach of this incarnation: number frames from where the output is, and learn the dispatcher's
        incarnation before sending anything (a probe compares against it: a change means frames were lost)."""
        while True:
            if self.dispatcher_incarnation is None:
                self.dispatcher_incarnation = self._dispatcher_incarnation()
                if self.dispatcher_incarnation is None:
                    if self._stop.wait(self.probe_interval_s):
                        return
                    continue
            reply = self._call_output(lambda o: o.attach.remote(self.info))
            if reply is not None:
                self.attached, self.output_incarnation = reply
                with self._window_changed:
                    self.window = ReplayWindow(capacity=self.window.capacity, next_seq=self.attached.next_seq)
                # A live stream restarted numbers its frames on after the last published one; what the dead
                # incarnation decoded and never published is counted as dropped (it cannot be sent again).
                self.index_base = self.attached.next_index if self.live else 0
                self.dropped_base = self.attached.next_index - self.attached.next_seq if self.live else 0
                if self.restarted_from is not None:
                    self._send_status(StreamStatus(
                        stream_id=self.stream.id, state="restarted", at=time.time(), actor="source",
                        reason=f"the source's process died; restarted as pid {os.getpid()}"
                               + ("" if self.live else f", resuming after frame seq {self.attached.next_seq - 1}"),
                        downtime_s=max(0.0, time.time() - self.restarted_from.saved_at)))
                return
            if self._stop.wait(self.probe_interval_s):
                return

    def _decode(self) -> None:
        try:
            frames = iter(self.source.frames())
            while True:
                started = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                if not self.stream.realtime:  # a paced source's wait is not decoding work
                    self.clock.add("decode", time.perf_counter() - started)
                self.decoded += 1
                self._last_index = frame.index
                while not self.queue.put(frame, timeout_s=_STOP_POLL_S):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
        except MaskstreamError as exc:
            self.error = self._describe(exc)
        except Exception as exc:  # noqa: BLE001 - any decoder crash must end the stream with its cause, not hang it
            self.error = f"stream {self.stream.id!r}: decoding failed: {type(exc).__name__}: {exc}"
        finally:
            self.queue.close()

    def _submit(self, frame: DecodedFrame) -> None:
        """Number the frame and keep it in the outbox; send the outbox as one bundle when it is full, when the
        window has no more room, or, for a latency-bound stream, when no other frame is decoded yet."""
        if self._full():
            self._flush()
        self._wait_for_room()
        if self.attached is None:
            return
        height, width = frame_size(frame.image)
        meta = FrameMeta(stream_id=self.stream.id, index=frame.index + self.index_base, seq=self._next_seq(),
                         pts_s=frame.pts_s, captured_at=frame.captured_at, width=width, height=height)
        self._outbox.append((meta, frame.image))
        self.submitted += 1
        if (len(self._outbox) >= self._submit_batch_frames or self._full()
                or (self.low_latency and len(self.queue) == 0)):
            self._flush()

    def _next_seq(self) -> int:
        """The ``seq`` of the next frame: after the window's and the outbox's."""
        return self.window.next_seq + len(self._outbox)

    def _full(self) -> bool:
        return len(self.window) + len(self._outbox) >= self.window.capacity

    def _flush(self) -> None:
        """Put the outbox's frames into the object store as one ``FrameBundle``, keep them in the window, send them."""
        pending = self._outbox
        if not pending:
            return
        with self.clock.stage("put"):
            ref = ray.put(FrameBundle(tuple(pixels for _, pixels in pending)))
        frames = [(dataclasses.replace(meta, slot=slot), ref) for slot, (meta, _) in enumerate(pending)]
        # Under the status lock: a connection event never finds these frames missing from both outbox and window.
        with self._status_lock, self._window_changed:
            for meta, _ in frames:
                self.window.add(meta.seq, (meta, ref))
            self._outbox = []
        self._send(frames)

    def _send(self, frames: list[tuple[FrameMeta, Any]]) -> None:
        """Submit frames to the dispatcher, stamped with the current epoch, without waiting for the replies
        (a submit returns when the frame's result was handed on: :meth:`_read_replies` reads them)."""
        if self.attached is None:
            return
        epoch = self.attached.epoch
        for start in range(0, len(frames), self._submit_batch_frames):
            chunk = frames[start:start + self._submit_batch_frames]
            metas = [dataclasses.replace(meta, epoch=epoch) for meta, _ in chunk]
            self._replies.append(self.dispatcher.submit.options(enable_task_events=False).remote(
                metas, [ref for _, ref in chunk]))
        self._read_replies()

    def _read_replies(self) -> None:
        """Read the submits' replies that came (the dispatcher's incarnation; an error while it restarts, which
        the probe handles); a changed incarnation sends the window again. Waits only while more replies are
        outstanding than two windows (a resend after a restart)."""
        while self._replies:
            too_many = len(self._replies) > 2 * self.window.capacity
            ready, self._replies = ray.wait(self._replies, num_returns=1 if too_many else len(self._replies),
                                            timeout=_CALL_TIMEOUT_S if too_many else 0)
            changed = False
            for reply in ready:
                try:
                    incarnation = ray.get(reply)
                except ray.exceptions.RayError:
                    continue  # the dispatcher died or restarts: the probe sees its new incarnation
                if self.dispatcher_incarnation is None:
                    self.dispatcher_incarnation = incarnation
                elif incarnation != self.dispatcher_incarnation:
                    self.dispatcher_incarnation = incarnation
                    changed = True
            if changed:
                self._resend()
                return
            if not too_many:
                return

    def _wait_for_room(self) -> None:
        """Block while the window and the outbox are full; probe downstream when no acknowledgement came for a while."""
        self._wait_for_window(lambda: not self._full())

    def _wait_for_window(self, done: Callable[[], bool]) -> None:
        """Block until ``done()`` holds for the window (checked whenever an acknowledgement arrives); after
        ``probe_interval_s`` without one, probe downstream (a restarted actor's frames are sent again)."""
        while True:
            with self._window_changed:
                if done():
                    return
                before = self.window.acked
                self._window_changed.wait(self.probe_interval_s)
                acked = self.window.acked != before or done()
            self._read_replies()
            if not acked:
                self._probe()

    def _finish(self) -> None:
        """Wait until every frame is published (probing), then have the output write the end message."""
        self._flush()
        while True:
            self._wait_for_window(lambda: len(self.window) == 0)
            end = StreamEnd(stream_id=self.stream.id, frames=self.window.next_seq, decoded=self._decoded_total(),
                            dropped=self.dropped_base + self.queue.dropped, error=self.error)
            self._call_output(lambda o: o.finish.remote(end))
            probe = self._call_output(lambda o: o.probe.remote())
            if probe is not None and probe.ended:
                self.done = True
                return
            if probe is not None and probe.incarnation != self.output_incarnation:
                self._reattach()
                continue
            time.sleep(self.probe_interval_s / 4)

    def _decoded_total(self) -> int:
        return self.index_base + self.decoded

    def _dispatcher_incarnation(self) -> str | None:
        """The dispatcher's incarnation now; ``None`` while it is unavailable (restarting)."""
        try:
            return ray.get(self.dispatcher.incarnation.remote(), timeout=_CALL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            return None

    def _probe(self) -> None:
        """Ask the dispatcher and the output whether they restarted; if one did, send the window again."""
        dispatcher = self._dispatcher_incarnation()
        if dispatcher is None:
            return
        probe = self._call_output(lambda o: o.probe.remote())
        if probe is not None and probe.incarnation != self.output_incarnation:
            self._reattach()
            return
        if probe is not None:
            self.ack(probe.next_seq)  # an acknowledgement may have been lost on its way
        if dispatcher != self.dispatcher_incarnation:
            self.dispatcher_incarnation = dispatcher
            self._resend()
            return
        if self._replies:
            # Submits have not returned: their frames are still queued or in inference (a slow model, a long
            # queue), not lost. Sending them again would only make the model run them twice.
            self._quiet_probes = 0
            return
        # Nothing restarted, every submit returned, yet nothing was acknowledged for a while: a message was lost
        # on the way (a delivery that failed while the output was briefly unreachable). Send the window again,
        # less often each time; the output drops what it already has, so the worst case is inference run twice.
        self._quiet_probes += 1
        if self._quiet_probes >= self._resend_after_probes:
            self._quiet_probes = 0
            self._resend_after_probes = min(self._resend_after_probes * 2, _MAX_QUIET_PROBES)
            self._resend()

    def _reattach(self) -> None:
        """The output restarted: attach again (a new epoch) and send every unpublished frame under it."""
        reply = self._call_output(lambda o: o.attach.remote(self.info))
        if reply is None:
            return
        self.attached, self.output_incarnation = reply
        with self._window_changed:
            self.window.ack(self.attached.next_seq)
        self._resend()

    def _resend(self) -> None:
        """Send every frame of the window again (the outbox's have not been sent: they go with the next flush)."""
        with self._window_changed:
            frames = [u.item for u in self.window.unacked()]
        self.resent += len(frames)
        self._send(frames)

    def _next_frame(self) -> DecodedFrame | None:
        frame = self.queue.get()
        with self._status_lock:
            self._in_hand = frame is not None
        return frame

    def _on_source_status(self, state: str, *, reason: str | None = None, attempt: int | None = None,
                          lost: int | None = None, downtime_s: float | None = None) -> None:
        """A connection state change, from the decoder thread: it goes out after the frames decoded before it.

        With none of them still waiting to be sent, it goes out at once (subscribers learn of an outage while
        it lasts); otherwise the sender sends it just before the first frame decoded after it."""
        event = StreamStatus(stream_id=self.stream.id, state=state, at=time.time(), reason=reason, attempt=attempt,
                             lost=lost, downtime_s=downtime_s)
        with self._status_lock:
            if self._deferred or self._in_hand or self._outbox or len(self.queue):
                self._deferred.append((self._last_index, event))
                return
        self._send_status(event)

    def _emit_statuses_before(self, index: int | None) -> None:
        """Send the deferred events decoded before frame ``index`` (all of them when ``None``)."""
        while True:
            with self._status_lock:
                if not self._deferred or (index is not None and self._deferred[0][0] >= index):
                    return
                _, event = self._deferred.pop(0)
            self._send_status(event)

    def _send_status(self, event: StreamStatus) -> None:
        stamped = dataclasses.replace(event, seq=self._next_seq())
        self._call_output(lambda o: o.status.remote(stamped))

    def _call_output(self, call: Any) -> Any:
        """Call the stream's output; ``None`` when it is unavailable (restarting, or not found)."""
        name = self.names.output(self.stream.id)
        handle = self.handles.get(name)
        if handle is None:
            return None
        try:
            result = ray.get(call(handle), timeout=_CALL_TIMEOUT_S)
        except (ray.exceptions.RayError, TimeoutError):
            self.handles.forget(name)
            return None
        return True if result is None else result

    def _wait_or_stopped(self) -> bool:
        return self._stop.wait(self.probe_interval_s)
