"""The command line: ``maskstream subscribe`` against a real redis-server fed by the real Redis sink."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.cli import build_parser
from pipeline.sinks import RedisSink
from tests.pipeline.sinks.factories import end, result

REPO = Path(__file__).resolve().parents[2]


def test_subscribe_prints_one_line_per_frame_then_the_end(redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "subscribe", "cli-a", "--url", redis_url, "--idle-timeout-s", "60"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the subscription is confirmed
    assert first.startswith("subscribed to masks:cli-a"), first + (proc.stderr.read() if proc.poll() is not None else "")
    sink = RedisSink("cli-a", url=redis_url)
    for i in range(3):
        sink.write(result("cli-a", i), None)
    sink.end(end("cli-a", 3))
    sink.close()
    out, err = proc.communicate(timeout=60)
    lines = out.strip().splitlines()
    assert proc.returncode == 0, err
    assert len(lines) == 4, out
    for i, line in enumerate(lines[:3]):
        assert "cli-a" in line and str(i) in line
        assert "person" in line and "car" in line  # classes
        assert "1" in line and "7" in line  # track ids
        assert "ms" in line  # end-to-end latency
    assert "end" in lines[3] and "3" in lines[3]


def test_run_options_parse() -> None:
    args = build_parser().parse_args(["run", "x.yaml", "--set", "a.b=1", "--set", "streams[0].url=y", "--no-progress"])
    assert (args.config, args.set, args.no_progress) == ("x.yaml", ["a.b=1", "streams[0].url=y"], True)
    assert build_parser().parse_args(["run"]).config == "pipeline.yaml"
