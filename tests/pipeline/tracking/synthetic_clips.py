"""Synthetic detection clips with ground truth, for the tracker tests (no video, no model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

WIDTH, HEIGHT = 640, 480


@dataclass
class Frame:
    """One frame's detections and, per detection, the ground-truth object it belongs to (-1: clutter)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    gt: list[int]
    masks: list[dict] = field(default_factory=list)


@dataclass
class Obj:
    """An object moving at constant velocity: box ``(x1, y1, x2, y2)`` at frame 0 and its velocity (px/frame)."""

    box0: tuple[float, float, float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    label: int = 1
    hidden: frozenset[int] = frozenset()  # frames in which it is not detected (occlusion, missed detection)
    low_score: frozenset[int] = frozenset()  # frames in which its score drops between the thresholds

    def box(self, t: int) -> np.ndarray:
        x1, y1, x2, y2 = self.box0
        dx, dy = self.velocity[0] * t, self.velocity[1] * t
        return np.array([x1 + dx, y1 + dy, x2 + dx, y2 + dy])


def make_clip(
    objects: list[Obj],
    n_frames: int,
    *,
    jitter: float = 0.0,
    seed: int = 0,
    shuffle: bool = True,
    min_visible: float = 0.25,
) -> list[Frame]:
    """Detections of ``objects`` over ``n_frames`` frames, with Gaussian box jitter and shuffled order.

    An object less than ``min_visible`` of whose box lies inside the frame is not detected.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_frames):
        boxes, scores, labels, gt = [], [], [], []
        for k, obj in enumerate(objects):
            if t in obj.hidden:
                continue
            true_box = obj.box(t)
            box = true_box + rng.normal(0.0, jitter, 4) if jitter else true_box
            box = np.clip(box, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
            if _area(np.clip(true_box, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])) < min_visible * _area(true_box):
                continue  # (mostly) out of the frame: a detector would not see it
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            boxes.append(box)
            scores.append(rng.uniform(0.2, 0.45) if t in obj.low_score else rng.uniform(0.7, 0.95))
            labels.append(obj.label)
            gt.append(k)
        order = rng.permutation(len(gt)) if shuffle else np.arange(len(gt))
        frames.append(
            Frame(
                boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4)[order],
                scores=np.array(scores, dtype=np.float64)[order],
                labels=np.array(labels, dtype=np.int64)[order],
                gt=[gt[i] for i in order],
            )
        )
    return frames


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))


def rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a binary ``(H, W)`` mask, ``counts`` as ``str`` (as ``RleMask.to_coco`` gives)."""
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def disc(cx: float, cy: float, r: float, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def run(tracker, frames: list[Frame], *, with_masks: bool = False) -> list[list[int | None]]:
    """Feed every frame to ``tracker.update``; return the ids per frame, in each frame's detection order."""
    out = []
    for f in frames:
        out.append(tracker.update(f.boxes, f.scores, f.labels, f.masks if with_masks else None))
    return out


def ids_per_object(frames: list[Frame], ids: list[list[int | None]]) -> dict[int, list[int | None]]:
    """Ground-truth object -> the ids its detections got, in frame order."""
    per: dict[int, list[int | None]] = {}
    for f, frame_ids in zip(frames, ids):
        for g, i in zip(f.gt, frame_ids):
            if g >= 0:
                per.setdefault(g, []).append(i)
    return per


def id_switches(per_object: dict[int, list[int | None]]) -> int:
    """For each object, how often its assigned id changes (unassigned detections skipped), summed."""
    switches = 0
    for ids in per_object.values():
        assigned = [i for i in ids if i is not None and i >= 0]
        switches += sum(1 for a, b in zip(assigned, assigned[1:]) if a != b)
    return switches


def crowded_clip(seed: int, *, n_objects: int, n_frames: int = 150, jitter: float, max_speed: float) -> list[Frame]:
    """Many objects of random size crossing the frame at random constant velocities.

    Each object misses 10 random frames, is occluded twice for 2-5 frames, and has 15
    random frames with a low score (between the tracker's thresholds); boxes jitter by
    ``jitter`` px (standard deviation); objects mostly outside the frame are not detected.
    """
    rng = np.random.default_rng(seed)
    objects = []
    for _ in range(n_objects):
        w, h = rng.uniform(30, 70), rng.uniform(50, 130)
        x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        velocity = rng.uniform(-max_speed, max_speed, 2)
        hidden = {int(t) for t in rng.choice(n_frames, 10, replace=False)}
        for _ in range(2):
            start = int(rng.integers(5, n_frames - 10))
            hidden |= set(range(start, start + int(rng.integers(2, 6))))
        low = {int(t) for t in rng.choice(n_frames, 15, replace=False)} - hidden
        objects.append(
            Obj(
                (x, y, x + w, y + h),
                velocity=(float(velocity[0]), float(velocity[1])),
                hidden=frozenset(hidden),
                low_score=frozenset(low),
            )
        )
    return make_clip(objects, n_frames, jitter=jitter, seed=seed)
