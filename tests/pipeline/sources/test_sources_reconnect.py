"""ReconnectPolicy's backoff, and ReconnectingSource against real servers that go away and come back.

The RTSP server is GStreamer's (``tests/rtsp_server.py`` under Debian's ``/usr/bin/python3``,
restarted on the same port); the UDP camera is a thread of this process sending MPEG-TS H.264
written by PyAV at its frame rate. Every wait is bounded by a deadline.
"""

from __future__ import annotations

import queue
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import pytest

from pipeline.errors import ConfigError, DecodeError
from pipeline.messages import STATUS_STATES
from pipeline.sources import (
    AvSource,
    DecodedFrame,
    ReconnectingSource,
    ReconnectPolicy,
    SyntheticSource,
    open_source,
)
from tests.pipeline.sources import videos
from tests.pipeline.sources.test_sources_rtsp import (
    READY_TIMEOUT_S,
    SERVER_SCRIPT,
    SYSTEM_PYTHON,
    gst_rtsp_available,  # noqa: F401 - a fixture, used by name
    write_camera_video,
)

pytestmark = pytest.mark.timeout(60)

FPS = 25
WIDTH, HEIGHT = 128, 64


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 free right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StatusLog:
    """Records ``on_status`` calls with their monotonic time; ``wait_for`` blocks until a state is seen."""

    events: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, state: str, **details: Any) -> None:
        assert state in STATUS_STATES, state
        with self._cond:
            self.events.append((state, details, time.monotonic()))
            self._cond.notify_all()

    def states(self) -> list[str]:
        with self._cond:
            return [state for state, _, _ in self.events]

    def wait_for(self, state: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while state not in [s for s, _, _ in self.events]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True


def assert_continuous(frames: list[DecodedFrame]) -> None:
    """Indices strictly increasing without repeats, pts strictly increasing."""
    indices = [f.index for f in frames]
    pts = [f.pts_s for f in frames]
    assert all(b > a for a, b in zip(indices, indices[1:])), indices
    assert all(b > a for a, b in zip(pts, pts[1:])), pts


# -- the policy ----------------------------------------------------------------------------------


def test_delays_double_from_initial_up_to_max() -> None:
    policy = ReconnectPolicy(initial_s=0.5, max_s=30, jitter=0.0)
    assert [policy.delay_s(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert policy.delay_s(10**6) == 30.0  # no overflow however long the outage
    with pytest.raises(ValueError):
        policy.delay_s(0)


def test_jitter_shortens_each_delay_within_its_fraction_and_is_reproducible() -> None:
    policy = ReconnectPolicy(initial_s=1.0, max_s=8.0, jitter=0.25)
    delays = [policy.delay_s(n, random.Random(7)) for n in range(1, 30)]
    again = [policy.delay_s(n, random.Random(7)) for n in range(1, 30)]
    assert delays == again
    for n, delay in zip(range(1, 30), delays):
        base = policy.base_delay_s(n)
        assert 0.75 * base <= delay <= base <= 8.0
    rng = random.Random(3)
    spread = {round(policy.delay_s(1, rng), 6) for _ in range(50)}
    assert len(spread) > 40 and min(spread) < 0.8 and max(spread) > 0.95  # drawn over the whole band
    assert ReconnectPolicy().jitter == pytest.approx(0.2)  # the documented default


def test_gives_up_only_after_give_up_after_s_and_never_without_it() -> None:
    policy = ReconnectPolicy(give_up_after_s=10)
    assert not policy.gives_up(9.99) and policy.gives_up(10.0)
    assert not ReconnectPolicy().gives_up(1e9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0},
        {"initial_s": -1},
        {"initial_s": float("nan")},
        {"initial_s": 2, "max_s": 1},
        {"max_s": float("inf")},
        {"give_up_after_s": 0},
        {"stall_timeout_s": 0},
        {"stall_timeout_s": True},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_invalid_policy_is_a_config_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ReconnectPolicy(**kwargs)


def test_policy_from_a_stream_config() -> None:
    stream = SimpleNamespace(
        stall_timeout_s=7, reconnect=SimpleNamespace(initial_s=0.25, max_s=4, give_up_after_s=60)
    )
    assert ReconnectPolicy.from_stream_config(stream) == ReconnectPolicy(
        initial_s=0.25, max_s=4.0, give_up_after_s=60.0, stall_timeout_s=7.0
    )
    defaults = ReconnectPolicy.from_stream_config(SimpleNamespace(stall_timeout_s=15, reconnect={"give_up_after_s": None}))
    assert (defaults.initial_s, defaults.max_s, defaults.give_up_after_s, defaults.stall_timeout_s) == (0.5, 30.0, None, 15.0)


def test_open_source_wraps_only_network_streams(tmp_path: Path) -> None:
    policy = ReconnectPolicy()
    assert isinstance(open_source("c", "rtsp://127.0.0.1:1/cam", reconnect=policy), ReconnectingSource)
    assert isinstance(open_source("c", "udp://127.0.0.1:1", reconnect=policy), ReconnectingSource)
    assert isinstance(open_source("c", "rtsp://127.0.0.1:1/cam"), AvSource)  # no policy: as before
    assert isinstance(open_source("c", str(tmp_path / "a.mp4"), loop=True, reconnect=policy), AvSource)
    assert isinstance(open_source("c", "synthetic:seed=1&frames=0", reconnect=policy), SyntheticSource)
    with pytest.raises(ConfigError):  # the arguments are still checked when the source is made
        open_source("c", "rtsp://127.0.0.1:1/cam", read_timeout_s=0, reconnect=policy)


def test_an_error_that_is_not_a_decode_error_is_not_retried() -> None:
    def factory() -> AvSource:
        raise ConfigError("stream 'c': a setting is wrong")

    log = StatusLog()
    source = ReconnectingSource("c", "rtsp://127.0.0.1:1/cam", factory, ReconnectPolicy(initial_s=0.05), on_status=log)
    with pytest.raises(ConfigError, match="a setting is wrong"):
        source.open()
    source.close()
    source.close()  # idempotent
    assert log.states() == ["connecting"]


# -- no server: give up, stop during a backoff ---------------------------------------------------


def test_gives_up_after_give_up_after_s_without_a_server() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens there
    log = StatusLog()
    policy = ReconnectPolicy(initial_s=0.1, max_s=0.4, give_up_after_s=1.5, stall_timeout_s=5)
    source = open_source("cam", url, open_timeout_s=2, read_timeout_s=2, reconnect=policy, on_status=log)
    started = time.monotonic()
    with pytest.raises(DecodeError) as info:
        source.open()
    took = time.monotonic() - started
    source.close()
    assert 1.5 <= took < 3.5, f"gave up after {took:.2f} s"
    states = log.states()
    attempts = [details["attempt"] for state, details, _ in log.events if state == "reconnecting"]
    assert states[0] == "connecting" and states[-1] == "failed"
    assert set(states[1:-1]) == {"reconnecting"} and attempts == list(range(1, len(attempts) + 1))
    assert len(attempts) >= 3  # 0.1 + 0.2 + 0.4 + 0.4 ... within 1.5 s
    message = str(info.value)
    assert message.startswith(f"stream 'cam' ({url}): gave up after ")
    assert f"{len(attempts)} reconnect attempts" in message and "give_up_after_s=1.5" in message
    assert "connection refused" in message
    assert log.events[-1][1]["attempt"] == len(attempts)


def test_stop_during_a_backoff_returns_promptly() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/cam"
    log = StatusLog()
    policy = ReconnectPolicy(initial_s=20, max_s=20, stall_timeout_s=5)
    source = open_source("cam", url, open_timeout_s=2, read_timeout_s=2, reconnect=policy, on_status=log)
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def run_open() -> None:
        try:
            source.open()
            outcome.put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.put(exc)

    opener = threading.Thread(target=run_open, daemon=True)
    opener.start()
    assert log.wait_for("reconnecting", timeout_s=5), log.states()
    stopped_at = time.monotonic()
    source.stop()
    error = outcome.get(timeout=5)
    assert time.monotonic() - stopped_at < 0.5
    assert isinstance(error, DecodeError) and "stopped before a connection was made" in str(error)
    closing = time.monotonic()
    source.close()
    assert time.monotonic() - closing < 0.5
    assert log.states() == ["connecting", "reconnecting"]


# -- RTSP: the camera restarts -------------------------------------------------------------------


class RestartableRtspServer:
    """``tests/rtsp_server.py`` on one fixed port, killed and started again at will."""

    def __init__(self, video: Path, port: int, log_dir: Path) -> None:
        self.video = video
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.log_dir = log_dir
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the server and wait for its READY line (raises ``RuntimeError`` if it does not come)."""
        log = self.log_dir / f"rtsp_server_{self.starts}.log"
        self.starts += 1
        with open(log, "w") as stderr:
            proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.video), "--port", str(self.port), "--path", "cam"],
                stdin=subprocess.PIPE,  # the server exits when this closes
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.proc = proc
        lines: queue.Queue[str] = queue.Queue()
        stdout = proc.stdout
        if stdout is None:
            raise RuntimeError("no stdout pipe")
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                continue
            if line.startswith("READY "):
                if line.split()[1] != self.url:
                    raise RuntimeError(f"server answered at {line.split()[1]}, expected {self.url}")
                return
        proc.kill()
        proc.wait()
        raise RuntimeError(f"rtsp_server.py did not start on port {self.port}: {log.read_text().strip()}")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def shutdown(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def restartable_rtsp(gst_rtsp_available: None, tmp_path: Path) -> Iterator[RestartableRtspServer]:  # noqa: F811
    video = write_camera_video(tmp_path / "camera.mp4", 250)  # 10 s: longer than any connection is read
    server = RestartableRtspServer(video, free_port(), tmp_path)
    yield server
    server.shutdown()


def test_rtsp_camera_restarted_three_times_keeps_the_stream_going(restartable_rtsp: RestartableRtspServer) -> None:
    server = restartable_rtsp
    server.start()
    outage_s = 1.0  # the camera is down this long each time: long enough for at least one refused attempt
    frames_per_connection = 15
    log = StatusLog()
    policy = ReconnectPolicy(initial_s=0.2, max_s=0.8, stall_timeout_s=5)
    source = open_source("cam", server.url, open_timeout_s=3, read_timeout_s=3, reconnect=policy, on_status=log)
    restarts: list[threading.Thread] = []
    errors: list[BaseException] = []
    kills: list[tuple[int, float]] = []  # (frames received, when)

    def restart_later() -> None:
        try:
            time.sleep(outage_s)  # the outage itself: what is tested is that the stream survives it
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    frames: list[DecodedFrame] = []
    first_after_recovery: list[int] = []  # positions in frames
    deadline = time.monotonic() + 45
    info = source.open()
    assert info.live and (info.width, info.height) == (WIDTH, HEIGHT)
    try:
        for frame in source.frames():
            frames.append(frame)
            recovered = log.states().count("recovered")  # reported before the frame it concerns
            if recovered > len(first_after_recovery):
                first_after_recovery.append(len(frames) - 1)
            since = len(frames) - (kills[-1][0] if kills else 0)
            if len(kills) == recovered and since >= frames_per_connection:
                if len(kills) == 3:
                    break
                server.kill()
                kills.append((len(frames), time.monotonic()))
                restarts.append(threading.Thread(target=restart_later, daemon=True))
                restarts[-1].start()
            assert not errors, errors
            assert time.monotonic() < deadline, f"{len(frames)} frames, statuses {log.states()}"
    finally:
        source.close()
    for thread in restarts:
        thread.join(READY_TIMEOUT_S)
    assert not errors, errors

    assert_continuous(frames)
    states = log.states()
    assert states[:2] == ["connecting", "live"], states
    outages: list[list[tuple[str, dict[str, Any], float]]] = [[]]
    for event in log.events[2:]:
        outages[-1].append(event)
        if event[0] == "recovered":
            outages.append([])
    assert outages[-1] == [], states  # nothing after the third recovery
    outages.pop()
    assert len(outages) == 3, states
    for events, (_, killed_at) in zip(outages, kills):
        kinds = [state for state, _, _ in events]
        assert set(kinds[:-1]) == {"reconnecting"} and kinds[-1] == "recovered", kinds
        attempts = [details["attempt"] for _, details, _ in events]
        assert attempts[:-1] == list(range(1, len(attempts))) and attempts[-1] == len(attempts) - 1, attempts
        assert len(attempts) - 1 >= 2, f"the server was down {outage_s} s: some attempt must have been refused ({kinds})"
        recovered = events[-1][1]
        assert recovered["downtime_s"] >= outage_s, recovered
        assert recovered["lost"] == pytest.approx(recovered["downtime_s"] * FPS, abs=1.5)
        assert events[0][2] - killed_at < 1.0, "the dropped connection must be noticed at once"
    # pts jump over the outage by the time without frames; indices just go on.
    assert len(first_after_recovery) == 3
    for position, events in zip(first_after_recovery, outages):
        before, after = frames[position - 1], frames[position]
        assert after.index == before.index + 1
        assert after.pts_s - before.pts_s >= events[-1][1]["downtime_s"] - 0.1


# -- UDP: the sender pauses ----------------------------------------------------------------------


class UdpCamera:
    """A thread sending MPEG-TS H.264 (``videos.frame_image`` frames) to ``udp://127.0.0.1:port`` at ``FPS``.

    ``pause(seconds)`` stops sending for that long (nothing is sent, as from a frozen camera);
    ``stop()`` ends it for good.
    """

    def __init__(self, port: int) -> None:
        self.url = f"udp://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._resume_at = 0.0
        self._lock = threading.Lock()
        self.paused_at: float | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> UdpCamera:
        self._thread.start()
        return self

    def pause(self, seconds: float) -> None:
        with self._lock:
            self.paused_at = time.monotonic()
            self._resume_at = self.paused_at + seconds

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        try:
            with av.open(f"{self.url}?pkt_size=1316", "w", format="mpegts") as container:
                stream = container.add_stream("libx264", rate=FPS)
                stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
                # A keyframe (with its SPS/PPS) every 0.4 s: a receiver that (re)joins decodes at once.
                stream.options = {"g": "10", "keyint_min": "10", "tune": "zerolatency", "preset": "ultrafast"}
                due = time.monotonic()
                index = 0
                while not self._stop.is_set():
                    with self._lock:
                        resume_at = self._resume_at
                    if time.monotonic() < resume_at:
                        self._stop.wait(resume_at - time.monotonic())
                        due = time.monotonic()
                        continue
                    frame = av.VideoFrame.from_ndarray(videos.frame_image(index % 256, WIDTH, HEIGHT), format="rgb24")
                    frame.pts = index
                    for packet in stream.encode(frame):
                        container.mux(packet)
                    index += 1
                    due += 1.0 / FPS
                    self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc


@pytest.fixture
def udp_camera() -> Iterator[UdpCamera]:
    camera = UdpCamera(free_port(socket.SOCK_DGRAM)).start()
    yield camera
    camera.stop()


def test_udp_sender_that_pauses_is_reported_stalled_then_recovered(udp_camera: UdpCamera) -> None:
    stall_timeout_s, read_timeout_s, pause_s = 1.5, 4.0, 3.0
    log = StatusLog()
    policy = ReconnectPolicy(initial_s=0.2, max_s=0.5, stall_timeout_s=stall_timeout_s)
    source = open_source(
        "cam", udp_camera.url, open_timeout_s=3, read_timeout_s=read_timeout_s, reconnect=policy, on_status=log
    )
    frames: list[DecodedFrame] = []
    arrived: list[float] = []
    deadline = time.monotonic() + 30
    after_recovery = 0
    try:
        for frame in source.frames():
            frames.append(frame)
            arrived.append(time.monotonic())
            if len(frames) == 25:
                udp_camera.pause(pause_s)
            if "recovered" in log.states():
                after_recovery += 1
                if after_recovery == 25:
                    break
            assert udp_camera.error is None, udp_camera.error
            assert time.monotonic() < deadline, f"{len(frames)} frames, statuses {log.states()}"
    finally:
        source.close()

    assert_continuous(frames)
    states = log.states()
    assert states[:3] == ["connecting", "live", "stalled"], states
    assert set(states[3:-1]) == {"reconnecting"} and states[-1] == "recovered", states
    stalled_at = log.events[2][2]
    last_before = max(t for t in arrived if t < stalled_at)
    # The watchdog fires after stall_timeout_s without a frame, not after FFmpeg's read timeout.
    assert stall_timeout_s - 0.3 <= stalled_at - last_before < read_timeout_s - 1.0, stalled_at - last_before
    recovered = log.events[-1][1]
    assert recovered["downtime_s"] >= pause_s - 0.5 and recovered["attempt"] == len(states) - 4
    assert udp_camera.paused_at is not None and stalled_at > udp_camera.paused_at


def test_udp_sender_that_never_comes_back_is_given_up_after_its_last_frame(udp_camera: UdpCamera) -> None:
    give_up_after_s, stall_timeout_s, read_timeout_s = 2.5, 1.0, 1.0
    log = StatusLog()
    policy = ReconnectPolicy(initial_s=0.2, max_s=0.4, give_up_after_s=give_up_after_s, stall_timeout_s=stall_timeout_s)
    source = open_source(
        "cam", udp_camera.url, open_timeout_s=3, read_timeout_s=read_timeout_s, reconnect=policy, on_status=log
    )
    frames: list[DecodedFrame] = []
    error: DecodeError | None = None
    last_frame_at = 0.0
    try:
        for frame in source.frames():
            frames.append(frame)
            last_frame_at = time.monotonic()
            if len(frames) == 10:
                udp_camera.stop()
    except DecodeError as exc:
        error = exc
    finally:
        source.close()
    took = time.monotonic() - last_frame_at
    assert error is not None and frames, (error, log.states())
    # Given up give_up_after_s after the last frame, plus at most one attempt in progress then: waiting for
    # the previous connection's read to time out, then opening under the stall watchdog.
    assert give_up_after_s - 0.05 <= took < give_up_after_s + read_timeout_s + stall_timeout_s + 0.5, took
    assert_continuous(frames)
    states = log.states()
    assert states[:3] == ["connecting", "live", "stalled"] and states[-1] == "failed", states
    message = str(error)
    assert message.startswith(f"stream 'cam' ({udp_camera.url}): gave up after ") and "since its last frame" in message


# -- local files: an open failure names its cause ------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"YUV4MPEG2 W0 H0 F25:1\nFRAME\n" + bytes(100), r"corrupt YUV4MPEG file: its header gives no valid frame size \(W0 H0\)"),
        (b"YUV4MPEG2 F25:1 C420jpeg\nFRAME\n" + bytes(100), "corrupt YUV4MPEG file: its header gives no valid frame size"),
        (b"not a video at all\n" * 10, "not a media file"),
        (b"", "file is empty"),
        (b"YUV4MPEG2 W64 H64 F25:1 C420jpeg\n", "not one frame could be decoded"),
    ],
)
def test_unreadable_y4m_names_the_real_cause(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "clip.y4m"
    path.write_bytes(content)
    source = open_source("cam", str(path))
    with pytest.raises(DecodeError, match=expected) as info:
        source.open()
        list(source.frames())
    source.close()
    message = str(info.value)
    assert message.startswith(f"stream 'cam' ({path}): ") and "resource busy" not in message.split(";")[0]
