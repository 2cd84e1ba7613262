"""COCO AP and MOT metrics on tiny hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.evaluation.metrics import (
    CocoGtBuilder,
    MotFrame,
    coco_ap,
    mask_ap_breakdown,
    mot_metrics,
    results_from_detections,
    results_from_instances,
)
from pipeline.messages import Detections, Instance, RleMask
from pipeline.scenes import CLASS_NAMES, GtInstance

H, W = 48, 64


def square(x0: int, y0: int, w: int, h: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def gt_instance(track_id: int, label: int, mask: np.ndarray) -> GtInstance:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return GtInstance(track_id, label, CLASS_NAMES[label], mask, box)


def rle(mask: np.ndarray) -> RleMask:
    return RleMask.from_coco(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))


def detections(items: list[tuple[int, float, np.ndarray, tuple[float, float, float, float]]]) -> Detections:
    """``(label, score, mask, box)`` per detection."""
    return Detections(
        boxes=np.array([i[3] for i in items], np.float32).reshape(-1, 4),
        labels=np.array([i[0] for i in items], np.int64),
        scores=np.array([i[1] for i in items], np.float32),
        class_names=tuple(CLASS_NAMES[i[0]] for i in items),
        masks=tuple(rle(i[2]) for i in items),
    )


def two_object_gt() -> tuple[dict, list[GtInstance]]:
    a = gt_instance(1, 1, square(4, 4, 20, 20))
    b = gt_instance(2, 2, square(36, 10, 16, 24))
    builder = CocoGtBuilder()
    builder.add_image(1, H, W, [a, b])
    return builder.build(), [a, b]


# ----------------------------------------------------------------------------- AP


def test_perfect_predictions_give_ap_one() -> None:
    gt, (a, b) = two_object_gt()
    dets = detections([(1, 0.9, a.mask, a.box), (2, 0.8, b.mask, b.box)])
    ap = coco_ap(gt, results_from_detections(1, dets))
    for iou_type in ("segm", "bbox"):
        assert ap[iou_type] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0), "AP75": pytest.approx(1.0)}


def test_half_mask_counts_only_at_iou_half() -> None:
    """A mask covering half the object has IoU exactly 0.5: matched at the 0.5 threshold only, so
    AP50 = 1, AP75 = 0 and AP@[.5:.95] = 1/10; the full box keeps box AP at 1."""
    gt_mask = square(10, 10, 20, 20)
    g = gt_instance(1, 1, gt_mask)
    builder = CocoGtBuilder()
    builder.add_image(1, H, W, [g])
    half = square(10, 10, 10, 20)
    ap = coco_ap(builder.build(), results_from_detections(1, detections([(1, 0.9, half, g.box)])))
    assert ap["segm"]["AP50"] == pytest.approx(1.0)
    assert ap["segm"]["AP75"] == pytest.approx(0.0)
    assert ap["segm"]["AP"] == pytest.approx(0.1)
    assert ap["bbox"]["AP"] == pytest.approx(1.0)


def test_wrong_class_and_false_positive_ranking() -> None:
    """Object a detected twice: correctly at 0.5, and a false positive elsewhere at 0.9; object b
    detected with the wrong class. Category 1: precision 1/2 at recall 1 -> AP = 0.5; category 2:
    missed -> AP 0; mean 0.25 at every threshold."""
    gt, (a, b) = two_object_gt()
    fp = square(30, 36, 10, 10)
    dets = detections([(1, 0.9, fp, (30, 36, 40, 46)), (1, 0.5, a.mask, a.box), (3, 0.8, b.mask, b.box)])
    ap = coco_ap(gt, results_from_detections(1, dets))
    assert ap["segm"]["AP"] == pytest.approx(0.25, abs=1e-3)
    assert ap["bbox"]["AP50"] == pytest.approx(0.25, abs=1e-3)


def test_mask_ap_breakdown_separates_wrong_labels_sizes_and_classes() -> None:
    """a (circle) found right; b (square) found with the triangle label. Class-aware: circle 1, square 0
    (mean 0.5); class-agnostic both are found: 1. Both objects are COCO-small (400 and 384 px), so the
    small AP is the class-aware 0.5 and medium/large have no objects. Triangle/star have no GT: None."""
    gt, (a, b) = two_object_gt()
    dets = detections([(1, 0.9, a.mask, a.box), (3, 0.8, b.mask, b.box)])
    out = mask_ap_breakdown(gt, results_from_detections(1, dets))
    assert out["class_agnostic"] == pytest.approx(1.0)
    assert out["small"] == pytest.approx(0.5) and out["medium"] is None and out["large"] is None
    assert out["per_class"] == {"circle": pytest.approx(1.0), "square": pytest.approx(0.0), "triangle": None,
                                "star": None}
    assert mask_ap_breakdown(gt, [])["class_agnostic"] is None


def test_no_predictions_give_zero_and_no_gt_gives_none() -> None:
    gt, _ = two_object_gt()
    assert coco_ap(gt, [])["segm"]["AP"] == 0.0
    empty = CocoGtBuilder()
    empty.add_image(1, H, W, [])
    assert coco_ap(empty.build(), [])["bbox"]["AP"] is None


def test_instances_and_unknown_classes() -> None:
    gt, (a, b) = two_object_gt()
    insts = [
        Instance(label=1, class_name="circle", score=0.9, box=a.box, mask=rle(a.mask), track_id=3),
        Instance(label=2, class_name="square", score=0.8, box=b.box, mask=rle(b.mask), track_id=None),
        Instance(label=7, class_name="person", score=0.99, box=(0, 0, 5, 5), mask=rle(square(0, 0, 5, 5))),
    ]
    results = results_from_instances(1, insts)
    assert len(results) == 2  # "person" is no scene class: dropped
    assert coco_ap(gt, results)["segm"]["AP"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- MOT

A_BOX = [0, 0, 10, 10]
B_BOX = [50, 50, 60, 60]
FAR_BOX = [100, 0, 110, 10]


def gt_seq(n: int = 6) -> list[MotFrame]:
    return [MotFrame.of([1, 2], [A_BOX, B_BOX]) for _ in range(n)]


def test_perfect_tracks() -> None:
    pred = [MotFrame.of([7, 9], [A_BOX, B_BOX]) for _ in range(6)]
    m = mot_metrics([(gt_seq(), pred)])
    assert (m["MOTA"], m["IDF1"], m["HOTA"]) == (1.0, 1.0, pytest.approx(1.0))
    assert (m["CLR_TP"], m["CLR_FN"], m["CLR_FP"], m["IDSW"]) == (12, 0, 0, 0)


def test_one_id_switch() -> None:
    """Object 2 is tracked as 20 in frames 1-3 and as 30 in frames 4-6.
    MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 1/12 = 11/12.
    IDF1: best one-to-one id matching 1<->10 (6 frames), 2<->20 (3) -> IDTP 9, IDFN 3, IDFP 3,
    IDF1 = 2*9 / (2*9 + 3 + 3) = 0.75."""
    pred = [MotFrame.of([10, 20 if t < 3 else 30], [A_BOX, B_BOX]) for t in range(6)]
    m = mot_metrics([(gt_seq(), pred)])
    assert m["IDSW"] == 1
    assert m["MOTA"] == pytest.approx(11 / 12)
    assert (m["IDTP"], m["IDFN"], m["IDFP"]) == (9, 3, 3)
    assert m["IDF1"] == pytest.approx(0.75)


def test_one_missed_detection_and_one_false_positive() -> None:
    """Object 2 missed in frame 3 (same id after: no switch) and one far-away box in frame 5.
    MOTA = 1 - (1 FN + 1 FP) / 12 = 10/12. IDTP 11, IDFN 1, IDFP 1 -> IDF1 = 22/24."""
    pred = []
    for t in range(6):
        ids, boxes = [10, 20], [A_BOX, B_BOX]
        if t == 2:
            ids, boxes = [10], [A_BOX]
        if t == 4:
            ids, boxes = [10, 20, 99], [A_BOX, B_BOX, FAR_BOX]
        pred.append(MotFrame.of(ids, boxes))
    m = mot_metrics([(gt_seq(), pred)])
    assert (m["CLR_TP"], m["CLR_FN"], m["CLR_FP"], m["IDSW"]) == (11, 1, 1, 0)
    assert m["MOTA"] == pytest.approx(10 / 12)
    assert m["IDF1"] == pytest.approx(22 / 24)


def test_one_missed_detection_only() -> None:
    """MOTA = 1 - 1/12 = 11/12; IDF1 = 2*11 / (2*11 + 1 + 0) = 22/23."""
    pred = [MotFrame.of([10, 20], [A_BOX, B_BOX]) if t != 2 else MotFrame.of([10], [A_BOX]) for t in range(6)]
    m = mot_metrics([(gt_seq(), pred)])
    assert m["MOTA"] == pytest.approx(11 / 12)
    assert m["IDF1"] == pytest.approx(22 / 23)


def test_box_iou_below_half_is_a_miss_plus_false_positive() -> None:
    """A box shifted so that IoU = 1/3 (< 0.5): in that frame a FN and a FP for object 1."""
    shifted = [5, 0, 15, 10]  # overlap 50 / union 150
    pred = [MotFrame.of([10, 20], [shifted if t == 0 else A_BOX, B_BOX]) for t in range(6)]
    m = mot_metrics([(gt_seq(), pred)])
    assert (m["CLR_TP"], m["CLR_FN"], m["CLR_FP"]) == (11, 1, 1)
    assert m["MOTA"] == pytest.approx(10 / 12)


def test_sequences_are_combined_by_summing_counts() -> None:
    perfect = [MotFrame.of([7, 9], [A_BOX, B_BOX]) for _ in range(6)]
    switched = [MotFrame.of([10, 20 if t < 3 else 30], [A_BOX, B_BOX]) for t in range(6)]
    m = mot_metrics([(gt_seq(), perfect), (gt_seq(), switched)])
    assert m["MOTA"] == pytest.approx(23 / 24)
    assert m["IDF1"] == pytest.approx(2 * 21 / (2 * 21 + 3 + 3))


def test_frame_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="6 frames"):
        mot_metrics([(gt_seq(), gt_seq(5))])
