"""Subscriber against a real redis-server (two streams, status events, repeats, malformed messages, idle timeout),
read_jsonl, format_frame_line."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from pipeline.client import ReceivedFrame, Subscriber, SubscriberError, format_frame_line, read_jsonl
from pipeline.messages import FrameMessage, MessageError, StreamEnd, StreamInfo, StreamStatus, parse_message
from pipeline.sinks import JsonlSink, RedisSink
from tests.pipeline.sinks import factories as f

H, W = 48, 64


def ids(n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"s{i}-{tag}" for i in range(n)]


def info(stream_id: str) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, width=W, height=H, fps=25.0, total_frames=None, live=True)


def test_two_streams_until_both_end(redis_url: str) -> None:
    a, b = ids(2)
    with Subscriber(redis_url, [a, b], idle_timeout_s=10) as sub:
        # The constructor returned: the subscription is confirmed, so publishing right away is safe.
        sinks = {s: RedisSink(s, url=redis_url) for s in (a, b)}
        for sink in sinks.values():
            sink.start(info(sink.stream_id))
        for i in range(10):
            sinks[a].write(f.result(a, i, H, W), None)
            if i < 6:
                sinks[b].write(f.result(b, i, H, W), None)
        sinks[b].end(f.end(b, 6))
        sinks[a].end(f.end(a, 10))
        # Published after both ends: the subscriber must have stopped before reading it.
        with redis.Redis.from_url(redis_url) as client:
            client.publish(f"masks:{a}", json.dumps(f.result(a, 99, H, W).to_json()))

        t0 = time.monotonic()
        items = list(sub)
        assert time.monotonic() - t0 < 5  # stopped on the end messages, not on the idle timeout
        assert sub.done and sub.malformed == 0 and sub.received == 18
    frames = {s: [it.index for it in items if isinstance(it, ReceivedFrame) and it.stream_id == s] for s in (a, b)}
    assert frames == {a: list(range(10)), b: list(range(6))}
    ends = [it for it in items if isinstance(it, StreamEnd)]
    assert ends == [f.end(b, 6), f.end(a, 10)] and items[-1] == f.end(a, 10)
    first = next(it for it in items if isinstance(it, ReceivedFrame))
    assert 0 <= first.latency_s < 5 and first.message.published_at is not None
    assert first.received_at >= first.message.published_at - 0.01
    for sink in sinks.values():
        sink.close()


def test_malformed_messages_are_skipped_and_counted(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    (s,) = ids(1)
    channel = f"masks:{s}"
    client = redis.Redis.from_url(redis_url)
    with Subscriber(redis_url, [s], idle_timeout_s=10) as sub:
        garbage = [
            b"not json at all",
            b"\xff\xfe\x00",  # not UTF-8
            json.dumps({"type": "frame", "stream": s}),  # missing fields
            json.dumps({"type": "hello", "stream": s}),
            json.dumps([1, 2, 3]),
            json.dumps(f.result("someone-else", 0, H, W).to_json()),  # wrong stream on this channel
        ]
        client.publish(channel, json.dumps(f.result(s, 0, H, W).to_json()))
        for g in garbage:
            client.publish(channel, g)
        client.publish(channel, json.dumps(f.result(s, 1, H, W).to_json()))
        client.publish(channel, json.dumps(f.end(s, 2).to_json()))
        with caplog.at_level(logging.WARNING, logger="pipeline.client"):
            items = list(sub)
    client.close()
    assert [type(it).__name__ for it in items] == ["ReceivedFrame", "ReceivedFrame", "StreamEnd"]
    assert sub.malformed == len(garbage)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(garbage) and all(channel in w for w in warnings)
    assert any("someone-else" in w for w in warnings) and any("hello" in w for w in warnings)


def test_idle_timeout_stops_the_loop(redis_url: str) -> None:
    with Subscriber(redis_url, ids(1), idle_timeout_s=0.3) as sub:
        t0 = time.monotonic()
        assert list(sub) == []
        assert 0.25 <= time.monotonic() - t0 < 3
        assert not sub.done


def test_idle_timeout_counts_from_the_last_message(redis_url: str) -> None:
    (s,) = ids(1)
    client = redis.Redis.from_url(redis_url)
    with Subscriber(redis_url, [s], idle_timeout_s=0.5) as sub:
        client.publish(f"masks:{s}", json.dumps(f.result(s, 0, H, W).to_json()))
        it = iter(sub)
        assert next(it).index == 0  # type: ignore[union-attr]
        t0 = time.monotonic()
        assert list(it) == []
        assert 0.4 <= time.monotonic() - t0 < 3
    client.close()


def test_masks_decode_to_the_original_arrays() -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    disc = (yy - 20) ** 2 + (xx - 30) ** 2 < 100
    ring = disc ^ ((yy - 20) ** 2 + (xx - 30) ** 2 < 25)
    insts = (
        f.instance(H, W, (20, 10, 40, 30), mask=disc, track_id=1),
        f.instance(H, W, (20, 10, 40, 30), mask=ring, track_id=None),
    )
    message = parse_message(f.result("cam1", 3, H, W, insts).to_json(published_at=time.time()))
    assert isinstance(message, FrameMessage)
    frame = ReceivedFrame(message=message, received_at=message.captured_at + 0.25)
    masks = frame.masks()
    assert masks.dtype == bool and masks.shape == (2, H, W)
    assert np.array_equal(masks[0], disc) and np.array_equal(masks[1], ring)
    assert frame.latency_s == pytest.approx(0.25)
    empty = ReceivedFrame(message=parse_message(f.result("cam1", 4, H, W, ()).to_json()), received_at=0.0)  # type: ignore[arg-type]
    assert empty.masks().shape == (0, H, W) and empty.masks().dtype == bool


def test_read_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    sink = JsonlSink("cam1", directory=tmp_path)
    sink.start(info("cam1"))
    results = [f.result("cam1", i, H, W) for i in range(4)]
    for r in results:
        sink.write(r, None)
    sink.end(f.end("cam1", 4))
    path = tmp_path / "cam1.jsonl"
    items = list(read_jsonl(path))
    assert [m.index for m in items[:-1]] == [0, 1, 2, 3] and items[-1] == f.end("cam1", 4)  # type: ignore[union-attr]
    assert all(isinstance(m, FrameMessage) and m.published_at is None for m in items[:-1])

    lines = path.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], "", lines[1], "{truncated", lines[2]]) + "\n")
    got = []
    with pytest.raises(MessageError, match=rf"{bad}:4: not valid JSON"):
        for m in read_jsonl(bad):
            got.append(m)
    assert len(got) == 2  # the lines before the bad one were yielded
    bad.write_text(lines[0] + "\n" + json.dumps({"type": "frame", "stream": "cam1"}) + "\n")
    with pytest.raises(MessageError, match=rf"{bad}:2: frame message for stream 'cam1' is not valid"):
        list(read_jsonl(bad))
    with pytest.raises(MessageError, match="missing.jsonl: cannot open"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


def test_format_frame_line() -> None:
    insts = (
        f.instance(H, W, (0, 0, 10, 10), track_id=4, class_name="person"),
        f.instance(H, W, (0, 0, 10, 10), track_id=None, class_name="car"),
    )
    message = parse_message(f.result("cam1", 12, H, W, insts).to_json())
    line = format_frame_line(ReceivedFrame(message=message, received_at=message.captured_at + 0.0451))  # type: ignore[arg-type]
    assert line == "cam1 frame 12 (seq 12): 2 instances [person, car] tracks [4, -] latency 45.1 ms"
    one = parse_message(f.result("cam1", 1, H, W, insts[:1], error=None).to_json())
    assert "1 instance [person] tracks [4] latency n/a" in format_frame_line(one)  # type: ignore[arg-type]
    failed = parse_message(f.result("cam1", 2, H, W, (), error="model crashed").to_json())
    assert format_frame_line(failed).endswith("0 instances [] tracks [] latency n/a error: model crashed")  # type: ignore[arg-type]
    assert format_frame_line(f.end("cam1", 10)) == "cam1 end: 10 frames, 12 decoded, 1 dropped"
    assert format_frame_line(StreamEnd("cam1", 3, error="decoder died")).endswith("error: decoder died")


def test_unreachable_redis_raises_subscriber_error() -> None:
    url = f"redis://127.0.0.1:{f.free_port()}/0"
    t0 = time.monotonic()
    with pytest.raises(SubscriberError, match=url.replace(".", r"\.")):
        Subscriber(url, ["cam1"], subscribe_timeout_s=1.0)
    assert time.monotonic() - t0 < 10


def test_shared_channel_for_several_streams(redis_url: str) -> None:
    a, b = ids(2)
    shared = f"all-{uuid.uuid4().hex[:6]}"
    with Subscriber(redis_url, [a, b], channel=shared, idle_timeout_s=5) as sub:
        for s in (a, b):
            sink = RedisSink(s, url=redis_url, channel=shared)
            sink.start(info(s))
            sink.write(f.result(s, 0, H, W), None)
            sink.end(f.end(s, 1))
            sink.close()
        items = list(sub)
    assert [(type(it).__name__, it.stream_id) for it in items] == [
        ("ReceivedFrame", a), ("StreamEnd", a), ("ReceivedFrame", b), ("StreamEnd", b)
    ]


def frame_json(stream: str, seq: int, *, captured_at: float | None = None) -> str:
    message = f.result(stream, seq, H, W, ()).to_json(published_at=time.time())
    if captured_at is not None:
        message["captured_at"] = captured_at
    return json.dumps(message)


def test_status_events_are_yielded_in_order_with_frames(redis_url: str) -> None:
    (s,) = ids(1)
    with Subscriber(redis_url, [s], idle_timeout_s=10) as sub:
        sink = RedisSink(s, url=redis_url)
        sink.start(info(s))
        sink.write(f.result(s, 0, H, W), None)
        stalled = StreamStatus(s, "stalled", at=time.time(), seq=1, reason="no frame for 5.0 s", actor="source")
        sink.status(stalled)
        sink.write(f.result(s, 1, H, W), None)
        sink.end(f.end(s, 2))
        sink.close()
        items = list(sub)
    assert [type(it).__name__ for it in items] == ["ReceivedFrame", "StreamStatus", "ReceivedFrame", "StreamEnd"]
    assert items[1] == stalled and sub.received == 4 and sub.repeats == 0


def test_repeated_frames_are_yielded_once(redis_url: str) -> None:
    """A frame published again (a retry after a timeout, an output that restarted) is dropped by (stream, seq)."""
    a, b = ids(2)
    client = redis.Redis.from_url(redis_url)
    t0 = time.time() - 100
    with Subscriber(redis_url, [a, b], idle_timeout_s=10) as sub:
        for seq in (0, 1, 2):
            client.publish(f"masks:{a}", frame_json(a, seq, captured_at=t0 + seq))
        client.publish(f"masks:{b}", frame_json(b, 1, captured_at=t0 + 1))  # another stream: its own seqs
        client.publish(f"masks:{a}", json.dumps(StreamStatus(a, "restarted", at=time.time(), seq=1, actor="output").to_json()))
        for seq in (1, 2, 3):  # the restarted output went back to seq 1: 1 and 2 are repeats
            client.publish(f"masks:{a}", frame_json(a, seq, captured_at=t0 + seq))
        client.publish(f"masks:{a}", json.dumps(f.end(a, 4).to_json()))
        client.publish(f"masks:{a}", json.dumps(f.end(a, 4).to_json()))  # the end again: dropped too
        # A new run of a (seq from 0 again, captured later) after its end: yielded, not a repeat.
        client.publish(f"masks:{a}", frame_json(a, 0, captured_at=time.time()))
        client.publish(f"masks:{a}", json.dumps(f.end(a, 1).to_json()))
        client.publish(f"masks:{b}", json.dumps(f.end(b, 2).to_json()))
        items = list(sub)
    client.close()
    seen = [(it.stream_id, type(it).__name__, getattr(it, "seq", None)) for it in items]
    assert seen == [
        (a, "ReceivedFrame", 0), (a, "ReceivedFrame", 1), (a, "ReceivedFrame", 2), (b, "ReceivedFrame", 1),
        (a, "StreamStatus", 1), (a, "ReceivedFrame", 3), (a, "StreamEnd", None),
        (a, "ReceivedFrame", 0), (a, "StreamEnd", None), (b, "StreamEnd", None),
    ]
    assert sub.repeats == 3 and sub.received == len(items) and sub.malformed == 0 and sub.done


def test_a_new_run_without_an_end_is_not_taken_for_repeats(redis_url: str) -> None:
    (s,) = ids(1)
    client = redis.Redis.from_url(redis_url)
    with Subscriber(redis_url, [s], idle_timeout_s=10) as sub:
        old = time.time() - 100
        for seq in range(3):  # a run that died without an end message
            client.publish(f"masks:{s}", frame_json(s, seq, captured_at=old + seq))
        client.publish(f"masks:{s}", frame_json(s, 0, captured_at=old))  # a repeat of the old run's frame 0
        for seq in range(2):  # the next run: seq 0 captured after everything yielded
            client.publish(f"masks:{s}", frame_json(s, seq, captured_at=time.time()))
        client.publish(f"masks:{s}", json.dumps(f.end(s, 2).to_json()))
        items = list(sub)
    client.close()
    assert [getattr(it, "seq", "end") for it in items] == [0, 1, 2, 0, 1, "end"] and sub.repeats == 1


def test_read_jsonl_yields_status_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "cam1.jsonl"
    unavailable = StreamStatus("cam1", "sink_unavailable", at=time.time(), seq=1, reason="ConnectionError", actor="redis")
    recovered = StreamStatus("cam1", "sink_recovered", at=time.time(), seq=1, actor="redis", lost=2, downtime_s=3.25)
    lines = [f.result("cam1", 0, H, W).to_json(), unavailable.to_json(), recovered.to_json(),
             f.result("cam1", 3, H, W).to_json(), f.end("cam1", 2).to_json()]
    path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    items = list(read_jsonl(path))
    assert [type(m).__name__ for m in items] == ["FrameMessage", "StreamStatus", "StreamStatus", "FrameMessage", "StreamEnd"]
    assert items[1:3] == [unavailable, recovered]


def test_format_status_lines() -> None:
    at = time.time()
    assert format_frame_line(StreamStatus("cam1", "live", at=at, seq=0)) == "cam1 status live before seq 0"
    assert format_frame_line(StreamStatus("cam1", "reconnecting", at=at, seq=12, reason="connection reset\nby peer",
                                          attempt=2)) == "cam1 status reconnecting before seq 12: connection reset by peer, attempt 2"
    line = format_frame_line(StreamStatus("cam1", "sink_recovered", at=at, seq=40, actor="redis", lost=15, downtime_s=3.21))
    assert line == "cam1 status sink_recovered (redis) before seq 40: lost 15, downtime 3.2 s"
