"""Chaos: SIGKILL one actor's worker process mid-stream; every frame of every file stream arrives exactly once.

Held to Ray's own chaos tests (every sequence number arrives while processes die) with one step
more: no duplicates. Real local Ray, real H.264 files, a real redis-server with a history stream,
a real Mask R-CNN (compact, random weights); the process is found through Ray's state API and
killed with SIGKILL, like an out-of-memory kill.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rich.console import Console

from actors.graph import PipelineRunner, RunReport
from pipeline.client import read_jsonl
from pipeline.config import parse_config
from pipeline.messages import FrameMessage, StreamEnd, StreamStatus, parse_message
from pipeline.sinks import segment_paths
from tests.pipeline.sources.videos import count_frames, write_video

FRAMES = {"a": 60, "b": 45}
# Kill once stream a has published this many frames: mid-stream, with frames in flight.
KILL_AFTER_FRAMES = 12


def chaos_config(tmp_path: Path, redis_url: str) -> Any:
    streams = []
    for sid, n in FRAMES.items():
        path = write_video(tmp_path / f"{sid}.mp4", num_frames=n, width=128, height=96, fps=25)
        streams.append({"id": sid, "url": str(path)})
    raw = {
        "streams": streams,
        "model": {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"],
                  "score_threshold": 0.0, "max_detections": 3, "min_size": 96, "max_size": 128, "device": "cpu"},
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"high_score_threshold": 0.0, "low_score_threshold": 0.0, "new_track_score_threshold": 0.0,
                     "duplicate_mask_iou_threshold": None},
        "backpressure": {"max_in_flight_per_stream": 8},
        "sinks": {
            "jsonl": {"dir": str(tmp_path / "out")},
            "video": {"dir": str(tmp_path / "out")},
            "redis": {"url": redis_url, "channel": f"chaos-{tmp_path.name}:{{stream}}", "history_maxlen": 1000},
        },
        "supervision": {"max_restarts": 3, "probe_interval_s": 0.5},
        "run": {"status_interval_s": 1, "drain_timeout_s": 120, "progress": False},
    }
    return parse_config(raw)


def frame_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.open() if '"type":"frame"' in line)


def actor_pid(kind: str, stream_id: str) -> int | None:
    """The pid of the live actor of this kind (per-stream kinds: the one of ``stream_id``), from Ray's actor
    table in the GCS (``ray.util.state`` needs the dashboard, which these runs do not start)."""
    import ray._private.state

    classes = {"source": "SourceWorker", "output": "OutputWorker", "dispatcher": "Dispatcher",
               "inference": "InferenceWorker"}
    for actor in ray._private.state.actors().values():
        if actor["State"] != "ALIVE" or actor["ActorClassName"] != classes[kind]:
            continue
        if kind in ("source", "output") and not actor["Name"].endswith(f":{kind}:{stream_id}"):
            continue
        return int(actor["Pid"])
    return None


def kill_when_published(kind: str, jsonl: Path, killed: dict[str, Any]) -> None:
    deadline = time.monotonic() + 180
    while frame_lines(jsonl) < KILL_AFTER_FRAMES and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = actor_pid(kind, "a")
    if pid is not None and pid != os.getpid():
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid
        killed["at_frames"] = frame_lines(jsonl)


def history(redis_url: str, channel: str) -> list[dict[str, Any]]:
    import json

    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(f"{channel}:history")
    return [json.loads(fields[b"json"]) for _, fields in entries]


@pytest.mark.parametrize("kind", ["source", "output", "dispatcher", "inference"])
def test_every_frame_is_published_exactly_once_across_a_kill(ray_session: None, redis_url: str, tmp_path: Path,
                                                               kind: str) -> None:
    config = chaos_config(tmp_path, redis_url)
    runner = PipelineRunner(config, console=Console(stderr=True, width=160))
    killed: dict[str, Any] = {}
    killer = threading.Thread(target=kill_when_published, args=(kind, tmp_path / "out" / "a.jsonl", killed),
                              daemon=True)
    killer.start()
    report: RunReport = runner.run()
    killer.join(timeout=10)
    assert killed.get("pid"), f"the {kind} actor was not found to kill"
    assert killed["at_frames"] < FRAMES["a"], "the kill came after the stream had ended"

    assert report.exit_code == 0, [s.error for s in report.summaries]
    assert {s.stream_id: s.published for s in report.summaries} == FRAMES
    for sid, n in FRAMES.items():
        messages = list(read_jsonl(tmp_path / "out" / f"{sid}.jsonl"))
        frames = [m for m in messages if isinstance(m, FrameMessage)]
        assert [m.seq for m in frames] == list(range(n)), f"stream {sid}: frames lost, repeated or out of order"
        assert [m.index for m in frames] == list(range(n))
        assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == n and messages[-1].error is None
        channel = f"chaos-{tmp_path.name}:{sid}"
        published = [parse_message(m) for m in history(redis_url, channel)]
        assert [m.seq for m in published if isinstance(m, FrameMessage)] == list(range(n)), f"Redis history of {sid}"
        assert isinstance(published[-1], StreamEnd)

    (restart,) = [r for r in report.restarts if r.old_pid == killed["pid"]]
    assert restart.actor.startswith(kind) and restart.lost == 0
    if kind in ("source", "output"):
        assert restart.stream_id == "a"
    a_events = [m for m in read_jsonl(tmp_path / "out" / "a.jsonl") if isinstance(m, StreamStatus)]
    assert [e.state for e in a_events] == ["restarted"] and a_events[0].actor == restart.actor
    assert next(s for s in report.summaries if s.stream_id == "a").restarts == 1
    # the annotated video stays playable: every segment opens and decodes (a restarted output writes the next
    # segment; one killed before its first 2 s fragment was empty and is replaced)
    segments = segment_paths(tmp_path / "out", "a")
    assert segments and all(count_frames(path)[0] > 0 for path in segments)
    if kind == "output":
        # The restarted output hands out track ids above every one already published: the file splits into the
        # frames the first incarnation wrote (up to a few past its checkpoint, which the second skips) and
        # the frames the second wrote, whose ids are all higher.
        boundary = a_events[0].seq
        frames = [m for m in read_jsonl(tmp_path / "out" / "a.jsonl") if isinstance(m, FrameMessage)]
        ids = [{i.track_id for i in m.instances if i.track_id is not None} for m in frames]

        def splits_at(k: int) -> bool:
            old, new = set().union(*ids[:k]), set().union(*ids[k:])
            return bool(old) and bool(new) and max(old) < min(new)

        assert any(splits_at(k) for k in range(boundary, boundary + 8 + 1)), "a track id was reused after the restart"


@pytest.mark.parametrize("kind", ["source", "output"])
def test_an_actor_out_of_restarts_fails_its_stream_alone(ray_session: None, redis_url: str, tmp_path: Path,
                                                         kind: str) -> None:
    config = chaos_config(tmp_path, redis_url)
    config = config.model_copy(update={"supervision": config.supervision.model_copy(update={"max_restarts": 0})})
    runner = PipelineRunner(config, console=Console(stderr=True, width=160))
    killed: dict[str, Any] = {}
    killer = threading.Thread(target=kill_when_published, args=(kind, tmp_path / "out" / "a.jsonl", killed),
                              daemon=True)
    killer.start()
    report = runner.run()  # returns: the driver does not die with the actor
    killer.join(timeout=10)
    assert killed.get("pid") and killed["at_frames"] < FRAMES["a"]

    assert report.exit_code == 1
    a, b = (next(s for s in report.summaries if s.stream_id == sid) for sid in ("a", "b"))
    assert b.error is None and b.published == FRAMES["b"]  # the other stream went on
    assert a.error is not None and f"{kind} of stream 'a'" in a.error and "max_restarts=0" in a.error
    messages = list(read_jsonl(tmp_path / "out" / "a.jsonl"))
    frames = [m for m in messages if isinstance(m, FrameMessage)]
    assert [m.seq for m in frames] == list(range(len(frames))) and len(frames) >= KILL_AFTER_FRAMES
    failed = [m for m in messages if isinstance(m, StreamStatus) and m.state == "failed"]
    assert len(failed) == 1 and f"{kind} of stream 'a'" in (failed[0].reason or "")
    end = messages[-1]
    assert isinstance(end, StreamEnd) and end.frames == len(frames) and f"{kind} of stream 'a'" in (end.error or "")
    b_messages = list(read_jsonl(tmp_path / "out" / "b.jsonl"))
    assert [m.seq for m in b_messages if isinstance(m, FrameMessage)] == list(range(FRAMES["b"]))


def test_a_live_stream_whose_source_restarts_numbers_on_without_repeats(ray_session: None, tmp_path: Path) -> None:
    config = parse_config({
        "streams": [{"id": "a", "url": "synthetic:seed=4&size=128x96&fps=20&frames=0", "realtime": True}],
        "model": {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"],
                  "score_threshold": 0.0, "max_detections": 3, "min_size": 96, "max_size": 128, "device": "cpu"},
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"duplicate_mask_iou_threshold": None},
        "backpressure": {"max_in_flight_per_stream": 4, "live_queue_frames": 2},
        "sinks": {"jsonl": {"dir": str(tmp_path / "out")}},
        "supervision": {"probe_interval_s": 0.5},
        "run": {"status_interval_s": 1, "drain_timeout_s": 60, "progress": False},
    })
    runner = PipelineRunner(config, console=Console(stderr=True, width=160))
    jsonl = tmp_path / "out" / "a.jsonl"
    killed: dict[str, Any] = {}

    def kill_then_stop() -> None:
        kill_when_published("source", jsonl, killed)
        deadline = time.monotonic() + 120
        while frame_lines(jsonl) < killed.get("at_frames", 0) + 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.request_stop()

    thread = threading.Thread(target=kill_then_stop, daemon=True)
    thread.start()
    report = runner.run()
    thread.join(timeout=10)
    assert killed.get("pid") and report.exit_code == 0, [s.error for s in report.summaries]
    messages = list(read_jsonl(jsonl))
    frames = [m for m in messages if isinstance(m, FrameMessage)]
    assert [m.seq for m in frames] == list(range(len(frames)))
    indexes = [m.index for m in frames]
    assert indexes == sorted(set(indexes)), "a restarted live source must number on, never repeat"
    (restart,) = report.restarts
    assert restart.actor == "source" and restart.lost >= 0
    assert [m.state for m in messages if isinstance(m, StreamStatus)] == ["restarted"]
    assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == len(frames)
