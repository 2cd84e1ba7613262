"""One tracker actor per stream: restore frame order, assign track ids, hand frames to the stream's sinks."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import ray

from pipeline.config import TrackingConfig
from pipeline.messages import FrameResult, StreamEnd
from pipeline.reorder import ReorderBuffer
from pipeline.stats import StageClock
from pipeline.tracking import ByteTracker
from pipeline.tracking.from_config import tracker_from_config


def assign_track_ids(tracker: ByteTracker, result: FrameResult) -> FrameResult:
    """Run the tracker on one frame's instances and return the result with their track ids."""
    instances = result.instances
    boxes = np.array([i.box for i in instances], dtype=np.float32).reshape(-1, 4)
    scores = np.array([i.score for i in instances], dtype=np.float32)
    labels = np.array([i.label for i in instances], dtype=np.int64)
    masks = [i.mask.to_coco() for i in instances]
    ids = tracker.update(boxes, scores, labels, masks)
    tracked = tuple(dataclasses.replace(inst, track_id=tid) for inst, tid in zip(instances, ids, strict=True))
    return dataclasses.replace(result, instances=tracked)


class TrackerWorker:
    def __init__(self, stream_id: str, tracking: TrackingConfig, sink: Any, *, max_pending: int) -> None:
        self.stream_id = stream_id
        self.sink = sink
        self.tracker = tracker_from_config(tracking) if tracking.enabled else None
        self.reorder: ReorderBuffer[tuple[FrameResult, Any]] = ReorderBuffer(max_pending=max_pending)
        self.published = 0
        self.failed = 0
        self.end: StreamEnd | None = None
        self.ended = False
        self.clock = StageClock()

    def push(self, result: FrameResult, frame_ref: list[Any]) -> int:
        """Accept one frame's result in any order; returns how many frames were handed to the sinks."""
        with self.clock.stage("track"):
            released = self.reorder.push(result.meta.seq, (result, frame_ref[0]))
            results = []
            for res, _ in released:
                if res.error is None and self.tracker is not None:
                    res = assign_track_ids(self.tracker, res)
                elif res.error is not None:
                    self.failed += 1
                results.append(res)
        if not released:
            return 0
        ray.get(self.sink.write_many.remote(results, [ref for _, ref in released]))
        self.published += len(released)
        self._maybe_end()
        return len(released)

    def finish(self, end: StreamEnd) -> None:
        """The source ended after ``end.frames`` submitted frames; the end goes out after the last of them."""
        self.end = end
        self._maybe_end()

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "pending": self.reorder.pending, "ended": self.ended,
                "seconds": dict(self.clock.seconds)}

    def _maybe_end(self) -> None:
        if self.end is None or self.ended or self.reorder.next_seq < self.end.frames:
            return
        ray.get(self.sink.end.remote(dataclasses.replace(self.end, frames=self.published)))
        self.ended = True
