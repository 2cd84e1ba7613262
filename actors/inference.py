"""Inference actor: holds one ``InferenceEngine`` (one model copy) and runs batches of frames."""

from __future__ import annotations

import os
import time
from typing import Any

from actors.frame_refs import fetch_frames
from pipeline.config import ModelConfig
from pipeline.errors import MaskstreamError
from pipeline.naming import BENCHMARK_ARCH
from pipeline.messages import FrameMeta, FrameResult, instances_from_detections
from pipeline.stats import InferenceStats, ReplicaInfo, StageClock


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
        if model.arch == BENCHMARK_ARCH:  # maskstream bench-pipeline only (parse_config refuses it elsewhere)
            self._load_benchmark_engine(model)
            return
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
            duplicate_mask_iou_threshold=model.duplicate_mask_iou_threshold,
        )
        self.info = ReplicaInfo(arch=loaded.arch, weights=loaded.source, classes=len(loaded.class_names),
                                device=str(self.engine.device), precision=self.engine.choice.describe())

    def _load_benchmark_engine(self, model: ModelConfig) -> None:
        from pipeline.engine.fixed import FixedDetectionsEngine

        names = model.class_names or ["background", "object"]
        self.engine = FixedDetectionsEngine(names, instances=model.max_detections)
        self.info = ReplicaInfo(arch=BENCHMARK_ARCH, weights="no model: fixed detections", classes=len(names),
                                device="cpu", precision=self.engine.choice.describe())

    def ready(self) -> ReplicaInfo:
        """What this replica runs, or a ``ReplicaInfo`` with ``error`` when its model could not be loaded."""
        if self.init_error is not None:
            return ReplicaInfo(error=self.init_error)
        return self.info

    def stats(self) -> InferenceStats:
        return InferenceStats(pid=os.getpid(), batches=self.batches, frames=self.frames, seconds=dict(self.clock.seconds))

    def infer(self, metas: list[FrameMeta], frame_refs: list[Any]) -> list[FrameResult | None]:
        """Run one batch; returns one result per frame, in order. A failure gives every frame the error.

        A frame whose pixels are gone (its source's process died, taking the object with it) gets
        ``None``: it is not a result, the restarted source sends that frame again.
        """
        if self.init_error is not None:
            return [FrameResult(meta=meta, error=self.init_error) for meta in metas]
        with self.clock.stage("get"):
            images = fetch_frames(metas, frame_refs)
        present = [i for i, image in enumerate(images) if image is not None]
        results: list[FrameResult | None] = [None] * len(metas)
        if not present:
            return results
        try:
            with self.clock.stage("model"):
                detections = self.engine.infer([images[i] for i in present])
        except (MaskstreamError, RuntimeError, ValueError) as exc:
            error = f"inference failed on a batch of {len(present)} frames: {type(exc).__name__}: {exc}"
            for i in present:
                results[i] = FrameResult(meta=metas[i], error=error)
            return results
        now = time.time()
        self.batches += 1
        self.frames += len(present)
        for i, dets in zip(present, detections, strict=True):
            results[i] = FrameResult(meta=metas[i], instances=instances_from_detections(dets), inferred_at=now)
        return results
