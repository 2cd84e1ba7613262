"""A worker node of a real two-node Ray cluster is removed mid-run: every frame is still published exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.client import read_jsonl
from pipeline.messages import FrameMessage, StreamEnd, StreamStatus
from tests.pipeline.sources.videos import write_video

REPO = Path(__file__).resolve().parents[2]
FRAMES = {"a": 50, "b": 40}


def test_removing_a_worker_node_loses_and_repeats_nothing(tmp_path: Path) -> None:
    streams = [{"id": sid, "url": str(write_video(tmp_path / f"{sid}.mp4", num_frames=n, width=128, height=96))}
               for sid, n in FRAMES.items()]
    config = {
        "streams": streams,
        "model": {"arch": "maskrcnn_compact", "weights": None, "class_names": ["background", "x"],
                  "score_threshold": 0.0, "max_detections": 3, "min_size": 96, "max_size": 128, "device": "cpu"},
        "inference": {"replicas": 1, "num_gpus": 0, "num_cpus": 1, "max_batch_size": 4, "max_wait_ms": 50},
        "tracking": {"duplicate_mask_iou_threshold": None},
        "backpressure": {"max_in_flight_per_stream": 8},
        "sinks": {"jsonl": {"dir": str(tmp_path / "out")}},
        "supervision": {"max_restarts": 3, "probe_interval_s": 0.5},
        "run": {"status_interval_s": 2, "drain_timeout_s": 120, "progress": False},
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(REPO / "tests" / "actors" / "cluster_run.py"), str(path), str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0 and out.exists(), done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["removed"]["at_frames"] < FRAMES["a"], "the node was removed after stream a had ended"
    assert report["exit_code"] == 0, report["summaries"]
    assert {s["stream_id"]: s["published"] for s in report["summaries"]} == FRAMES
    for sid, n in FRAMES.items():
        messages = list(read_jsonl(tmp_path / "out" / f"{sid}.jsonl"))
        frames = [m for m in messages if isinstance(m, FrameMessage)]
        assert [m.seq for m in frames] == list(range(n)), f"stream {sid}: frames lost, repeated or out of order"
        assert isinstance(messages[-1], StreamEnd) and messages[-1].frames == n and messages[-1].error is None
        assert any(isinstance(m, StreamStatus) and m.state == "restarted" and (m.actor or "").startswith("inference")
                   for m in messages)
    assert any(r["actor"].startswith("inference") for r in report["restarts"])
