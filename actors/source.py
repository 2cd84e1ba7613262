"""One source actor per stream: decode, put each frame into the object store once, submit its reference.

Two threads: the decoder fills a bounded ``FrameQueue`` (waits when full for files, drops the
oldest for live streams); the sender puts each frame into the object store and submits it to
the dispatcher, which blocks while the stream has ``max_in_flight_per_stream`` frames in flight.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ray

from pipeline.config import BackpressureConfig, StreamConfig
from pipeline.errors import DecodeError, MaskstreamError
from pipeline.frame_queue import FrameQueue
from pipeline.frames import TransferFormat, frame_size
from pipeline.messages import FrameMeta, StreamEnd, StreamInfo
from pipeline.sources import DecodedFrame, FrameSource, is_live_url, open_source
from pipeline.stats import StageClock

# How often a blocked decoder re-checks for stop (seconds): short enough for a prompt Ctrl-C.
_STOP_POLL_S = 0.2


class SourceWorker:
    def __init__(self, stream: StreamConfig, dispatcher: Any, backpressure: BackpressureConfig,
                 transfer_format: TransferFormat = "rgb") -> None:
        self.stream = stream
        self.dispatcher = dispatcher
        self.live = stream.loop or is_live_url(stream.url) or stream.realtime
        self.queue: FrameQueue[DecodedFrame] = FrameQueue(
            capacity=backpressure.live_queue_frames if self.live else 2, drop_oldest=self.live
        )
        self.source: FrameSource = open_source(
            stream.id,
            stream.url,
            realtime=stream.realtime,
            loop=stream.loop,
            max_fps=stream.max_fps,
            open_timeout_s=stream.open_timeout_s,
            read_timeout_s=stream.read_timeout_s,
            options=stream.options,
            transfer=transfer_format,
        )
        self.info: StreamInfo | None = None
        self._stop = threading.Event()
        self.decoded = 0
        self.submitted = 0
        self.error: str | None = None
        self.clock = StageClock()

    def open(self) -> StreamInfo:
        """Open the stream; raises ``DecodeError`` naming the stream and the cause."""
        self.info = self.source.open()
        return self.info

    def run(self) -> StreamEnd:
        """Decode and submit until the stream ends, fails or is stopped; then tell the dispatcher it ended."""
        decoder = threading.Thread(target=self._decode, name=f"decode-{self.stream.id}", daemon=True)
        decoder.start()
        try:
            while (frame := self.queue.get()) is not None:
                self._submit(frame)
        finally:
            self._stop.set()
            self.source.stop()
            decoder.join(timeout=30)
            self.source.close()
        end = StreamEnd(
            stream_id=self.stream.id,
            frames=self.submitted,
            decoded=self.decoded,
            dropped=self.queue.dropped,
            error=self.error,
        )
        ray.get(self.dispatcher.end_stream.remote(end))
        return end

    def stop(self) -> None:
        """Stop decoding; frames already decoded are still submitted and processed."""
        self._stop.set()
        self.source.stop()

    def stats(self) -> dict[str, Any]:
        return {
            "decoded": self.decoded,
            "submitted": self.submitted,
            "dropped": self.queue.dropped,
            "waiting": len(self.queue),
            "error": self.error,
            "seconds": dict(self.clock.seconds),
        }

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
                while not self.queue.put(frame, timeout_s=_STOP_POLL_S):
                    if self._stop.is_set():
                        return
                if self._stop.is_set():
                    return
        except DecodeError as exc:
            self.error = str(exc)
        except MaskstreamError as exc:
            self.error = f"stream {self.stream.id!r}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any decoder crash must end the stream with its cause, not hang it
            self.error = f"stream {self.stream.id!r}: decoding failed: {type(exc).__name__}: {exc}"
        finally:
            self.queue.close()

    def _submit(self, frame: DecodedFrame) -> None:
        height, width = frame_size(frame.image)
        meta = FrameMeta(
            stream_id=self.stream.id,
            index=frame.index,
            seq=self.submitted,
            pts_s=frame.pts_s,
            captured_at=frame.captured_at,
            width=width,
            height=height,
        )
        with self.clock.stage("put"):
            ref = ray.put(frame.image)
        # The reference travels inside a list so that Ray passes it on instead of resolving it:
        # the pixels stay in the object store and are read zero-copy where they are needed.
        ray.get(self.dispatcher.submit.remote(meta, [ref]))
        self.submitted += 1
