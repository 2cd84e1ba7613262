"""AvSource against a real RTSP server (GStreamer's, ``tests/rtsp_server.py``) serving a test video like a camera.

The server runs under Debian's ``/usr/bin/python3`` (the GStreamer ``gi`` bindings are not in the
venv); ``bash deploy/install.sh --test`` installs the Debian packages it needs.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DecodeError
from pipeline.sources import DecodedFrame, FrameSource, open_source
from tests.pipeline.sources import videos

pytestmark = pytest.mark.timeout(60)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "rtsp_server.py"
PACKAGES = (
    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
)
INSTALL_HINT = f"run `bash deploy/install.sh --test` (or: apt-get install -y {PACKAGES})"
READY_TIMEOUT_S = 15.0
FPS = 25
WIDTH, HEIGHT = 128, 64
GOP = 10  # a keyframe every 0.4 s, like a camera (clients joining a shared stream need one)


def write_camera_video(path: Path, num_frames: int) -> Path:
    """An H.264 MP4 of ``videos.frame_image`` frames (index-coded) with a keyframe every ``GOP`` frames."""
    return videos.write_video(path, "libx264", width=WIDTH, height=HEIGHT, fps=FPS, num_frames=num_frames,
                              codec_options={"g": str(GOP), "keyint_min": str(GOP)})


@pytest.fixture(scope="module")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames: 1.2 s of stream."""
    return write_camera_video(tmp_path_factory.mktemp("rtsp") / "short.mp4", 30)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """250 frames: 10 s of stream, longer than any test reads."""
    return write_camera_video(tmp_path_factory.mktemp("rtsp") / "long.mp4", 250)


@pytest.fixture(scope="session")
def gst_rtsp_available() -> None:
    """Fail (not skip) with the install command when the system Python or its GStreamer bindings are missing."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} is missing: the RTSP tests run GStreamer's RTSP server under it; {INSTALL_HINT}")
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
        "missing = [n for n in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') "
        "if Gst.ElementFactory.find(n) is None]; "
        "assert not missing, 'GStreamer elements missing: ' + ', '.join(missing)"
    )
    result = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["?"])[-1]
        pytest.fail(f"GStreamer's RTSP server is not usable from {SYSTEM_PYTHON} ({detail}); {INSTALL_HINT}")


@dataclass
class RtspServer:
    url: str
    proc: subprocess.Popen[str]

    def kill(self) -> None:
        self.proc.kill()

    def freeze(self) -> None:
        """Stall the server (SIGSTOP): its connections stay open but nothing more is sent."""
        self.proc.send_signal(signal.SIGSTOP)


@pytest.fixture
def rtsp_server(gst_rtsp_available: None, tmp_path: Path) -> Iterator[Callable[..., RtspServer]]:
    """Start ``tests/rtsp_server.py FILE`` on a free port of 127.0.0.1; return once it printed READY."""
    started: list[subprocess.Popen[str]] = []

    def start(video: Path, path: str = "cam", shared: bool = False) -> RtspServer:
        log = tmp_path / f"rtsp_server_{len(started)}.log"
        args = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(video), "--port", "0", "--path", path]
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                args + (["--shared"] if shared else []),
                stdin=subprocess.PIPE,  # the server exits when this closes
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        started.append(proc)
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                line = ""
            if line.startswith("READY "):
                return RtspServer(url=line.split()[1], proc=proc)
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                what = f"exited with status {proc.returncode}" if proc.returncode > 0 else "printed no READY line"
                pytest.fail(f"rtsp_server.py {what} within {READY_TIMEOUT_S:g} s: {log.read_text().strip()}")

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            proc.stdin.close()  # type: ignore[union-attr]
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def collect(
    source: FrameSource, on_frame: Callable[[int], None] | None = None
) -> tuple[list[DecodedFrame], list[float], DecodeError | None]:
    """Frames until the iteration ends, their arrival times (monotonic), and the ``DecodeError`` if one ended it."""
    got: list[DecodedFrame] = []
    arrived: list[float] = []
    try:
        for frame in source.frames():
            got.append(frame)
            arrived.append(time.monotonic())
            if on_frame is not None:
                on_frame(len(got))
    except DecodeError as exc:
        return got, arrived, exc
    finally:
        source.close()
    return got, arrived, None


def assert_camera_frames(frames: list[DecodedFrame]) -> None:
    """Increasing index and pts; each image shows the file frame of its pts (H.264 is lossy: compare loosely)."""
    assert frames, "no frame arrived"
    indices = [f.index for f in frames]
    pts = [f.pts_s for f in frames]
    assert indices == sorted(set(indices)), indices
    assert all(b > a for a, b in zip(pts, pts[1:])), pts
    shown = [videos.read_index(f.image) for f in frames]
    assert shown == sorted(set(shown)), f"frame contents out of order: {shown}"
    first = shown[0]
    for frame, index in zip(frames, shown):
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert abs(frame.pts_s - (index - first) / FPS) < 0.5 / FPS, (frame.pts_s, index)
        diff = np.abs(frame.image.astype(np.int16) - videos.frame_image(index, WIDTH, HEIGHT)).mean()
        assert diff < 12, f"frame {index}: mean abs difference {diff:.1f} from the file's frame"


def test_info_and_frames_match_the_file_then_the_end_of_the_stream_is_an_error(
    rtsp_server: Callable[..., RtspServer], short_video: Path
) -> None:
    server = rtsp_server(short_video)
    source = open_source("cam", server.url, open_timeout_s=5, read_timeout_s=5)
    started = time.monotonic()
    info = source.open()
    assert (info.stream_id, info.width, info.height, info.live, info.total_frames) == ("cam", WIDTH, HEIGHT, True, None)
    assert info.fps == pytest.approx(FPS, abs=0.01)  # the nominal rate, not the probe's estimate (24.75)
    frames, arrived, error = collect(source)
    assert arrived[0] - started < 5.0, f"first frame after {arrived[0] - started:.2f} s"
    assert_camera_frames(frames)
    assert videos.read_index(frames[0].image) == 0  # an unshared session starts at the file's start
    assert len(frames) >= 28  # all 30, but a B-frame cut by the end may be lost
    # A camera's stream never ends: the server's end of the session (RTCP BYE) is reported, after the frames.
    assert error is not None, "the end of an RTSP stream must raise DecodeError"
    message = str(error)
    assert "'cam'" in message and server.url in message and "ended the stream" in message
    assert f"after {len(frames)} good frames" in message


def test_stop_from_another_thread_ends_the_iteration_promptly(
    rtsp_server: Callable[..., RtspServer], long_video: Path
) -> None:
    server = rtsp_server(long_video)
    source = open_source("cam", server.url, open_timeout_s=5, read_timeout_s=5)
    stopped_at: list[float] = []

    def stop_later() -> None:
        stopped_at.append(time.monotonic())
        source.stop()

    def on_frame(n: int) -> None:
        if n == 10:
            threading.Thread(target=stop_later).start()

    frames, _, error = collect(source, on_frame)
    ended = time.monotonic()
    assert error is None
    assert stopped_at and ended - stopped_at[0] < 1.0, f"stop took {ended - stopped_at[0]:.2f} s"
    assert 10 <= len(frames) < 60
    assert_camera_frames(frames)


def test_stop_unblocks_a_read_from_a_stalled_server_within_the_read_timeout(
    rtsp_server: Callable[..., RtspServer], long_video: Path
) -> None:
    server = rtsp_server(long_video)
    source = open_source("cam", server.url, open_timeout_s=5, read_timeout_s=1.0)
    frozen_at: list[float] = []

    def on_frame(n: int) -> None:
        if n == 35:  # past the burst buffered while open() probed the stream
            server.freeze()
            frozen_at.append(time.monotonic())
            threading.Timer(0.2, source.stop).start()

    frames, _, error = collect(source, on_frame)
    assert frozen_at and time.monotonic() - frozen_at[0] < 0.2 + 2 * 1.0 + 1.0
    assert error is None, f"stop() must end the iteration quietly, got {error}"
    assert_camera_frames(frames)


def test_killed_server_raises_naming_the_stream_and_url_after_the_frames_received(
    rtsp_server: Callable[..., RtspServer], long_video: Path
) -> None:
    server = rtsp_server(long_video)
    source = open_source("cam", server.url, open_timeout_s=5, read_timeout_s=2.0)
    killed_at: list[float] = []

    def on_frame(n: int) -> None:
        if n == 35:
            server.kill()
            killed_at.append(time.monotonic())

    frames, _, error = collect(source, on_frame)
    assert error is not None, f"no DecodeError after the server was killed ({len(frames)} frames)"
    assert time.monotonic() - killed_at[0] < 2.0  # a closed connection is seen at once, not after a timeout
    assert len(frames) >= 35
    assert_camera_frames(frames)
    message = str(error)
    assert message.startswith(f"stream 'cam' ({server.url}): ")
    assert f"after {len(frames)} good frames" in message


def test_stalled_server_trips_the_read_timeout_instead_of_freezing(
    rtsp_server: Callable[..., RtspServer], long_video: Path
) -> None:
    read_timeout_s = 0.5
    server = rtsp_server(long_video)
    source = open_source("cam", server.url, open_timeout_s=5, read_timeout_s=read_timeout_s)
    frozen_at: list[float] = []

    def on_frame(n: int) -> None:
        if n == 35:
            server.freeze()
            frozen_at.append(time.monotonic())

    frames, _, error = collect(source, on_frame)
    waited = time.monotonic() - frozen_at[0]
    assert error is not None, f"no DecodeError from a stalled server ({len(frames)} frames)"
    # FFmpeg hands out a packet its parser still held at each of the first timeouts: a few read_timeout_s at most.
    assert waited < 4 * read_timeout_s + 1.0, f"the stall was reported after {waited:.2f} s"
    assert len(frames) >= 35
    assert_camera_frames(frames)
    message = str(error)
    assert message.startswith(f"stream 'cam' ({server.url}): ")
    assert f"read timeout: no data for {read_timeout_s:g} s after {len(frames)} good frames" in message


def test_shared_server_sends_one_live_stream_to_every_client(
    rtsp_server: Callable[..., RtspServer], long_video: Path
) -> None:
    server = rtsp_server(long_video, path="live/cam1", shared=True)
    assert server.url.endswith("/live/cam1")
    first = open_source("cam1", server.url, open_timeout_s=5, read_timeout_s=5)
    first.open()
    frames = first.frames()
    a = [next(frames) for _ in range(30)]
    second = open_source("cam2", server.url, open_timeout_s=5, read_timeout_s=5)
    second.open()
    b = [frame for _, frame in zip(range(10), second.frames())]
    second.close()
    first.close()
    assert_camera_frames(a)
    assert_camera_frames(b)
    # The second client joined the running stream (at a keyframe), not the file's start.
    assert videos.read_index(b[0].image) > videos.read_index(a[0].image)
    assert videos.read_index(b[0].image) % GOP == 0
