"""Pure timing helpers of the sources, testable without video.

- ``MaxFpsFilter``: keep a frame only if its pts is at least ``1 / max_fps`` after the last kept one.
- ``kept_frame_count``: how many of ``n`` constant-rate frames that filter keeps.
- ``RealtimePacer`` and ``wait_until_due``: release frames no earlier than their pts, against a
  monotonic clock, like a camera.
- ``PtsNormalizer``: turn a decoder's raw timestamps (which may be missing, start anywhere, jump
  back, or restart when a file loops) into strictly increasing seconds from the first frame.

All times are in seconds (``float``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from pipeline.errors import ConfigError

PTS_TOLERANCE_S = 1e-6
"""Slack for float rounding when comparing presentation times (``0.12 - 0.04 < 0.08`` in floats)."""

MIN_FRAME_INTERVAL_S = 1e-3
"""Smallest step between two frames' pts when the true step is unknown (keeps pts strictly increasing)."""


def validate_max_fps(max_fps: float | None) -> float | None:
    """Return ``max_fps`` if it is ``None`` or a finite number > 0; else raise ``ConfigError``."""
    if max_fps is None:
        return None
    if isinstance(max_fps, bool) or not isinstance(max_fps, (int, float)) or not math.isfinite(max_fps) or max_fps <= 0:
        raise ConfigError(f"max_fps: got {max_fps!r}, expected a finite number of frames per second > 0, or None")
    return float(max_fps)


class MaxFpsFilter:
    """Subsample a stream to at most ``max_fps`` frames per second of presentation time.

    ``keep(pts_s)`` is true for the first frame and for every frame whose pts is at least
    ``1 / max_fps`` seconds after the last kept one. ``max_fps=None`` keeps every frame.
    """

    def __init__(self, max_fps: float | None) -> None:
        fps = validate_max_fps(max_fps)
        self.min_interval_s: float = 0.0 if fps is None else 1.0 / fps
        self._last_kept_pts_s: float | None = None

    def keep(self, pts_s: float) -> bool:
        """Whether to keep the frame at ``pts_s`` (seconds); remembers it as the last kept one if so."""
        if self._last_kept_pts_s is not None and pts_s - self._last_kept_pts_s < self.min_interval_s - PTS_TOLERANCE_S:
            return False
        self._last_kept_pts_s = pts_s
        return True


def kept_frame_count(num_frames: int, fps: float | None, max_fps: float | None) -> int:
    """How many of ``num_frames`` frames at a constant ``fps`` a ``MaxFpsFilter(max_fps)`` keeps.

    Without ``max_fps`` (or without a known ``fps``) every frame counts.
    """
    max_fps = validate_max_fps(max_fps)
    if num_frames <= 0:
        return 0
    if max_fps is None or fps is None or fps <= 0:
        return num_frames
    # Frame k is kept after frame 0 iff k / fps >= 1 / max_fps (within tolerance): every step-th frame.
    step = max(1, math.ceil(fps / max_fps - PTS_TOLERANCE_S * fps))
    return math.ceil(num_frames / step)


class RealtimePacer:
    """Release frames at their presentation time, measured from the first frame, on a monotonic clock.

    The first ``delay_s`` call anchors the stream: pts ``p`` is due at ``anchor + p``. A frame
    that is late by more than ``max_lag_s`` (the consumer or decoder stalled) re-anchors the
    clock instead of releasing a burst of frames to catch up, as a camera would.
    ``clock`` returns seconds (default ``time.monotonic``).
    """

    def __init__(self, max_lag_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(max_lag_s) or max_lag_s < 0:
            raise ConfigError(f"max_lag_s: got {max_lag_s!r}, expected a finite number of seconds >= 0")
        self.max_lag_s = max_lag_s
        self.clock = clock
        self._anchor_s: float | None = None

    def delay_s(self, pts_s: float) -> float:
        """Seconds to wait until the frame at ``pts_s`` is due (0.0 when it is due or late)."""
        now_s = self.clock()
        if self._anchor_s is None:
            self._anchor_s = now_s - pts_s
        delay_s = self._anchor_s + pts_s - now_s
        if delay_s < -self.max_lag_s:
            self._anchor_s = now_s - pts_s
            return 0.0
        return max(0.0, delay_s)


def wait_until_due(pacer: RealtimePacer, pts_s: float, stop: threading.Event) -> bool:
    """Block until the frame at ``pts_s`` is due or ``stop`` is set; return ``False`` if stopped."""
    while not stop.is_set():
        delay_s = pacer.delay_s(pts_s)
        if delay_s <= 0.0:
            return True
        stop.wait(delay_s)
    return False


class PtsNormalizer:
    """Map raw decoder timestamps to strictly increasing seconds from the stream's first frame.

    Call ``start_pass()`` before the frames of each pass over the stream (the first, and each
    restart when looping); then ``normalize(raw_pts_s, index_in_pass, now_s)`` per frame:

    - ``raw_pts_s`` is the decoder's timestamp in seconds, or ``None`` when the frame has none;
      then ``index_in_pass / fps`` stands in, or, without an fps, ``now_s`` (monotonic seconds).
    - The first frame is at 0.0; a new pass continues one frame interval after the previous
      pass's last frame; a timestamp that does not advance (a reset or discontinuity in a live
      feed) is re-based to one frame interval after the previous frame.
    """

    def __init__(self, fps: float | None) -> None:
        self.fps = fps if fps is not None and math.isfinite(fps) and fps > 0 else None
        self._base_raw_s: float | None = None
        self._offset_s = 0.0
        self._last_s: float | None = None
        self._last_raw_s: float | None = None
        self._last_step_s: float | None = None

    @property
    def frame_interval_s(self) -> float:
        """The best known step between two frames: ``1 / fps``, else the last observed step, else 1 ms."""
        if self.fps is not None:
            return 1.0 / self.fps
        if self._last_step_s is not None:
            return self._last_step_s
        return MIN_FRAME_INTERVAL_S

    @property
    def last_pts_s(self) -> float | None:
        """The pts last returned by ``normalize`` (seconds), ``None`` before the first frame."""
        return self._last_s

    def start_pass(self) -> None:
        """The next frame starts a new pass: it follows the last frame by one frame interval."""
        self._base_raw_s = None

    def normalize(self, raw_pts_s: float | None, index_in_pass: int, now_s: float) -> float:
        """The pts in seconds of the next frame (see the class docstring for the arguments)."""
        if raw_pts_s is None or not math.isfinite(raw_pts_s):
            raw_pts_s = index_in_pass / self.fps if self.fps is not None else now_s
        first_in_pass = self._base_raw_s is None
        if first_in_pass:
            self._base_raw_s = raw_pts_s
            self._offset_s = 0.0 if self._last_s is None else self._last_s + self.frame_interval_s
        pts_s = self._offset_s + raw_pts_s - self._base_raw_s
        if self._last_s is not None and pts_s <= self._last_s + PTS_TOLERANCE_S:
            self._base_raw_s = raw_pts_s
            self._offset_s = self._last_s + self.frame_interval_s
            pts_s = self._offset_s
        elif not first_in_pass and self._last_raw_s is not None:
            self._last_step_s = max(raw_pts_s - self._last_raw_s, MIN_FRAME_INTERVAL_S)
        self._last_raw_s = raw_pts_s
        self._last_s = pts_s
        return pts_s
