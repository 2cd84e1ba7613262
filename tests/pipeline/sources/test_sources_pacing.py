"""The pure timing helpers: max_fps subsampling, realtime pacing, pts normalisation."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.pacing import (
    MaxFpsFilter,
    PtsNormalizer,
    RealtimePacer,
    kept_frame_count,
    wait_until_due,
)


class FakeClock:
    def __init__(self, now_s: float = 100.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def kept_pts(fps: float, num_frames: int, max_fps: float | None) -> list[int]:
    limiter = MaxFpsFilter(max_fps)
    return [i for i in range(num_frames) if limiter.keep(i / fps)]


def test_max_fps_keeps_frames_at_least_one_interval_apart() -> None:
    assert kept_pts(25, 10, None) == list(range(10))
    assert kept_pts(25, 10, 12.5) == [0, 2, 4, 6, 8]  # 0.08 s apart exactly, despite float rounding
    assert kept_pts(25, 10, 10) == [0, 3, 6, 9]  # 0.12 s >= 0.1 s; 0.08 s is too close
    assert kept_pts(25, 5, 100) == list(range(5))  # above the native rate: keep all


def test_max_fps_measures_from_the_last_kept_frame_on_irregular_pts() -> None:
    limiter = MaxFpsFilter(10)
    kept = [pts for pts in (0.0, 0.05, 0.11, 0.15, 0.2, 0.21, 0.32) if limiter.keep(pts)]
    assert kept == [0.0, 0.11, 0.21, 0.32]


@pytest.mark.parametrize("fps, max_fps", [(25, None), (25, 10), (25, 12.5), (30, 7), (29.97, 15), (25, 50), (24, 23.9)])
@pytest.mark.parametrize("num_frames", [0, 1, 10, 101])
def test_kept_frame_count_matches_the_filter(fps: float, max_fps: float | None, num_frames: int) -> None:
    assert kept_frame_count(num_frames, fps, max_fps) == len(kept_pts(fps, num_frames, max_fps))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "10", True])
def test_max_fps_must_be_positive(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_fps"):
        MaxFpsFilter(bad)  # type: ignore[arg-type]


def test_pacer_delays_each_frame_to_its_pts_from_the_first() -> None:
    clock = FakeClock(100.0)
    pacer = RealtimePacer(clock=clock)
    assert pacer.delay_s(5.0) == 0.0  # the first frame anchors the clock: pts 5.0 is due at t=100
    assert pacer.delay_s(5.04) == pytest.approx(0.04)
    clock.now_s = 100.03
    assert pacer.delay_s(5.04) == pytest.approx(0.01)
    clock.now_s = 100.5
    assert pacer.delay_s(5.04) == 0.0  # late: release at once
    assert pacer.delay_s(5.6) == pytest.approx(0.1)


def test_pacer_reanchors_instead_of_bursting_after_a_stall() -> None:
    clock = FakeClock(0.0)
    pacer = RealtimePacer(max_lag_s=1.0, clock=clock)
    pacer.delay_s(0.0)
    clock.now_s = 3.0  # stalled 3 s at pts 0.04
    assert pacer.delay_s(0.04) == 0.0
    assert pacer.delay_s(0.08) == pytest.approx(0.04)  # paced again from the late frame, no burst


def test_wait_until_due_waits_on_the_real_clock_and_stops_early() -> None:
    pacer = RealtimePacer()
    stop = threading.Event()
    start_s = time.monotonic()
    assert wait_until_due(pacer, 0.0, stop)
    assert wait_until_due(pacer, 0.05, stop)
    assert time.monotonic() - start_s >= 0.05
    threading.Timer(0.05, stop.set).start()
    assert not wait_until_due(pacer, 30.0, stop)
    assert time.monotonic() - start_s < 5.0


def test_pts_normalizer_starts_at_zero_and_continues_across_passes() -> None:
    norm = PtsNormalizer(25.0)
    norm.start_pass()
    first = [norm.normalize(raw, i, 0.0) for i, raw in enumerate([10.0, 10.04, 10.08])]
    assert first == pytest.approx([0.0, 0.04, 0.08])
    norm.start_pass()  # a loop restarts the raw timestamps
    second = [norm.normalize(raw, i, 0.0) for i, raw in enumerate([10.0, 10.04])]
    assert second == pytest.approx([0.12, 0.16])


def test_pts_normalizer_fills_missing_pts_and_rebases_jumps_back() -> None:
    norm = PtsNormalizer(25.0)
    norm.start_pass()
    assert norm.normalize(None, 0, 0.0) == 0.0
    assert norm.normalize(None, 1, 0.0) == pytest.approx(0.04)
    assert norm.normalize(0.08, 2, 0.0) == pytest.approx(0.08)
    assert norm.normalize(0.0, 3, 0.0) == pytest.approx(0.12)  # timestamp reset: one frame later
    assert norm.normalize(0.04, 4, 0.0) == pytest.approx(0.16)


def test_pts_normalizer_without_fps_uses_the_clock_and_observed_steps() -> None:
    norm = PtsNormalizer(None)
    norm.start_pass()
    assert [norm.normalize(None, i, now) for i, now in enumerate([50.0, 50.5, 51.0])] == pytest.approx([0.0, 0.5, 1.0])
    norm.start_pass()
    assert norm.normalize(7.0, 0, 0.0) == pytest.approx(1.5)  # last observed step: 0.5 s
