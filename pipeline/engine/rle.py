"""COCO run-length encoding of box-cropped binary masks, without pycocotools and without full-frame masks.

A batch's masks live in one flat "ragged" buffer: instance ``i`` owns the elements
``offsets[i]:offsets[i + 1]``, its crop of ``height[i] x width[i]`` pixels at ``(x0[i], y0[i])`` of a
``frame_h[i] x frame_w[i]`` frame, stored column-major (element ``j`` of the crop is row
``j % height``, column ``j // height``), as COCO's RLE runs over the frame column-major.

1. :func:`find_transitions` (torch, on the mask's device): the elements where a run of ones starts
   or ends within its crop column: one ``nonzero`` and one transfer of the (few) boundaries per batch.
2. :func:`runs_from_transitions` (numpy): full-frame positions of the runs' starts and ends (crop
   offset + column * frame height + row), merging runs that continue from one column into the next
   (only possible when a crop spans the frame's full height).
3. :func:`counts_from_runs` (numpy): COCO's counts (alternating zeros/ones run lengths, starting
   with zeros) of every mask at once.
4. :func:`compress_counts` (numpy): COCO's compressed string (pycocotools' ``rleToString``) of every
   mask at once; byte-identical to ``pycocotools.mask.encode``. :func:`rle_string` is the plain
   per-value reference of the same encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.messages import RleMask

# 7 chunks of 5 bits hold any signed 34-bit value: deltas of counts of frames < 2**31 pixels.
_CHUNKS = 7
_SHIFTS = 5 * np.arange(_CHUNKS, dtype=np.int64)


@dataclass(frozen=True)
class CropLayout:
    """Where each instance's crop sits in its frame and in the flat buffer (numpy int64 arrays of length n)."""

    x0: np.ndarray
    y0: np.ndarray
    height: np.ndarray
    width: np.ndarray
    frame_h: np.ndarray
    frame_w: np.ndarray
    offsets: np.ndarray  # (n + 1,), offsets[i] = first element of instance i in the flat buffer

    @classmethod
    def build(cls, x0, y0, height, width, frame_h, frame_w) -> "CropLayout":  # type: ignore[no-untyped-def]
        arrays = [np.asarray(a, dtype=np.int64).reshape(-1) for a in (x0, y0, height, width, frame_h, frame_w)]
        x0_, y0_, h_, w_, fh, fw = arrays
        empty = (h_ <= 0) | (w_ <= 0)
        h_ = np.where(empty, 0, h_)
        w_ = np.where(empty, 0, w_)
        offsets = np.zeros(len(h_) + 1, dtype=np.int64)
        np.cumsum(h_ * w_, out=offsets[1:])
        return cls(x0=x0_, y0=y0_, height=h_, width=w_, frame_h=fh, frame_w=fw, offsets=offsets)

    def __len__(self) -> int:
        return len(self.height)

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    def select(self, start: int, stop: int) -> "CropLayout":
        """Instances ``start:stop`` as a layout of their own (offsets rebased to 0)."""
        sl = slice(start, stop)
        return CropLayout.build(
            self.x0[sl], self.y0[sl], self.height[sl], self.width[sl], self.frame_h[sl], self.frame_w[sl]
        )

    def chunks(self, max_elements: int) -> list[tuple[int, int]]:
        """Split the instances into consecutive ranges of at most ``max_elements`` buffer elements
        (an instance bigger than that gets a range of its own)."""
        out: list[tuple[int, int]] = []
        start = 0
        n = len(self)
        while start < n:
            limit = self.offsets[start] + max_elements
            stop = int(np.searchsorted(self.offsets, limit, side="right")) - 1
            stop = min(max(stop, start + 1), n)
            out.append((start, stop))
            start = stop
        return out


@dataclass
class RaggedIndex:
    """Per-element coordinates of a :class:`CropLayout`'s flat buffer, on the device."""

    instance: torch.Tensor  # int64 (S,)
    row: torch.Tensor  # int64 (S,), row within the crop
    col: torch.Tensor  # int64 (S,), column within the crop
    crop_h: torch.Tensor  # int64 (S,), height of the element's crop

    @classmethod
    def build(cls, layout: CropLayout, device: torch.device) -> "RaggedIndex":
        n, total = len(layout), layout.total
        table = torch.from_numpy(np.stack([layout.offsets[:-1], layout.height, layout.height * layout.width])).to(
            device, non_blocking=True
        )
        offsets, heights, areas = table[0], table[1], table[2]
        instance = torch.repeat_interleave(torch.arange(n, device=device), areas, output_size=total)
        j = torch.arange(total, device=device) - offsets[instance]
        crop_h = heights[instance]
        col = torch.div(j, crop_h, rounding_mode="floor")
        row = j - col * crop_h
        return cls(instance=instance, row=row, col=col, crop_h=crop_h)


def find_transitions(binary: torch.Tensor, index: RaggedIndex) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the elements where a run of ones starts (code bit 1) or ends (code bit 2)
    within a crop column, and their codes; the one host transfer of the RLE."""
    v = binary.reshape(-1).to(torch.bool)
    if v.numel() == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    prev = torch.zeros_like(v)
    prev[1:] = v[:-1]
    nxt = torch.zeros_like(v)
    nxt[:-1] = v[1:]
    rising = v & ~(prev & (index.row > 0))
    falling = v & ~(nxt & (index.row < index.crop_h - 1))
    code = rising.to(torch.int64) + 2 * falling.to(torch.int64)
    idx = torch.nonzero(code).reshape(-1)
    packed = torch.stack([idx, code[idx]]).cpu().numpy()
    return packed[0], packed[1].astype(np.int8)


def runs_from_transitions(
    idx: np.ndarray, code: np.ndarray, layout: CropLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-frame ``[start, end)`` positions (column-major) of every run of ones, and the run's instance;
    sorted by instance then position, runs continuing across columns merged."""
    inst = np.searchsorted(layout.offsets, idx, side="right") - 1
    j = idx - layout.offsets[inst]
    ch = layout.height[inst]
    col = j // ch
    row = j - col * ch
    pos = (layout.x0[inst] + col) * layout.frame_h[inst] + layout.y0[inst] + row
    is_start = (code & 1) != 0
    is_end = (code & 2) != 0
    starts, owner = pos[is_start], inst[is_start]
    ends = pos[is_end] + 1
    if len(starts) > 1:
        touching = (ends[:-1] == starts[1:]) & (owner[:-1] == owner[1:])
        if touching.any():
            starts = starts[np.concatenate([[True], ~touching])]
            owner = owner[np.concatenate([[True], ~touching])]
            ends = ends[np.concatenate([~touching, [True]])]
    return starts, ends, owner


def counts_from_runs(
    starts: np.ndarray, ends: np.ndarray, owner: np.ndarray, frame_areas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCO counts of all masks, concatenated, and the number of counts of each mask."""
    frame_areas = np.asarray(frame_areas, dtype=np.int64)
    n = len(frame_areas)
    runs = np.bincount(owner, minlength=n).astype(np.int64)
    block = 2 * runs + 2  # boundaries per mask: 0, s0, e0, s1, e1, ..., area
    block_start = np.zeros(n, dtype=np.int64)
    np.cumsum(block[:-1], out=block_start[1:])
    bounds = np.empty(int(block.sum()), dtype=np.int64)
    bounds[block_start] = 0
    bounds[block_start + block - 1] = frame_areas
    if len(starts):
        first_run = np.zeros(n, dtype=np.int64)
        np.cumsum(runs[:-1], out=first_run[1:])
        rank = np.arange(len(starts), dtype=np.int64) - first_run[owner]
        at = block_start[owner] + 1 + 2 * rank
        bounds[at] = starts
        bounds[at + 1] = ends
    diffs = np.diff(bounds)
    keep = np.ones(len(diffs), dtype=bool)
    keep[(block_start + block - 1)[:-1]] = False  # between one mask's area and the next mask's 0
    ends_frame = np.zeros(n, dtype=bool)
    has_runs = runs > 0
    ends_frame[has_runs] = bounds[(block_start + block - 2)[has_runs]] == frame_areas[has_runs]
    keep[(block_start + block - 2)[ends_frame]] = False  # no trailing zero-length run of zeros
    lengths = 2 * runs + 1 - ends_frame
    return diffs[keep], lengths


def compress_counts(counts: np.ndarray, lengths: np.ndarray) -> list[str]:
    """COCO's compressed RLE strings (pycocotools ``rleToString``) of the masks whose counts are
    concatenated in ``counts`` (``lengths[i]`` counts for mask ``i``; every length >= 1)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return []
    mask_start = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=mask_start[1:])
    k = np.arange(len(counts), dtype=np.int64) - np.repeat(mask_start, lengths)  # index within its mask
    x = counts.copy()
    delta = k > 2
    x[delta] -= counts[np.nonzero(delta)[0] - 2]
    chunks = (x[:, None] >> _SHIFTS) & 0x1F
    rest = x[:, None] >> (_SHIFTS + 5)
    more = np.where((chunks & 0x10) != 0, rest != -1, rest != 0)
    nchars = np.argmin(more, axis=1) + 1  # the first chunk after which nothing more is needed
    col = np.arange(_CHUNKS)
    chars = chunks + np.where(col[None, :] < (nchars - 1)[:, None], 0x20, 0) + 48
    encoded = chars[col[None, :] < nchars[:, None]].astype(np.uint8).tobytes().decode("ascii")
    per_mask = np.add.reduceat(nchars, mask_start)
    bounds = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(per_mask, out=bounds[1:])
    b = bounds.tolist()
    return [encoded[b[i] : b[i + 1]] for i in range(len(lengths))]


def rle_string(counts: Sequence[int]) -> str:
    """Reference (one value at a time) implementation of pycocotools' ``rleToString``."""
    out = []
    for i, c in enumerate(counts):
        x = int(c) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = x != -1 if ch & 0x10 else x != 0
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def encode_ragged(binary: torch.Tensor, layout: CropLayout, index: RaggedIndex | None = None) -> list[RleMask]:
    """RLE masks of the crops in ``binary`` (flat, laid out as ``layout`` says)."""
    if len(layout) == 0:
        return []
    if index is None:
        index = RaggedIndex.build(layout, binary.device)
    idx, code = find_transitions(binary, index)
    return masks_from_transitions(idx, code, layout)


def masks_from_transitions(idx: np.ndarray, code: np.ndarray, layout: CropLayout) -> list[RleMask]:
    starts, ends, owner = runs_from_transitions(idx, code, layout)
    counts, lengths = counts_from_runs(starts, ends, owner, layout.frame_h * layout.frame_w)
    strings = compress_counts(counts, lengths)
    fh, fw = layout.frame_h.tolist(), layout.frame_w.tolist()
    return [RleMask(height=fh[i], width=fw[i], counts=s) for i, s in enumerate(strings)]


def encode_masks(masks: torch.Tensor) -> list[RleMask]:
    """RLE of full-frame binary masks ``(N, H, W)`` (any device; nonzero = foreground)."""
    if masks.dim() != 3:
        raise ValueError(f"masks must have shape (N, H, W), got {tuple(masks.shape)}")
    n, h, w = masks.shape
    if n == 0:
        return []
    layout = CropLayout.build(
        np.zeros(n), np.zeros(n), np.full(n, h), np.full(n, w), np.full(n, h), np.full(n, w)
    )
    flat = (masks != 0).transpose(1, 2).reshape(-1)  # column-major within each mask
    return encode_ragged(flat, layout)
