"""Multi-object tracking: a ByteTrack-style tracker in pure numpy/scipy (no Ray, no torch).

One :class:`ByteTracker` per stream; feed it each frame's detections in frame order
(see :mod:`pipeline.reorder`) and it returns a track id per detection.
"""

from pipeline.tracking.byte_tracker import ByteTracker, TrackingError
from pipeline.tracking.kalman import KalmanFilter
from pipeline.tracking.matching import box_iou, linear_assignment, mask_iou, shift_rle
from pipeline.tracking.track import Track, TrackState

__all__ = [
    "ByteTracker",
    "KalmanFilter",
    "Track",
    "TrackState",
    "TrackingError",
    "box_iou",
    "linear_assignment",
    "mask_iou",
    "shift_rle",
]
