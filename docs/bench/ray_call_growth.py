"""Does a source's per-frame Ray traffic alone keep memory? (docs/bench/soak.md, the source actors' growth)

One actor puts a frame-sized array (320x240 YUV 4:2:0, 115 KB) into the object store and, with ``call``,
submits it to a second actor (one call a frame, the reference inside a list, task events off, reply
awaited); ``hold`` does the same but the second actor keeps the last 8 references after its call returned
(what the dispatcher did before it held frames only while their submit call ran: the references it keeps
make it a borrower the owner tracks); ``put`` only puts. It prints its own anonymous RSS (MB) after each
1500 frames.

    .venv/bin/python docs/bench/ray_call_growth.py call
    .venv/bin/python docs/bench/ray_call_growth.py hold
    .venv/bin/python docs/bench/ray_call_growth.py put
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np
import ray

FRAME_BYTES = 240 * 320 * 3 // 2


@ray.remote
class Receiver:
    def __init__(self) -> None:
        self.kept: list[Any] = []

    def submit(self, meta: dict[str, int], refs: list[Any]) -> str:
        return "incarnation"

    def submit_and_keep(self, meta: dict[str, int], refs: list[Any]) -> str:
        self.kept = [*self.kept, *refs][-8:]  # still held when the call returns: a borrower
        return "incarnation"


@ray.remote
class Sender:
    def __init__(self, receiver: Any, mode: str) -> None:
        self.receiver = receiver
        self.mode = mode

    def anon_rss_mb(self) -> float:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def run(self, frames: int) -> float:
        for i in range(frames):
            frame = np.zeros((FRAME_BYTES,), np.uint8)
            frame[0] = i % 255
            ref = ray.put(frame)
            if self.mode == "call":
                ray.get(self.receiver.submit.options(enable_task_events=False).remote({"i": i}, [ref]))
            elif self.mode == "hold":
                ray.get(self.receiver.submit_and_keep.options(enable_task_events=False).remote({"i": i}, [ref]))
        return self.anon_rss_mb()


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "call"
    ray.init(num_cpus=2, include_dashboard=False)
    sender = Sender.remote(Receiver.remote(), mode)
    ray.get(sender.run.remote(500))  # warm-up
    for block in range(6):
        started = time.time()
        rss = ray.get(sender.run.remote(1500))
        print(f"{mode} after {500 + 1500 * (block + 1)} frames: anonymous RSS {rss:.1f} MB "
              f"({time.time() - started:.1f} s)", flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
