"""One sink actor per stream: holds the enabled sinks and writes each frame to all of them, in order.

A sink that fails is reported and switched off for the rest of the run; the other sinks of
the stream go on, so nothing already processed is lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray

from pipeline.config import SinksConfig
from pipeline.errors import SinkError
from pipeline.messages import FrameResult, StreamEnd, StreamInfo
from pipeline.sinks import JsonlSink, RedisSink, Sink, VideoSink
from pipeline.stats import LatencyWindow, RateMeter, StageClock

log = logging.getLogger(__name__)


def build_sinks(stream_id: str, config: SinksConfig) -> dict[str, Sink]:
    """The enabled sinks of one stream, by name. Raises ``SinkError`` if one cannot be set up."""
    sinks: dict[str, Sink] = {}
    if config.redis is not None:
        sinks["redis"] = RedisSink(
            stream_id, url=config.redis.url, channel=config.redis.channel, history_maxlen=config.redis.history_maxlen
        )
    if config.jsonl is not None:
        sinks["jsonl"] = JsonlSink(stream_id, directory=config.jsonl.dir)
    if config.video is not None:
        sinks["video"] = VideoSink(stream_id, directory=config.video.dir, crf=config.video.crf)
    return sinks


class SinkWorker:
    def __init__(self, stream_id: str, config: SinksConfig) -> None:
        self.stream_id = stream_id
        self.errors: dict[str, str] = {}
        self.init_error: str | None = None
        try:
            self.sinks = build_sinks(stream_id, config)
        except SinkError as exc:
            self.sinks = {}
            self.init_error = str(exc)
        self.published = 0
        self.failed_frames = 0
        self.latency = LatencyWindow()
        self.rate = RateMeter()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.end_message: StreamEnd | None = None
        self.clock = StageClock()

    def ready(self) -> dict[str, Any]:
        """The enabled sinks, or ``{"error": ...}`` when one could not be set up."""
        if self.init_error is not None:
            return {"error": self.init_error}
        return {"sinks": list(self.sinks)}

    def start(self, info: StreamInfo) -> None:
        self._each("start", lambda sink: sink.start(info))

    def write_many(self, results: list[FrameResult], frame_refs: list[Any]) -> None:
        needs_image = any(sink.needs_image for name, sink in self.sinks.items() if name not in self.errors)
        with self.clock.stage("fetch"):
            images = ray.get(frame_refs) if needs_image else [None] * len(results)
        for result, image in zip(results, images, strict=True):
            self._each("write", lambda sink: sink.write(result, image if sink.needs_image else None))
            now = time.time()
            if self.started_at is None:
                self.started_at = now
            self.published += 1
            self.failed_frames += result.error is not None
            self.latency.add(now - result.meta.captured_at)
            self.rate.tick(time.monotonic())

    def end(self, end: StreamEnd) -> None:
        self.end_message = end
        self._each("end", lambda sink: sink.end(end))
        self.close()

    def close(self) -> None:
        for name, sink in self.sinks.items():
            try:
                sink.close()
            except SinkError as exc:
                self.errors.setdefault(name, str(exc))
        if self.finished_at is None:
            self.finished_at = time.time()

    def stats(self) -> dict[str, Any]:
        elapsed = None
        if self.started_at is not None:
            elapsed = (self.finished_at or time.time()) - self.started_at
        return {
            "published": self.published,
            "failed_frames": self.failed_frames,
            "fps": self.rate.rate(time.monotonic()) if self.finished_at is None else (
                (self.published - 1) / elapsed if elapsed and self.published > 1 else 0.0
            ),
            "latency_p50_ms": self.latency.percentile_ms(50),
            "latency_p99_ms": self.latency.percentile_ms(99),
            "sink_errors": dict(self.errors),
            "ended": self.end_message is not None,
            "end_error": None if self.end_message is None else self.end_message.error,
            "seconds": dict(self.clock.seconds),
        }

    def _each(self, what: str, call: Any) -> None:
        for name, sink in self.sinks.items():
            if name in self.errors:
                continue
            try:
                with self.clock.stage(name):
                    call(sink)
            except SinkError as exc:
                self.errors[name] = str(exc)
                log.error("stream %r: %s sink switched off after %s failed: %s", self.stream_id, name, what, exc)
