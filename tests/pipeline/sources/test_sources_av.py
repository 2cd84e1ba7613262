"""AvSource on real files written with PyAV, and on local sockets standing in for network servers."""

from __future__ import annotations

import functools
import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError, DecodeError
from pipeline.frames import Yuv420Frame
from pipeline.sources import AvSource, DecodedFrame, FrameSource, is_live_url, open_source
from tests.pipeline.sources import videos

FPS = 25


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decode_all(source: FrameSource) -> list[DecodedFrame]:
    source.open()
    try:
        return list(source.frames())
    finally:
        source.close()


def decode_until_error(source: FrameSource) -> tuple[list[DecodedFrame], DecodeError]:
    """Frames yielded before ``frames()`` (or ``open()``) raised, and the error; fails if none was raised."""
    got: list[DecodedFrame] = []
    try:
        source.open()
        for frame in source.frames():
            got.append(frame)
    except DecodeError as exc:
        return got, exc
    finally:
        source.close()
    pytest.fail(f"no DecodeError after {len(got)} frames")


@pytest.fixture
def stalling_http_server() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server that sends ``payload[0]`` and then keeps the connection open without sending more."""
    payload: list[bytes] = [b""]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + payload[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/live", payload
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture
def http_dir_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A quiet static HTTP server over a fresh directory: yields (base url, directory)."""
    directory = tmp_path / "www"
    directory.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", directory
    server.shutdown()
    server.server_close()


# -- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(videos.FORMATS))
def test_decodes_every_frame_in_order_with_size_fps_and_pts(tmp_path: Path, kind: str) -> None:
    path = videos.write_format(tmp_path, kind, width=128, height=64, fps=FPS, num_frames=12)
    source = open_source("cam", str(path))
    info = source.open()
    assert (info.stream_id, info.width, info.height, info.fps, info.total_frames, info.live) == (
        "cam", 128, 64, 25.0, 12, False,
    )
    before = time.time()
    frames = list(source.frames())
    source.close()
    assert [f.index for f in frames] == list(range(12))
    assert [videos.read_index(f.image) for f in frames] == list(range(12))
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in range(12)], abs=1e-6)
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (64, 128, 3)
        assert frame.image.flags["C_CONTIGUOUS"]
        assert before <= frame.captured_at <= time.time()


@pytest.mark.parametrize("kind", list(videos.FORMATS))
def test_yuv420_transfer_yields_the_decoders_planes(tmp_path: Path, kind: str) -> None:
    path = videos.write_format(tmp_path, kind, width=128, height=64, fps=FPS, num_frames=6)
    source = open_source("cam", str(path), transfer="yuv420")
    source.open()
    frames = list(source.frames())
    source.close()
    assert len(frames) == 6
    for i, frame in enumerate(frames):
        assert isinstance(frame.image, Yuv420Frame) and frame.image.nbytes == 128 * 64 * 3 // 2
        assert (frame.image.full_range, frame.image.matrix) == (kind == "mjpeg-avi", "bt601")
        assert videos.read_index(frame.image.to_rgb()) == i


def test_file_url_and_source_protocol(tmp_path: Path) -> None:
    path = videos.write_format(tmp_path, "mjpeg-avi", num_frames=3)
    source = open_source("cam", f"file://{path}")
    assert isinstance(source, AvSource)
    with pytest.raises(AttributeError, match="open"):
        _ = source.info  # like an attribute not yet set
    source.open()
    assert isinstance(source, FrameSource)
    assert len(decode_all(source)) == 3
    assert source.info.total_frames == 3


@pytest.mark.parametrize("max_fps, kept", [(12.5, [0, 2, 4, 6, 8, 10]), (10, [0, 3, 6, 9]), (100, list(range(12)))])
def test_max_fps_subsamples_by_pts_and_counts_kept_frames(tmp_path: Path, max_fps: float, kept: list[int]) -> None:
    path = videos.write_format(tmp_path, "h264-mp4", fps=FPS, num_frames=12)
    source = open_source("cam", str(path), max_fps=max_fps)
    assert source.open().total_frames == len(kept)
    frames = decode_all(source)
    assert [f.index for f in frames] == kept
    assert [videos.read_index(f.image) for f in frames] == kept
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in kept], abs=1e-6)


@pytest.mark.parametrize("kind", ["h264-mp4", "mpeg4-mkv"])
def test_loop_restarts_with_increasing_index_and_pts(tmp_path: Path, kind: str) -> None:
    path = videos.write_format(tmp_path, kind, fps=FPS, num_frames=5)
    source = open_source("cam", str(path), loop=True)
    assert source.open().total_frames is None
    frames: list[DecodedFrame] = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 13:
            break
    source.close()
    assert [f.index for f in frames] == list(range(13))
    assert [videos.read_index(f.image) for f in frames] == [i % 5 for i in range(13)]
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in range(13)], abs=1e-6)


def test_loop_with_max_fps_keeps_pts_spacing_across_the_seam(tmp_path: Path) -> None:
    path = videos.write_format(tmp_path, "mjpeg-avi", fps=FPS, num_frames=5)
    source = open_source("cam", str(path), loop=True, max_fps=10)
    frames: list[DecodedFrame] = []
    for frame in source.frames():
        frames.append(frame)
        if len(frames) == 5:
            break
    source.close()
    assert [f.index for f in frames] == [0, 3, 6, 9, 12]
    assert [videos.read_index(f.image) for f in frames] == [0, 3, 1, 4, 2]


def test_realtime_delivers_no_frame_before_its_pts(tmp_path: Path) -> None:
    path = videos.write_format(tmp_path, "h264-mp4", fps=FPS, num_frames=10)
    source = open_source("cam", str(path), realtime=True)
    source.open()
    delivered: list[tuple[float, float]] = []  # (monotonic time of delivery, pts)
    for frame in source.frames():
        delivered.append((time.monotonic(), frame.pts_s))
    source.close()
    assert len(delivered) == 10
    t0, p0 = delivered[0]
    for t, pts in delivered:
        assert t - t0 >= pts - p0 - 5e-3  # slack: only the first delivery's own latency
    elapsed = delivered[-1][0] - t0
    assert 9 / FPS - 1e-3 <= elapsed < 9 / FPS + 2.0


def test_realtime_respects_max_fps(tmp_path: Path) -> None:
    path = videos.write_format(tmp_path, "mjpeg-avi", fps=FPS, num_frames=10)
    source = open_source("cam", str(path), realtime=True, max_fps=12.5)
    source.open()
    delivered = [(time.monotonic(), f.pts_s) for f in source.frames()]
    source.close()
    assert [round(p, 3) for _, p in delivered] == [0.0, 0.08, 0.16, 0.24, 0.32]
    assert delivered[-1][0] - delivered[0][0] >= 0.32 - 1e-3


def test_stop_from_another_thread_ends_a_paced_iteration(tmp_path: Path) -> None:
    path = videos.write_format(tmp_path, "mjpeg-avi", fps=FPS, num_frames=100)  # 4 s when paced
    source = open_source("cam", str(path), realtime=True)
    source.open()
    seen: list[int] = []
    started_s = time.monotonic()
    for frame in source.frames():
        seen.append(frame.index)
        if len(seen) == 3:
            threading.Thread(target=source.stop).start()
    source.close()
    assert 3 <= len(seen) < 10
    assert time.monotonic() - started_s < 1.5


def test_stop_unblocks_a_stalled_network_read_within_the_read_timeout(
    tmp_path: Path, stalling_http_server: tuple[str, list[bytes]]
) -> None:
    url, payload = stalling_http_server
    # Enough frames that FFmpeg's stream probing finishes without waiting for more data.
    payload[0] = videos.write_format(tmp_path, "mpeg4-mkv", num_frames=50).read_bytes()
    source = open_source("live", url, open_timeout_s=3, read_timeout_s=0.5)
    info = source.open()
    assert info.live and info.total_frames is None and (info.width, info.height) == (128, 64)
    seen: list[int] = []
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(time.monotonic())
        source.stop()

    for frame in source.frames():  # no error: stopping is a clean end
        seen.append(videos.read_index(frame.image))
        if len(seen) == 1:  # by then the 50 frames were read and the next read blocks: the server sends no more
            threading.Timer(0.3, stop).start()
    ended_s = time.monotonic()
    source.close()
    # A threaded decoder may still hold the last few frames when stopped.
    assert seen == list(range(len(seen))) and len(seen) >= 40
    assert ended_s - stopped_at[0] < 0.5 + 1.0  # within about the read timeout


def test_network_read_timeout_raises_after_the_good_frames(
    tmp_path: Path, stalling_http_server: tuple[str, list[bytes]]
) -> None:
    url, payload = stalling_http_server
    payload[0] = videos.write_format(tmp_path, "mpeg4-mkv", num_frames=50).read_bytes()
    started_s = time.monotonic()
    frames, error = decode_until_error(open_source("live", url, open_timeout_s=3, read_timeout_s=0.5))
    assert [videos.read_index(f.image) for f in frames] == list(range(50))
    assert time.monotonic() - started_s < 3.0
    message = str(error)
    assert "'live'" in message and url in message
    assert "read timeout" in message and "after 50 good frames" in message


def test_hls_over_http_is_live_and_decodes_in_order(http_dir_server: tuple[str, Path]) -> None:
    base_url, directory = http_dir_server
    videos.write_hls(directory, num_frames=30)
    source = open_source("hls", f"{base_url}/index.m3u8", open_timeout_s=5, read_timeout_s=5)
    info = source.open()
    assert info.live and info.total_frames is None and (info.width, info.height, info.fps) == (128, 64, 25.0)
    frames = decode_all(source)
    assert [videos.read_index(f.image) for f in frames] == list(range(30))
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in range(30)], abs=1e-3)


# -- errors -----------------------------------------------------------------------------------


def assert_names_stream(error: DecodeError, stream_id: str, url: str) -> str:
    message = str(error)
    assert repr(stream_id) in message and url in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    url = str(tmp_path / "nope.mp4")
    with pytest.raises(DecodeError) as info:
        open_source("cam7", url).open()
    assert "file does not exist" in assert_names_stream(info.value, "cam7", url)


def test_directory_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="is a directory"):
        open_source("cam", str(tmp_path)).open()


def test_text_file_renamed_mp4_is_not_a_media_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 50)
    with pytest.raises(DecodeError) as info:
        open_source("cam", str(path)).open()
    message = assert_names_stream(info.value, "cam", str(path))
    assert "not a media file" in message


def test_empty_file_is_not_a_media_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mkv"
    path.touch()
    with pytest.raises(DecodeError, match="empty.*not a media file"):
        open_source("cam", str(path)).open()


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = videos.write_audio_only(tmp_path / "voice.m4a")
    with pytest.raises(DecodeError) as info:
        open_source("cam", str(path)).open()
    message = assert_names_stream(info.value, "cam", str(path))
    assert "no video stream" in message and "audio" in message


def test_truncated_mp4_without_its_index_fails_to_open_as_truncated(tmp_path: Path) -> None:
    # FFmpeg writes the MP4 index (moov) at the end: cut off, nothing at all can be decoded.
    path = videos.truncate(videos.write_format(tmp_path, "h264-mp4", num_frames=20, noisy=True), 0.6)
    frames, error = decode_until_error(open_source("cam", str(path)))
    assert frames == []
    message = assert_names_stream(error, "cam", str(path))
    assert "corrupt or truncated MP4/MOV file" in message


@pytest.mark.parametrize(
    "kind, options, expected",
    [
        ("h264-mp4", {"movflags": "faststart"}, "packet of .* bytes at byte .* is corrupt or cut short"),
        ("mjpeg-avi", None, "packet of .* bytes at byte .* is corrupt or cut short"),
        ("mpeg4-mkv", None, r"file is truncated or corrupt: decoded \d+ frames covering .* of the 0.800 s"),
    ],
)
def test_truncated_file_yields_its_good_frames_then_raises(
    tmp_path: Path, kind: str, options: dict[str, str] | None, expected: str
) -> None:
    path = videos.write_format(tmp_path, kind, num_frames=20, noisy=True, options=options)
    videos.truncate(path, 0.6)
    frames, error = decode_until_error(open_source("cam", str(path)))
    message = assert_names_stream(error, "cam", str(path))
    assert "truncated" in message
    assert re.search(expected, message), message
    contents = [videos.read_index(f.image) for f in frames]
    assert 3 <= len(frames) < 20
    assert contents == sorted(set(contents))  # in order, no damaged frame (a reference-less gap is possible)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(b > a for a, b in zip([f.pts_s for f in frames], [f.pts_s for f in frames][1:]))


def test_unreachable_rtsp_fails_quickly(tmp_path: Path) -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/x"
    started_s = time.monotonic()
    with pytest.raises(DecodeError) as info:
        open_source("door", url, open_timeout_s=1, read_timeout_s=1).open()
    assert time.monotonic() - started_s < 3.0
    message = assert_names_stream(info.value, "door", url)
    assert "connection refused" in message and "127.0.0.1" in message


def test_silent_rtsp_server_times_out() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"rtsp://127.0.0.1:{server.getsockname()[1]}/x"
        started_s = time.monotonic()
        with pytest.raises(DecodeError) as info:
            open_source("door", url, open_timeout_s=0.5, read_timeout_s=0.5).open()
        assert time.monotonic() - started_s < 3.0
    assert "timed out" in assert_names_stream(info.value, "door", url)


def test_http_404_names_the_http_error(http_dir_server: tuple[str, Path]) -> None:
    url = f"{http_dir_server[0]}/missing.m3u8"
    with pytest.raises(DecodeError) as info:
        open_source("hls", url, open_timeout_s=2, read_timeout_s=2).open()
    message = assert_names_stream(info.value, "hls", url)
    assert "HTTP error" in message and "404" in message


@pytest.mark.parametrize("url", ["gopher://example.com/video", "foo://bar/x"])
def test_unknown_url_scheme(url: str) -> None:
    with pytest.raises(DecodeError) as info:
        open_source("cam", url).open()
    assert "unsupported URL scheme" in assert_names_stream(info.value, "cam", url)


@pytest.mark.parametrize("kwargs", [{"max_fps": 0}, {"open_timeout_s": 0}, {"read_timeout_s": -1}, {"transfer": "nv12"}])
def test_invalid_arguments_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        open_source("cam", "video.mp4", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url, live",
    [
        ("rtsp://cam.local/stream", True),
        ("RTMP://host/app", True),
        ("udp://239.0.0.1:1234", True),
        ("http://host/playlist.m3u8", True),
        ("https://host/mjpeg", True),
        ("/data/video.mp4", False),
        ("video.mkv", False),
        ("file:///data/video.mp4", False),
    ],
)
def test_is_live_url(url: str, live: bool) -> None:
    assert is_live_url(url) is live
