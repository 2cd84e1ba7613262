"""``maskstream bench-pipeline`` on a tiny case: the real graph runs, every frame is counted, and it says the model was not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.benchmark.report import MODEL_NOT_RUN


def test_bench_pipeline_tiny_case(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline.cli", "bench-pipeline", "--sizes", "160x96", "--streams", "1", "2",
               "--frames", "12", "--videos-dir", str(tmp_path / "videos"), "--out", str(out)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    text = " ".join(done.stderr.split())  # rich wraps long lines
    assert text.count("THE MODEL WAS NOT RUN") >= 2  # above and below the table
    report = json.loads((out / "bench.json").read_text())
    assert report["model_not_run"] == MODEL_NOT_RUN and (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert [(c["size"], c["streams"]) for c in report["cases"]] == [("160x96", 1), ("160x96", 2)]
    for case in report["cases"]:
        n = case["streams"]
        assert case["decode_alone"]["frames"] == 12 * n and case["decode_alone"]["processes"] == n
        graph = case["graph"]
        assert graph["frames"] == 12 * n and graph["errors"] == [] and graph["submitted_frames"] == 12 * n
        assert 1 <= graph["submits"] <= 12 * n
        assert case["ratio"] == graph["fps"] / case["decode_alone"]["fps"]
        labels = {a["label"] for a in graph["actors"]}
        assert {"Dispatcher", "InferenceWorker 0", "driver"} <= labels
        assert {f"SourceWorker s{i}" for i in range(n)} | {f"OutputWorker s{i}" for i in range(n)} <= labels
        assert all(a["cpu_s"] >= 0 and a["seconds"] > 0 for a in graph["actors"])
        assert {"put", "track", "jsonl"} <= set(graph["cost_ms"])
