"""The model on out-of-distribution frames: COCO AP, and what a subscriber sees at the shipped score threshold.

The frames come from :mod:`pipeline.evaluation.ood_scenes`, a renderer the model never trained
on (PIL shapes, independent of :mod:`pipeline.scenes`), encoded as H.264 clips of
``CLIP_FRAMES`` frames and decoded again as a user's video would be (``codec="none"``: the
rendered pixels). The ground truth is the renderer's, from before encoding.

- **AP**: COCO mask and box AP over every detection the eval engine returns (score >= 0.05,
  as :mod:`pipeline.evaluation.model_ap`), with the same breakdown (class-agnostic, sizes, classes).
- **At the threshold**: the detections scoring at least ``score_threshold`` (the shipped
  ``pipeline.yaml``'s ``model.score_threshold``): what ``maskstream run`` publishes before
  tracking. torchvision drops low scores before its per-class NMS and keeps the best
  ``max_detections``, and the engine's duplicate rule (``pipeline.engine.duplicates``) compares a
  detection only with higher-scoring ones, so the detections >= the threshold out of a 0.05 run
  are those a run at the threshold returns (unless a frame has more than ``max_detections`` of
  them). Precision,
  recall, false-positive kinds and duplicate pairs: :mod:`pipeline.evaluation.ood_match`.
- **Worst frames**: the ``worst`` frames with the most false positives plus misses, drawn by
  :mod:`pipeline.evaluation.ood_pictures` into ``picture_dir/ood_worst_<rank>.png``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.errors import ConfigError
from pipeline.evaluation.metrics import CocoGtBuilder, coco_ap, mask_ap_breakdown, results_from_detections
from pipeline.evaluation.model_ap import infer_all
from pipeline.evaluation.ood_match import MATCH_IOU, FrameMatch, OodTally, score_detections
from pipeline.evaluation.ood_pictures import draw_frame_errors
from pipeline.evaluation.ood_scenes import (
    H264_CRF,
    ISSUE_CASE,
    OOD_SEED_BASE,
    OodConfig,
    OodFrame,
    h264_round_trip,
    render_frame,
)
from pipeline.messages import Detections

CLIP_FRAMES = 24  # frames per H.264 clip: the length of the clip in issue 13; also bounds memory for any frame count
CODECS = ("h264", "none")


@dataclass(frozen=True)
class OodSettings:
    """What :func:`evaluate_ood` renders and how it scores it."""

    frames: int = 200
    score_threshold: float = 0.5  # the shipped pipeline.yaml's model.score_threshold
    seed_base: int = OOD_SEED_BASE
    codec: str = "h264"  # h264 (encoded and decoded again, as a user's video) or none (the rendered pixels)
    worst: int = 4  # frames drawn
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.frames < 1 or self.batch_size < 1 or self.worst < 0:
            raise ConfigError(f"OOD settings: frames and batch_size must be >= 1 and worst >= 0, got {self}")
        if self.codec not in CODECS:
            raise ConfigError(f"OOD codec {self.codec!r}: expected one of {CODECS}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"OOD score threshold {self.score_threshold}: expected a value in [0, 1]")


@dataclass(frozen=True, eq=False)
class ScoredFrame:
    """One frame with the model's input ``image`` (uint8 ``(H, W, 3)``), its detections >= the threshold, the match."""

    frame: OodFrame
    image: np.ndarray
    published: Detections
    match: FrameMatch


def score_frame(frame: OodFrame, image: np.ndarray, dets: Detections, threshold: float,
                tally: OodTally) -> ScoredFrame:
    """Match the detections >= ``threshold`` to the frame's objects and count them (see ``score_detections``)."""
    published, match = score_detections(frame.instances, dets, threshold, tally, distractors=frame.distractors)
    return ScoredFrame(frame, image, published, match)


def _keep_worst(worst: list[ScoredFrame], scored: ScoredFrame, n: int) -> None:
    """Keep the ``n`` frames with most errors (earlier frames first among equals), in that order."""
    if n and scored.match.errors:
        worst.append(scored)
        worst.sort(key=lambda s: (-s.match.errors, s.frame.index))
        del worst[n:]


def draw_worst(worst: Sequence[ScoredFrame], picture_dir: Path) -> list[dict[str, Any]]:
    """Write ``ood_worst_<rank>.png`` per frame; their summaries with the picture paths."""
    out = []
    for rank, s in enumerate(worst, start=1):
        m, f = s.match, s.frame
        objects = [(g.mask, g.class_name, j not in m.misses) for j, g in enumerate(f.instances)]
        fps = [(mask_utils.decode({"size": [s.published.masks[i].height, s.published.masks[i].width],
                                   "counts": s.published.masks[i].counts.encode("ascii")}).astype(bool),
                s.published.class_names[i], float(s.published.scores[i]), kind)
               for i, kind in zip(m.false_positives, m.fp_kinds)]
        header = (f"frame {f.index} (seed {f.seed}): {len(fps)} false pos., {len(m.misses)}/{len(f.instances)} "
                  f"missed. green found, yellow missed, red false")
        path = draw_frame_errors(s.image, objects, fps, header, Path(picture_dir) / f"ood_worst_{rank}.png")
        out.append({"frame": f.index, "seed": f.seed, "background": f.background, "noise_sigma": round(f.noise_sigma, 2),
                    "false_positives": len(fps), "fp_kinds": list(m.fp_kinds), "misses": len(m.misses),
                    "missed": [f.instances[j].class_name for j in m.misses], "gt": len(f.instances),
                    "picture": str(path)})
    return out


def inferred_frames(engine: Any, settings: OodSettings, config: OodConfig = OodConfig()
                    ) -> Iterator[tuple[OodFrame, np.ndarray, Detections]]:
    """``settings.frames`` OOD frames (seeds from ``settings.seed_base``), each with the model's input ``image`` (uint8
    ``(H, W, 3)`` RGB: after the H.264 round trip unless ``settings.codec`` is ``none``) and ``engine``'s detections
    on it. Rendered, encoded and inferred clip by clip (``CLIP_FRAMES``), so memory does not grow with the count."""
    for start in range(0, settings.frames, CLIP_FRAMES):
        frames = [render_frame(settings.seed_base + i, config, i)
                  for i in range(start, min(settings.frames, start + CLIP_FRAMES))]
        images = [f.image for f in frames]
        if settings.codec == "h264":
            images = h264_round_trip(images)
        yield from zip(frames, images, infer_all(engine, images, settings.batch_size))


def evaluate_ood(engine: Any, settings: OodSettings = OodSettings(), *, picture_dir: Path | None = None,
                 config: OodConfig = OodConfig()) -> dict[str, Any]:
    """Run ``engine`` (``infer(list of uint8 (H, W, 3) RGB) -> list[Detections]``) on ``settings.frames`` OOD frames.

    Returns the ``ood`` section of the report (see the module docstring); pictures only with a ``picture_dir``.
    """
    gt, tally = CocoGtBuilder(), OodTally(config.classes)
    results: list[dict[str, Any]] = []
    worst: list[ScoredFrame] = []
    detections = 0
    for frame, image, dets in inferred_frames(engine, settings, config):
        gt.add_image(frame.index + 1, config.height, config.width, frame.instances)
        results.extend(results_from_detections(frame.index + 1, dets))
        detections += len(dets)
        _keep_worst(worst, score_frame(frame, image, dets, settings.score_threshold, tally), settings.worst)
    gt_dict = gt.build()
    return {
        "renderer": "pipeline.evaluation.ood_scenes (PIL; independent of pipeline.scenes)",
        "frames": settings.frames,
        "seeds": [settings.seed_base, settings.seed_base + settings.frames - 1],
        "codec": f"h264 (libx264 crf {H264_CRF}, yuv420p, clips of {CLIP_FRAMES} frames)"
                 if settings.codec == "h264" else "none",
        "scene_config": asdict(config),
        "gt_instances": len(gt_dict["annotations"]),
        "detections": detections,
        **coco_ap(gt_dict, results),
        "mask_breakdown": mask_ap_breakdown(gt_dict, results),
        "score_threshold": settings.score_threshold,
        "match_iou": MATCH_IOU,
        "at_threshold": tally.summary(),
        "worst_frames": draw_worst(worst, picture_dir) if picture_dir is not None else [],
    }


def evaluate_issue_case(engine: Any, settings: OodSettings = OodSettings()) -> dict[str, Any]:
    """:func:`evaluate_ood` on :data:`~pipeline.evaluation.ood_scenes.ISSUE_CASE` (the plain scenes issue 13 reports),
    with ``settings``' frames, seeds, codec and threshold; no pictures. The report's ``ood_issue_case`` section."""
    from dataclasses import replace

    return evaluate_ood(engine, replace(settings, worst=0), config=ISSUE_CASE)
