"""VideoSink: real MP4s read back with PyAV (frame count, size, rate, tint, odd sizes, close without end, crash)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.drawing import instance_color
from pipeline.errors import SinkError
from pipeline.messages import StreamInfo
from pipeline.sinks import Sink, VideoSink
from tests.pipeline.sinks import factories as f

REPO = Path(__file__).resolve().parents[3]
TOL = 14  # H.264 at crf 23 on smooth content: a few levels of error per channel


def read_back(path: Path) -> tuple[list[np.ndarray], av.video.stream.VideoStream | None, str, list[float]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
        return frames, stream.average_rate, stream.codec_context.pix_fmt, times


def info(stream_id: str, w: int, h: int, fps: float | None = 25.0) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, width=w, height=h, fps=fps, total_frames=None, live=False)


def big_instance(h: int, w: int, track_id: int = 3):  # red: far from the test image
    # The mask covers the centre; its box tag sits at the top-left corner of the box, far from the centre.
    return f.instance(h, w, (w // 4, h // 4, 3 * w // 4, 3 * h // 4), track_id=track_id, class_name="dog", label=18)


def test_frames_size_rate_and_tint(tmp_path: Path) -> None:
    h, w, n = 96, 128, 12
    inst = big_instance(h, w)
    sink = VideoSink("cam1", directory=tmp_path)
    assert isinstance(sink, Sink) and sink.needs_image is True
    sink.start(info("cam1", w, h, fps=30000 / 1001))
    originals = []
    for i in range(n):
        img = f.image(h, w, seed=i)
        originals.append(img)
        # Every other frame has no instances: those must come out untinted.
        sink.write(f.result("cam1", i * 3, h, w, (inst,) if i % 2 == 0 else ()), img)
    sink.end(f.end("cam1", n))
    sink.close()  # idempotent after end
    assert sink.frames == n

    frames, rate, pix_fmt, times = read_back(tmp_path / "cam1.mp4")
    assert len(frames) == n
    assert frames[0].shape == (h, w, 3) and pix_fmt == "yuv420p"
    assert rate == Fraction(30000, 1001)
    assert times == pytest.approx([i * 1001 / 30000 for i in range(n)], abs=1e-3)  # pts from a counter, not frame index

    color = np.array(instance_color(inst), np.float32)
    cy, cx = h // 2, w // 2
    for i, (got, orig) in enumerate(zip(frames, originals)):
        centre = got[cy - 4 : cy + 4, cx - 4 : cx + 4].astype(np.float32).mean(axis=(0, 1))
        orig_centre = orig[cy - 4 : cy + 4, cx - 4 : cx + 4].astype(np.float32).mean(axis=(0, 1))
        corner = got[2:8, 2:8].astype(np.float32).mean(axis=(0, 1))
        orig_corner = orig[2:8, 2:8].astype(np.float32).mean(axis=(0, 1))
        assert np.abs(corner - orig_corner).max() < TOL, f"frame {i}: outside the mask changed"
        if i % 2 == 0:
            expected = orig_centre * 0.55 + color * 0.45
            assert np.abs(centre - expected).max() < TOL, f"frame {i}: {centre} != {expected}"
            assert np.abs(centre - orig_centre).max() > 3 * TOL, f"frame {i}: masked pixels are not tinted"
        else:
            assert np.abs(centre - orig_centre).max() < TOL


@pytest.mark.parametrize(("w", "h"), [(65, 49), (64, 49), (65, 48)])
def test_odd_size_yuv444p_keeps_exact_size(tmp_path: Path, w: int, h: int) -> None:
    sink = VideoSink("odd", directory=tmp_path)
    sink.start(info("odd", w, h))
    for i in range(5):
        sink.write(f.result("odd", i, h, w, (big_instance(h, w),)), f.image(h, w, i))
    sink.close()
    frames, _, pix_fmt, _ = read_back(tmp_path / "odd.mp4")
    assert len(frames) == 5 and frames[0].shape == (h, w, 3) and pix_fmt == "yuv444p"
    assert np.abs(frames[0][:8, :8].astype(int) - f.image(h, w, 0)[:8, :8]).max() < TOL


def test_odd_size_pad_keeps_yuv420p(tmp_path: Path) -> None:
    h, w = 49, 65
    sink = VideoSink("odd", directory=tmp_path, odd_size="pad")
    sink.start(info("odd", w, h))
    for i in range(5):
        sink.write(f.result("odd", i, h, w, ()), f.image(h, w, i))
    sink.close()
    frames, _, pix_fmt, _ = read_back(tmp_path / "odd.mp4")
    assert len(frames) == 5 and frames[0].shape == (h + 1, w + 1, 3) and pix_fmt == "yuv420p"
    # The extra row/column repeats the edge.
    assert np.abs(frames[0][-1].astype(int) - frames[0][-2]).max() < TOL
    with pytest.raises(SinkError, match="odd_size"):
        VideoSink("odd", directory=tmp_path, odd_size="crop")  # type: ignore[arg-type]


def test_close_without_end_is_playable_and_fps_defaults_to_25(tmp_path: Path) -> None:
    h, w = 48, 64
    sink = VideoSink("live", directory=tmp_path)
    sink.start(info("live", w, h, fps=None))
    for i in range(7):
        sink.write(f.result("live", i, h, w), f.image(h, w, i))
    sink.close()
    sink.close()
    frames, rate, _, _ = read_back(tmp_path / "live.mp4")
    assert len(frames) == 7 and rate == 25
    with pytest.raises(SinkError, match="closed"):
        sink.write(f.result("live", 8, h, w), f.image(h, w))


def test_bad_images_and_ids_are_refused(tmp_path: Path) -> None:
    h, w = 48, 64
    sink = VideoSink("cam1", directory=tmp_path)
    with pytest.raises(SinkError, match="start\\(\\) was not called"):
        sink.write(f.result("cam1", 0, h, w), f.image(h, w))
    sink.start(info("cam1", w, h))
    with pytest.raises(SinkError, match=r"VideoSink for stream 'cam1'.*frame 3.*got None"):
        sink.write(f.result("cam1", 3, h, w), None)
    with pytest.raises(SinkError, match=r"uint8 \(48, 64, 3\)"):
        sink.write(f.result("cam1", 3, h, w), f.image(h, w + 2))
    with pytest.raises(SinkError, match="uint8"):
        sink.write(f.result("cam1", 3, h, w), f.image(h, w).astype(np.float32))
    wrong_mask = (f.instance(h + 2, w, (1, 1, 5, 5)),)
    with pytest.raises(SinkError, match="cannot annotate frame 4"):
        sink.write(f.result("cam1", 4, h, w, wrong_mask), f.image(h, w))
    sink.write(f.result("cam1", 5, h, w), f.image(h, w))
    sink.close()
    assert len(read_back(tmp_path / "cam1.mp4")[0]) == 1
    with pytest.raises(SinkError, match="VideoSink"):
        VideoSink("../cam1", directory=tmp_path)
    with pytest.raises(SinkError, match="cannot set up codec 'no-such-codec'"):
        VideoSink("c2", directory=tmp_path, codec="no-such-codec").start(info("c2", w, h))


def test_fragmented_mp4_survives_a_crash(tmp_path: Path) -> None:
    """fragmented=True: a process killed without close() leaves a playable file with the completed fragments."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from pipeline.messages import StreamInfo
        from pipeline.sinks.video_sink import VideoSink
        from tests.pipeline.sinks import factories as f
        sink = VideoSink("crashy", directory=Path({str(tmp_path)!r}), fragmented=True)
        sink.start(StreamInfo("crashy", 64, 48, 25.0, None, True))
        for i in range(150):
            sink.write(f.result("crashy", i, 48, 64), f.image(48, 64, i))
        os._exit(17)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 17, proc.stderr.decode()
    frames, _, _, _ = read_back(tmp_path / "crashy.mp4")
    # Keyframe (fragment) every 50 frames; x264's look-ahead holds back the last few dozen.
    assert 50 <= len(frames) <= 150 and frames[0].shape == (48, 64, 3)
