"""RedisSink against real redis-servers: order, exactly-once, schema, history ids, outages, overflow, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from pipeline.client import ReceivedFrame, Subscriber
from pipeline.errors import SinkError
from pipeline.messages import FrameMessage, StreamInfo, StreamStatus, parse_message
from pipeline.sinks import RedisSink, Sink
from pipeline.sinks.redis_sink import END_ENTRY_SEQ, RedisSinkStats, redact_url
from tests.pipeline.sinks import factories as f
from tests.pipeline.sinks.factories import collect, subscribe

H, W = 48, 64
# The longest a write (or status) may take when Redis is down or hung: it only queues the message. Generous
# for a loaded machine, and still below one blocked attempt (connect_timeout_s, 0.5 s in these tests).
PROMPT_S = 0.2
# Short reconnect pauses so that the tests notice a restarted server quickly.
FAST = {"max_backoff_s": 0.2, "connect_timeout_s": 0.5}


def info(stream_id: str) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, width=W, height=H, fps=25.0, total_frames=None, live=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def history(client: redis.Redis, key: str) -> list[tuple[str, dict]]:
    """The history stream's entries as (id, message)."""
    return [(entry_id.decode(), json.loads(fields[b"json"])) for entry_id, fields in client.xrange(key)]


def timed(call: Callable[[], object]) -> float:
    t0 = time.monotonic()
    call()
    return time.monotonic() - t0


class RedisServer:
    """A private redis-server (append-only file, so the history survives a restart) that a test stops and restarts."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = f.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case a test left it paused
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, nothing answers (a hung server)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path)
    yield srv
    srv.stop()


# -- normal operation --------------------------------------------------------------


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
        assert list(m)[-1] == "published_at"  # the same key order as FrameResult.to_json(published_at=...)
        parsed = parse_message(m)
        assert isinstance(parsed, FrameMessage)
        assert parsed.stream_id == stream and parsed.index == r.meta.index and parsed.seq == r.meta.seq
        assert parsed.instances == tuple(
            type(i)(i.label, i.class_name, round(i.score, 5), i.box, i.mask, i.track_id) for i in r.instances
        )
    assert parse_message(messages[-1]) == f.end(stream, 30)
    assert sink.stats() == RedisSinkStats(published=31, frames_published=30, undelivered=0, outages=0, buffered=0,
                                          repeats=0, last_receivers=1, last_error=None)
    assert sink.take_events() == []


def test_status_events_in_order_with_frames(redis_url: str) -> None:
    stream = unique("status")
    ps = subscribe(redis_url, f"masks:{stream}")
    sink = RedisSink(stream, url=redis_url)
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W, ()), None)
    sink.status(StreamStatus(stream, "reconnecting", at=time.time(), seq=1, reason="EOF", attempt=1))
    sink.status(StreamStatus(stream, "recovered", at=time.time(), seq=1, attempt=1, lost=3, downtime_s=1.5))
    sink.write(f.result(stream, 1, H, W, ()), None)
    sink.end(f.end(stream, 2))
    sink.close()
    messages = collect(ps)
    ps.close()
    assert [(m["type"], m.get("seq"), m.get("state")) for m in messages] == [
        ("frame", 0, None), ("status", 1, "reconnecting"), ("status", 1, "recovered"), ("frame", 1, None),
        ("end", None, None),
    ]
    assert parse_message(messages[2]) == StreamStatus(stream, "recovered", at=messages[2]["at"], seq=1, attempt=1,
                                                      lost=3, downtime_s=1.5)


def test_custom_channel_and_write_after_end_refused(redis_url: str) -> None:
    stream = unique("cam")
    ps = subscribe(redis_url, f"results/{stream}/v1")
    sink = RedisSink(stream, url=redis_url, channel="results/{stream}/v1")
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W), None)
    sink.end(f.end(stream, 1))
    with pytest.raises(SinkError, match="already ended"):
        sink.write(f.result(stream, 1, H, W), None)
    with pytest.raises(SinkError, match="already ended"):
        sink.status(StreamStatus(stream, "live", at=time.time()))
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.write(f.result(stream, 2, H, W), None)
    assert [m["type"] for m in collect(ps)] == ["frame", "end"]
    ps.close()
    with pytest.raises(SinkError, match="channel template"):
        RedisSink(stream, url=redis_url, channel="masks:{camera}")


def test_history_ids_trimming_and_a_new_run_replaces_the_old(redis_url: str) -> None:
    stream = unique("hist")
    key = f"masks:{stream}:history"
    client = redis.Redis.from_url(redis_url)
    n, maxlen = 300, 10
    sink = RedisSink(stream, url=redis_url, history_maxlen=maxlen)
    sink.start(info(stream))
    sink.status(StreamStatus(stream, "connecting", at=time.time(), seq=0))
    for i in range(n):
        sink.write(f.result(stream, i, H, W, ()), None)  # no instances: keep 300 messages cheap
    sink.end(f.end(stream, n))
    sink.close()

    length = client.xlen(key)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default): at least maxlen stay, far fewer than n+2.
    assert maxlen <= length < n + 2 - 100
    entries = history(client, key)
    assert entries[-1] == (f"{n}-{END_ENTRY_SEQ}", f.end(stream, n).to_json())
    frames = entries[:-1]
    seqs = [m["seq"] for _, m in frames]
    assert seqs == list(range(n - len(frames), n))  # the newest ones, in order, no gaps
    assert [entry_id for entry_id, _ in frames] == [f"{s + 1}-0" for s in seqs]  # frame s -> "{s+1}-0"
    assert all(parse_message(m) for _, m in entries)

    # A new run (start) deletes the previous run's history: ids start again at 1-0.
    sink2 = RedisSink(stream, url=redis_url, history_maxlen=maxlen)
    sink2.start(info(stream))
    sink2.status(StreamStatus(stream, "connecting", at=time.time(), seq=0))
    sink2.write(f.result(stream, 0, H, W, ()), None)
    sink2.end(f.end(stream, 1))
    sink2.close()
    assert [(i, m["type"]) for i, m in history(client, key)] == [
        ("0-1", "status"), ("1-0", "frame"), (f"1-{END_ENTRY_SEQ}", "end"),
    ]
    client.delete(key)
    client.close()


def test_no_history_key_by_default(redis_url: str) -> None:
    stream = unique("nohist")
    sink = RedisSink(stream, url=redis_url)
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W, ()), None)
    sink.close()  # Redis answers: close lets the buffer drain first
    assert sink.stats().published == 1 and sink.stats().undelivered == 0
    client = redis.Redis.from_url(redis_url)
    assert client.exists(f"masks:{stream}:history") == 0
    client.close()


def test_invalid_arguments() -> None:
    with pytest.raises(SinkError, match="non-empty"):
        RedisSink("", url="redis://localhost:6379/0")
    with pytest.raises(SinkError, match="invalid url"):
        RedisSink("cam1", url="http://nowhere")
    for bad in ({"history_maxlen": -1}, {"buffer_frames": 0}, {"retries": -1}, {"flush_timeout_s": -1.0},
                {"connect_timeout_s": 0.0}, {"max_backoff_s": 0.0}):
        with pytest.raises(SinkError, match=f"bad {next(iter(bad))}"):
            RedisSink("cam1", url="redis://localhost:6379/0", **bad)  # type: ignore[arg-type]


def test_password_is_redacted() -> None:
    assert redact_url("redis://user:secret@host:6380/1") == "redis://user:***@host:6380/1"
    assert redact_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    url = f"redis://:hunter2@127.0.0.1:{f.free_port()}/0"
    sink = RedisSink("cam1", url=url, retries=0, flush_timeout_s=0.2, **FAST)
    sink.write(f.result("cam1", 0, H, W), None)
    wait_until(lambda: sink.stats().outages == 1, what="the outage")
    (event,) = sink.take_events()
    sink.close()
    text = f"{event.reason} {sink.stats().last_error}"
    assert "hunter2" not in text and ":***@127.0.0.1" in text


# -- Redis unavailable ---------------------------------------------------------------


def test_unreachable_redis_never_blocks_and_reports() -> None:
    """Nothing listens: writes return at once, the outage is reported, end waits a bounded time, close counts."""
    port = f.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    sink = RedisSink("cam1", url=url, flush_timeout_s=0.5, **FAST)
    assert timed(lambda: sink.start(info("cam1"))) < PROMPT_S
    for i in range(20):
        assert timed(lambda: sink.write(f.result("cam1", i, H, W), None)) < PROMPT_S
    wait_until(lambda: sink.stats().outages == 1, what="the outage")
    (event,) = sink.take_events()
    assert event.state == "sink_unavailable" and event.actor == "redis" and event.stream_id == "cam1"
    assert "ConnectionError" in (event.reason or "") and f"127.0.0.1:{port}" in (event.reason or "")
    assert 0 <= event.seq <= 20
    t_end = timed(lambda: sink.end(f.end("cam1", 20)))
    assert 0.45 <= t_end < 1.5  # waited flush_timeout_s for Redis, then gave up waiting (no error)
    assert timed(sink.close) < 1.0  # during an outage close does not wait
    stats = sink.stats()
    # 20 frames + the end + the sink's own sink_unavailable event: none reached Redis, all are counted.
    assert (stats.published, stats.undelivered, stats.buffered, stats.outages) == (0, 22, 0, 1)
    assert stats.last_error is not None and "ConnectionError" in stats.last_error


def test_outage_then_back_every_message_arrives_in_order_exactly_once(server: RedisServer) -> None:
    stream = unique("outage")
    key = f"masks:{stream}:history"
    sink = RedisSink(stream, url=server.url, history_maxlen=1000, buffer_frames=100, **FAST)
    sink.start(info(stream))
    for i in range(5):
        sink.write(f.result(stream, i, H, W, ()), None)
    wait_until(lambda: sink.stats().frames_published == 5, what="the first frames")
    server.stop()
    t_down = time.monotonic()
    for i in range(5, 25):
        assert timed(lambda: sink.write(f.result(stream, i, H, W, ()), None)) < PROMPT_S
        if i == 15:
            sink.status(StreamStatus(stream, "stalled", at=time.time(), seq=16, reason="no frame for 5 s"))
    wait_until(lambda: sink.stats().outages == 1, what="the outage")
    assert sink.stats().buffered >= 20 and sink.stats().published == 5
    server.start()
    sink.end(f.end(stream, 25))
    t_back = time.monotonic()
    stats = sink.stats()
    assert (stats.buffered, stats.undelivered, stats.outages, stats.frames_published) == (0, 0, 1, 25)
    events = sink.take_events()
    assert [e.state for e in events] == ["sink_unavailable", "sink_recovered"]
    recovered = events[1]
    assert recovered.lost == 0 and recovered.actor == "redis"
    assert recovered.downtime_s is not None and 0 < recovered.downtime_s <= t_back - t_down + 0.1
    sink.close()

    with server.client() as client:
        entries = history(client, key)
    kinds = [(m["type"], m.get("seq"), m.get("state")) for _, m in entries]
    ids = [entry_id for entry_id, _ in entries]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))  # ids increase
    frames = [m["seq"] for _, m in entries if m["type"] == "frame"]
    assert frames == list(range(25))  # every frame, in order, exactly once (the AOF kept 0-4 over the restart)
    assert kinds[-1][0] == "end" and ids[-1] == f"25-{END_ENTRY_SEQ}"
    statuses = [(m["state"], m["seq"]) for _, m in entries if m["type"] == "status"]
    assert [s for s, _ in statuses] == ["sink_unavailable", "sink_recovered", "stalled"]
    assert kinds.index(("status", 16, "stalled")) == kinds.index(("frame", 15, None)) + 1
    # The sink's own events come right after the last frame that was attempted before the outage.
    unavailable_at = kinds.index(("status", statuses[0][1], "sink_unavailable"))
    assert kinds[unavailable_at + 1][2] == "sink_recovered"
    assert kinds[unavailable_at - 1] == ("frame", statuses[0][1] - 1, None)
    assert all(e.seq == statuses[0][1] for e in events)


def test_buffer_overflow_drops_the_oldest_and_says_so(server: RedisServer) -> None:
    stream = unique("overflow")
    key = f"masks:{stream}:history"
    sink = RedisSink(stream, url=server.url, history_maxlen=1000, buffer_frames=10, **FAST)
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W, ()), None)
    wait_until(lambda: sink.stats().frames_published == 1, what="frame 0")
    server.stop()
    sink.write(f.result(stream, 1, H, W, ()), None)
    wait_until(lambda: sink.stats().outages == 1, what="the outage")
    for i in range(2, 26):  # 25 frames in all into a buffer of 10 while Redis is down
        sink.write(f.result(stream, i, H, W, ()), None)
    assert sink.stats().buffered <= 11  # 10 waiting, plus at most the one being sent
    server.start()
    sink.end(f.end(stream, 26))
    stats = sink.stats()
    assert stats.undelivered == 15 and stats.buffered == 0 and stats.outages == 1
    events = sink.take_events()
    assert [e.state for e in events] == ["sink_unavailable", "sink_recovered"]
    assert events[1].lost == 15
    sink.close()
    with server.client() as client:
        entries = history(client, key)
    frames = [m["seq"] for _, m in entries if m["type"] == "frame"]
    assert frames[0] == 0 and len(frames) == 1 + 10 and frames == sorted(frames) and frames[-1] == 25
    assert frames[-9:] == list(range(17, 26))  # the newest survive (the oldest of the ten may be one in flight)
    assert [m["state"] for _, m in entries if m["type"] == "status"] == ["sink_unavailable", "sink_recovered"]
    recovered = next(m for _, m in entries if m.get("state") == "sink_recovered")
    assert recovered["lost"] == 15 and entries[-1][1]["type"] == "end"


def test_hung_server_never_blocks_the_writer_and_close_is_bounded(server: RedisServer) -> None:
    stream = unique("hung")
    sink = RedisSink(stream, url=server.url, flush_timeout_s=0.5, connect_timeout_s=0.5, retries=0, max_backoff_s=0.2)
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W, ()), None)
    wait_until(lambda: sink.stats().published == 1, what="frame 0")
    server.pause()
    try:
        t0 = time.monotonic()
        for i in range(1, 11):
            sink.write(f.result(stream, i, H, W, ()), None)
        assert time.monotonic() - t0 < 0.5  # less than one blocked attempt for all ten
        assert timed(lambda: sink.end(f.end(stream, 11))) < 1.5
        t_close = timed(sink.close)
        assert t_close < 3.0
    finally:
        server.cont()
    stats = sink.stats()
    assert stats.published == 1 and stats.buffered == 0 and stats.undelivered >= 10  # 10 frames + the end (+ event)


def test_refused_message_is_reported_not_retried(redis_url: str) -> None:
    """A history key of the wrong type: each message is refused once, counted and reported; a later one goes through."""
    stream = unique("wrongtype")
    key = f"masks:{stream}:history"
    client = redis.Redis.from_url(redis_url)
    sink = RedisSink(stream, url=redis_url, history_maxlen=5, **FAST)
    sink.start(info(stream))
    sink.write(f.result(stream, 0, H, W, ()), None)
    wait_until(lambda: sink.stats().frames_published == 1, what="frame 0")
    client.delete(key)
    client.set(key, "not a stream")
    sink.write(f.result(stream, 1, H, W, ()), None)
    sink.write(f.result(stream, 2, H, W, ()), None)
    # frame 1, the sink_unavailable event, frame 2: refused at once, not retried.
    wait_until(lambda: sink.stats().undelivered == 3, timeout_s=5, what="the refusals")
    stats = sink.stats()
    assert stats.buffered == 0 and stats.outages == 1 and stats.last_error is not None and "WRONGTYPE" in stats.last_error
    (unavailable,) = sink.take_events()
    assert unavailable.state == "sink_unavailable" and "WRONGTYPE" in (unavailable.reason or "")
    client.delete(key)
    sink.write(f.result(stream, 3, H, W, ()), None)
    sink.end(f.end(stream, 4))
    sink.close()
    (recovered,) = sink.take_events()
    assert recovered.state == "sink_recovered" and recovered.lost == 3
    # The recovery shows when frame 3 goes through: sink_recovered follows it.
    assert [(m["type"], m.get("seq"), m.get("state")) for _, m in history(client, key)] == [
        ("frame", 3, None), ("status", 4, "sink_recovered"), ("end", None, None),
    ]
    client.delete(key)
    client.close()


# -- exactly once across retries and restarts -------------------------------------------------


def test_resume_returns_the_next_seq_and_repeats_are_not_published(redis_url: str) -> None:
    stream = unique("resume")
    key = f"masks:{stream}:history"
    ps = subscribe(redis_url, f"masks:{stream}")
    first = RedisSink(stream, url=redis_url, history_maxlen=100)
    first.start(info(stream))
    for i in range(10):
        first.write(f.result(stream, i, H, W, ()), None)
    first.status(StreamStatus(stream, "stalled", at=time.time(), seq=10))
    first.close()  # the owner dies here (its buffer was drained)

    pubsub_only = RedisSink(stream, url=redis_url)
    assert pubsub_only.resume(info(stream)) is None  # pub/sub alone cannot know
    pubsub_only.close()

    second = RedisSink(stream, url=redis_url, history_maxlen=100)
    assert second.resume(info(stream)) == 10
    second.status(StreamStatus(stream, "restarted", at=time.time(), seq=10, actor="output"))
    for i in range(5, 15):  # 5-9 again: a restarted owner that went back further than needed
        second.write(f.result(stream, i, H, W, ()), None)
    second.end(f.end(stream, 15))
    second.close()
    assert second.stats().repeats == 5 and second.stats().frames_published == 5

    third = RedisSink(stream, url=redis_url, history_maxlen=100)  # the owner died after the end was out
    assert third.resume(info(stream)) == 15
    third.end(f.end(stream, 15))
    third.close()
    assert third.stats().repeats == 1 and third.stats().published == 0

    published = collect(ps)
    ps.close()
    with redis.Redis.from_url(redis_url) as client:
        entries = history(client, key)
        client.delete(key)
    for messages in ([m for _, m in entries], published):
        assert [m["seq"] for m in messages if m["type"] == "frame"] == list(range(15))
        assert [(m["state"], m["seq"]) for m in messages if m["type"] == "status"] == [("stalled", 10), ("restarted", 10)]
        assert [m["type"] for m in messages].count("end") == 1
    assert [i for i, _ in entries][9:12] == ["10-0", "10-1", "10-2"]


def test_retry_after_a_timeout_is_not_appended_twice(tmp_path: Path) -> None:
    """The server executes a command after the client gave up waiting for it: the retry must be skipped."""
    srv = RedisServer(tmp_path, "--enable-debug-command", "yes")
    try:
        stream = unique("timeout")
        key = f"masks:{stream}:history"
        sink = RedisSink(stream, url=srv.url, history_maxlen=100, connect_timeout_s=0.2, retries=1, max_backoff_s=0.2)
        sink.start(info(stream))
        sink.write(f.result(stream, 0, H, W, ()), None)
        wait_until(lambda: sink.stats().frames_published == 1, what="frame 0")
        blocker = srv.client()
        sleeper = threading.Thread(target=lambda: blocker.execute_command("DEBUG", "SLEEP", "1.0"), daemon=True)
        sleeper.start()
        time.sleep(0.1)  # the server is asleep: what is sent now is executed after the client timed out
        for i in range(1, 4):
            sink.write(f.result(stream, i, H, W, ()), None)
        sink.end(f.end(stream, 4))
        sleeper.join(timeout=5)
        blocker.close()
        stats = sink.stats()
        sink.close()
        assert stats.buffered == 0 and stats.undelivered == 0 and stats.repeats >= 1
        with srv.client() as client:
            entries = history(client, key)
        assert [m["seq"] for _, m in entries if m["type"] == "frame"] == [0, 1, 2, 3]
        assert [m["type"] for _, m in entries].count("end") == 1
    finally:
        srv.stop()


def test_pubsub_through_a_hung_server_subscriber_gets_each_frame_once(server: RedisServer) -> None:
    """Pub/sub only: commands that timed out are executed when the server wakes up, then sent again: the
    subscriber (connected all along) sees each frame once, in order, with the outage events between them."""
    stream = unique("pubsub")
    with Subscriber(server.url, [stream], idle_timeout_s=10) as sub:
        sink = RedisSink(stream, url=server.url, connect_timeout_s=0.3, retries=0, max_backoff_s=0.2)
        sink.start(info(stream))
        for i in range(3):
            sink.write(f.result(stream, i, H, W, ()), None)
        wait_until(lambda: sink.stats().frames_published == 3, what="the first frames")
        server.pause()
        try:
            for i in range(3, 10):
                sink.write(f.result(stream, i, H, W, ()), None)
            wait_until(lambda: sink.stats().outages == 1, what="the outage")
        finally:
            server.cont()
        sink.end(f.end(stream, 10))
        sink.close()
        items = list(sub)
    frames = [it.seq for it in items if isinstance(it, ReceivedFrame)]
    assert frames == list(range(10))
    states = [it.state for it in items if isinstance(it, StreamStatus)]
    assert states == ["sink_unavailable", "sink_recovered"]
    assert items[-1] == f.end(stream, 10) and sink.stats().undelivered == 0
    # The PUBLISH that timed out was executed when the server woke up, and sent again: dropped by the subscriber.
    assert sub.repeats >= 1
