"""The dispatcher: batches frames across all streams onto the pool of inference actors.

An asyncio actor. ``submit`` queues one frame and returns, with the dispatcher's incarnation, once
the frame's result was handed to its output (a source that sees the incarnation change knows the
frames it sent before are lost and sends them again; each source's replay window bounds its frames
in flight, and sources do not wait for each reply). The dispatcher holds a frame's reference only
while that ``submit`` call runs, never after it: Ray keeps about half a kilobyte in the frame's owner
(the source) for every object a callee still holds when its call returns, which over days of frames
is a leak (docs/bench/soak.md). A batch fires at
``max_batch_size`` frames or after ``max_wait_ms``, on the replica with the fewest batches in
flight (at most ``max_batches_in_flight`` each), taking the streams' frames in turns
(``stream_turn_frames``). A batch whose replica died is run again on another one
(``supervision.max_batch_retries``); a batch the model fails on gives every frame the error.
Results go to each stream's output actor, one call per stream and batch, with the frames'
references only when a sink draws on the pixels.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import ray

from actors.names import HandleCache, RunNames
from pipeline.batching import BatchAccumulator
from pipeline.config import InferenceConfig, SupervisionConfig
from pipeline.messages import FrameMeta, FrameResult
from pipeline.stats import DispatcherStats

log = logging.getLogger(__name__)

# Seconds to wait before running a batch again after its replica died (Ray restarts it meanwhile),
# doubling up to the second value while the replica stays unavailable.
_RETRY_DELAY_S = 0.5
_MAX_RETRY_DELAY_S = 5.0


@dataclass
class _Pending:
    meta: FrameMeta
    frame_ref: Any
    done: asyncio.Future[None]  # resolved once the frame's result was handed on (or failed): submit returns


class Dispatcher:
    def __init__(self, inference: InferenceConfig, supervision: SupervisionConfig, *, names: RunNames,
                 deliver_frames: bool = True) -> None:
        # Replicas are found by name (small constructor arguments: Ray can always restart this actor).
        self.replicas = [ray.get_actor(names.inference(i)) for i in range(inference.replicas)]
        self.names = names
        # The outputs get the frames' references only when a sink draws on the pixels (the annotated video).
        self.deliver_frames = deliver_frames
        self.incarnation_id = uuid.uuid4().hex[:12]
        self.max_batches_in_flight = inference.max_batches_in_flight
        self.max_batch_retries = supervision.max_batch_retries
        self.restart_timeout_s = supervision.restart_timeout_s
        self.accumulator: BatchAccumulator[_Pending] = BatchAccumulator(
            max_batch_size=inference.max_batch_size, max_wait_ms=inference.max_wait_ms,
            key=lambda pending: pending.meta.stream_id, turn_size=inference.stream_turn_frames,
        )
        self.in_flight_batches = [0] * len(self.replicas)
        self.outputs = HandleCache()
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        self.submits = 0
        self.submitted_frames = 0
        self.batches = 0
        self.cross_stream_batches = 0
        self.failed_batches = 0
        self.retried_batches = 0
        self.lost_frames = 0
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, metas: list[FrameMeta], frame_refs: list[Any]) -> str:
        """Queue frames (of one stream, in order) for batches; returns this dispatcher's incarnation once
        every frame's result was handed on. The references come inside a list: Ray passes them unresolved."""
        if len(metas) != len(frame_refs):
            raise ValueError(f"submit: {len(metas)} metas but {len(frame_refs)} frame references")
        self.submits += 1
        self.submitted_frames += len(metas)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        done: list[asyncio.Future[None]] = []
        for meta in metas:
            done.append(loop.create_future())
            self.accumulator.add(_Pending(meta, frame_refs.pop(0), done[-1]), now)
        self._ensure_loop().set()
        await asyncio.gather(*done)
        return self.incarnation_id

    async def incarnation(self) -> str:
        return self.incarnation_id

    async def stats(self) -> DispatcherStats:
        sizes = self.batch_sizes
        return DispatcherStats(
            pid=os.getpid(),
            incarnation=self.incarnation_id,
            submits=self.submits,
            submitted_frames=self.submitted_frames,
            batches=self.batches,
            cross_stream_batches=self.cross_stream_batches,
            mean_batch_size=sum(sizes) / len(sizes) if sizes else 0.0,
            failed_batches=self.failed_batches,
            retried_batches=self.retried_batches,
            lost_frames=self.lost_frames,
            waiting=len(self.accumulator),
            in_flight_batches=list(self.in_flight_batches),
        )

    def _ensure_loop(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
            task = asyncio.get_running_loop().create_task(self._batch_loop(self._wake))
            self._tasks.add(task)
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

    def _free_replica(self, avoid: int | None = None) -> int | None:
        order = sorted(range(len(self.replicas)), key=lambda i: (i == avoid, self.in_flight_batches[i]))
        best = order[0]
        return best if self.in_flight_batches[best] < self.max_batches_in_flight else None

    async def _run_batch(self, replica: int, batch: list[_Pending]) -> None:
        metas = [p.meta for p in batch]
        refs = [p.frame_ref for p in batch]
        done = [p.done for p in batch]
        for pending in batch:
            pending.frame_ref = None
        try:
            try:
                results, replica = await self._infer_with_retries(replica, metas, refs)
            finally:
                self.in_flight_batches[replica] -= 1
                self.batch_sizes.append(len(batch))
                if self._wake is not None:
                    self._wake.set()
            await self._deliver(results, refs)
        finally:
            refs.clear()  # no reference left here when the submits return (see the module docstring)
            for future in done:
                if not future.done():
                    future.set_result(None)

    async def _infer_with_retries(self, replica: int, metas: list[FrameMeta],
                                  refs: list[Any]) -> tuple[list[FrameResult | None], int]:
        """Run a batch; a replica that died or is unavailable (restarting, its node lost) gets it again, or another.

        A replica dying *on* the batch counts towards ``max_batch_retries`` (a poison batch must not take the
        pool down); waiting for an unavailable one is bounded by ``restart_timeout_s``. Returns the results
        and the replica that holds the batch's in-flight slot."""
        died = 0
        waiting_since: float | None = None
        delay_s = _RETRY_DELAY_S
        while True:
            try:
                results = await self.replicas[replica].infer.options(enable_task_events=False).remote(metas, refs)
                return results, replica
            except ray.exceptions.ActorUnavailableError as exc:
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since > self.restart_timeout_s:
                    return self._failed(metas, f"inference replica {replica} unavailable for more than "
                                        f"supervision.restart_timeout_s={self.restart_timeout_s:g} s: {exc}"), replica
            except ray.exceptions.RayActorError as exc:
                died += 1
                if died > self.max_batch_retries:
                    return self._failed(metas, f"inference replica {replica} died {died} times on a batch of "
                                        f"{len(metas)} frames (supervision.max_batch_retries={self.max_batch_retries}):"
                                        f" {type(exc).__name__}"), replica
                log.warning("inference replica %d died on a batch of %d frames; running it again", replica, len(metas))
            except ray.exceptions.RayError as exc:
                return self._failed(metas, f"inference replica {replica} failed on a batch of {len(metas)} frames: "
                                    f"{type(exc).__name__}: {exc}"), replica
            self.retried_batches += 1
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _MAX_RETRY_DELAY_S)
            other = self._free_replica(avoid=replica)
            if other is not None and other != replica:
                self.in_flight_batches[replica] -= 1
                self.in_flight_batches[other] += 1
                replica = other

    def _failed(self, metas: list[FrameMeta], error: str) -> list[FrameResult | None]:
        self.failed_batches += 1
        log.error(error)
        return [FrameResult(meta=m, error=error) for m in metas]

    async def _deliver(self, results: list[FrameResult | None], refs: list[Any]) -> None:
        """One call per stream; a frame whose pixels were lost (its source died) is dropped: it is sent again."""
        by_stream: dict[str, tuple[list[FrameResult], list[Any]]] = defaultdict(lambda: ([], []))
        for result, ref in zip(results, refs, strict=True):
            if result is None:
                self.lost_frames += 1
                continue
            items = by_stream[result.meta.stream_id]
            items[0].append(result)
            items[1].append(ref)
        await asyncio.gather(*(self._deliver_stream(sid, res, rfs) for sid, (res, rfs) in by_stream.items()))

    async def _deliver_stream(self, stream_id: str, results: list[FrameResult], refs: list[Any]) -> None:
        name = self.names.output(stream_id)
        output = self.outputs.get(name)
        if output is None:
            return
        try:
            # Refs inside a list: Ray passes them on unresolved; the output reads the pixels only if a sink needs them.
            await output.push.options(enable_task_events=False).remote(results, refs if self.deliver_frames else None)
        except ray.exceptions.RayError as exc:
            # The output is restarting: its source sees the new incarnation and sends these frames again.
            log.warning("stream %r: output unavailable for %d results: %s", stream_id, len(results), type(exc).__name__)
            self.outputs.forget(name)
