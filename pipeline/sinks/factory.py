"""The sinks a pipeline config asks for, built for one stream."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import SinksConfig
from pipeline.sinks.base import Sink


@dataclass(frozen=True)
class _SinkKind:
    """One enabled sink: its name, its class and how one stream's instance is built from its config section."""

    name: str
    cls: type
    build: Callable[[str], Sink]  # stream id -> the sink, not yet started


def _enabled(config: SinksConfig) -> list[_SinkKind]:
    """The enabled sinks, in publishing order: the one table of which config section makes which sink."""
    from pipeline.sinks.jsonl_sink import JsonlSink
    from pipeline.sinks.redis_sink import RedisSink
    from pipeline.sinks.video_sink import VideoSink

    kinds: list[_SinkKind] = []
    if (redis := config.redis) is not None:
        kinds.append(_SinkKind("redis", RedisSink, lambda stream_id: RedisSink(
            stream_id, url=redis.url, channel=redis.channel, history_maxlen=redis.history_maxlen,
            buffer_frames=redis.buffer_frames)))
    if (jsonl := config.jsonl) is not None:
        kinds.append(_SinkKind("jsonl", JsonlSink, lambda stream_id: JsonlSink(stream_id, directory=jsonl.dir)))
    if (video := config.video) is not None:
        kinds.append(_SinkKind("video", VideoSink,
                               lambda stream_id: VideoSink(stream_id, directory=video.dir, crf=video.crf)))
    return kinds


def build_sinks(stream_id: str, config: SinksConfig) -> dict[str, Sink]:
    """The enabled sinks of one stream, by name, not yet started. Raises ``SinkError`` if one cannot be set up."""
    return {kind.name: kind.build(stream_id) for kind in _enabled(config)}


def sinks_need_frames(config: SinksConfig) -> bool:
    """True when a sink the config enables draws on the frames' pixels (the annotated video): only then do the
    frames' references travel on to the outputs (each hop of a reference costs Ray bookkeeping with its owner)."""
    return any(kind.cls.needs_image for kind in _enabled(config))
