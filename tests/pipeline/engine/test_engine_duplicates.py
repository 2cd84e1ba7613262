"""The duplicate rule: one instance per object across classes (pipeline.engine.duplicates and the engine)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

from pipeline.engine import InferenceEngine
from pipeline.engine.duplicates import (
    DEFAULT_DUPLICATE_MASK_IOU,
    DUPLICATE_MIN_SCORE,
    DUPLICATE_SCORE_FACTOR,
    candidate_pairs,
    duplicate_flags,
    duplicate_flags_exact,
    pair_mask_iou,
)
from pipeline.errors import InferenceError

M = 28


def square_probs(fill: tuple[slice, slice]) -> torch.Tensor:
    """A 28x28 probability map: 0.9 on ``fill`` (rows, cols), 0.1 elsewhere."""
    probs = torch.full((M, M), 0.1)
    probs[fill] = 0.9
    return probs


FULL = square_probs((slice(None), slice(None)))
LEFT = square_probs((slice(None), slice(0, M // 2)))
RIGHT = square_probs((slice(None), slice(M // 2, M)))


def flags(boxes: list[list[float]], scores: list[float], masks: list[torch.Tensor], images: list[int],
          threshold: float = 0.5) -> list[bool]:
    return duplicate_flags(torch.tensor(boxes), torch.tensor(scores), torch.stack(masks), torch.tensor(images),
                           0.5, threshold).tolist()


def test_one_object_under_two_classes_keeps_the_higher_score() -> None:
    # the same box and mask twice (two classes): the lower-scoring one, listed first here, goes
    assert flags([[10, 10, 50, 50], [10, 10, 50, 50]], [0.6, 0.9], [FULL, FULL], [0, 0]) == [True, False]


def test_overlapping_boxes_with_disjoint_masks_are_both_kept() -> None:
    # one box, two masks: its left half and its right half (two objects side by side)
    assert flags([[10, 10, 50, 50], [10, 10, 50, 50]], [0.9, 0.8], [LEFT, RIGHT], [0, 0]) == [False, False]


def test_other_images_and_disjoint_boxes_are_never_compared() -> None:
    boxes = [[10, 10, 50, 50], [10, 10, 50, 50], [60, 60, 90, 90]]
    assert flags(boxes, [0.9, 0.8, 0.7], [FULL, FULL, FULL], [0, 1, 1]) == [False, False, False]
    first, second = candidate_pairs(torch.tensor(boxes, dtype=torch.float32), torch.tensor([0, 1, 1]))
    assert first.numel() == second.numel() == 0


def test_equal_scores_the_earlier_wins_and_the_threshold_is_strict() -> None:
    assert flags([[0, 0, 40, 40], [0, 0, 40, 40]], [0.8, 0.8], [FULL, FULL], [0, 0]) == [False, True]
    # half of a box against the whole box: IoU 0.5, not above 0.5
    assert flags([[0, 0, 40, 40], [0, 0, 40, 40]], [0.9, 0.8], [FULL, LEFT], [0, 0], threshold=0.5) == [False, False]
    assert flags([[0, 0, 40, 40], [0, 0, 40, 40]], [0.9, 0.8], [FULL, LEFT], [0, 0], threshold=0.45) == [False, True]


def test_pair_iou_is_close_to_the_exact_iou_of_the_pasted_masks() -> None:
    """Random boxes and smooth random masks: the sampled IoU against the IoU of torchvision's pasted masks."""
    gen = torch.Generator().manual_seed(0)
    n, h, w = 40, 120, 160
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([100.0, 70.0])
    wh = 15 + torch.rand(n, 2, generator=gen) * 45
    boxes = torch.cat([xy, xy + wh], 1)
    coarse = torch.rand(n, 1, 5, 5, generator=gen)
    probs = torch.nn.functional.interpolate(coarse, size=(M, M), mode="bilinear", align_corners=False)[:, 0]
    first, second = candidate_pairs(boxes, torch.zeros(n, dtype=torch.int64))
    sampled = pair_mask_iou(boxes, probs, first, second, 0.5)
    pasted = paste_masks_in_image(probs[:, None], boxes, (h, w))[:, 0] > 0.5
    flat = pasted.reshape(n, -1).float()
    both = (flat[first] * flat[second]).sum(1)
    exact = both / (flat[first].sum(1) + flat[second].sum(1) - both).clamp_min(1)
    assert len(first) > 100 and float(exact.max()) > 0.3  # real overlaps are compared
    error = (sampled - exact).abs()
    print(f"{len(first)} pairs: sampled vs exact mask IoU, max error {float(error.max()):.3f}, mean {float(error.mean()):.4f}")
    assert float(error.max()) <= 0.04 and float(error.mean()) <= 0.01


@pytest.fixture(scope="module")
def shipped() -> tuple[torch.nn.Module, tuple[str, ...]]:
    """The shipped model at a low score threshold: it reports some objects under two classes."""
    from pipeline.model import load_model

    weights = Path(__file__).parents[3] / "pipeline" / "models" / "shapes.pt"
    loaded = load_model("maskrcnn_compact", str(weights), score_threshold=0.05, max_detections=100)
    return loaded.model, tuple(loaded.class_names)


def frames() -> list[np.ndarray]:
    """Eight classic generated frames (the scenes the shipped model was trained on)."""
    from pipeline.scenes import SceneConfig, SceneGenerator

    scene = SceneGenerator(SceneConfig(seed=123456, num_frames=80, variety="classic", min_objects=4, max_objects=7))
    return [f.image for f in scene if f.index % 10 == 0]


def pairs_above(masks: list[dict], threshold: float) -> int:
    if len(masks) < 2:
        return 0
    iou = mask_utils.iou(masks, masks, [0] * len(masks))
    return int((iou[np.triu_indices(len(masks), 1)] > threshold).sum())


def test_engine_publishes_no_two_instances_of_one_object(shipped: tuple[torch.nn.Module, tuple[str, ...]]) -> None:
    """At the shipped score threshold (0.5) no two instances of a frame overlap by mask IoU > 0.5; at an
    evaluation threshold (0.05) the duplicates stay as demoted second guesses (a tenth of their score)."""
    model, names = shipped
    images = frames()
    off = InferenceEngine(model, names, duplicate_mask_iou_threshold=None).infer(images)
    on = InferenceEngine(model, names).infer(images)
    published = copy.deepcopy(model)
    published.roi_heads.score_thresh = 0.5  # the shipped model.score_threshold
    shipped_on = InferenceEngine(published, names).infer(images)

    def pairs(dets: list, at_least: float) -> int:
        return sum(pairs_above([m.to_coco() for m, s in zip(d.masks, d.scores) if s >= at_least], 0.5) for d in dets)

    print(f"pairs with mask IoU > 0.5 among detections >= 0.5: {pairs(off, 0.5)} without the rule, "
          f"{pairs(on, 0.5)} with it; {pairs(shipped_on, 0.0)} at the shipped threshold")
    assert pairs(off, 0.5) > 0 and pairs(on, 0.5) == 0 and pairs(shipped_on, 0.0) == 0
    assert [len(d) for d in on] == [len(d) for d in off]  # at 0.05 nothing is lost: demoted, not deleted
    demoted = 0
    for a, b, c in zip(off, on, shipped_on, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        lowered = b.scores < a.scores
        np.testing.assert_allclose(b.scores[lowered], a.scores[lowered] * DUPLICATE_SCORE_FACTOR, rtol=1e-6)
        assert np.all(a.scores[lowered] >= DUPLICATE_MIN_SCORE)
        demoted += int(lowered.sum())
        np.testing.assert_array_equal(c.labels, b.labels[b.scores >= 0.5])  # the shipped run keeps the rest
    assert demoted > 0


def test_engine_agrees_with_the_exact_rule_on_full_frame_masks(shipped: tuple[torch.nn.Module, tuple[str, ...]]) -> None:
    model, names = shipped
    engine = InferenceEngine(model, names)
    fast, reference = engine.infer(frames()), engine.infer_reference(frames())
    for a, b in zip(fast, reference, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_exact_rule_on_hand_made_masks() -> None:
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[0, :, :6] = True  # 60 px
    masks[1, :, :5] = True  # 50 px, inside mask 0: IoU 50/60
    masks[2, :, 5:] = True  # 50 px, overlaps mask 0 by 10: IoU 10/100
    assert duplicate_flags_exact(masks, torch.tensor([0.9, 0.95, 0.5]), 0.5).tolist() == [True, False, False]
    assert duplicate_flags_exact(masks, torch.tensor([0.4, 0.95, 0.5]), 0.5).tolist() == [False, False, False]


def test_a_duplicate_below_the_minimum_score_is_left_alone() -> None:
    assert flags([[10, 10, 50, 50], [10, 10, 50, 50]], [0.45, 0.9], [FULL, FULL], [0, 0]) == [False, False]


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5, True, "0.5"])
def test_engine_refuses_a_threshold_outside_the_range(shipped: tuple[torch.nn.Module, tuple[str, ...]], value: object) -> None:
    with pytest.raises(InferenceError, match=rf"duplicate_mask_iou_threshold must be in \(0, 1\] or None \(off\), got {value!r}"):
        InferenceEngine(shipped[0], shipped[1], duplicate_mask_iou_threshold=value)  # type: ignore[arg-type]


def test_the_engine_and_the_config_share_the_default() -> None:
    from pipeline.config import ModelConfig

    assert ModelConfig().duplicate_mask_iou_threshold == DEFAULT_DUPLICATE_MASK_IOU
