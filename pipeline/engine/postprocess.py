"""From ``roi_heads`` output (boxes in the resized frame, 28x28 mask probabilities) to ``Detections``.

Replaces torchvision's ``GeneralizedRCNNTransform.postprocess`` + ``paste_masks_in_image``, which
pastes every mask into a full-frame float tensor in a Python loop. Here:

- Boxes are rescaled to the original frame with ``resize_boxes``' float32 math.
- Each mask's paste geometry follows ``paste_masks_in_image`` exactly: the mask is padded by 1 px,
  its box expanded by the same factor (``(M + 2) / M``) and truncated to ints (``.to(int64)``);
  the padded mask is resized bilinearly (``align_corners=False``) to the expanded box's size and
  clipped to the frame. Instead of one ``F.interpolate`` per instance into a full frame, the
  bilinear samples of ALL instances' clipped boxes are computed at once over a flat "ragged"
  buffer (see :mod:`pipeline.engine.rle`), with the same formula as ATen's bilinear upsampling
  (source index ``max(scale * (dst + 0.5) - 0.5, 0)`` rounded once as the compiled kernels' FMA
  does, ``scale = in / out`` in float32). Probabilities match torchvision's within a few float32
  ulps (measured <= 2e-7 on CPU), so thresholded masks are identical except for probabilities
  within that distance of the threshold (none in 9 M random test pixels).
- Thresholded (``prob > mask_threshold``) and run-length encoded on the device; only run
  boundaries come back to the host. Full-frame masks are never materialised.

Host syncs per batch: with the duplicate rule on, one for the number of candidate pairs
(:mod:`pipeline.engine.duplicates`); one for the detections (boxes, scores, labels and which to
keep: needed on the host anyway) and one for the mask run boundaries per chunk of ``max_elements`` crop pixels (one chunk unless
the batch's boxes cover more than that many pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.engine.adapter import class_names_for
from pipeline.engine.duplicates import demoted_scores, duplicate_flags
from pipeline.engine.rle import CropLayout, RaggedIndex, find_transitions, masks_from_transitions
from pipeline.messages import Detections, RleMask

#: Default cap on crop pixels processed at once (~16 M; a few int64/float32 temporaries each).
DEFAULT_MAX_ELEMENTS = 1 << 24


def rescale_boxes(boxes: np.ndarray, resized: tuple[int, int], original: tuple[int, int]) -> np.ndarray:
    """``torchvision...transform.resize_boxes(boxes, resized, original)`` in numpy float32 (bit-identical)."""
    ratio_h = np.float32(original[0]) / np.float32(resized[0])
    ratio_w = np.float32(original[1]) / np.float32(resized[1])
    out = boxes.astype(np.float32, copy=True)
    out[:, 0::2] *= ratio_w
    out[:, 1::2] *= ratio_h
    return out


def paste_boxes(boxes: np.ndarray, mask_size: int, padding: int = 1) -> np.ndarray:
    """The integer boxes ``paste_masks_in_image`` pastes the padded masks into (``expand_boxes`` + ``.to(int64)``)."""
    scale = float(mask_size + 2 * padding) / mask_size
    b = boxes.astype(np.float32, copy=False)
    w_half = (b[:, 2] - b[:, 0]) * np.float32(0.5)
    h_half = (b[:, 3] - b[:, 1]) * np.float32(0.5)
    x_c = (b[:, 2] + b[:, 0]) * np.float32(0.5)
    y_c = (b[:, 3] + b[:, 1]) * np.float32(0.5)
    w_half = w_half * np.float32(scale)
    h_half = h_half * np.float32(scale)
    expanded = np.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1)
    return expanded.astype(np.int64)  # truncation toward zero, as Tensor.to(torch.int64)


def paste_layout(int_boxes: np.ndarray, frame_h: np.ndarray, frame_w: np.ndarray) -> tuple[CropLayout, np.ndarray]:
    """Crop layout of the pasted masks (the expanded boxes clipped to their frames) and the
    interpolation table ``(n, 4)``: ``[out_h, out_w, dy, dx]`` where ``out_*`` is the size the padded
    mask is resized to and ``(dy, dx)`` the crop's origin inside that resized mask."""
    bx0, by0, bx1, by1 = (int_boxes[:, k] for k in range(4))
    out_w = np.maximum(bx1 - bx0 + 1, 1)
    out_h = np.maximum(by1 - by0 + 1, 1)
    x0 = np.maximum(bx0, 0)
    x1 = np.minimum(bx1 + 1, frame_w)
    y0 = np.maximum(by0, 0)
    y1 = np.minimum(by1 + 1, frame_h)
    layout = CropLayout.build(x0, y0, y1 - y0, x1 - x0, frame_h, frame_w)
    table = np.stack([out_h, out_w, y0 - by0, x0 - bx0], axis=1).astype(np.int64)
    return layout, table


def _source_index(dst: torch.Tensor, scale: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ATen's linear source index/weights (align_corners=False): i0, i1, lambda1."""
    # ``scale * (dst + 0.5) - 0.5`` rounded once, as the compiled kernels' fused multiply-add does
    # (exact in float64: a product of two float32 has <= 48 significant bits).
    src = (scale.to(torch.float64) * (dst.to(torch.float64) + 0.5) - 0.5).to(torch.float32)
    src = torch.clamp_min(src, 0.0)
    i0 = torch.clamp_max(src.to(torch.int64), size - 1)
    lam = torch.clamp(src - i0.to(torch.float32), 0.0, 1.0)
    i1 = i0 + (i0 < size - 1).to(torch.int64)
    return i0, i1, lam


def paste_ragged(mask_probs: torch.Tensor, index: RaggedIndex, table: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Bilinear samples of the padded masks at every element of the ragged buffer (float32, flat).

    ``mask_probs``: ``(n, M, M)`` probabilities; ``table``: ``(n, 4)`` int64 ``[out_h, out_w, dy, dx]`` on the device.
    """
    n, m_h, m_w = mask_probs.shape
    padded = F.pad(mask_probs.to(torch.float32), (padding,) * 4).reshape(-1)
    ph, pw = m_h + 2 * padding, m_w + 2 * padding
    inst = index.instance
    # ATen's scale: float(in) / out in float32 (a true division; ``python_float / tensor`` would multiply
    # by a reciprocal). Per instance, then gathered per element with the other per-instance values.
    sizes = table[:, :2].to(torch.float32)
    scales = torch.stack([torch.full_like(sizes[:, 0], float(ph)), torch.full_like(sizes[:, 1], float(pw))], 1) / sizes
    dy, dx = table[:, 2][inst], table[:, 3][inst]
    scale_h, scale_w = scales[:, 0][inst], scales[:, 1][inst]
    y0, y1, ly = _source_index(index.row + dy, scale_h, ph)
    x0, x1, lx = _source_index(index.col + dx, scale_w, pw)
    base = inst * (ph * pw)
    r0 = base + y0 * pw
    r1 = base + y1 * pw
    ly0 = 1.0 - ly
    lx0 = 1.0 - lx
    top = padded[r0 + x0] * lx0 + padded[r0 + x1] * lx
    bottom = padded[r1 + x0] * lx0 + padded[r1 + x1] * lx
    return top * ly0 + bottom * ly


def encode_pasted_masks(
    mask_probs: torch.Tensor,
    int_boxes: np.ndarray,
    frame_h: np.ndarray,
    frame_w: np.ndarray,
    mask_threshold: float,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> list[RleMask]:
    """RLE masks of ``mask_probs`` ``(n, M, M)`` pasted at ``int_boxes`` (from :func:`paste_boxes`) in their frames."""
    n = mask_probs.shape[0]
    if n == 0:
        return []
    device = mask_probs.device
    layout, table_np = paste_layout(int_boxes, frame_h, frame_w)
    table = torch.from_numpy(table_np).to(device, non_blocking=True)
    out: list[RleMask] = []
    for start, stop in layout.chunks(max_elements):
        part = layout if (start, stop) == (0, n) else layout.select(start, stop)
        if part.total == 0:
            idx, code = np.zeros(0, np.int64), np.zeros(0, np.int8)
        else:
            index = RaggedIndex.build(part, device)
            probs = paste_ragged(mask_probs[start:stop], index, table[start:stop])
            idx, code = find_transitions(probs > mask_threshold, index)
        out.extend(masks_from_transitions(idx, code, part))
    return out


def _gather(detections: Sequence[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch's detections concatenated: ``boxes`` float32 ``(n, 4)`` (resized coordinates),
    ``scores`` float32 ``(n,)``, ``labels`` float32 ``(n,)``, ``masks`` ``(n, M, M)`` probabilities."""
    boxes = torch.cat([d["boxes"].to(torch.float32) for d in detections])
    scores = torch.cat([d["scores"].to(torch.float32) for d in detections])
    labels = torch.cat([d["labels"].to(torch.float32) for d in detections])
    return boxes, scores, labels, torch.cat([d["masks"] for d in detections])[:, 0]


def postprocess_detections(
    detections: Sequence[dict[str, torch.Tensor]],
    resized_sizes: Sequence[tuple[int, int]],
    original_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
    mask_threshold: float,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    duplicate_mask_iou: float | None = None,
    min_score: float = 0.0,
) -> list[Detections]:
    """``roi_heads``' per-image dicts (``boxes`` in resized coordinates, ``labels``, ``scores``, ``masks``
    ``(n, 1, M, M)`` probabilities) to one :class:`Detections` per image, in original coordinates.

    ``duplicate_mask_iou`` (``None``: off): a detection whose mask overlaps a higher-scoring one's of the
    same image, any class, by more than this mask IoU is demoted (:mod:`pipeline.engine.duplicates`);
    detections then scoring below ``min_score`` (the model's score threshold) are dropped. Demoted
    detections that stay keep their place in the list (scores are then not sorted).
    """
    counts = np.array([int(d["boxes"].shape[0]) for d in detections], dtype=np.int64)
    if counts.sum() == 0:
        return [Detections.empty() for _ in detections]
    boxes_t, scores_t, labels_t, mask_probs = _gather(detections)
    image_of_t = torch.repeat_interleave(torch.arange(len(counts), device=boxes_t.device),
                                         torch.from_numpy(counts).to(boxes_t.device))
    if duplicate_mask_iou is not None:
        duplicate = duplicate_flags(boxes_t, scores_t, mask_probs, image_of_t, mask_threshold, duplicate_mask_iou)
        scores_t = demoted_scores(scores_t, duplicate)
    dropped = (scores_t < min_score).to(torch.float32)
    packed = torch.stack([*boxes_t.unbind(1), scores_t, labels_t, dropped], dim=1)
    host = packed.cpu().numpy()  # sync: what the host needs anyway, and which detections to keep
    image_of = np.repeat(np.arange(len(counts)), counts)
    kept = np.flatnonzero(host[:, 6] == 0)
    if len(kept) < len(host):
        host, image_of = host[kept], image_of[kept]
        mask_probs = mask_probs[torch.from_numpy(kept).to(mask_probs.device)]
        counts = np.bincount(image_of, minlength=len(counts))
    return _finish(host, image_of, counts, mask_probs, resized_sizes, original_sizes, class_names, mask_threshold,
                   max_elements)


def _finish(
    host: np.ndarray,
    image_of: np.ndarray,
    counts: np.ndarray,
    mask_probs: torch.Tensor,
    resized_sizes: Sequence[tuple[int, int]],
    original_sizes: Sequence[tuple[int, int]],
    class_names: Sequence[str],
    mask_threshold: float,
    max_elements: int,
) -> list[Detections]:
    """Kept detections (``host`` float32 ``(n, >= 6)``: resized box, score, label; ``image_of`` and
    ``counts`` per image) to :class:`Detections`: boxes rescaled, masks pasted and encoded."""
    total = len(host)
    scores = np.ascontiguousarray(host[:, 4])
    labels = host[:, 5].astype(np.int64)
    names = class_names_for(labels, class_names)  # fail before the mask work on an unknown label
    boxes = np.empty((total, 4), dtype=np.float32)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for i, (resized, original) in enumerate(zip(resized_sizes, original_sizes)):
        sl = slice(bounds[i], bounds[i + 1])
        boxes[sl] = rescale_boxes(host[sl, :4], resized, original)
    sizes = np.asarray(original_sizes, dtype=np.int64).reshape(-1, 2)
    frame_h, frame_w = sizes[image_of, 0], sizes[image_of, 1]
    int_boxes = paste_boxes(boxes, int(mask_probs.shape[-1]))
    masks = encode_pasted_masks(mask_probs, int_boxes, frame_h, frame_w, mask_threshold, max_elements=max_elements)

    np.clip(boxes[:, 0::2], 0, frame_w[:, None].astype(np.float32), out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, frame_h[:, None].astype(np.float32), out=boxes[:, 1::2])
    out = []
    for i in range(len(counts)):
        a, b = int(bounds[i]), int(bounds[i + 1])
        out.append(
            Detections(
                boxes=boxes[a:b].copy(),
                labels=labels[a:b].copy(),
                scores=scores[a:b].copy(),
                class_names=tuple(names[a:b]),
                masks=tuple(masks[a:b]),
            )
        )
    return out
