"""Similarities between tracks and detections, and the gated assignment.

- :func:`box_iou` — IoU matrix of ``(x1, y1, x2, y2)`` boxes.
- :func:`mask_iou` — IoU matrix of COCO RLE masks (``pycocotools.mask.iou``, computed
  on the run-length encodings: no full-frame decode).
- :func:`shift_rle` — translate an RLE mask by whole pixels, also without decoding,
  so that a track's last mask can be moved by its Kalman displacement.
- :func:`linear_assignment` — optimal one-to-one matching (Hungarian, via
  ``scipy.optimize.linear_sum_assignment``) where a pair below the similarity gate
  is never matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)``: ``(N, M)``, 0 for empty boxes."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def mask_iou(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> np.ndarray:
    """IoU of every COCO RLE mask of ``a`` with every one of ``b``: ``(len(a), len(b))``.

    All masks must have the same ``size``. Runs on the compressed RLEs
    (``pycocotools.mask.iou`` with ``iscrowd`` false).
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    iou = mask_utils.iou(list(a), list(b), [0] * len(b))
    return np.asarray(iou, dtype=np.float64).reshape(len(a), len(b))


def mask_duplicates(masks: Sequence[dict[str, Any]], scores: np.ndarray, threshold: float) -> np.ndarray:
    """bool ``(N,)``: True for a detection whose mask has IoU ``>= threshold`` with the mask of a
    higher-scoring detection that is not itself a duplicate (greedy, by descending score; ties by
    input order). The first of each group is kept."""
    n = len(masks)
    duplicate = np.zeros(n, dtype=bool)
    if n < 2:
        return duplicate
    iou = mask_iou(masks, masks)
    order = np.argsort(-np.asarray(scores), kind="stable")
    for k, i in enumerate(order):
        if not duplicate[i]:
            later = order[k + 1 :]
            duplicate[later[iou[i, later] >= threshold]] = True
    return duplicate


# --- RLE counts <-> COCO compressed string (the LEB128-like format of maskApi.c) ---


def rle_counts(counts: str | bytes) -> np.ndarray:
    """Decode a COCO compressed ``counts`` string into its run lengths (zeros first, column-major)."""
    s = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    runs: list[int] = []
    p = 0
    n = len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return np.asarray(runs, dtype=np.int64)


def _encode_counts(runs: np.ndarray, height: int, width: int) -> str:
    compressed = mask_utils.frPyObjects({"size": [height, width], "counts": [int(r) for r in runs]}, height, width)
    counts = compressed["counts"]
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def shift_rle(rle: dict[str, Any], dx: int, dy: int) -> dict[str, Any]:
    """Translate a COCO RLE mask by ``(dx, dy)`` whole pixels (right, down); pixels leaving the frame are dropped.

    Works on the runs (cost proportional to the number of columns the mask spans, not
    to the frame's area): each foreground run is split into per-column row intervals,
    the intervals are moved, clipped to the frame, and re-encoded.
    """
    height, width = (int(v) for v in rle["size"])
    dx, dy = int(dx), int(dy)
    if dx == 0 and dy == 0:
        return {"size": [height, width], "counts": _as_str(rle["counts"])}
    runs = rle_counts(rle["counts"])
    starts = np.concatenate([[0], np.cumsum(runs)[:-1]])
    fg = np.arange(1, len(runs), 2)
    fg = fg[runs[fg] > 0]
    s = starts[fg]
    e = s + runs[fg] - 1  # inclusive flat end
    c0 = s // height
    c1 = e // height
    span = c1 - c0 + 1
    run_of = np.repeat(np.arange(len(s)), span)
    col = c0[run_of] + (np.arange(len(run_of)) - np.repeat(np.cumsum(span) - span, span))
    r0 = np.maximum(s[run_of] - col * height, 0)
    r1 = np.minimum(e[run_of] - col * height, height - 1)
    col = col + dx
    r0 = np.maximum(r0 + dy, 0)
    r1 = np.minimum(r1 + dy, height - 1)
    keep = (col >= 0) & (col < width) & (r0 <= r1)
    col, r0, r1 = col[keep], r0[keep], r1[keep]
    total = height * width
    if len(col) == 0:
        return {"size": [height, width], "counts": _encode_counts(np.asarray([total]), height, width)}
    fs = col * height + r0  # intervals stay sorted: the shift is monotone
    fe = col * height + r1
    # Merge intervals that touch (a run that continued into the next column).
    new_group = np.ones(len(fs), dtype=bool)
    new_group[1:] = fs[1:] > fe[:-1] + 1
    group = np.cumsum(new_group) - 1
    gs = fs[new_group]
    ge = np.zeros(len(gs), dtype=np.int64)
    np.maximum.at(ge, group, fe)
    zeros = np.concatenate([[gs[0]], gs[1:] - ge[:-1] - 1])
    ones = ge - gs + 1
    out = np.empty(2 * len(gs) + 1, dtype=np.int64)
    out[0:-1:2] = zeros
    out[1::2] = ones
    out[-1] = total - ge[-1] - 1
    return {"size": [height, width], "counts": _encode_counts(out, height, width)}


def _as_str(counts: str | bytes) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts


def linear_assignment(
    similarity: np.ndarray, threshold: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Optimal one-to-one matching of rows (tracks) to columns (detections) on a similarity matrix.

    A pair is matched only when its similarity is ``>= threshold``. The problem is
    solved with the gate inside it (each row and column may stay unmatched at a cost
    of half the gate, as ``lap.lapjv(cost_limit=...)`` does in the original ByteTrack),
    so a pair below the gate never displaces a valid one, and a valid pair is never
    broken up just to match more pairs of lower similarity.

    Returns ``(matches, unmatched_rows, unmatched_cols)``, each sorted.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n, m = similarity.shape
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    cost = 1.0 - similarity
    limit = 1.0 - threshold
    big = 1e6
    # Augmented square problem: [[C, R], [K, 0]], R and K diagonal "stay unmatched" options.
    aug = np.full((n + m, n + m), big)
    aug[:n, :m] = np.where(similarity >= threshold, cost, big)
    unmatched_cost = limit / 2 + 1e-9
    aug[np.arange(n), m + np.arange(n)] = unmatched_cost
    aug[n + np.arange(m), np.arange(m)] = unmatched_cost
    aug[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(aug)
    matches = [(int(r), int(c)) for r, c in zip(rows, cols) if r < n and c < m and similarity[r, c] >= threshold]
    matched_rows = {r for r, _ in matches}
    matched_cols = {c for _, c in matches}
    return (
        sorted(matches),
        [r for r in range(n) if r not in matched_rows],
        [c for c in range(m) if c not in matched_cols],
    )
