"""SyntheticSource over the scene generator of ``pipeline.scenes``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipeline.errors import DecodeError
from pipeline.scenes import SceneConfig, SceneGenerator
from pipeline.sources import DecodedFrame, FrameSource, SyntheticSource, is_live_url, open_source

URL = "synthetic:seed=3&size=64x48&fps=25&frames=10"


def take(source: FrameSource, count: int) -> list[DecodedFrame]:
    frames: list[DecodedFrame] = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == count:
            break
    source.close()
    return frames


def test_finite_scene_gives_the_generator_frames_with_pts_from_the_index() -> None:
    source = open_source("syn", URL)
    assert isinstance(source, SyntheticSource)
    info = source.open()
    assert (info.stream_id, info.width, info.height, info.fps, info.total_frames, info.live) == (
        "syn", 64, 48, 25.0, 10, False,
    )
    assert isinstance(source, FrameSource)
    frames = list(source.frames())
    expected = list(SceneGenerator(SceneConfig.from_url(URL)))
    assert [f.index for f in frames] == list(range(10))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(10)])
    for frame, scene_frame in zip(frames, expected, strict=True):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3) and frame.image.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(frame.image, scene_frame.image)


def test_endless_scene_is_live_and_max_fps_subsamples() -> None:
    url = "synthetic:seed=1&size=64x48&fps=25&frames=inf"
    assert is_live_url(url) and not is_live_url(URL)
    source = open_source("syn", url, max_fps=10)
    info = source.open()
    assert info.live and info.total_frames is None
    frames = take(source, 4)
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [f.pts_s for f in frames] == pytest.approx([0.0, 0.12, 0.24, 0.36])


def test_max_fps_counts_kept_frames() -> None:
    assert open_source("syn", URL, max_fps=12.5).open().total_frames == 5


def test_loop_replays_the_scene_with_increasing_index_and_pts() -> None:
    source = open_source("syn", URL, loop=True)
    assert source.open().total_frames is None
    frames = take(source, 15)
    assert [f.index for f in frames] == list(range(15))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(15)])
    np.testing.assert_array_equal(frames[12].image, frames[2].image)


def test_realtime_paces_to_pts_and_stop_ends_it() -> None:
    source = open_source("syn", "synthetic:seed=2&size=64x48&fps=25&frames=0", realtime=True)
    source.open()
    delivered: list[tuple[float, float]] = []
    for frame in source.frames():
        delivered.append((time.monotonic(), frame.pts_s))
        if len(delivered) == 6:
            threading.Thread(target=source.stop).start()
        if len(delivered) > 12:
            break
    source.close()
    assert 6 <= len(delivered) <= 8  # stopped right after the 6th frame, not left running
    t0, p0 = delivered[0]
    for t, pts in delivered:
        assert t - t0 >= pts - p0 - 5e-3


def test_invalid_url_names_the_stream_and_the_key() -> None:
    url = "synthetic:seed=1&colour=red"
    with pytest.raises(DecodeError) as info:
        open_source("syn", url).open()
    message = str(info.value)
    assert "'syn'" in message and url in message and "colour" in message
