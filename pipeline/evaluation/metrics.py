"""The metrics behind ``maskstream eval``: COCO AP (pycocotools) and MOT metrics (roboflow ``trackers.eval``).

COCO AP: ``COCOeval`` on an in-memory ground truth dict, for ``segm`` (mask AP) and
``bbox`` (box AP), reporting AP@[.5:.95], AP50 and AP75 (area ``all``, 100 detections
per image, as ``COCOeval.summarize`` does).

MOT metrics: per sequence, per frame, ground-truth ids and boxes against predicted
(track) ids and boxes; the similarity is box IoU (``trackers.eval.box_iou``), as
MOTChallenge/TrackEval match; CLEAR (MOTA, IDSW...) and Identity (IDF1) at IoU 0.5,
HOTA over its 19 thresholds. Sequences are combined with ``trackers.eval``'s
``aggregate_*`` functions (sums of counts, as TrackEval's ``COMBINED`` row).
We call ``compute_*_metrics`` directly rather than ``evaluate_mot_sequence``: the latter
reads MOTChallenge files and scores only class 1 (pedestrian) rows, while our scenes
have four classes, all scored.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline.messages import Detections, Instance
from pipeline.scenes import CLASS_NAMES

AP_KEYS = ("AP", "AP50", "AP75")
MOT_IOU_THRESHOLD = 0.5


# ----------------------------------------------------------------------------- COCO AP


class GtObject(Protocol):
    """One ground-truth object, as ``pipeline.scenes.GtInstance`` and ``ood_scenes.OodInstance`` both are:
    ``mask`` bool ``(H, W)``, ``box`` xyxy pixels (``x2``/``y2`` exclusive), ``label`` a ``CLASS_NAMES`` index."""

    @property
    def track_id(self) -> int: ...

    @property
    def label(self) -> int: ...

    @property
    def mask(self) -> np.ndarray: ...

    @property
    def box(self) -> tuple[float, float, float, float]: ...


def coco_categories() -> list[dict[str, Any]]:
    return [{"id": label, "name": CLASS_NAMES[label], "supercategory": "shape"} for label in range(1, len(CLASS_NAMES))]


class CocoGtBuilder:
    """Builds a COCO instances dict in memory, one image at a time."""

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add_image(self, image_id: int, height: int, width: int, instances: Sequence[GtObject]) -> None:
        self.images.append({"id": int(image_id), "height": int(height), "width": int(width)})
        if not instances:
            return
        stacked = np.asfortranarray(np.stack([g.mask for g in instances], axis=2).astype(np.uint8))
        for inst, rle in zip(instances, mask_utils.encode(stacked)):
            x1, y1, x2, y2 = inst.box
            self.add_annotation(image_id, inst.label, _rle_dict(rle), [x1, y1, x2 - x1, y2 - y1],
                                int(np.count_nonzero(inst.mask)), track_id=inst.track_id)

    def add_annotation(self, image_id: int, category_id: int, segmentation: dict[str, Any], bbox: Sequence[float],
                       area: float, *, track_id: int | None = None) -> None:
        ann = {"id": len(self.annotations) + 1, "image_id": int(image_id), "category_id": int(category_id),
               "segmentation": segmentation, "bbox": [float(v) for v in bbox], "area": float(area), "iscrowd": 0}
        if track_id is not None:
            ann["track_id"] = int(track_id)
        self.annotations.append(ann)

    def extend_from_coco(self, dataset: dict[str, Any], image_id_offset: int) -> None:
        """Add every image and annotation of a COCO dict (``write_dataset``'s), shifting image ids by the offset."""
        for img in dataset["images"]:
            self.images.append({"id": int(img["id"]) + image_id_offset, "height": int(img["height"]),
                                "width": int(img["width"])})
        for ann in dataset["annotations"]:
            self.add_annotation(int(ann["image_id"]) + image_id_offset, ann["category_id"], ann["segmentation"],
                                ann["bbox"], ann["area"], track_id=ann.get("track_id"))

    def build(self) -> dict[str, Any]:
        return {"images": list(self.images), "annotations": list(self.annotations), "categories": coco_categories()}


def _rle_dict(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def category_of(class_name: str) -> int | None:
    """COCO category id of a class name (the scene label), ``None`` for a name the scenes do not have."""
    try:
        label = CLASS_NAMES.index(class_name)
    except ValueError:
        return None
    return label if label > 0 else None


def results_from_detections(image_id: int, detections: Detections) -> list[dict[str, Any]]:
    """COCO results (box and mask) of one frame's model output; classes are matched by name."""
    out = []
    for i in range(len(detections)):
        cat = category_of(detections.class_names[i])
        if cat is None:
            continue
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[i])
        out.append({"image_id": int(image_id), "category_id": cat, "score": float(detections.scores[i]),
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": detections.masks[i].to_coco()})
    return out


def results_from_instances(image_id: int, instances: Iterable[Instance]) -> list[dict[str, Any]]:
    """COCO results of one frame's published instances (score = the instance's score)."""
    out = []
    for inst in instances:
        cat = category_of(inst.class_name)
        if cat is None:
            continue
        x1, y1, x2, y2 = inst.box
        out.append({"image_id": int(image_id), "category_id": cat, "score": float(inst.score),
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "segmentation": inst.mask.to_coco()})
    return out


def coco_ap(gt: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``{"segm": {"AP", "AP50", "AP75"}, "bbox": {...}}``; ``None`` where COCO has no value (no GT at all).

    Each result needs ``image_id``, ``category_id``, ``score``, ``bbox`` ``[x, y, w, h]`` and
    ``segmentation`` (compressed RLE). Mask AP gets the masks only (its areas and boxes are the
    masks'), box AP the boxes only.
    """
    out: dict[str, dict[str, float | None]] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        for iou_type, drop in (("segm", "bbox"), ("bbox", "segmentation")):
            if not results:
                has_gt = bool(gt.get("annotations"))
                out[iou_type] = {k: (0.0 if has_gt else None) for k in AP_KEYS}
                continue
            dts = [{k: v for k, v in r.items() if k != drop} for r in copy.deepcopy(list(results))]
            coco_dt = coco_gt.loadRes(dts)
            ev = COCOeval(coco_gt, coco_dt, iouType=iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats = ev.stats
            out[iou_type] = {k: (None if stats[i] < 0 else float(stats[i])) for i, k in enumerate(AP_KEYS)}
    return out


def mask_ap_breakdown(gt: dict[str, Any], results: Sequence[dict[str, Any]],
                      class_names: Sequence[str] = CLASS_NAMES) -> dict[str, Any]:
    """Where mask AP@[.5:.95] is lost: ``{"class_agnostic", "small", "medium", "large", "per_class"}``.

    ``class_agnostic``: AP with every class merged (``useCats=0``): the gap to the class-aware AP is
    what wrong class labels cost. ``small``/``medium``/``large``: COCO's areas (< 32², < 96², larger;
    ``None`` when no object is that size). ``per_class``: ``{name: AP}`` (``None`` without GT of that class).
    """
    empty = {"class_agnostic": None, "small": None, "medium": None, "large": None,
             "per_class": {name: None for name in class_names[1:]}}
    if not results or not gt.get("annotations"):
        return empty
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([{k: v for k, v in r.items() if k != "bbox"} for r in copy.deepcopy(list(results))])
        out: dict[str, Any] = dict(empty)
        for use_cats in (1, 0):
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.params.useCats = use_cats
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            if use_cats:
                out.update({k: _stat(ev.stats[i]) for k, i in (("small", 3), ("medium", 4), ("large", 5))})
                precision = ev.eval["precision"]  # (iou thresholds, recall points, classes, areas, max dets)
                per_class = {}
                for k, cat_id in enumerate(ev.params.catIds):
                    p = precision[:, :, k, 0, -1]
                    name = class_names[cat_id] if cat_id < len(class_names) else str(cat_id)
                    per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
                out["per_class"] = {**empty["per_class"], **per_class}
            else:
                out["class_agnostic"] = _stat(ev.stats[0])
    return out


def _stat(value: float) -> float | None:
    return None if value < 0 else float(value)


# ----------------------------------------------------------------------------- MOT metrics


@dataclass(frozen=True)
class MotFrame:
    """One frame of a track set: ``ids`` int ``(N,)`` and ``boxes`` float ``(N, 4)`` xyxy pixels."""

    ids: np.ndarray
    boxes: np.ndarray

    @classmethod
    def of(cls, ids: Sequence[int], boxes: Sequence[Sequence[float]] | np.ndarray) -> "MotFrame":
        return cls(np.asarray(ids, dtype=np.int64).reshape(-1), np.asarray(boxes, dtype=np.float64).reshape(-1, 4))

    @classmethod
    def empty(cls) -> "MotFrame":
        return cls.of([], np.zeros((0, 4)))


MOT_KEYS = ("MOTA", "IDF1", "HOTA", "DetA", "AssA", "MOTP", "IDSW", "CLR_TP", "CLR_FN", "CLR_FP",
            "IDTP", "IDFN", "IDFP", "Frag")


def _remap(frames: Sequence[MotFrame]) -> list[np.ndarray]:
    """Ids remapped to ``0..K-1`` (as TrackEval requires, and ``_prepare_mot_sequence`` does)."""
    unique = np.unique(np.concatenate([f.ids for f in frames])) if frames else np.zeros(0, np.int64)
    return [np.searchsorted(unique, f.ids).astype(np.intp) for f in frames]


def sequence_mot_metrics(gt: Sequence[MotFrame], pred: Sequence[MotFrame]) -> dict[str, dict[str, Any]]:
    """The raw ``trackers.eval`` dicts (``CLEAR``, ``Identity``, ``HOTA``) of one sequence."""
    from trackers.eval import box_iou, compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

    if len(gt) != len(pred):
        raise ValueError(f"ground truth has {len(gt)} frames, the prediction {len(pred)}")
    gt_ids, pred_ids = _remap(gt), _remap(pred)
    sims = [box_iou(g.boxes, p.boxes, box_format="xyxy") if len(g.ids) and len(p.ids)
            else np.zeros((len(g.ids), len(p.ids))) for g, p in zip(gt, pred)]
    return {
        "CLEAR": compute_clear_metrics(gt_ids, pred_ids, sims, threshold=MOT_IOU_THRESHOLD),
        "Identity": compute_identity_metrics(gt_ids, pred_ids, sims, threshold=MOT_IOU_THRESHOLD),
        "HOTA": compute_hota_metrics(gt_ids, pred_ids, sims),
    }


def mot_metrics(sequences: Sequence[tuple[Sequence[MotFrame], Sequence[MotFrame]]]) -> dict[str, float | int]:
    """MOTA, IDF1, HOTA (and their counts) of ``(gt_frames, pred_frames)`` sequences, combined."""
    from trackers.eval import aggregate_clear_metrics, aggregate_hota_metrics, aggregate_identity_metrics

    raw = [sequence_mot_metrics(gt, pred) for gt, pred in sequences]
    clear = aggregate_clear_metrics([r["CLEAR"] for r in raw])
    ident = aggregate_identity_metrics([r["Identity"] for r in raw])
    hota = aggregate_hota_metrics([r["HOTA"] for r in raw]) if raw else {"HOTA": 0.0, "DetA": 0.0, "AssA": 0.0}
    merged = {**clear, **ident, **{k: hota[k] for k in ("HOTA", "DetA", "AssA")}}
    return {k: (int(merged[k]) if isinstance(merged[k], (int, np.integer)) else float(merged[k])) for k in MOT_KEYS}
