"""RedisSink against a real redis-server: order, exactly-once, schema, history, unreachable server."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from pipeline.errors import SinkError
from pipeline.messages import FrameMessage, StreamInfo, parse_message
from pipeline.sinks import RedisSink, Sink
from pipeline.sinks.redis_sink import redact_url
from tests.pipeline.sinks import factories as f
from tests.pipeline.sinks.factories import collect, subscribe

H, W = 48, 64


def info(stream_id: str) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, width=W, height=H, fps=25.0, total_frames=None, live=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_messages_in_order_exactly_once_and_schema(redis_url: str) -> None:
    stream = unique("cam")
    ps = subscribe(redis_url, f"masks:{stream}")
    results = [f.result(stream, i, H, W) for i in range(30)]
    sink = RedisSink(stream, url=redis_url)
    assert isinstance(sink, Sink) and sink.needs_image is False
    sink.start(info(stream))
    before = time.time()
    for r in results:
        sink.write(r, None)
    sink.end(f.end(stream, len(results)))
    sink.close()
    sink.close()  # idempotent

    messages = collect(ps)
    ps.close()
    assert [m["type"] for m in messages] == ["frame"] * 30 + ["end"]
    assert [m["frame"] for m in messages[:-1]] == list(range(30))  # in order, each exactly once
    for r, m in zip(results, messages):
        assert before <= m["published_at"] <= time.time()
        assert {k: v for k, v in m.items() if k != "published_at"} == r.to_json()
        parsed = parse_message(m)
        assert isinstance(parsed, FrameMessage)
        assert parsed.stream_id == stream and parsed.index == r.meta.index and parsed.seq == r.meta.seq
        assert parsed.instances == tuple(
            type(i)(i.label, i.class_name, round(i.score, 5), i.box, i.mask, i.track_id) for i in r.instances
        )
    assert parse_message(messages[-1]) == f.end(stream, 30)
    assert sink.published == 31 and sink.frames_published == 30 and sink.last_receivers == 1


def test_custom_channel_and_write_after_end_refused(redis_url: str) -> None:
    stream = unique("cam")
    ps = subscribe(redis_url, f"results/{stream}/v1")
    sink = RedisSink(stream, url=redis_url, channel="results/{stream}/v1")
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W), None)
    sink.end(f.end(stream, 1))
    with pytest.raises(SinkError, match="already ended"):
        sink.write(f.result(stream, 1, H, W), None)
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write(f.result(stream, 2, H, W), None)
    assert [m["type"] for m in collect(ps)] == ["frame", "end"]
    ps.close()
    with pytest.raises(SinkError, match="channel template"):
        RedisSink(stream, url=redis_url, channel="masks:{camera}")


def test_history_stream_filled_and_trimmed(redis_url: str) -> None:
    stream = unique("hist")
    n, maxlen = 300, 10
    sink = RedisSink(stream, url=redis_url, history_maxlen=maxlen)
    sink.start(info(stream))
    small = ()  # no instances: keep 300 messages cheap
    for i in range(n):
        sink.write(f.result(stream, i, H, W, small), None)
    sink.end(f.end(stream, n))
    sink.close()

    client = redis.Redis.from_url(redis_url)
    key = f"masks:{stream}:history"
    length = client.xlen(key)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): at least maxlen stay, far fewer than n+1.
    assert maxlen <= length < n + 1 - 100
    entries = client.xrange(key)
    messages = [json.loads(fields[b"json"]) for _, fields in entries]
    assert messages[-1] == f.end(stream, n).to_json()
    frames = [m["frame"] for m in messages[:-1]]
    assert frames == list(range(n - len(frames), n))  # the newest ones, in order, no gaps
    assert all(parse_message(m) for m in messages)
    client.delete(key)
    client.close()


def test_no_history_key_by_default(redis_url: str) -> None:
    stream = unique("nohist")
    with_sink = RedisSink(stream, url=redis_url)
    with_sink.start(info(stream))
    with_sink.write(f.result(stream, 0, H, W, ()), None)
    with_sink.close()
    client = redis.Redis.from_url(redis_url)
    assert client.exists(f"masks:{stream}:history") == 0
    client.close()


def test_unreachable_redis_fails_fast_naming_url_and_channel() -> None:
    port = f.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    sink = RedisSink("cam1", url=url, retries=2, connect_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(SinkError) as exc_info:
        sink.start(info("cam1"))
    assert time.monotonic() - t0 < 3.0
    text = str(exc_info.value)
    assert url in text and "masks:cam1" in text and "'cam1'" in text and "RedisSink" in text
    assert "3 attempts" in text and "ConnectionError" in text
    with pytest.raises(SinkError, match=f"127.0.0.1:{port}"):
        sink.write(f.result("cam1", 0, H, W), None)
    sink.close()


def test_password_is_redacted_in_errors() -> None:
    assert redact_url("redis://user:secret@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    url = f"redis://:hunter2@127.0.0.1:{f.free_port()}/0"
    sink = RedisSink("cam1", url=url, retries=0)
    with pytest.raises(SinkError) as exc_info:
        sink.start(info("cam1"))
    assert "hunter2" not in str(exc_info.value) and ":***@127.0.0.1" in str(exc_info.value)


def test_invalid_arguments() -> None:
    with pytest.raises(SinkError, match="non-empty"):
        RedisSink("", url="redis://localhost:6379/0")
    with pytest.raises(SinkError, match="invalid url"):
        RedisSink("cam1", url="http://nowhere")
    with pytest.raises(SinkError, match="history_maxlen"):
        RedisSink("cam1", url="redis://localhost:6379/0", history_maxlen=-1)


def test_redis_error_is_not_retried(redis_url: str) -> None:
    """A history key of the wrong type is a ResponseError: reported at once, naming the cause."""
    stream = unique("wrongtype")
    client = redis.Redis.from_url(redis_url)
    client.set(f"masks:{stream}:history", "not a stream")
    sink = RedisSink(stream, url=redis_url, history_maxlen=5)
    sink.start(info(stream))
    with pytest.raises(SinkError, match="WRONGTYPE|wrong kind"):
        sink.write(f.result(stream, 0, H, W, ()), None)
    sink.close()
    client.delete(f"masks:{stream}:history")
    client.close()
