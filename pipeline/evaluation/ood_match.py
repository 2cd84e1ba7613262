"""What a subscriber sees at the shipped score threshold: precision, recall and duplicates per frame.

:func:`match_frame` matches one frame's published instances (the detections scoring at least
the pipeline's ``model.score_threshold``) to its ground truth, as COCO's evaluation does at one
IoU threshold: in descending score order, each instance takes the unmatched object of its class
with the highest mask IoU, if that IoU is at least ``MATCH_IOU``. A matched instance is a true
positive; every other instance is a false positive, of one kind (the first that applies):

- ``duplicate``: mask IoU >= ``MATCH_IOU`` with an object of its class that another instance found;
- ``wrong_class``: mask IoU >= ``MATCH_IOU`` with an object of another class;
- ``poor_mask``: overlaps an object (mask IoU >= ``BACKGROUND_IOU``), but not enough;
- ``distractor``: at least half of its pixels lie on a non-class distractor shape;
- ``background``: on empty background.

An object no instance matched is a miss. ``duplicate_pairs``: pairs of published instances of
one frame whose masks overlap with IoU > ``DUPLICATE_IOU``, whatever their classes.
Masks are COCO RLE dicts (``pycocotools``' own form, ``counts`` bytes or str).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.messages import Detections

MATCH_IOU = 0.5  # the issue's criterion (and COCO AP50's): an instance finds an object at mask IoU >= 0.5
DUPLICATE_IOU = 0.5  # two published instances with mask IoU above this are one object published twice
BACKGROUND_IOU = 0.1  # a false positive overlapping every object less than this lies on background
DISTRACTOR_SHARE = 0.5  # a false positive with at least this share of its pixels on a distractor is "on" it
EDGE_MARGIN_PX = 2.0  # a false positive whose box comes this close to the frame's border is "at the edge"
FP_KINDS = ("duplicate", "wrong_class", "poor_mask", "distractor", "background")


def encode_masks(masks: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """COCO RLE dicts of bool ``(H, W)`` masks."""
    return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]


def _pyco(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def mask_iou(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> np.ndarray:
    """float64 ``(len(a), len(b))``: mask IoU of every pair of RLE masks."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    iou = mask_utils.iou([_pyco(r) for r in a], [_pyco(r) for r in b], [0] * len(b))
    return np.asarray(iou, np.float64).reshape(len(a), len(b))


@dataclass(frozen=True)
class FrameMatch:
    """One frame's published instances against its objects (indices into the lists given to :func:`match_frame`)."""

    matches: tuple[tuple[int, int], ...]  # (instance, object)
    false_positives: tuple[int, ...]  # instances, in the order given
    fp_kinds: tuple[str, ...]  # one of FP_KINDS per false positive
    fp_at_edge: tuple[bool, ...]  # per false positive: its box within EDGE_MARGIN_PX of the frame's border
    misses: tuple[int, ...]  # objects no instance matched
    duplicate_pairs: tuple[tuple[int, int], ...]  # (i, j), i < j: instances with mask IoU > DUPLICATE_IOU

    @property
    def errors(self) -> int:
        """False positives plus misses: how bad the frame looks to a subscriber."""
        return len(self.false_positives) + len(self.misses)


def _fp_kind(i: int, iou: np.ndarray, same: np.ndarray, taken: np.ndarray, on_distractor: float) -> str:
    if (iou[i] >= MATCH_IOU)[same[i] & taken].any():
        return "duplicate"
    if (iou[i] >= MATCH_IOU)[~same[i]].any():
        return "wrong_class"
    if iou.shape[1] and iou[i].max() >= BACKGROUND_IOU:
        return "poor_mask"
    return "distractor" if on_distractor >= DISTRACTOR_SHARE else "background"


def _at_edge(rle: dict[str, Any]) -> bool:
    x, y, w, h = (float(v) for v in mask_utils.toBbox(_pyco(rle)))
    height, width = (int(v) for v in rle["size"])
    return x <= EDGE_MARGIN_PX or y <= EDGE_MARGIN_PX or x + w >= width - EDGE_MARGIN_PX or y + h >= height - EDGE_MARGIN_PX


def match_frame(det_masks: Sequence[dict[str, Any]], det_classes: Sequence[str], det_scores: Sequence[float],
                gt_masks: Sequence[dict[str, Any]], gt_classes: Sequence[str], *,
                distractors: dict[str, Any] | None = None) -> FrameMatch:
    """Match one frame's published instances (RLE masks, class names, scores) to its objects (RLE masks, class names).

    ``distractors``: RLE of the frame's non-class shapes' pixels (or None), to tell ``distractor`` false positives.
    """
    iou = mask_iou(det_masks, gt_masks)
    same = np.array([[d == g for g in gt_classes] for d in det_classes], bool).reshape(len(det_classes), len(gt_classes))
    taken = np.zeros(len(gt_masks), bool)
    matches: list[tuple[int, int]] = []
    unmatched: list[int] = []
    for i in sorted(range(len(det_masks)), key=lambda k: (-float(det_scores[k]), k)):
        candidates = np.where(same[i] & ~taken & (iou[i] >= MATCH_IOU), iou[i], -1.0)
        if candidates.size and candidates.max() >= 0:
            j = int(candidates.argmax())
            taken[j] = True
            matches.append((i, j))
        else:
            unmatched.append(i)
    fps = tuple(sorted(unmatched))
    share = _distractor_share(det_masks, distractors)
    kinds = tuple(_fp_kind(i, iou, same, taken, share[i]) for i in fps)
    dd = mask_iou(det_masks, det_masks)
    pairs = tuple((i, j) for i in range(len(det_masks)) for j in range(i + 1, len(det_masks)) if dd[i, j] > DUPLICATE_IOU)
    return FrameMatch(tuple(sorted(matches)), fps, kinds, tuple(_at_edge(det_masks[i]) for i in fps),
                      tuple(j for j in range(len(gt_masks)) if not taken[j]), pairs)


def _distractor_share(det_masks: Sequence[dict[str, Any]], distractors: dict[str, Any] | None) -> list[float]:
    """Per instance: the share of its pixels on the distractors (0 without any)."""
    if distractors is None or not det_masks or not mask_utils.area(_pyco(distractors)):
        return [0.0] * len(det_masks)
    dets = [_pyco(r) for r in det_masks]
    inter = [float(mask_utils.area(mask_utils.merge([d, _pyco(distractors)], intersect=True))) for d in dets]
    return [x / max(1.0, float(mask_utils.area(d))) for x, d in zip(inter, dets)]


# ----------------------------------------------------------------------------- counts over many frames

SIZE_AREAS = (("small", 32**2), ("medium", 96**2), ("large", float("inf")))
"""COCO's area ranges (mask pixels), as in ``mask_ap_breakdown``: an instance is binned by its own mask's area
(for precision), an object by its visible mask's (for recall)."""
TAGS = ("plain", "low_contrast", "edge", "occluded")  # "plain": an object without any of the other tags


def size_of(area: float) -> str:
    """``small``, ``medium`` or ``large`` for a mask of ``area`` pixels."""
    return next(name for name, upper in SIZE_AREAS if area < upper)


@dataclass
class PrCount:
    """Counts of one group: published instances that found an object (``tp``) or not (``fp``); objects, found."""

    tp: int = 0
    fp: int = 0
    gt: int = 0
    found: int = 0

    def summary(self) -> dict[str, Any]:
        """``published``, ``tp``, ``fp``, ``gt``, ``missed``, ``precision`` (None: nothing published), ``recall``
        (None: no object)."""
        published = self.tp + self.fp
        return {"published": published, "tp": self.tp, "fp": self.fp, "gt": self.gt, "missed": self.gt - self.found,
                "precision": self.tp / published if published else None,
                "recall": self.found / self.gt if self.gt else None}


@dataclass(frozen=True)
class FrameObjects:
    """One frame's published instances and objects, as the counts need them (classes, mask areas, object tags)."""

    det_classes: Sequence[str]
    det_areas: Sequence[float]
    gt_classes: Sequence[str]
    gt_areas: Sequence[float]
    gt_tags: Sequence[frozenset[str]]


class OodTally:
    """Precision/recall over frames: all, per class, by size, recall by tag; false-positive kinds; duplicates."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.all = PrCount()
        self.agnostic = PrCount()
        self.per_class = {name: PrCount() for name in class_names}
        self.by_size = {name: PrCount() for name, _ in SIZE_AREAS}
        self.by_tag = {tag: PrCount() for tag in TAGS}
        self.fp_kinds = dict.fromkeys(FP_KINDS, 0)
        self.fp_at_edge = 0
        self.duplicate_pairs = 0
        self.frames_with_duplicates = 0

    def add(self, match: FrameMatch, objects: FrameObjects, agnostic: FrameMatch | None = None) -> None:
        """Count one frame; ``agnostic``: the same frame matched with every class the same (class-agnostic)."""
        found = {j for _, j in match.matches}
        for i, (cls, area) in enumerate(zip(objects.det_classes, objects.det_areas)):
            hit = i not in match.false_positives
            for count in (self.all, self.per_class.setdefault(cls, PrCount()), self.by_size[size_of(area)]):
                count.tp, count.fp = count.tp + hit, count.fp + (not hit)
        for j, (cls, area, tags) in enumerate(zip(objects.gt_classes, objects.gt_areas, objects.gt_tags)):
            groups = [self.all, self.per_class.setdefault(cls, PrCount()), self.by_size[size_of(area)]]
            groups += [self.by_tag[t] for t in (sorted(tags & set(TAGS)) or ["plain"])]
            for count in groups:
                count.gt, count.found = count.gt + 1, count.found + (j in found)
        if agnostic is not None:
            self.agnostic.tp += len(agnostic.matches)
            self.agnostic.fp += len(agnostic.false_positives)
            self.agnostic.gt += len(objects.gt_classes)
            self.agnostic.found += len(agnostic.matches)
        for kind in match.fp_kinds:
            self.fp_kinds[kind] += 1
        self.fp_at_edge += sum(match.fp_at_edge)
        self.duplicate_pairs += len(match.duplicate_pairs)
        self.frames_with_duplicates += bool(match.duplicate_pairs)

    def summary(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict (see :meth:`PrCount.summary` for each group's keys)."""
        agnostic = self.agnostic.summary()
        return {
            "all": self.all.summary(),
            "class_agnostic": {k: agnostic[k] for k in ("tp", "fp", "precision", "recall")},
            "per_class": {name: c.summary() for name, c in self.per_class.items()},
            "by_size": {name: c.summary() for name, c in self.by_size.items()},
            "by_tag": {tag: {k: v for k, v in c.summary().items() if k in ("gt", "missed", "recall")}
                       for tag, c in self.by_tag.items()},
            "false_positives": {**self.fp_kinds, "at_edge": self.fp_at_edge},
            "duplicate_pairs": self.duplicate_pairs,
            "frames_with_duplicates": self.frames_with_duplicates,
        }


# ----------------------------------------------------------------------------- one frame of model output


class ScoredObject(Protocol):
    """A ground-truth object as the counts need it (``pipeline.scenes.GtInstance``, ``ood_scenes.OodInstance``):
    ``mask`` bool ``(H, W)``; ``tags`` is optional (an object without it counts as ``plain``)."""

    @property
    def class_name(self) -> str: ...

    @property
    def mask(self) -> np.ndarray: ...

    @property
    def area(self) -> int: ...


def published_only(dets: Detections, threshold: float) -> Detections:
    """The detections scoring at least ``threshold`` (those ``maskstream run`` publishes at that score threshold)."""
    keep = np.flatnonzero(np.asarray(dets.scores) >= threshold)
    return Detections(boxes=np.asarray(dets.boxes)[keep].reshape(-1, 4), labels=np.asarray(dets.labels)[keep],
                      scores=np.asarray(dets.scores)[keep], class_names=tuple(dets.class_names[i] for i in keep),
                      masks=tuple(dets.masks[i] for i in keep))


def score_detections(objects: Sequence[ScoredObject], dets: Detections, threshold: float, tally: OodTally, *,
                     distractors: np.ndarray | None = None) -> tuple[Detections, FrameMatch]:
    """Match one frame's detections >= ``threshold`` to its ``objects`` and add the frame to ``tally`` (class-aware,
    and class-agnostic for ``class_agnostic``); ``distractors``: bool ``(H, W)`` non-class pixels, or None.

    Returns the published detections and their (class-aware) match.
    """
    published = published_only(dets, threshold)
    det_rles = [m.to_coco() for m in published.masks]
    gt_rles = encode_masks([g.mask for g in objects])
    gt_classes = [g.class_name for g in objects]
    scores = [float(s) for s in published.scores]
    match = match_frame(det_rles, published.class_names, scores, gt_rles, gt_classes,
                        distractors=None if distractors is None else encode_masks([distractors])[0])
    agnostic = match_frame(det_rles, ["object"] * len(det_rles), scores, gt_rles, ["object"] * len(gt_rles))
    areas = [float(mask_utils.area(_pyco(r))) for r in det_rles]
    counted = FrameObjects(published.class_names, areas, gt_classes, [float(g.area) for g in objects],
                           [frozenset(getattr(g, "tags", frozenset())) for g in objects])
    tally.add(match, counted, agnostic)
    return published, match
