"""Faults outside the actors, through the whole pipeline: Redis stopped and restarted, a camera restarted 3 times.

Real local Ray, a real redis-server of the test's own (stopped and started on the same port), a
real GStreamer RTSP server (killed and started again), a real Mask R-CNN (compact, random weights).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rich.console import Console

from actors.graph import PipelineRunner
from pipeline.client import read_jsonl
from pipeline.config import parse_config
from pipeline.messages import FrameMessage, StreamEnd, StreamStatus, parse_message
from tests.conftest import free_port
from tests.pipeline.sources.test_sources_reconnect import RestartableRtspServer
from tests.pipeline.sources.test_sources_rtsp import gst_rtsp_available, write_camera_video  # noqa: F401
from tests.pipeline.sources.videos import write_video

MODEL = {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"], "score_threshold": 0.0,
         "max_detections": 3, "min_size": 96, "max_size": 128, "device": "cpu"}


def base_config(tmp_path: Path, streams: list[dict[str, Any]], sinks: dict[str, Any]) -> Any:
    return parse_config({
        "streams": streams,
        "model": MODEL,
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"duplicate_mask_iou_threshold": None},
        "backpressure": {"max_in_flight_per_stream": 8},
        "sinks": sinks,
        "supervision": {"probe_interval_s": 0.5},
        "run": {"status_interval_s": 1, "drain_timeout_s": 120, "progress": False},
    })


def frame_lines(path: Path) -> int:
    return sum(1 for line in path.open() if '"type":"frame"' in line) if path.exists() else 0


def wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


class RedisServer:
    """A redis-server of this test's own on a fixed port, with an append-only file so that a restart keeps data."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: bash deploy/install.sh --test installs it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        if not wait_for(lambda: self._pings(client), 10):
            raise RuntimeError(f"redis-server did not start on port {self.port}")

    @staticmethod
    def _pings(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def test_redis_down_for_seconds_loses_nothing_and_holds_nothing_up(ray_session: None, tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    n = 90
    video = write_video(tmp_path / "a.mp4", num_frames=n, width=128, height=96, fps=25)
    config = base_config(tmp_path, [{"id": "a", "url": str(video)}], {
        "jsonl": {"dir": str(tmp_path / "out")},
        "redis": {"url": server.url, "channel": "faults:{stream}", "history_maxlen": 1000},
    })
    jsonl = tmp_path / "out" / "a.jsonl"
    outage: dict[str, int] = {}

    def take_redis_down() -> None:
        wait_for(lambda: frame_lines(jsonl) >= 10, 180)
        server.stop()
        outage["before"] = frame_lines(jsonl)
        time.sleep(3.0)  # the outage itself
        outage["during"] = frame_lines(jsonl) - outage["before"]
        server.start()

    thread = threading.Thread(target=take_redis_down, daemon=True)
    thread.start()
    try:
        report = PipelineRunner(config, console=Console(stderr=True, width=160)).run()
        thread.join(timeout=30)
        client = redis.Redis(port=server.port)
        history = [parse_message(json.loads(f[b"json"])) for _, f in client.xrange("faults:a:history")]
    finally:
        server.stop()
    assert outage.get("before", n) < n, "Redis went down after the stream had ended"
    assert outage["during"] > 0, "publishing to the other sinks stopped while Redis was down"
    assert report.exit_code == 0, [s.error for s in report.summaries]
    (summary,) = report.summaries
    assert summary.published == n and summary.undelivered == 0
    assert [m.seq for m in history if isinstance(m, FrameMessage)] == list(range(n))
    assert isinstance(history[-1], StreamEnd) and history[-1].frames == n
    events = [m for m in read_jsonl(jsonl) if isinstance(m, StreamStatus)]
    assert [e.state for e in events] == ["sink_unavailable", "sink_recovered"]
    assert all(e.actor == "redis" for e in events) and events[1].lost == 0 and (events[1].downtime_s or 0) >= 2.0
    redis_events = [m.state for m in history if isinstance(m, StreamStatus)]
    assert redis_events == ["sink_unavailable", "sink_recovered"]
    assert [m.seq for m in read_jsonl(jsonl) if isinstance(m, FrameMessage)] == list(range(n))


def test_camera_restarted_three_times_reconnects_in_order(ray_session: None, gst_rtsp_available: None,  # noqa: F811
                                                          tmp_path: Path) -> None:
    server = RestartableRtspServer(write_camera_video(tmp_path / "camera.mp4", 250), free_port(), tmp_path)
    server.start()
    config = base_config(tmp_path, [{
        "id": "cam", "url": server.url, "open_timeout_s": 3, "read_timeout_s": 2, "stall_timeout_s": 2,
        "reconnect": {"initial_s": 0.2, "max_s": 1.0},
    }], {"jsonl": {"dir": str(tmp_path / "out")}})
    runner = PipelineRunner(config, console=Console(stderr=True, width=160))
    jsonl = tmp_path / "out" / "cam.jsonl"
    restarts: list[int] = []

    def restart_camera_three_times() -> None:
        try:
            for _ in range(3):
                seen = frame_lines(jsonl)
                wait_for(lambda s=seen: frame_lines(jsonl) >= s + 5, 120)
                server.kill()
                time.sleep(1.0)  # the camera is off
                server.start()
                restarts.append(frame_lines(jsonl))
            seen = frame_lines(jsonl)
            wait_for(lambda: frame_lines(jsonl) >= seen + 5, 120)
        finally:
            runner.request_stop()

    thread = threading.Thread(target=restart_camera_three_times, daemon=True)
    thread.start()
    try:
        report = runner.run()
        thread.join(timeout=30)
    finally:
        server.shutdown()
    assert len(restarts) == 3
    assert report.exit_code == 0, [s.error for s in report.summaries]
    (summary,) = report.summaries
    assert summary.reconnects == 3
    messages = list(read_jsonl(jsonl))
    frames = [m for m in messages if isinstance(m, FrameMessage)]
    assert [m.seq for m in frames] == list(range(len(frames)))
    indexes = [m.index for m in frames]
    assert indexes == sorted(set(indexes)), "frame indices must strictly increase across reconnects"
    states = [m.state for m in messages if isinstance(m, StreamStatus)]
    assert states.count("recovered") == 3 and states[:2] == ["connecting", "live"], states
    # each recovery is preceded by its reconnect attempts, and frames arrive between the recoveries
    order = [("F" if isinstance(m, FrameMessage) else m.state[0]) for m in messages if not isinstance(m, StreamEnd)]
    assert "".join(order).count("rF") == 3
    assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == len(frames)
