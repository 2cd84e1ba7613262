"""The sinks a pipeline config asks for, built for one stream."""

from __future__ import annotations

from pipeline.config import SinksConfig
from pipeline.sinks.base import Sink


def build_sinks(stream_id: str, config: SinksConfig) -> dict[str, Sink]:
    """The enabled sinks of one stream, by name, not yet started. Raises ``SinkError`` if one cannot be set up."""
    from pipeline.sinks.jsonl_sink import JsonlSink
    from pipeline.sinks.redis_sink import RedisSink
    from pipeline.sinks.video_sink import VideoSink

    sinks: dict[str, Sink] = {}
    if config.redis is not None:
        sinks["redis"] = RedisSink(
            stream_id, url=config.redis.url, channel=config.redis.channel, history_maxlen=config.redis.history_maxlen,
            buffer_frames=config.redis.buffer_frames,
        )
    if config.jsonl is not None:
        sinks["jsonl"] = JsonlSink(stream_id, directory=config.jsonl.dir)
    if config.video is not None:
        sinks["video"] = VideoSink(stream_id, directory=config.video.dir, crf=config.video.crf)
    return sinks


def sinks_need_frames(config: SinksConfig) -> bool:
    """True when a sink the config enables draws on the frames' pixels (the annotated video): only then do the
    frames' references travel on to the outputs (each hop of a reference costs Ray bookkeeping with its owner)."""
    from pipeline.sinks.jsonl_sink import JsonlSink
    from pipeline.sinks.redis_sink import RedisSink
    from pipeline.sinks.video_sink import VideoSink

    enabled = [(config.redis, RedisSink), (config.jsonl, JsonlSink), (config.video, VideoSink)]
    return any(section is not None and sink.needs_image for section, sink in enabled)
