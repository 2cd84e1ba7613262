"""The pipeline bench's files (generated once, cached) and decoding alone (N processes, start-up not timed)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from pipeline.benchmark.decode import decode_alone
from pipeline.benchmark.videos import bench_video
from pipeline.errors import ConfigError, MaskstreamError


def test_bench_video_is_h264_of_the_asked_size_and_cached(tmp_path: Path) -> None:
    path = bench_video(tmp_path, 160, 96, 12, seed=3)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (160, 96)
        assert sum(1 for _ in container.decode(stream)) == 12
    mtime = path.stat().st_mtime_ns
    assert bench_video(tmp_path, 160, 96, 12, seed=3) == path and path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left behind
    with pytest.raises(ConfigError, match="even sides"):
        bench_video(tmp_path, 161, 96, 12)


def test_decode_alone_counts_every_frame_of_every_process(tmp_path: Path) -> None:
    path = bench_video(tmp_path, 160, 96, 12)
    result = decode_alone([path, path, path], transfer="yuv420")
    assert (result.processes, result.frames, result.transfer) == (3, 36, "yuv420")
    assert result.seconds > 0 and result.fps == pytest.approx(36 / result.seconds)
    with pytest.raises(MaskstreamError, match=r"nope\.mp4: could not open"):
        decode_alone([path, tmp_path / "nope.mp4"])
