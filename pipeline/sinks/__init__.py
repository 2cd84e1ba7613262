"""Where results go: Redis pub/sub, JSON Lines files and annotated MP4 files (see ``base.Sink``)."""

from pipeline.sinks.base import Sink, check_stream_id
from pipeline.sinks.jsonl_sink import JsonlSink
from pipeline.sinks.redis_sink import RedisSink
from pipeline.sinks.video_sink import VideoSink, segment_paths

__all__ = ["JsonlSink", "RedisSink", "Sink", "VideoSink", "check_stream_id", "segment_paths"]
