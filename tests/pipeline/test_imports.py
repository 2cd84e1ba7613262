"""What the per-stream actors (source, tracker, sink) import stays light: no torch, torchvision or matplotlib.

torch alone costs a process about 550 MB of RSS; one source, one tracker and one sink actor per stream
would each pay it. Checked in a fresh interpreter, since this test process may have imported torch already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Every module a per-stream actor imports (AvSource and SyntheticSource included), by name.
PER_STREAM_MODULES: tuple[str, ...] = (
    "pipeline.config",
    "pipeline.messages",
    "pipeline.sources",
    "pipeline.sources.av_source",
    "pipeline.sources.synthetic",
    "pipeline.frames",
    "pipeline.drawing",
    "pipeline.sinks",
    "pipeline.sinks.redis_sink",
    "pipeline.sinks.jsonl_sink",
    "pipeline.sinks.video_sink",
    "pipeline.tracking",
    "pipeline.reorder",
    "pipeline.stats",
    "pipeline.errors",
)
HEAVY_MODULES: tuple[str, ...] = ("torch", "torchvision", "matplotlib")
# RSS ceiling of a fresh interpreter after those imports: about 120 MB measured (scipy.optimize 43, av 17,
# numpy 15, redis 10); with torch it was about 600 MB. The margin absorbs other builds of the same packages.
MAX_RSS_MB = 300


def test_per_stream_modules_do_not_import_torch() -> None:
    script = textwrap.dedent(
        f"""
        import importlib, json, sys
        for name in {PER_STREAM_MODULES!r}:
            importlib.import_module(name)
        from pipeline.sources import AvSource
        from pipeline.sources.synthetic import SyntheticSource
        rss_kb = None
        try:
            with open("/proc/self/status") as status:
                rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except OSError:
            pass
        print(json.dumps({{"heavy": sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules), "rss_kb": rss_kb}}))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"per-stream modules imported {report['heavy']}"
    if report["rss_kb"] is None:
        pytest.skip("no /proc/self/status here: RSS not checked")
    assert report["rss_kb"] / 1024 < MAX_RSS_MB, f"RSS after the imports: {report['rss_kb'] / 1024:.0f} MB"
