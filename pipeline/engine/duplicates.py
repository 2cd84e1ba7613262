"""One instance per object: class-agnostic suppression of duplicate masks, batched on the device.

torchvision's Mask R-CNN suppresses overlapping boxes per class only (``batched_nms`` over the
class-specific boxes), so one object can come out twice under two classes (a square also reported
as a triangle, a circle also as a star). :func:`duplicate_flags` marks, across classes, every
detection whose mask overlaps a higher-scoring detection's mask of the same image by more than a
mask IoU threshold ("fast NMS": compared with every higher-scoring detection, suppressed or not, so
no two kept detections of an image exceed the threshold), unless it scores below
:data:`DUPLICATE_MIN_SCORE` (never published by the shipped config; a second guess for AP). A marked
duplicate is demoted (:data:`DUPLICATE_SCORE_FACTOR`) below any publishing threshold, then dropped
there like any low-scoring detection.

Mask IoU of a pair is computed on the 28x28 mask probabilities, not on pasted full-frame masks:
both masks are sampled bilinearly (as ``paste_masks_in_image`` resizes them: cell centres at
``x1 + (k + 0.5) * w / M``, zero outside) at the same ``_GRID x _GRID`` points spread over the
pair's union box, thresholded at the mask threshold, and IoU = both / either over those points.
Sampling is separable, so a pair costs two small batched matrix products. Only pairs whose boxes
intersect are measured (disjoint boxes have disjoint masks, up to the 1-cell bilinear fringe).
"""

from __future__ import annotations

import torch

DEFAULT_DUPLICATE_MASK_IOU = 0.45
"""Default mask IoU above which the lower-scoring of two detections is dropped (``model.duplicate_mask_iou_threshold``).

The target is "no two published instances of a frame above mask IoU 0.5"; 0.45 leaves a margin for
the sampled IoU's error against the pasted masks' (at most 0.034, mean 0.005 on random masks,
tests/pipeline/engine/test_engine_duplicates.py; pixel rounding of small masks adds a little). Two
instances of one object overlap far more, while two real objects, one partly in front of the other,
overlap less (the occluded one's visible mask excludes the occluder's pixels). Lower catches
duplicates of poorly segmented objects at the risk of dropping a true, heavily overlapping
neighbour; higher keeps more of both."""

DUPLICATE_SCORE_FACTOR = 0.1
"""A duplicate is demoted, not deleted: its score is multiplied by this, then dropped like any detection
below the model's score threshold. Scores are <= 1, so a demoted duplicate scores <= 0.1: the shipped
threshold (0.5), or any threshold above 0.1, never publishes it, while an evaluation at 0.05 still ranks
it, last, as the model's second guess for the object (when the top class is wrong, the duplicate's is
often right; deleting it costs mask AP). See :func:`demoted_scores`."""

DUPLICATE_MIN_SCORE = 0.5
"""A duplicate scoring below this is left alone. The shipped score threshold (0.5) never publishes it, and
at evaluation thresholds (0.05) it keeps its place as the model's second guess (demoted, a duplicate under
0.5 would fall below 0.05 and be lost). Measured on 100 held-out frames (fp32, rule at 0.45): deleting
every duplicate cost 0.015 mask AP (0.8223 -> 0.8075), demoting every one 0.009, sparing those below 0.5
and deleting the rest 0.004. The rule as shipped (spare below 0.5, demote the rest), 200 held-out frames,
fp32: mask AP 0.8164 -> 0.8129, box AP 0.8538 -> 0.8498; at score >= 0.5, 985 -> 832 instances for 835
objects, precision (mask IoU 0.5) 0.815 -> 0.962, recall 0.962 -> 0.958, pairs of one frame above mask
IoU 0.5: 170 -> 0 (above 0.3: 220 -> 12). The price: a pipeline run with a score threshold below 0.5
can publish a duplicate scoring under 0.5."""

def parse_duplicate_iou(text: str) -> float | None:
    """A command line's ``--duplicate-mask-iou``: an IoU in (0, 1], or ``off``/``none``/``null`` for no rule."""
    import argparse

    if text.strip().lower() in ("off", "none", "null"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IoU in (0, 1] or off, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected an IoU in (0, 1] or off, got {text!r}")
    return value


_GRID = 64  # samples per side of a pair's union box: the sampled IoU's error stays within a few hundredths
_PAIR_CHUNK = 1024  # pairs measured at once: bounds the temporaries ((pairs, _GRID, _GRID) floats: 17 MB)


def candidate_pairs(
    boxes: torch.Tensor, image_of: torch.Tensor, eligible: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs ``(i, j)``, ``i < j``, of detections of the same image whose boxes intersect (both
    ``eligible``, bool ``(n,)``, when given).

    ``boxes``: float ``(n, 4)`` ``[x1, y1, x2, y2]``; ``image_of``: int64 ``(n,)`` image of each detection.
    Returns two int64 ``(P,)`` tensors on the boxes' device (one ``nonzero``: a host sync).
    """
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    overlap = ((rb - lt) > 0).all(dim=2) & (image_of[:, None] == image_of[None, :])
    if eligible is not None:
        overlap &= eligible[:, None] & eligible[None, :]
    overlap = torch.triu(overlap, diagonal=1)
    first, second = overlap.nonzero(as_tuple=True)
    return first, second


def _sampling_weights(samples: torch.Tensor, start: torch.Tensor, length: torch.Tensor, cells: int) -> torch.Tensor:
    """Bilinear weights ``(P, G, cells)`` of ``cells`` mask cells spanning ``[start, start + length)`` at
    ``samples`` ``(P, G)`` (zero beyond the outer cell centres' fringe, as a zero-padded mask)."""
    position = (samples - start[:, None]) * (cells / length[:, None]) - 0.5
    centres = torch.arange(cells, dtype=samples.dtype, device=samples.device)
    return torch.clamp(1.0 - (position[:, :, None] - centres).abs(), min=0.0)


def _sampled(masks: torch.Tensor, boxes: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """``masks`` ``(P, M, M)`` over ``boxes`` ``(P, 4)`` sampled at the grid ``ys x xs`` (each ``(P, G)``): ``(P, G, G)``."""
    size = masks.shape[-1]
    width = (boxes[:, 2] - boxes[:, 0]).clamp_min(1e-3)
    height = (boxes[:, 3] - boxes[:, 1]).clamp_min(1e-3)
    wx = _sampling_weights(xs, boxes[:, 0], width, size)
    wy = _sampling_weights(ys, boxes[:, 1], height, size)
    return wy @ masks @ wx.transpose(1, 2)


def pair_mask_iou(
    boxes: torch.Tensor, masks: torch.Tensor, first: torch.Tensor, second: torch.Tensor, mask_threshold: float
) -> torch.Tensor:
    """Mask IoU of each pair ``(first[k], second[k])``: float32 ``(P,)``.

    ``boxes``: float32 ``(n, 4)`` ``[x1, y1, x2, y2]`` the masks span; ``masks``: float32 ``(n, M, M)``
    probabilities; a pixel is in a mask when its probability is ``> mask_threshold``.
    """
    out = torch.zeros(first.shape[0], dtype=torch.float32, device=boxes.device)
    steps = (torch.arange(_GRID, dtype=torch.float32, device=boxes.device) + 0.5) / _GRID
    for start in range(0, first.shape[0], _PAIR_CHUNK):
        a, b = first[start : start + _PAIR_CHUNK], second[start : start + _PAIR_CHUNK]
        union = torch.cat([torch.minimum(boxes[a, :2], boxes[b, :2]), torch.maximum(boxes[a, 2:], boxes[b, 2:])], 1)
        xs = union[:, 0:1] + steps * (union[:, 2:3] - union[:, 0:1])
        ys = union[:, 1:2] + steps * (union[:, 3:4] - union[:, 1:2])
        in_a = _sampled(masks[a], boxes[a], xs, ys) > mask_threshold
        in_b = _sampled(masks[b], boxes[b], xs, ys) > mask_threshold
        both = (in_a & in_b).sum(dim=(1, 2)).to(torch.float32)
        either = (in_a | in_b).sum(dim=(1, 2)).to(torch.float32)
        out[start : start + a.shape[0]] = both / either.clamp_min(1.0)
    return out


def duplicate_flags(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    masks: torch.Tensor,
    image_of: torch.Tensor,
    mask_threshold: float,
    iou_threshold: float,
) -> torch.Tensor:
    """Bool ``(n,)``: detection ``j`` scores at least :data:`DUPLICATE_MIN_SCORE` and overlaps a
    higher-scoring detection of its image (any class) by mask IoU ``> iou_threshold`` (ties in score:
    the earlier one wins).

    ``boxes`` float ``(n, 4)`` ``[x1, y1, x2, y2]`` (any one coordinate frame per image, e.g. the
    model's resized frame: IoU does not change under per-axis scaling); ``scores`` float ``(n,)``;
    ``masks`` float ``(n, M, M)`` probabilities over the boxes; ``image_of`` int64 ``(n,)``.
    """
    n = boxes.shape[0]
    flags = torch.zeros(n, dtype=torch.int32, device=boxes.device)
    if n < 2:
        return flags.bool()
    boxes, masks = boxes.to(torch.float32), masks.to(torch.float32)
    first, second = candidate_pairs(boxes, image_of, scores >= DUPLICATE_MIN_SCORE)
    if first.numel() == 0:
        return flags.bool()
    iou = pair_mask_iou(boxes, masks, first, second, mask_threshold)
    loser = torch.where(scores[first] >= scores[second], second, first)
    flags.index_add_(0, loser, (iou > iou_threshold).to(torch.int32))
    return flags > 0


def duplicate_flags_exact(masks: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """The same rule on one image's full-frame bool masks ``(n, H, W)`` (exact mask IoU; the reference
    path's and the tests' version): bool ``(n,)``."""
    eligible = scores >= DUPLICATE_MIN_SCORE
    n = masks.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.bool, device=masks.device)
    flat = masks.reshape(n, -1).to(torch.float32)
    both = flat @ flat.T
    area = flat.sum(dim=1)
    iou = both / (area[:, None] + area[None, :] - both).clamp_min(1.0)
    order = torch.arange(n, device=masks.device)
    higher = (scores[:, None] > scores[None, :]) | ((scores[:, None] == scores[None, :]) & (order[:, None] < order[None, :]))
    return ((iou > iou_threshold) & higher & eligible[:, None]).any(dim=0) & eligible


def demoted_scores(scores: torch.Tensor, duplicate: torch.Tensor) -> torch.Tensor:
    """``scores`` with those of ``duplicate`` (bool, same shape) multiplied by :data:`DUPLICATE_SCORE_FACTOR`."""
    return torch.where(duplicate, scores * DUPLICATE_SCORE_FACTOR, scores)
