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
import sys
import threading
import time
from pathlib import Path

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
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    removed: dict[str, float] = {}
    jsonl = Path(config.sinks.jsonl.dir) / "a.jsonl"  # type: ignore[union-attr]

    def remove_worker_node() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            lines = sum(1 for line in jsonl.open() if '"type":"frame"' in line) if jsonl.exists() else 0
            if lines >= args.kill_after:
                break
            time.sleep(0.05)
        removed["at_frames"] = lines
        removed["at"] = time.time()
        cluster.remove_node(worker, allow_graceful=False)
        cluster.add_node(num_cpus=2)  # the elastic pool gets a new machine

    thread = threading.Thread(target=remove_worker_node, daemon=True)
    thread.start()
    report = PipelineRunner(config, console=Console(stderr=True, width=160)).run()
    thread.join(timeout=30)
    Path(args.out).write_text(json.dumps({
        "exit_code": report.exit_code,
        "summaries": [dataclasses.asdict(s) for s in report.summaries],
        "restarts": [dataclasses.asdict(r) for r in report.restarts],
        "removed": removed,
    }))
    ray.shutdown()
    cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
