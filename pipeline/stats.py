"""Counters and latency percentiles per stream (bounded memory)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


class LatencyWindow:
    """The last ``capacity`` latencies (seconds); percentiles over that window."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._values: deque[float] = deque(maxlen=capacity)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentile_ms(self, q: float) -> float | None:
        if not self._values:
            return None
        return float(np.percentile(np.fromiter(self._values, float), q) * 1000.0)


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now_s: float, count: int = 1) -> None:
        for _ in range(count):
            self._times.append(now_s)
        self._trim(now_s)

    def rate(self, now_s: float) -> float:
        self._trim(now_s)
        if len(self._times) < 2:
            return 0.0
        span = max(now_s - self._times[0], 1e-6)
        return len(self._times) / span

    def _trim(self, now_s: float) -> None:
        while self._times and now_s - self._times[0] > self.window_s:
            self._times.popleft()


@dataclass(frozen=True)
class StreamSummary:
    """The end-of-run line of one stream."""

    stream_id: str
    decoded: int
    processed: int
    dropped: int
    published: int
    failed_frames: int
    fps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    error: str | None


class StageClock:
    """Seconds spent per named stage, summed (for a cost-per-frame breakdown).

    Use ``with clock.stage("model"): ...`` or ``clock.add("model", seconds)``.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def stage(self, name: str) -> "_Timing":
        return _Timing(self, name)


class _Timing:
    def __init__(self, clock: StageClock, name: str) -> None:
        self.clock = clock
        self.name = name
        self.started = 0.0

    def __enter__(self) -> None:
        import time

        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        import time

        self.clock.add(self.name, time.perf_counter() - self.started)


def cost_per_frame_ms(seconds: dict[str, float], frames: int) -> dict[str, float]:
    """Each stage's total seconds as milliseconds per frame."""
    if frames <= 0:
        return {}
    return {stage: 1000.0 * s / frames for stage, s in seconds.items()}
