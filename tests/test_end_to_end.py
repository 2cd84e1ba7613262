"""The whole product through ``maskstream run``: real Ray, real redis-server, real videos, a real Mask R-CNN.

The model is the compact Mask R-CNN with random weights at a small input size, with the score
threshold at 0 so that random weights still give instances (5 per frame at most).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pycocotools import mask as mask_util

from pipeline.client import Subscriber, read_jsonl
from pipeline.messages import FrameMessage, StreamEnd
from tests.pipeline.sources.videos import count_frames, write_video

REPO = Path(__file__).resolve().parents[1]


def small_model() -> dict[str, Any]:
    return {
        "arch": "maskrcnn_compact",
        "weights": None,
        "class_names": ["background", "thing", "stuff"],
        "score_threshold": 0.0,
        "max_detections": 5,
        "min_size": 120,
        "max_size": 200,
        "device": "cpu",
    }


def write_config(tmp_path: Path, streams: list[dict[str, Any]], redis_url: str, **extra: Any) -> Path:
    config = {
        "ray": {"num_cpus": 2},
        "streams": streams,
        "model": small_model(),
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        # Random weights score low: thresholds at 0 so that every instance is tracked. Their masks pile up on
        # each other, so the duplicate rule (which would leave some untracked, run to run) is off here.
        "tracking": {"high_score_threshold": 0.0, "low_score_threshold": 0.0, "new_track_score_threshold": 0.0,
                     "duplicate_mask_iou_threshold": None},
        "sinks": {
            "redis": {"url": redis_url, "channel": "test:{stream}"},
            "video": {"dir": str(tmp_path / "out")},
            "jsonl": {"dir": str(tmp_path / "out")},
        },
        "run": {"status_interval_s": 2, "drain_timeout_s": 120},
        **extra,
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(config: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", str(config), "--no-progress", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s,
    )


class Collector:
    """Subscribes before the run starts and keeps every message, per stream."""

    def __init__(self, redis_url: str, streams: list[str]) -> None:
        self.subscriber = Subscriber(redis_url, streams, channel="test:{stream}", idle_timeout_s=240)
        self.items: dict[str, list[Any]] = {s: [] for s in streams}
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        for item in self.subscriber:
            self.items[item.stream_id].append(item)

    def finish(self, timeout_s: float = 30) -> dict[str, list[Any]]:
        self.thread.join(timeout=timeout_s)
        self.subscriber.close()
        return self.items


def frame_of(item: Any) -> FrameMessage:
    return item.message


def test_two_file_streams_through_all_sinks(tmp_path: Path, redis_url: str) -> None:
    videos = {
        "small": (write_video(tmp_path / "small.mp4", width=160, height=120, fps=25, num_frames=12), 12, (160, 120)),
        "wide": (write_video(tmp_path / "wide.mkv", width=224, height=128, fps=15, num_frames=9), 9, (224, 128)),
    }
    config = write_config(tmp_path, [{"id": sid, "url": str(v[0])} for sid, v in videos.items()], redis_url)
    collector = Collector(redis_url, list(videos))
    result = run_cli(config)
    items = collector.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "maskstream run summary" in result.stderr

    for sid, (path, n_frames, (width, height)) in videos.items():
        got = items[sid]
        # every frame exactly once, in order, then the end message
        assert isinstance(got[-1], StreamEnd) and got[-1].frames == n_frames and got[-1].error is None
        frames = [frame_of(i) for i in got[:-1]]
        assert [f.index for f in frames] == list(range(n_frames))
        assert [f.seq for f in frames] == list(range(n_frames))
        for f in frames:
            assert (f.width, f.height) == (width, height)
            assert f.error is None
            assert 0 < len(f.instances) <= 5
            for inst in f.instances:
                assert inst.track_id is not None, f"frame {f.index} of {sid}: an instance has no track id"
                decoded = mask_util.decode(inst.mask.to_coco())
                assert decoded.shape == (height, width)
                x1, y1, x2, y2 = inst.box
                assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        # the pts follow the input's frame rate
        fps = 25 if sid == "small" else 15
        np.testing.assert_allclose([f.pts_s for f in frames], np.arange(n_frames) / fps, atol=1e-3)

        # the annotated video has the input's frame count and size
        assert count_frames(tmp_path / "out" / f"{sid}.mp4") == (n_frames, width, height)

        # the JSON Lines hold the same messages as Redis
        lines = list(read_jsonl(tmp_path / "out" / f"{sid}.jsonl"))
        assert isinstance(lines[-1], StreamEnd) and lines[-1].frames == n_frames
        strip = lambda m: {k: v for k, v in m.raw.items() if k != "published_at"}  # noqa: E731
        assert [strip(m) for m in lines[:-1]] == [strip(f) for f in frames]


def test_bad_inputs_fail_alone_with_clear_errors(tmp_path: Path, redis_url: str) -> None:
    good = write_video(tmp_path / "good.mp4", width=160, height=120, fps=25, num_frames=8)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n" * 50)
    full = write_video(tmp_path / "full.mkv", width=160, height=120, fps=25, num_frames=60)
    truncated = tmp_path / "truncated.mkv"
    data = full.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.6)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    streams = [
        {"id": "good", "url": str(good)},
        {"id": "notvideo", "url": str(not_video)},
        {"id": "truncated", "url": str(truncated)},
        # A camera is retried (reconnect) until give_up_after_s: here it gives up after 2 s.
        {"id": "unreachable", "url": f"rtsp://127.0.0.1:{closed_port}/cam", "open_timeout_s": 2, "read_timeout_s": 2,
         "reconnect": {"give_up_after_s": 2}},
    ]
    config = write_config(tmp_path, streams, redis_url)
    collector = Collector(redis_url, [s["id"] for s in streams])
    result = run_cli(config)
    items = collector.finish()
    assert result.returncode == 1, result.stderr[-3000:]
    err = result.stderr

    # the good stream is complete
    assert isinstance(items["good"][-1], StreamEnd) and items["good"][-1].error is None
    assert [frame_of(i).index for i in items["good"][:-1]] == list(range(8))
    assert count_frames(tmp_path / "out" / "good.mp4")[0] == 8

    # each bad stream: an end message with its own error, and the error on the console naming the stream
    for sid in ("notvideo", "truncated", "unreachable"):
        end = items[sid][-1]
        assert isinstance(end, StreamEnd) and end.error, f"{sid}: {items[sid][-1:]}"
        assert sid in end.error
        assert sid in err
    # what the truncated file held before the damage was processed and published, in order
    truncated_frames = [frame_of(i).index for i in items["truncated"][:-1]]
    assert 0 < len(truncated_frames) < 60
    assert truncated_frames == list(range(len(truncated_frames)))
    assert items["truncated"][-1].frames == len(truncated_frames)


def test_invalid_config_stops_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("streams:\n  - {id: cam1, url: a.mp4}\n  - {id: cam2}\ninference: {max_batch_size: 0}\n")
    result = run_cli(config, timeout_s=60)
    assert result.returncode == 2
    assert "streams[1].url: required key is missing" in result.stderr
    assert "inference.max_batch_size: 0 is not valid" in result.stderr
    assert "Ray" not in result.stderr  # refused before Ray was started


def test_sigterm_finishes_frames_in_flight_and_closes_outputs(tmp_path: Path, redis_url: str) -> None:
    import signal
    import time

    streams = [{"id": "cam", "url": "synthetic:seed=5&size=160x120&fps=10&frames=0", "realtime": True}]
    config = write_config(tmp_path, streams, redis_url)
    collector = Collector(redis_url, ["cam"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(config), "--no-progress"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    jsonl = tmp_path / "out" / "cam.jsonl"
    deadline = time.monotonic() + 240
    while (not jsonl.exists() or sum(1 for _ in jsonl.open()) < 3) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=240)
    items = collector.finish()
    assert proc.returncode == 0, stderr[-3000:]
    assert "SIGTERM: stopping the sources" in stderr
    frames = [frame_of(i) for i in items["cam"][:-1]]
    end = items["cam"][-1]
    assert isinstance(end, StreamEnd) and end.error is None and end.frames == len(frames) >= 3
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert count_frames(tmp_path / "out" / "cam.mp4")[0] == len(frames)
    assert sum(1 for _ in jsonl.open()) == len(frames) + 1
