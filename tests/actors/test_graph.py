"""The running graph, driven in-process on the session's local Ray: batching, backpressure, stopping."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from actors.graph import PipelineRunner
from pipeline.client import read_jsonl
from pipeline.config import parse_config
from pipeline.messages import StreamEnd
from tests.pipeline.sources.videos import count_frames


def config(tmp_path: Path, streams: list[dict[str, Any]], **sections: Any):
    raw = {
        "streams": streams,
        "model": {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"], "score_threshold": 0.0,
                  "max_detections": 2, "min_size": 96, "max_size": 128, "device": "cpu"},
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 200},
        "tracking": {"high_score_threshold": 0.0, "low_score_threshold": 0.0, "new_track_score_threshold": 0.0},
        "sinks": {"jsonl": {"dir": str(tmp_path)}, "video": {"dir": str(tmp_path)}},
        "run": {"status_interval_s": 1, "drain_timeout_s": 120},
        **sections,
    }
    return parse_config(raw)


def lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def test_frames_of_two_streams_share_batches(ray_session: None, tmp_path: Path) -> None:
    cfg = config(tmp_path, [
        {"id": "a", "url": "synthetic:seed=1&size=128x96&frames=12"},
        {"id": "b", "url": "synthetic:seed=2&size=96x96&frames=10"},
    # A stream holds at most 3 frames in flight: one that starts first cannot fill every batch before the
    # other arrives (on a loaded machine one source may start a second after the other).
    ], backpressure={"max_in_flight_per_stream": 3})
    report = PipelineRunner(cfg, console=Console(stderr=True, width=140)).run()
    assert report.exit_code == 0, report
    assert {s.stream_id: s.published for s in report.summaries} == {"a": 12, "b": 10}
    assert report.batching.batches < 22  # batched, not frame by frame
    assert report.batching.cross_stream_batches > 0
    for sid, n in (("a", 12), ("b", 10)):
        messages = list(read_jsonl(tmp_path / f"{sid}.jsonl"))
        assert [m.index for m in messages[:-1]] == list(range(n))
        assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == n


def test_live_stream_drops_oldest_and_stops_cleanly(ray_session: None, tmp_path: Path) -> None:
    # An endless scene delivered at 200 fps, far faster than the model: the source must drop, not queue.
    cfg = config(
        tmp_path,
        [{"id": "live", "url": "synthetic:seed=3&size=128x96&fps=200&frames=0", "realtime": True}],
        backpressure={"max_in_flight_per_stream": 2, "live_queue_frames": 1},
    )
    runner = PipelineRunner(cfg, console=Console(stderr=True, width=140))
    jsonl = tmp_path / "live.jsonl"

    def stop_after_some_frames() -> None:
        deadline = time.monotonic() + 120
        while lines(jsonl) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        runner.request_stop()

    stopper = threading.Thread(target=stop_after_some_frames, daemon=True)
    stopper.start()
    report = runner.run()
    stopper.join(timeout=5)
    (summary,) = report.summaries
    assert report.exit_code == 0 and report.stopped_by_signal
    assert summary.dropped > 0
    assert summary.published >= 8
    # every frame that was not dropped was published: nothing in flight is lost on stop
    assert summary.published == summary.decoded - summary.dropped
    messages = list(read_jsonl(jsonl))
    end = messages[-1]
    assert isinstance(end, StreamEnd) and end.frames == summary.published and end.dropped == summary.dropped
    indexes = [m.index for m in messages[:-1]]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
    assert indexes[-1] > len(indexes)  # gaps where frames were dropped
    assert count_frames(tmp_path / "live.mp4")[0] == summary.published  # the video was closed playable


def test_a_model_slower_than_the_probes_gets_every_frame_once(ray_session: None, tmp_path: Path) -> None:
    # Acknowledgements come far apart (a batch of 8 takes longer than 5 probe intervals): the source sees its
    # submits still running and waits, instead of taking the silence for a lost message and sending them again.
    cfg = config(tmp_path, [{"id": "slow", "url": "synthetic:seed=4&size=128x96&frames=24"}],
                 inference={"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 8, "max_wait_ms": 200},
                 backpressure={"max_in_flight_per_stream": 8}, supervision={"probe_interval_s": 0.02})
    report = PipelineRunner(cfg, console=Console(stderr=True, width=140)).run()
    assert report.exit_code == 0, report
    assert [s.published for s in report.summaries] == [24]
    assert report.batching is not None and report.batching.submitted_frames == 24
