"""COCO RLE of pipeline.engine: byte-identical to pycocotools, and box-cropped pasting equal to torchvision's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image

from pipeline.engine.postprocess import encode_pasted_masks, paste_boxes
from pipeline.engine.rle import compress_counts, encode_masks, rle_string


def coco_counts(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")


def edge_case_masks(rng: np.random.Generator) -> list[np.ndarray]:
    masks = []
    for h, w in [(1, 1), (1, 9), (9, 1), (2, 2), (5, 3), (17, 23), (31, 64), (150, 200), (241, 319)]:
        masks.append(np.zeros((h, w), bool))
        masks.append(np.ones((h, w), bool))
        for p in (0.02, 0.5, 0.97):
            masks.append(rng.random((h, w)) < p)
        for y, x in [(0, 0), (h - 1, w - 1), (0, w - 1), (h - 1, 0), (h // 2, w // 2)]:
            m = np.zeros((h, w), bool)
            m[y, x] = True
            masks.append(m)  # 1-pixel masks, incl. the corners
            masks.append(~m)  # all but one pixel
        m = np.zeros((h, w), bool)
        m[:, w - 1] = True  # last column
        masks.append(m)
        m = np.zeros((h, w), bool)
        m[h // 3 :, : w // 2 + 1] = True  # runs spanning columns (full-height crop ends)
        masks.append(m)
        blob = np.zeros((h, w), bool)
        blob[h // 4 : h - h // 4, w // 5 : w - w // 5] = True
        masks.append(blob ^ (rng.random((h, w)) < 0.05))
    return masks


def test_encode_masks_is_byte_identical_to_pycocotools() -> None:
    rng = np.random.default_rng(0)
    masks = edge_case_masks(rng)
    for m in masks:
        ours = encode_masks(torch.from_numpy(m)[None])
        assert len(ours) == 1
        assert (ours[0].height, ours[0].width) == m.shape
        assert ours[0].counts == coco_counts(m), f"mask of shape {m.shape} with {m.sum()} pixels"
    # a batch of same-size masks at once
    stack = rng.random((12, 37, 41)) < 0.4
    stack[3] = False
    stack[4] = True
    assert [r.counts for r in encode_masks(torch.from_numpy(stack))] == [coco_counts(m) for m in stack]
    assert encode_masks(torch.zeros((0, 5, 5), dtype=torch.bool)) == []


def test_compress_counts_matches_the_reference_and_pycocotools() -> None:
    rng = np.random.default_rng(1)
    all_counts, lengths = [], []
    for _ in range(200):
        n = int(rng.integers(1, 30))
        # run lengths of all magnitudes (0 only first), incl. large ones that need many chars
        counts = rng.integers(1, 2 ** rng.integers(1, 30), size=n)
        counts[0] = rng.integers(0, 3) if rng.random() < 0.3 else counts[0]
        all_counts.append(counts)
        lengths.append(n)
    strings = compress_counts(np.concatenate(all_counts), np.array(lengths))
    for counts, s in zip(all_counts, strings):
        assert s == rle_string(counts.tolist())
    # against pycocotools through frPyObjects (uncompressed -> compressed) for frame-sized counts
    for counts in all_counts[:50]:
        total = int(counts.sum())
        rle = mask_utils.frPyObjects({"size": [total, 1], "counts": counts.tolist()}, total, 1)
        assert rle["counts"].decode("ascii") == rle_string(counts.tolist())


def random_boxes(rng: np.random.Generator, n: int, h: int, w: int) -> torch.Tensor:
    xy = rng.uniform([-0.05 * w, -0.05 * h], [1.05 * w, 1.05 * h], size=(n, 2))
    wh = rng.uniform(0, 1, size=(n, 2)) ** 2 * [w, h]
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    special = np.array(
        [
            [0, 0, w, h],  # the whole frame: crops span full height, runs continue across columns
            [0, 0, 0.4, 0.4],  # tiny, in a corner
            [w - 1.2, h - 1.3, w, h],
            [0, 0, w, 3],  # along the top border
            [w / 3, 0, w / 3 + 5.5, h],  # full height, narrow
            [10.5, 10.5, 10.5, 10.5],  # degenerate
        ]
    )
    return torch.from_numpy(np.concatenate([boxes, special]).astype(np.float32))


@pytest.mark.parametrize("h,w", [(150, 200), (61, 47)])
def test_box_cropped_masks_equal_torchvision_pasting(h: int, w: int) -> None:
    rng = np.random.default_rng(h)
    boxes = random_boxes(rng, 120, h, w)
    n = len(boxes)
    logits = torch.from_numpy(rng.normal(0, 3, size=(n, 1, 28, 28)).astype(np.float32))
    logits[0] = 5.0  # a full mask over the whole frame
    probs = logits.sigmoid()
    full = paste_masks_in_image(probs, boxes, (h, w))[:, 0] > 0.5
    expected = [coco_counts(m) for m in full.numpy()]
    int_boxes = paste_boxes(boxes.numpy(), 28)
    fh, fw = np.full(n, h), np.full(n, w)
    ours = encode_pasted_masks(probs[:, 0], int_boxes, fh, fw, 0.5)
    assert [m.counts for m in ours] == expected
    assert all((m.height, m.width) == (h, w) for m in ours)
    # the same in small chunks (several host transfers) gives the same masks
    chunked = encode_pasted_masks(probs[:, 0], int_boxes, fh, fw, 0.5, max_elements=500)
    assert [m.counts for m in chunked] == expected
