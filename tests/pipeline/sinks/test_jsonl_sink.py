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
from pipeline.messages import StreamInfo, parse_message
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
