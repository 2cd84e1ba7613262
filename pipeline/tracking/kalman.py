"""A constant-velocity Kalman filter on boxes, vectorised over tracks.

State (8 values): ``(cx, cy, w, h, vcx, vcy, vw, vh)``: the box centre, width and
height in pixels, and their velocities in pixels per frame. The measurement is
``(cx, cy, w, h)``. Centre and size (rather than ByteTrack's original
``(cx, cy, aspect, h)``) avoid a division by the height, so a degenerate
zero-height box cannot put an infinity into the state.

Noise follows ByteTrack / BoT-SORT: standard deviations proportional to the box
size (a 1-pixel error matters on a 10-pixel box, not on a 500-pixel one), x terms
scaled by the width and y terms by the height. Sizes are floored at 1 pixel in the
noise so that covariances stay positive definite.

Every method takes and returns stacked arrays: ``means`` ``(N, 8)``, ``covariances``
``(N, 8, 8)``, so one call predicts all tracks of a frame.
"""

from __future__ import annotations

import numpy as np

_NDIM = 4

#: State transition: position += velocity (one frame).
_F = np.eye(2 * _NDIM)
_F[:_NDIM, _NDIM:] = np.eye(_NDIM)
#: Measurement matrix: we observe the position part only.
_H = np.eye(_NDIM, 2 * _NDIM)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` ``(x1, y1, x2, y2)`` → ``(N, 4)`` ``(cx, cy, w, h)``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4+)`` ``(cx, cy, w, h, ...)`` → ``(N, 4)`` ``(x1, y1, x2, y2)``; negative sizes are clamped to 0."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    w = np.maximum(boxes[:, 2], 0.0)
    h = np.maximum(boxes[:, 3], 0.0)
    return np.stack([boxes[:, 0] - w / 2, boxes[:, 1] - h / 2, boxes[:, 0] + w / 2, boxes[:, 1] + h / 2], axis=1)


class KalmanFilter:
    """Constant-velocity Kalman filter on ``(cx, cy, w, h)`` with velocities.

    ``std_weight_position`` and ``std_weight_velocity`` are the standard deviations of
    position and velocity noise relative to the box size (ByteTrack's 1/20 and 1/160):
    larger values trust the detections more and the motion model less (follows
    sudden turns faster, but jitter passes into the prediction).
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        self.std_weight_position = float(std_weight_position)
        self.std_weight_velocity = float(std_weight_velocity)

    def _scales(self, sizes: np.ndarray) -> np.ndarray:
        """``(N, 4)`` per-component scale ``(w, h, w, h)`` from ``(N, 2)`` sizes, floored at 1 pixel."""
        sizes = np.maximum(sizes, 1.0)
        return np.concatenate([sizes, sizes], axis=1)

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks from ``(N, 4)`` ``(cx, cy, w, h)`` measurements (velocity 0, uncertain)."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
        n = len(z)
        means = np.concatenate([z, np.zeros_like(z)], axis=1)
        scale = self._scales(z[:, 2:4])
        std = np.concatenate([2 * self.std_weight_position * scale, 10 * self.std_weight_velocity * scale], axis=1)
        covariances = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
        idx = np.arange(2 * _NDIM)
        covariances[:, idx, idx] = std**2
        return means, covariances

    def predict(self, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance ``N`` tracks by one frame: ``x' = F x``, ``P' = F P Fᵀ + Q``. Returns new arrays."""
        means = np.asarray(means, dtype=np.float64).reshape(-1, 2 * _NDIM)
        covariances = np.asarray(covariances, dtype=np.float64).reshape(-1, 2 * _NDIM, 2 * _NDIM)
        scale = self._scales(means[:, 2:4])
        std = np.concatenate([self.std_weight_position * scale, self.std_weight_velocity * scale], axis=1)
        q = np.zeros_like(covariances)
        idx = np.arange(2 * _NDIM)
        q[:, idx, idx] = std**2
        new_means = means @ _F.T
        new_covariances = _F @ covariances @ _F.T + q
        return new_means, new_covariances

    def update(
        self, means: np.ndarray, covariances: np.ndarray, measurements: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct ``N`` tracks with ``(N, 4)`` ``(cx, cy, w, h)`` measurements. Returns new arrays."""
        means = np.asarray(means, dtype=np.float64).reshape(-1, 2 * _NDIM)
        covariances = np.asarray(covariances, dtype=np.float64).reshape(-1, 2 * _NDIM, 2 * _NDIM)
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
        scale = self._scales(means[:, 2:4])
        r_std = self.std_weight_position * scale
        r = np.zeros((len(means), _NDIM, _NDIM))
        idx = np.arange(_NDIM)
        r[:, idx, idx] = r_std**2
        projected_mean = means @ _H.T  # (N, 4)
        projected_cov = _H @ covariances @ _H.T + r  # (N, 4, 4)
        pht = covariances @ _H.T  # (N, 8, 4)
        # K = P Hᵀ S⁻¹, solved as Sᵀ Kᵀ = (P Hᵀ)ᵀ (S is symmetric).
        gain = np.linalg.solve(projected_cov, np.swapaxes(pht, 1, 2))  # (N, 4, 8) = Kᵀ
        gain = np.swapaxes(gain, 1, 2)  # (N, 8, 4)
        innovation = z - projected_mean
        new_means = means + np.einsum("nij,nj->ni", gain, innovation)
        new_covariances = covariances - gain @ projected_cov @ np.swapaxes(gain, 1, 2)
        return new_means, new_covariances
