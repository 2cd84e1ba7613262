"""The dispatcher: batches frames across all streams onto the pool of inference actors.

An asyncio actor. ``submit`` holds a per-stream credit (at most ``max_in_flight_per_stream``
frames of a stream between submission and publication), so a source that runs ahead waits
here. A batch fires at ``max_batch_size`` frames or after ``max_wait_ms``, on the replica with
the fewest batches in flight (at most ``max_batches_in_flight`` each). Results go to each
stream's tracker; a failed batch gives every one of its frames the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray

from pipeline.batching import BatchAccumulator
from pipeline.config import BackpressureConfig, InferenceConfig
from pipeline.messages import FrameMeta, FrameResult, StreamEnd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    meta: FrameMeta
    frame_ref: Any


class Dispatcher:
    def __init__(self, replicas: list[Any], inference: InferenceConfig, backpressure: BackpressureConfig) -> None:
        self.replicas = list(replicas)
        self.max_batches_in_flight = inference.max_batches_in_flight
        self.max_in_flight_per_stream = backpressure.max_in_flight_per_stream
        self.accumulator: BatchAccumulator[_Pending] = BatchAccumulator(
            max_batch_size=inference.max_batch_size, max_wait_ms=inference.max_wait_ms
        )
        self.in_flight_batches = [0] * len(self.replicas)
        self.trackers: dict[str, Any] = {}
        self.credits: dict[str, asyncio.Semaphore] = {}
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self.batches = 0
        self.cross_stream_batches = 0
        self.failed_batches = 0
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def register_stream(self, stream_id: str, tracker: Any) -> None:
        self.trackers[stream_id] = tracker
        self.credits[stream_id] = asyncio.Semaphore(self.max_in_flight_per_stream)
        self._ensure_loop()

    async def submit(self, meta: FrameMeta, frame_ref: list[Any]) -> None:
        """Accept one frame; returns once it is queued for a batch (waits while its stream is at its bound)."""
        await self.credits[meta.stream_id].acquire()
        self.accumulator.add(_Pending(meta, frame_ref[0]), time.monotonic())
        self._ensure_loop().set()

    async def end_stream(self, end: StreamEnd) -> None:
        """The source is done: the tracker publishes the end message once all submitted frames are out."""
        await self.trackers[end.stream_id].finish.remote(end)

    async def stats(self) -> dict[str, Any]:
        sizes = self.batch_sizes
        return {
            "batches": self.batches,
            "cross_stream_batches": self.cross_stream_batches,
            "mean_batch_size": sum(sizes) / len(sizes) if sizes else 0.0,
            "failed_batches": self.failed_batches,
            "waiting": len(self.accumulator),
            "in_flight_batches": list(self.in_flight_batches),
        }

    def _ensure_loop(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._batch_loop(self._wake))
        return self._wake

    async def _batch_loop(self, wake: asyncio.Event) -> None:
        while True:
            now = time.monotonic()
            replica = self._free_replica()
            wait_s = self.accumulator.seconds_until_ready(now)
            if replica is not None and wait_s == 0.0:
                batch = self.accumulator.take()
                self.batches += 1
                self.cross_stream_batches += len({p.meta.stream_id for p in batch}) > 1
                self.in_flight_batches[replica] += 1
                task = asyncio.get_running_loop().create_task(self._run_batch(replica, batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                continue
            wake.clear()
            timeout = wait_s if (replica is not None and wait_s is not None) else None
            try:
                await asyncio.wait_for(wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    def _free_replica(self) -> int | None:
        best = min(range(len(self.replicas)), key=lambda i: self.in_flight_batches[i])
        return best if self.in_flight_batches[best] < self.max_batches_in_flight else None

    async def _run_batch(self, replica: int, batch: list[_Pending]) -> None:
        metas = [p.meta for p in batch]
        refs = [p.frame_ref for p in batch]
        try:
            results: list[FrameResult] = await self.replicas[replica].infer.remote(metas, refs)
        except ray.exceptions.RayError as exc:
            self.failed_batches += 1
            error = f"inference replica {replica} failed on a batch of {len(batch)} frames: {type(exc).__name__}: {exc}"
            log.error(error)
            results = [FrameResult(meta=m, error=error) for m in metas]
        finally:
            self.in_flight_batches[replica] -= 1
            self.batch_sizes.append(len(batch))
            if self._wake is not None:
                self._wake.set()
        await asyncio.gather(*(self._deliver(result, ref) for result, ref in zip(results, refs, strict=True)))

    async def _deliver(self, result: FrameResult, frame_ref: Any) -> None:
        stream_id = result.meta.stream_id
        try:
            published = await self.trackers[stream_id].push.remote(result, [frame_ref])
        except ray.exceptions.RayError as exc:
            log.error("stream %r: tracker failed on frame %d: %s", stream_id, result.meta.index, exc)
            published = 1
        for _ in range(published):
            self.credits[stream_id].release()
