"""``evaluate_ood`` with stand-in engines whose answers are known: perfect, and perfect plus a false square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.evaluation.ood_eval import OodSettings, evaluate_ood
from pipeline.evaluation.ood_match import encode_masks
from pipeline.evaluation.ood_scenes import render_frame
from pipeline.messages import Detections, RleMask

N = 5


def gt_detections(seed: int, extra_square: bool = False, score: float = 0.9) -> Detections:
    """The frame's ground truth as detections; with ``extra_square`` also a 0.6 'square' in the top-left corner."""
    insts = render_frame(seed).instances
    masks = [g.mask for g in insts]
    classes = [g.class_name for g in insts]
    scores = [score] * len(insts)
    boxes = [g.box for g in insts]
    if extra_square:
        corner = np.zeros((240, 320), bool)
        corner[0:30, 0:30] = True
        masks, classes, scores, boxes = masks + [corner], classes + ["square"], scores + [0.6], boxes + [(0, 0, 30, 30)]
    order = np.argsort(-np.asarray(scores), kind="stable")
    return Detections(boxes=np.array(boxes, np.float32).reshape(-1, 4)[order],
                      labels=np.array([["background", "circle", "square", "triangle", "star"].index(c) for c in classes],
                                      np.int64)[order],
                      scores=np.array(scores, np.float32)[order], class_names=tuple(classes[i] for i in order),
                      masks=tuple(RleMask.from_coco(r) for r in (encode_masks([masks[i] for i in order]))))


class GtEngine:
    """Answers frame ``k`` of its calls with that frame's ground truth (optionally plus a corner false positive)."""

    def __init__(self, extra_square: bool = False, score: float = 0.9) -> None:
        self.calls = 0
        self.extra_square, self.score = extra_square, score

    def infer(self, images: list[np.ndarray]) -> list[Detections]:
        if any(img.dtype != np.uint8 or img.shape != (240, 320, 3) for img in images):
            raise ValueError("the engine expects uint8 (240, 320, 3) frames")
        out = [gt_detections(self.calls + k, self.extra_square, self.score) for k in range(len(images))]
        self.calls += len(images)
        return out


def test_perfect_engine_scores_one_and_draws_nothing(tmp_path: Path) -> None:
    report = evaluate_ood(GtEngine(), OodSettings(frames=N, codec="none", batch_size=2), picture_dir=tmp_path)
    gt = sum(len(render_frame(s).instances) for s in range(N))
    assert report["frames"] == N and report["gt_instances"] == gt == report["detections"]
    assert report["segm"]["AP"] == pytest.approx(1.0) and report["bbox"]["AP50"] == pytest.approx(1.0)
    at = report["at_threshold"]
    assert at["all"] == {"published": gt, "tp": gt, "fp": 0, "gt": gt, "missed": 0, "precision": 1.0, "recall": 1.0}
    assert at["duplicate_pairs"] == 0 and report["worst_frames"] == [] and not list(tmp_path.iterdir())


def test_low_scores_are_not_published_but_count_for_ap() -> None:
    report = evaluate_ood(GtEngine(score=0.3), OodSettings(frames=2, codec="none"))
    assert report["segm"]["AP"] == pytest.approx(1.0)
    assert report["at_threshold"]["all"]["published"] == 0 and report["at_threshold"]["all"]["recall"] == 0.0


def test_a_false_corner_square_per_frame(tmp_path: Path) -> None:
    report = evaluate_ood(GtEngine(extra_square=True), OodSettings(frames=N, codec="h264", worst=2),
                          picture_dir=tmp_path)
    gt = report["gt_instances"]
    at = report["at_threshold"]
    assert (at["all"]["tp"], at["all"]["fp"], at["all"]["missed"]) == (gt, N, 0)
    assert at["all"]["precision"] == pytest.approx(gt / (gt + N))
    assert at["per_class"]["square"]["fp"] == N and at["false_positives"]["at_edge"] == N
    assert at["false_positives"]["background"] == N
    assert report["segm"]["AP"] == pytest.approx(1.0)  # scored below every true positive: AP cannot see it
    worst = report["worst_frames"]
    assert len(worst) == 2 and [w["false_positives"] for w in worst] == [1, 1] and [w["frame"] for w in worst] == [0, 1]
    for w in worst:
        png = Path(w["picture"])
        assert png.parent == tmp_path and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["codec"].startswith("h264")


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="codec"):
        OodSettings(codec="vp9")
    with pytest.raises(ConfigError, match="frames"):
        OodSettings(frames=0)
