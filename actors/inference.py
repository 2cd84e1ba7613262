"""Inference actor: holds one ``InferenceEngine`` (one model copy) and runs batches of frames."""

from __future__ import annotations

import time
from typing import Any

import ray

from pipeline.config import ModelConfig
from pipeline.errors import MaskstreamError
from pipeline.messages import FrameMeta, FrameResult, instances_from_detections
from pipeline.stats import StageClock


class InferenceWorker:
    def __init__(self, model: ModelConfig, *, num_threads: int | None = None) -> None:
        import torch

        if num_threads is not None:
            torch.set_num_threads(max(1, num_threads))
        self.batches = 0
        self.frames = 0
        self.init_error: str | None = None
        self.clock = StageClock()
        try:
            self._load(model)
        except MaskstreamError as exc:
            # Reported through ready(): the driver shows the cause instead of Ray's actor-death traceback.
            self.init_error = str(exc)

    def _load(self, model: ModelConfig) -> None:
        # Imported here, not at module level: the driver imports this module and needs no torch models.
        from pipeline.engine import InferenceEngine
        from pipeline.model import load_model

        loaded = load_model(
            model.arch,
            model.weights,
            class_names=model.class_names,
            min_size=model.min_size,
            max_size=model.max_size,
            score_threshold=model.score_threshold,
            max_detections=model.max_detections,
        )
        self.engine = InferenceEngine(
            loaded.model,
            loaded.class_names,
            device=model.device,
            precision=model.precision,
            mask_threshold=model.mask_threshold,
            channels_last=model.channels_last,
            compile_backbone=model.compile_backbone,
        )
        self.description = {
            "arch": loaded.arch,
            "weights": loaded.source,
            "classes": len(loaded.class_names),
            "device": str(self.engine.device),
        }

    def ready(self) -> dict[str, Any]:
        """What this replica runs, or ``{"error": ...}`` when its model could not be loaded."""
        if self.init_error is not None:
            return {"error": self.init_error}
        return self.description

    def stats(self) -> dict[str, Any]:
        return {"batches": self.batches, "frames": self.frames, "seconds": dict(self.clock.seconds)}

    def infer(self, metas: list[FrameMeta], frame_refs: list[Any]) -> list[FrameResult]:
        """Run one batch; returns one result per frame, in order. A failure gives every frame the error."""
        if self.init_error is not None:
            return [FrameResult(meta=meta, error=self.init_error) for meta in metas]
        try:
            with self.clock.stage("get"):
                images = ray.get(frame_refs)
            with self.clock.stage("model"):
                detections = self.engine.infer(images)
        except (MaskstreamError, RuntimeError, ValueError, ray.exceptions.RayError) as exc:
            error = f"inference failed on a batch of {len(metas)} frames: {type(exc).__name__}: {exc}"
            return [FrameResult(meta=meta, error=error) for meta in metas]
        now = time.time()
        self.batches += 1
        self.frames += len(metas)
        return [
            FrameResult(meta=meta, instances=instances_from_detections(dets), inferred_at=now)
            for meta, dets in zip(metas, detections, strict=True)
        ]
