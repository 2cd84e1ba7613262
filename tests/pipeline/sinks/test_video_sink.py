"""VideoSink: real MP4s read back with PyAV (frame count, size, rate, tint, odd sizes, close without end, SIGKILL,
segments after resume, a new run or a failed one deleting the previous run's files, YUV input)."""

from __future__ import annotations

import os
import signal
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
from pipeline.frames import Yuv420Frame
from pipeline.messages import StreamEnd, StreamInfo, StreamStatus
from pipeline.sinks import Sink, VideoSink
from pipeline.sinks.video_sink import segment_paths
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


def test_sigkill_leaves_a_playable_file_and_resume_opens_the_next_segment(tmp_path: Path) -> None:
    """By default (fragmented MP4) a process killed with SIGKILL while writing leaves a file that plays up
    to its last complete fragment; ``resume`` then writes ``<id>+1.mp4`` and keeps the first file."""
    n = 150
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pipeline.messages import StreamInfo
        from pipeline.sinks.video_sink import VideoSink
        from tests.pipeline.sinks import factories as f
        sink = VideoSink("crashy", directory=Path({str(tmp_path)!r}))
        sink.start(StreamInfo("crashy", 64, 48, 25.0, None, True))
        for i in range({n}):
            sink.write(f.result("crashy", i, 48, 64), f.image(48, 64, i))
        print("written", flush=True)
        sys.stdin.read()  # blocks until the parent kills this process
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        line = proc.stdout.readline()
        proc.kill()  # SIGKILL: no close(), no atexit, no flush
        _, err = proc.communicate(timeout=60)
    assert line == "written\n", err
    assert proc.returncode == -signal.SIGKILL
    frames, _, _, times = read_back(tmp_path / "crashy.mp4")
    # Keyframe (fragment) every 50 frames (2 s at 25 fps); x264's look-ahead holds back about 50 more.
    assert 40 <= len(frames) < n and frames[0].shape == (48, 64, 3)
    assert times[0] == 0.0, len(frames)
    assert np.abs(frames[0][40:, 50:].astype(int) - f.image(48, 64, 0)[40:, 50:]).max() < TOL  # away from the drawing

    sink = VideoSink("crashy", directory=tmp_path)
    assert sink.resume(info("crashy", 64, 48)) is None
    assert (sink.segment, sink.path.name) == (1, "crashy+1.mp4")
    for i in range(5):
        sink.write(f.result("crashy", 100 + i, 48, 64), f.image(48, 64, i))
    sink.close()
    assert [p.name for p in segment_paths(tmp_path, "crashy")] == ["crashy.mp4", "crashy+1.mp4"]
    assert len(read_back(tmp_path / "crashy+1.mp4")[0]) == 5
    assert len(read_back(tmp_path / "crashy.mp4")[0]) == len(frames)  # the first segment is kept as it was


def write_video(directory: Path, stream_id: str, frames: int, *, resume: bool = False) -> Path:
    sink = VideoSink(stream_id, directory=directory)
    if resume:
        sink.resume(info(stream_id, 64, 48))
    else:
        sink.start(info(stream_id, 64, 48))
    for i in range(frames):
        sink.write(f.result(stream_id, i, 48, 64), f.image(48, 64, i))
    sink.end(f.end(stream_id, frames))
    return sink.path


def test_segments_are_numbered_after_the_highest_and_never_match_other_streams(tmp_path: Path) -> None:
    # Other streams' files that a looser naming scheme would take for cam1's segments.
    others = [write_video(tmp_path, "cam1.1", 2), write_video(tmp_path, "cam10", 2), write_video(tmp_path, "cam1-2", 2)]
    (tmp_path / "cam1+01.mp4").write_bytes(b"not a segment name")  # leading zero: not ours
    assert write_video(tmp_path, "cam1", 3, resume=True).name == "cam1.mp4"  # nothing yet: segment 0
    assert write_video(tmp_path, "cam1", 4, resume=True).name == "cam1+1.mp4"
    (tmp_path / "cam1+1.mp4").rename(tmp_path / "cam1+6.mp4")  # a gap: the next is above the highest
    assert write_video(tmp_path, "cam1", 5, resume=True).name == "cam1+7.mp4"
    segments = segment_paths(tmp_path, "cam1")
    assert [p.name for p in segments] == ["cam1.mp4", "cam1+6.mp4", "cam1+7.mp4"]
    assert [len(read_back(p)[0]) for p in segments] == [3, 4, 5]
    assert all(p.is_file() for p in others) and segment_paths(tmp_path / "missing", "cam1") == []
    (tmp_path / "cam1+8.mp4").write_bytes(b"")  # a process killed before its first fragment
    assert write_video(tmp_path, "cam1", 1, resume=True).name == "cam1+8.mp4"  # the empty file is replaced
    assert len(read_back(tmp_path / "cam1+8.mp4")[0]) == 1

    # A new run: the numbered segments of the previous one are deleted, cam1.mp4 is overwritten.
    write_video(tmp_path, "cam1", 2)
    assert [p.name for p in segment_paths(tmp_path, "cam1")] == ["cam1.mp4"]
    assert len(read_back(tmp_path / "cam1.mp4")[0]) == 2
    assert all(p.is_file() for p in others) and (tmp_path / "cam1+01.mp4").is_file()
    fresh = VideoSink("cam1", directory=tmp_path)
    fresh.start(info("cam1", 64, 48))
    fresh.close()  # a new run that wrote no frame: no file at all, not the previous run's video
    assert segment_paths(tmp_path, "cam1") == []


def test_end_without_start_deletes_the_previous_run(tmp_path: Path) -> None:
    write_video(tmp_path, "cam1", 3)
    write_video(tmp_path, "cam1", 3, resume=True)
    other = write_video(tmp_path, "cam1.1", 2)
    sink = VideoSink("cam1", directory=tmp_path)
    sink.status(StreamStatus(stream_id="cam1", state="failed", at=1.0, reason="cannot open"))  # ignored
    sink.end(StreamEnd(stream_id="cam1", frames=0, error="cannot open rtsp://cam: timeout"))
    sink.close()
    assert segment_paths(tmp_path, "cam1") == [] and other.is_file()
    VideoSink("cam2", directory=tmp_path / "missing").end(f.end("cam2", 0))  # nothing to delete: fine


def test_resume_and_status_errors(tmp_path: Path) -> None:
    sink = VideoSink("cam1", directory=tmp_path)
    sink.start(info("cam1", 64, 48))
    sink.status(StreamStatus(stream_id="cam1", state="live", at=1.0))  # ignored
    with pytest.raises(SinkError, match=r"VideoSink for stream 'cam1': cannot resume: .*already open"):
        sink.resume(info("cam1", 64, 48))
    sink.close()
    with pytest.raises(SinkError, match="cannot resume: the sink is closed"):
        sink.resume(info("cam1", 64, 48))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError, match="cannot list the segments"):
        VideoSink("cam1", directory=blocker).resume(info("cam1", 64, 48))  # a file, not a directory


def test_yuv420_frames_are_drawn_without_torch(tmp_path: Path) -> None:
    """Frames sent as YUV 4:2:0 planes are converted on the host (numpy) and annotated like RGB ones."""
    h, w = 48, 64
    inst = big_instance(h, w)
    sink = VideoSink("yuv", directory=tmp_path)
    sink.start(info("yuv", w, h))
    images = [f.image(h, w, i) for i in range(4)]
    for i, img in enumerate(images):
        sink.write(f.result("yuv", i, h, w, (inst,) if i % 2 else ()), Yuv420Frame.from_rgb(img))
    sink.close()
    frames = read_back(tmp_path / "yuv.mp4")[0]
    assert len(frames) == 4
    corner = (slice(2, 8), slice(2, 8))
    for got, img in zip(frames, images):
        assert np.abs(got[corner].astype(int) - img[corner]).max() < TOL
    centre = (slice(h // 2 - 4, h // 2 + 4), slice(w // 2 - 4, w // 2 + 4))
    assert np.abs(frames[1][centre].astype(int) - images[1][centre]).max() > 3 * TOL  # tinted
