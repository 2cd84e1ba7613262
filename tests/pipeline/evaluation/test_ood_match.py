"""Precision, recall, false-positive kinds and duplicates at the shipped threshold, on hand-made frames."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.ood_match import FrameObjects, OodTally, encode_masks, match_frame, size_of

H, W = 48, 64


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


A = box(4, 4, 24, 24)  # square, 400 px
B = box(36, 10, 52, 34)  # circle, 384 px
C = box(30, 34, 40, 44)  # triangle, 100 px, missed by class
DISTRACTOR = box(54, 38, 64, 48)
GT = [A, B, C]
GT_CLASSES = ["square", "circle", "triangle"]
DETS = [  # (class, score, mask), in descending score
    ("square", 0.90, A),  # 0: finds A
    ("circle", 0.80, A),  # 1: A again, other class: wrong_class, and a duplicate pair with 0
    ("circle", 0.70, B),  # 2: finds B
    ("circle", 0.60, box(36, 10, 44, 34)),  # 3: half of B: IoU exactly 0.5 -> duplicate kind, but no pair (not > 0.5)
    ("square", 0.58, box(0, 40, 10, 48)),  # 4: empty background, at the left and bottom edges
    ("square", 0.55, box(4, 4, 14, 14)),  # 5: a quarter of A: poor_mask
    ("star", 0.54, DISTRACTOR),  # 6: on the distractor, at the right edge
    ("circle", 0.52, C),  # 7: C with the wrong class
]


def frame_match(classes: list[str] | None = None, gt_classes: list[str] | None = None):
    return match_frame(encode_masks([d[2] for d in DETS]), classes or [d[0] for d in DETS], [d[1] for d in DETS],
                       encode_masks(GT), gt_classes or GT_CLASSES, distractors=encode_masks([DISTRACTOR])[0])


def test_match_frame_classifies_every_instance() -> None:
    m = frame_match()
    assert m.matches == ((0, 0), (2, 1))
    assert m.false_positives == (1, 3, 4, 5, 6, 7)
    assert m.fp_kinds == ("wrong_class", "duplicate", "background", "poor_mask", "distractor", "wrong_class")
    assert m.fp_at_edge == (False, False, True, False, True, False)
    assert m.misses == (2,)
    assert m.duplicate_pairs == ((0, 1),)
    assert m.errors == 7


def test_tally_precision_recall_per_class_size_and_tag() -> None:
    tally = OodTally(["circle", "square", "triangle", "star"])
    objects = FrameObjects([d[0] for d in DETS], [float(d[2].sum()) for d in DETS], GT_CLASSES,
                           [float(g.sum()) for g in GT], [frozenset({"edge", "occluded"}), frozenset(),
                                                           frozenset({"low_contrast"})])
    agnostic = frame_match(["x"] * len(DETS), ["x"] * len(GT))
    tally.add(frame_match(), objects, agnostic)
    s = tally.summary()
    assert s["all"] == {"published": 8, "tp": 2, "fp": 6, "gt": 3, "missed": 1, "precision": 0.25,
                        "recall": pytest.approx(2 / 3)}
    assert s["class_agnostic"] == {"tp": 3, "fp": 5, "precision": 3 / 8, "recall": 1.0}
    assert s["per_class"]["square"] == {"published": 3, "tp": 1, "fp": 2, "gt": 1, "missed": 0,
                                        "precision": pytest.approx(1 / 3), "recall": 1.0}
    assert s["per_class"]["triangle"]["recall"] == 0.0 and s["per_class"]["triangle"]["precision"] is None
    assert s["per_class"]["star"]["precision"] == 0.0 and s["per_class"]["star"]["recall"] is None
    assert s["by_size"]["small"] == s["all"] and s["by_size"]["large"]["published"] == 0
    assert s["by_tag"] == {"plain": {"gt": 1, "missed": 0, "recall": 1.0},
                           "low_contrast": {"gt": 1, "missed": 1, "recall": 0.0},
                           "edge": {"gt": 1, "missed": 0, "recall": 1.0},
                           "occluded": {"gt": 1, "missed": 0, "recall": 1.0}}
    assert s["false_positives"] == {"duplicate": 1, "wrong_class": 2, "poor_mask": 1, "distractor": 1,
                                    "background": 1, "at_edge": 2}
    assert (s["duplicate_pairs"], s["frames_with_duplicates"]) == (1, 1)
    tally.add(frame_match(), objects)  # a second frame doubles the counts
    assert tally.summary()["all"]["published"] == 16 and tally.summary()["duplicate_pairs"] == 2


def test_higher_score_takes_the_object_first() -> None:
    """COCO's greedy order: the 0.9 instance (IoU 0.6) takes A, the exact 0.8 one is then a duplicate."""
    partial = box(4, 4, 16, 24)  # 240 of A's 400 px: IoU 0.6
    m = match_frame(encode_masks([partial, A]), ["square", "square"], [0.9, 0.8], encode_masks([A]), ["square"])
    assert m.matches == ((0, 0),) and m.fp_kinds == ("duplicate",) and m.duplicate_pairs == ((0, 1),)


def test_empty_frames() -> None:
    m = match_frame([], [], [], encode_masks([A]), ["square"])
    assert (m.matches, m.false_positives, m.misses) == ((), (), (0,))
    m = match_frame(encode_masks([A]), ["square"], [0.9], [], [])
    assert m.fp_kinds == ("background",) and m.misses == ()


def test_size_bins_are_cocos() -> None:
    assert [size_of(a) for a in (0, 1023, 1024, 9215, 9216)] == ["small", "small", "medium", "medium", "large"]
