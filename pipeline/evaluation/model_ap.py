"""The model alone: COCO mask and box AP on held-out generated frames.

**Held-out seeds.** Training on generated scenes (``maskstream train --synthetic S``,
``SceneSamples(seed=S)``) renders clip ``c`` from scene seed ``S * 1_000_003 + c``. Every
evaluation scene here has a seed ``>= 10**9`` (``HOLDOUT_SEED_BASE`` and above), so no
evaluation frame can be a training frame as long as the training seed ``S <= 999`` and fewer
than about a million clips were drawn (``999 * 1_000_003 + 997_002 < 10**9``). The shipped
``pipeline.yaml`` uses scene seeds 101 and 202, also far below.

The frames are taken from short clips (one seed per clip) with a stride, so that the
evaluation set covers many scenes rather than many near-identical consecutive frames.

**Score threshold.** AP integrates precision over recall down to the lowest-scoring
detection; a model run at the pipeline's usual 0.5 threshold would truncate the
precision/recall curve and understate AP. ``maskstream eval`` therefore runs the model at
0.05 (torchvision's and Detectron's evaluation default).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.config import ModelConfig
from pipeline.evaluation.metrics import CocoGtBuilder, coco_ap, mask_ap_breakdown, results_from_detections
from pipeline.evaluation.ood_match import MATCH_IOU, OodTally, score_detections
from pipeline.messages import Detections
from pipeline.scenes import CLASS_NAMES, SceneConfig, SceneFrame, SceneGenerator

HOLDOUT_SEED_BASE = 10**9
"""Scene seeds of the held-out frames start here (see the module docstring)."""

EVAL_SCORE_THRESHOLD = 0.05
"""The model's score threshold for AP: low, so that the precision/recall curve is complete."""


SHIPPED_DUPLICATE_MASK_IOU: float | None = ModelConfig.model_fields["duplicate_mask_iou_threshold"].default


@dataclass(frozen=True)
class EngineSettings:
    """How ``maskstream eval`` builds the model and the inference engine."""

    arch: str = "maskrcnn_compact"
    weights: str | None = None  # a checkpoint path, a torchvision weights name, or None (random weights)
    min_size: int | None = None  # None: the size the weights were trained at (pipeline.model.input_size)
    max_size: int | None = None
    score_threshold: float = EVAL_SCORE_THRESHOLD
    mask_threshold: float = 0.5
    max_detections: int = 100
    device: str = "cpu"
    precision: str = "auto"  # the shipped default: pipeline.precision resolves it on the device
    channels_last: bool | str = "auto"
    duplicate_mask_iou_threshold: float | None = SHIPPED_DUPLICATE_MASK_IOU  # the engine's duplicate rule; None: off

    def model_section(self) -> dict[str, Any]:
        """The ``model:`` section of a pipeline config with the same settings."""
        return {
            "arch": self.arch,
            "weights": self.weights if self.weights is not None else "none",
            "class_names": list(CLASS_NAMES) if self.weights is None else None,
            "score_threshold": self.score_threshold,
            "mask_threshold": self.mask_threshold,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "max_detections": self.max_detections,
            "device": self.device,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "duplicate_mask_iou_threshold": self.duplicate_mask_iou_threshold,
        }


def build_engine(settings: EngineSettings) -> Any:
    """Load the model (random weights get the scene classes) and wrap it in ``pipeline.engine.InferenceEngine``."""
    from pipeline.engine import InferenceEngine
    from pipeline.model import load_model

    loaded = load_model(
        settings.arch,
        settings.weights,
        class_names=CLASS_NAMES if settings.weights is None else None,
        min_size=settings.min_size,
        max_size=settings.max_size,
        score_threshold=settings.score_threshold,
        max_detections=settings.max_detections,
    )
    return InferenceEngine(loaded.model, loaded.class_names, device=settings.device, precision=settings.precision,
                           mask_threshold=settings.mask_threshold, channels_last=settings.channels_last,
                           duplicate_mask_iou_threshold=settings.duplicate_mask_iou_threshold)


CLIP_FRAMES = 60
CLIP_STRIDE = 10


def heldout_frames(n_frames: int, *, seed_base: int = HOLDOUT_SEED_BASE, clip_frames: int = CLIP_FRAMES,
                   stride: int = CLIP_STRIDE,
                   width: int = 320, height: int = 240) -> Iterator[SceneFrame]:
    """``n_frames`` generated frames with GT: every ``stride``-th frame of clips seeded ``seed_base``, ``seed_base + 1``..."""
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    produced = 0
    clip = 0
    while produced < n_frames:
        config = SceneConfig(seed=seed_base + clip, width=width, height=height, num_frames=clip_frames)
        for frame in SceneGenerator(config):
            if frame.index % stride:
                continue
            yield frame
            produced += 1
            if produced == n_frames:
                return
        clip += 1


def infer_all(engine: Any, images: Sequence[np.ndarray], batch_size: int = 4) -> list[Detections]:
    out: list[Detections] = []
    for start in range(0, len(images), batch_size):
        out.extend(engine.infer(list(images[start : start + batch_size])))
    return out


def evaluate_model(engine: Any, n_frames: int, *, batch_size: int = 4, seed_base: int = HOLDOUT_SEED_BASE,
                   publish_threshold: float | None = None) -> dict[str, Any]:
    """Run the engine on ``n_frames`` held-out frames; ``{"frames", "gt_instances", "detections", "segm", "bbox", ...}``.

    Frames are generated, inferred and scored batch by batch (image id = position + 1), so memory
    does not grow with ``n_frames`` beyond the RLE ground truth and results. With a
    ``publish_threshold`` (the shipped ``model.score_threshold``), also ``at_threshold``: precision,
    recall and duplicates of the detections scoring at least that, at mask IoU 0.5, as the
    out-of-distribution part counts them (:mod:`pipeline.evaluation.ood_match`; no ``by_tag``: the
    generator's objects carry no tags).
    """
    gt = CocoGtBuilder()
    tally = OodTally(CLASS_NAMES[1:])
    results: list[dict[str, Any]] = []
    counts = {"frames": 0, "detections": 0}
    batch: list[SceneFrame] = []

    def flush() -> None:
        for frame, dets in zip(batch, engine.infer([f.image for f in batch])):
            counts["frames"] += 1
            h, w = frame.image.shape[:2]
            gt.add_image(counts["frames"], h, w, frame.instances)
            results.extend(results_from_detections(counts["frames"], dets))
            counts["detections"] += len(dets)
            if publish_threshold is not None:
                score_detections(frame.instances, dets, publish_threshold, tally)
        batch.clear()

    for frame in heldout_frames(n_frames, seed_base=seed_base):
        batch.append(frame)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    gt_dict = gt.build()
    per_clip = -(-CLIP_FRAMES // CLIP_STRIDE)
    at_threshold = None
    if publish_threshold is not None:
        at_threshold = {k: v for k, v in tally.summary().items() if k != "by_tag"}
    return {
        "frames": counts["frames"],
        "scene_seeds": [seed_base, seed_base + max(0, -(-counts["frames"] // per_clip) - 1)],
        "gt_instances": len(gt_dict["annotations"]),
        "detections": counts["detections"],
        **coco_ap(gt_dict, results),
        "mask_breakdown": mask_ap_breakdown(gt_dict, results),
        "score_threshold": publish_threshold,
        "match_iou": MATCH_IOU,
        "at_threshold": at_threshold,
    }
