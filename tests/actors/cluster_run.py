"""Run a pipeline on a two-node ``ray.cluster_utils.Cluster`` and remove the worker node mid-run.

Started by ``test_cluster.py`` in its own process (a driver holds one Ray at a time, and the rest of
the suite shares another)::

    python tests/actors/cluster_run.py CONFIG.yaml OUT.json

The head node has no CPU for models, so the inference replica (1 CPU) lands on the worker node.
Once stream ``a`` has published ``--kill-after`` frames, the worker node is removed (its raylet
and every process on it are killed) and a new worker node joins: Ray restarts the replica there.
The run's report is written to OUT.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--kill-after", type=int, default=10)
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster
    from rich.console import Console

    from actors.graph import PipelineRunner
    from pipeline.config import load_config

    config = load_config(args.config)
    # Ray notices a lost node when its health checks fail: every 1 s, 3 misses (Ray's defaults take ~30 s).
    health = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": health})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    removed: dict[str, float] = {}
    jsonl = Path(config.sinks.jsonl.dir) / "a.jsonl"  # type: ignore[union-attr]

    # The pipeline runs in a thread: Ray adds a node only from the main thread (it installs signal handlers).
    reports: list[Any] = []
    runner = threading.Thread(
        target=lambda: reports.append(PipelineRunner(config, console=Console(stderr=True, width=160)).run()),
        daemon=True,
    )
    runner.start()
    deadline = time.monotonic() + 180
    lines = 0
    while time.monotonic() < deadline and runner.is_alive():
        lines = sum(1 for line in jsonl.open() if '"type":"frame"' in line) if jsonl.exists() else 0
        if lines >= args.kill_after:
            break
        time.sleep(0.05)
    removed["at_frames"] = lines
    removed["at"] = time.time()
    cluster.remove_node(worker, allow_graceful=False)
    cluster.add_node(num_cpus=2)  # the elastic pool gets a new machine
    runner.join(timeout=300)
    if not reports:
        print("cluster_run: the pipeline did not finish within 300 s", file=sys.stderr, flush=True)
        os._exit(1)
    report = reports[0]
    Path(args.out).write_text(json.dumps({
        "exit_code": report.exit_code,
        "summaries": [dataclasses.asdict(s) for s in report.summaries],
        "restarts": [dataclasses.asdict(r) for r in report.restarts],
        "removed": removed,
    }))
    ray.shutdown()
    cluster.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip Ray's exit hook for the removed node (it fails on a node object already shut down)


if __name__ == "__main__":
    sys.exit(main())
