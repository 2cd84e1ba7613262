"""JsonlSink: lines equal the Redis messages, survive a crash, refuse unsafe stream ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from pipeline.errors import SinkError
from pipeline.messages import FrameMessage, StreamEnd, StreamInfo, StreamStatus, parse_message
from pipeline.sinks import JsonlSink, RedisSink, Sink
from tests.pipeline.sinks import factories as f
from tests.pipeline.sinks.factories import collect, subscribe

H, W = 48, 64
REPO = Path(__file__).resolve().parents[3]


def info(stream_id: str) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, width=W, height=H, fps=25.0, total_frames=12, live=False)


def test_lines_equal_redis_messages(redis_url: str, tmp_path: Path) -> None:
    stream = f"cam-{uuid.uuid4().hex[:8]}"
    ps = subscribe(redis_url, f"masks:{stream}")
    sinks = [RedisSink(stream, url=redis_url), JsonlSink(stream, directory=tmp_path / "out")]
    assert all(isinstance(s, Sink) for s in sinks) and not sinks[1].needs_image
    for s in sinks:
        s.start(info(stream))
    results = [f.result(stream, i, H, W) for i in range(12)]
    results.append(f.result(stream, 12, H, W, (), error="inference failed: CUDA OOM"))
    for r in results:
        for s in sinks:
            s.write(r, None)
    for s in sinks:
        s.end(f.end(stream, len(results)))
        s.close()
    redis_messages = collect(ps)
    ps.close()

    lines = (tmp_path / "out" / f"{stream}.jsonl").read_text(encoding="utf-8").splitlines()
    from_file = [json.loads(line) for line in lines]
    assert len(from_file) == len(results) + 1 == sinks[1].lines
    assert from_file == [{k: v for k, v in m.items() if k != "published_at"} for m in redis_messages]
    assert from_file[-1]["type"] == "end" and from_file[-2]["error"].startswith("inference failed")
    assert [parse_message(m).stream_id for m in from_file] == [stream] * len(from_file)


def test_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    sink = JsonlSink("cam1", directory=tmp_path)
    sink.start(info("cam1"))
    for i in range(3):
        sink.write(f.result("cam1", i, H, W), None)
        # Read through another handle while the sink is still open: each line is flushed.
        lines = (tmp_path / "cam1.jsonl").read_text().splitlines()
        assert [json.loads(line)["frame"] for line in lines] == list(range(i + 1))
    sink.close()
    sink.close()
    assert len((tmp_path / "cam1.jsonl").read_text().splitlines()) == 3  # close without end: no end line


def test_survives_a_crash(tmp_path: Path) -> None:
    """A process killed (os._exit, no close, no atexit) after writing keeps every line it wrote."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from pipeline.messages import StreamInfo
        from pipeline.sinks.jsonl_sink import JsonlSink
        from tests.pipeline.sinks import factories as f
        sink = JsonlSink("crashy", directory=Path({str(tmp_path)!r}))
        sink.start(StreamInfo("crashy", {W}, {H}, 25.0, None, True))
        for i in range(5):
            sink.write(f.result("crashy", i, {H}, {W}), None)
        os._exit(17)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 17, proc.stderr.decode()
    messages = [parse_message(json.loads(line)) for line in (tmp_path / "crashy.jsonl").read_text().splitlines()]
    assert [m.index for m in messages] == list(range(5))


@pytest.mark.parametrize("bad", ["", "../evil", "a/b", "a\\b", ".hidden", "..", "cam 1", "cam\n1", "x" * 129, "cam:1"])
def test_unsafe_stream_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SinkError) as exc_info:
        JsonlSink(bad, directory=tmp_path)
    assert "JsonlSink" in str(exc_info.value) and repr(bad) in str(exc_info.value)
    assert list(tmp_path.iterdir()) == []


def test_errors_name_stream_and_sink(tmp_path: Path) -> None:
    sink = JsonlSink("cam1", directory=tmp_path)
    with pytest.raises(SinkError, match=r"JsonlSink for stream 'cam1'.*start\(\) was not called"):
        sink.write(f.result("cam1", 0, H, W), None)
    blocker = tmp_path / "file"
    blocker.write_text("")
    bad_dir = JsonlSink("cam1", directory=blocker / "sub")  # parent is a file
    with pytest.raises(SinkError, match=r"JsonlSink for stream 'cam1': cannot open"):
        bad_dir.start(info("cam1"))
    sink.start(info("cam1"))
    sink.end(f.end("cam1", 0))
    with pytest.raises(SinkError, match="already ended"):
        sink.write(f.result("cam1", 1, H, W), None)
    assert json.loads((tmp_path / "cam1.jsonl").read_text())["type"] == "end"


def test_start_truncates_previous_run(tmp_path: Path) -> None:
    (tmp_path / "cam1.jsonl").write_text("old line\n")
    sink = JsonlSink("cam1", directory=tmp_path)
    sink.start(info("cam1"))
    sink.write(f.result("cam1", 0, H, W), None)
    sink.close()
    assert len((tmp_path / "cam1.jsonl").read_text().splitlines()) == 1


# ----------------------------------------------------------------------------------- status, resume, end alone


def status(stream_id: str, state: str, seq: int) -> StreamStatus:
    return StreamStatus(stream_id=stream_id, state=state, at=1_700_000_000.5, seq=seq, reason="test", actor="source")


def read_messages(path: Path) -> list:
    return [parse_message(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def test_status_events_are_lines_in_order(tmp_path: Path) -> None:
    sink = JsonlSink("cam1", directory=tmp_path)
    sink.start(info("cam1"))
    sink.write(f.result("cam1", 0, H, W), None)
    event = status("cam1", "reconnecting", 1)
    sink.status(event)
    sink.write(f.result("cam1", 1, H, W), None)
    sink.end(f.end("cam1", 2))
    sink.status(status("cam1", "live", 2))  # after the end: dropped, the end line stays last
    messages = read_messages(tmp_path / "cam1.jsonl")
    assert [type(m).__name__ for m in messages] == ["FrameMessage", "StreamStatus", "FrameMessage", "StreamEnd"]
    assert messages[1] == event and sink.lines == 4


def test_resume_cuts_a_torn_line_and_returns_the_next_seq(tmp_path: Path) -> None:
    first = JsonlSink("cam1", directory=tmp_path)
    first.start(info("cam1"))
    for i in range(3):
        first.write(f.result("cam1", i, H, W), None)
    first.status(status("cam1", "stalled", 3))  # a status after the last frame: not a frame line
    first.close()
    path = tmp_path / "cam1.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"type":"frame","v":1,"stream":"cam1","frame":3,"se')  # the process died mid-line
    second = JsonlSink("cam1", directory=tmp_path)
    assert second.resume(info("cam1")) == 3 and not second.ended
    assert path.read_bytes().endswith(b"}\n")
    second.write(f.result("cam1", 3, H, W), None)
    second.end(f.end("cam1", 4))
    messages = read_messages(path)
    assert [m.seq for m in messages if isinstance(m, FrameMessage)] == [0, 1, 2, 3]
    assert [type(m).__name__ for m in messages][-3:] == ["StreamStatus", "FrameMessage", "StreamEnd"]
    assert second.lines == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, 0),  # no file: created
        (b"", 0),
        (b'{"type":"fr', 0),  # only a torn line: cut to nothing
        (b'{"type":"status","v":1,"stream":"cam1","state":"connecting","at":1.0,"seq":0}\n', 0),
    ],
)
def test_resume_without_frame_lines_returns_zero(tmp_path: Path, content: bytes | None, expected: int) -> None:
    path = tmp_path / "out" / "cam1.jsonl"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    sink = JsonlSink("cam1", directory=tmp_path / "out")
    assert sink.resume(info("cam1")) == expected
    assert path.is_file() and not path.read_bytes().endswith(b"fr")
    sink.write(f.result("cam1", 0, H, W), None)
    sink.close()
    assert [type(m).__name__ for m in read_messages(path)][-1] == "FrameMessage"


def test_resume_scans_back_across_chunks(tmp_path: Path) -> None:
    """The last frame line behind more than a chunk (64 KiB) of status lines; a torn line longer than a chunk."""
    sink = JsonlSink("cam1", directory=tmp_path)
    sink.start(info("cam1"))
    for i in range(40):
        sink.write(f.result("cam1", i, H, W), None)
    for _ in range(800):  # about 120 bytes each: over 90 KB after the last frame line
        sink.status(status("cam1", "stalled", 40))
    sink.close()
    path = tmp_path / "cam1.jsonl"
    complete = path.read_bytes()
    assert len(complete) - complete.rindex(b'{"type":"frame"') > 64 * 1024  # more than one chunk of status lines
    with open(path, "ab") as fh:
        fh.write(b'{"type":"frame","x":"' + b"a" * 100_000)  # torn, with no newline for 100 KB
    again = JsonlSink("cam1", directory=tmp_path)
    assert again.resume(info("cam1")) == 40
    again.close()
    assert path.read_bytes() == complete


def test_resume_of_an_ended_file_refuses_frames_and_keeps_the_file(tmp_path: Path) -> None:
    first = JsonlSink("cam1", directory=tmp_path)
    first.start(info("cam1"))
    for i in range(5):
        first.write(f.result("cam1", i, H, W), None)
    first.end(f.end("cam1", 5))
    path = tmp_path / "cam1.jsonl"
    before = path.read_bytes()

    again = JsonlSink("cam1", directory=tmp_path)
    assert again.resume(info("cam1")) == 5 and again.ended
    with pytest.raises(SinkError, match=r"JsonlSink for stream 'cam1': cannot write frame 5: the stream already ended"):
        again.write(f.result("cam1", 5, H, W), None)
    again.status(status("cam1", "restarted", 5))  # dropped
    again.end(f.end("cam1", 6))  # no second end line
    again.close()
    assert path.read_bytes() == before


def test_resume_refuses_a_file_that_is_not_messages(tmp_path: Path) -> None:
    (tmp_path / "cam1.jsonl").write_text('{"type":"frame"}\nnot json\n', encoding="utf-8")
    sink = JsonlSink("cam1", directory=tmp_path)
    with pytest.raises(SinkError, match=r"JsonlSink for stream 'cam1': cannot resume .*not a valid message"):
        sink.resume(info("cam1"))
    sink.start(info("cam1"))  # a new run may still replace it
    with pytest.raises(SinkError, match="already open"):
        sink.resume(info("cam1"))
    sink.close()
    with pytest.raises(SinkError, match="closed"):
        sink.resume(info("cam1"))


def test_end_without_start_replaces_the_previous_run(tmp_path: Path) -> None:
    previous = JsonlSink("cam1", directory=tmp_path)
    previous.start(info("cam1"))
    for i in range(3):
        previous.write(f.result("cam1", i, H, W), None)
    previous.end(f.end("cam1", 3))  # a complete-looking file from the previous run

    failed = JsonlSink("cam1", directory=tmp_path)
    failed.end(StreamEnd(stream_id="cam1", frames=0, error="cannot open rtsp://cam: timeout"))
    failed.close()
    messages = read_messages(tmp_path / "cam1.jsonl")
    assert len(messages) == 1 and isinstance(messages[0], StreamEnd) and messages[0].error.startswith("cannot open")

    fresh = JsonlSink("cam2", directory=tmp_path / "new")  # no previous file, no directory yet
    fresh.end(StreamEnd(stream_id="cam2", frames=0, error="boom"))
    assert [m.error for m in read_messages(tmp_path / "new" / "cam2.jsonl")] == ["boom"]
