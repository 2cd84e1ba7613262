"""One track's state. Pure data plus a few helpers; the tracker drives the life cycle."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.tracking.kalman import cxcywh_to_xyxy


class TrackState(enum.Enum):
    """Where a track is in its life.

    - ``TENTATIVE``: born, matched fewer than ``min_hits_to_confirm`` frames in a row
      so far; it is deleted (not kept as lost) on its first missed frame.
    - ``TRACKED``: confirmed and matched on the latest frame.
    - ``LOST``: confirmed, not matched on the latest frame; kept for
      ``lost_track_buffer_frames`` frames while the Kalman filter predicts its motion,
      and re-found with the same id if a detection matches it again.
    """

    TENTATIVE = "tentative"
    TRACKED = "tracked"
    LOST = "lost"


@dataclass(eq=False)
class Track:
    """State of one tracked object (compared by identity).

    ``mean`` ``(8,)`` and ``covariance`` ``(8, 8)`` are the Kalman state
    ``(cx, cy, w, h, vcx, vcy, vw, vh)``. ``box`` is the last *observed* box (xyxy),
    ``mask`` the last observed mask (COCO RLE) or ``None``; ``observed_center`` the
    centre of ``box``, from which the mask is shifted by the Kalman displacement.
    ``hits`` counts frames with a matched detection (birth included), ``streak`` the
    current run of consecutive matched frames, ``age`` the frames since birth,
    ``frames_since_seen`` the frames since the last match (0 on a matched frame).
    """

    track_id: int
    mean: np.ndarray
    covariance: np.ndarray
    box: np.ndarray
    score: float
    label: int | None
    mask: dict[str, Any] | None = None
    state: TrackState = TrackState.TENTATIVE
    hits: int = 1
    streak: int = 1
    age: int = 0
    frames_since_seen: int = 0
    observed_center: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def __post_init__(self) -> None:
        self.observed_center = _center(self.box)

    @property
    def predicted_box(self) -> np.ndarray:
        """The Kalman filter's current box estimate, ``(4,)`` xyxy."""
        return cxcywh_to_xyxy(self.mean[None, :4])[0]

    @property
    def displacement(self) -> tuple[int, int]:
        """Whole-pixel ``(dx, dy)`` from the last observed centre to the Kalman-predicted centre."""
        d = self.mean[:2] - self.observed_center
        return int(np.rint(d[0])), int(np.rint(d[1]))

    def observe(self, box: np.ndarray, score: float, label: int | None, mask: dict[str, Any] | None) -> None:
        """Record a matched detection (the Kalman correction is done by the tracker, batched)."""
        self.box = np.asarray(box, dtype=np.float64).copy()
        self.observed_center = _center(self.box)
        self.score = float(score)
        if label is not None:
            self.label = label
        if mask is not None:
            self.mask = mask
        self.hits += 1
        self.streak += 1
        self.frames_since_seen = 0

    def miss(self) -> None:
        """Record a frame without a matched detection."""
        self.frames_since_seen += 1
        self.streak = 0


def _center(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
