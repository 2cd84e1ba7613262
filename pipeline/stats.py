"""Counters and latency percentiles per stream (bounded memory)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

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
    restarts: int = 0  # actor restarts that concerned this stream (its own actors and the shared ones)
    reconnects: int = 0  # times a live source came back after losing its stream
    stalls: int = 0  # times the stall watchdog fired
    undelivered: int = 0  # messages a sink could not deliver (Redis down longer than its buffer holds)


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


# ---- typed statistics of the actors (what the supervisor polls) ------------------------------------


@dataclass(frozen=True)
class SourceStats:
    """A source actor's counters for this incarnation of it (``epoch``), and whether its stream is done.

    ``decoded``: frames of the stream read so far (for a file resumed after a restart, the frames
    skipped because they were already published count too); ``submitted``: frames sent downstream
    by this incarnation; ``resent``: frames sent again after a downstream actor restarted;
    ``dropped``: frames a live source dropped while the pool was behind; ``unacked``: frames sent
    and not yet published; ``draining``: decoding ended, the last frames are on their way;
    ``done``: the stream's end message is out.
    """

    stream_id: str
    pid: int
    epoch: int
    info: Any
    decoded: int
    submitted: int
    resent: int
    dropped: int
    unacked: int
    error: str | None
    draining: bool
    done: bool
    seconds: dict[str, float]


@dataclass(frozen=True)
class RestartRecord:
    """One actor restart the supervisor saw: which actor (and stream), when, and what it cost.

    ``at``: wall-clock time when it stopped answering (or was seen restarted); ``downtime_s``: from
    then until it answered again; ``lost``: frames that cannot be sent again (a live source's
    frames in flight); file streams lose none.
    """

    actor: str
    stream_id: str | None
    at: float
    old_pid: int
    new_pid: int
    downtime_s: float
    lost: int


@dataclass(frozen=True)
class OutputStats:
    """A stream output actor's view: what is published, and how (counters cover the whole run)."""

    stream_id: str
    pid: int
    incarnation: str
    published: int
    failed_frames: int
    next_seq: int
    pending: int
    repeats: int
    fps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    ended: bool
    end_error: str | None
    sink_errors: dict[str, str]
    statuses: dict[str, int]
    sinks: dict[str, Any]
    seconds: dict[str, float]


@dataclass(frozen=True)
class DispatcherStats:
    """The dispatcher's batching counters for this incarnation of it."""

    pid: int
    incarnation: str
    submits: int  # submit calls (each carries one or more frames of one stream)
    submitted_frames: int
    batches: int
    cross_stream_batches: int
    mean_batch_size: float
    failed_batches: int
    retried_batches: int
    lost_frames: int
    waiting: int
    in_flight_batches: list[int]


@dataclass(frozen=True)
class ReplicaInfo:
    """What one inference replica runs (shown at start), or why it could not load its model (``error``).

    ``precision``: the chosen precision and layout with the reason (``PrecisionChoice.describe()``), e.g.
    ``bf16 + channels-last (auto: the CPU computes bf16 natively: AMX tiles; ...)``.
    """

    arch: str = ""
    weights: str = ""
    classes: int = 0
    device: str = ""
    precision: str = ""
    error: str | None = None

    def describe(self) -> str:
        return f"{self.arch} on {self.device} ({self.weights}, {self.classes} classes), {self.precision}"


@dataclass(frozen=True)
class InferenceStats:
    pid: int
    batches: int
    frames: int
    seconds: dict[str, float]
