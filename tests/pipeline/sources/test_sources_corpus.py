"""A corpus of ~30 damaged, disguised and unusual files through ``AvSource``: no crash, no hang, clear errors.

Every case is built in ``tmp_path`` from a few small real videos written with PyAV (truncations,
bytes flipped or zeroed in the header and in the middle, garbage appended, chunks duplicated,
wrong extensions, empty/text/random files, a directory named ``.mp4``, broken YUV4MPEG headers,
audio only). Each one is opened and iterated on a worker thread under a deadline. The outcome
must be either clean frames, or a ``DecodeError`` whose message names the stream id and the path
and says in words what is wrong (not FFmpeg's bare errno text such as "Device or resource busy");
frames yielded before an error have strictly increasing indices.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from pipeline.errors import DecodeError
from pipeline.sources import AvSource, DecodedFrame
from tests.pipeline.sources import videos

NUM_FRAMES = 30
WIDTH, HEIGHT = 128, 64
DEADLINE_S = 8.0
"""Seconds one case may take from open() to the end of frames() (a few times the slowest case seen)."""

HUMAN_CAUSES = (
    "truncated",
    "corrupt",
    "not a media file",
    "empty",
    "no video stream",
    "directory",
    "no frame size",
    "not one frame",
)
"""Words of which a failing case's message must contain one: what is wrong with the file, in words."""

BARE_ERRNO_TEXTS = (
    "Device or resource busy",
    "Invalid argument",
    "Invalid data found when processing input",
    "End of file",
    "Operation not permitted",
    "Resource temporarily unavailable",
    "No such file or directory",
    "Unknown error",
)
"""FFmpeg errno texts that, alone, say nothing about the file (they may be quoted after a real cause)."""


@dataclass
class Case:
    """One corpus file and what it must give: ``"frames"`` (clean, ``frames`` of them if set), ``"error"``
    (a ``DecodeError``, at open if ``at_open``, matching ``cause`` if set) or ``"either"``."""

    name: str
    path: Path
    expect: str = "either"
    frames: int | None = None
    at_open: bool | None = None
    cause: str | None = None
    prefix_max: int | None = field(default=None)  # most frames an erroring case may yield first


# -- building the corpus -----------------------------------------------------------------------


def _write_ts(path: Path) -> Path:
    """H.264 in MPEG-TS (``write_video`` picks the container from the suffix; ``.ts`` is MPEG-TS)."""
    return videos.write_video(path, "libx264", width=WIDTH, height=HEIGHT, num_frames=NUM_FRAMES, noisy=True)


def _write_raw_mjpeg(path: Path) -> Path:
    """A bare MJPEG elementary stream (``.mjpeg``): concatenated JPEG images, no container."""
    with av.open(str(path), "w", format="mjpeg") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
        for index in range(NUM_FRAMES):
            frame = av.VideoFrame.from_ndarray(videos.frame_image(index, WIDTH, HEIGHT), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_y4m(path: Path) -> Path:
    """Raw YUV 4:2:0 frames in a YUV4MPEG2 file."""
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(NUM_FRAMES):
            frame = av.VideoFrame.from_ndarray(videos.frame_image(index, WIDTH, HEIGHT), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _mutate(src: Path, dst: Path, edit: Callable[[bytearray], bytes | bytearray]) -> Path:
    dst.write_bytes(bytes(edit(bytearray(src.read_bytes()))))
    return dst


def _flip(start: float | int, length: int, seed: int) -> Callable[[bytearray], bytearray]:
    """XOR ``length`` bytes from ``start`` (a byte offset, or a fraction of the size) with seeded random non-zero bytes."""

    def edit(data: bytearray) -> bytearray:
        rng = random.Random(seed)
        offset = start if isinstance(start, int) else int(len(data) * start)
        for i in range(offset, min(len(data), offset + length)):
            data[i] ^= rng.randrange(1, 256)
        return data

    return edit


def _zero(start: float | int, length: int) -> Callable[[bytearray], bytearray]:
    def edit(data: bytearray) -> bytearray:
        offset = start if isinstance(start, int) else int(len(data) * start)
        data[offset : offset + length] = bytes(len(data[offset : offset + length]))
        return data

    return edit


def _duplicate(start: float, length: int) -> Callable[[bytearray], bytearray]:
    """Insert a copy of ``length`` bytes from ``start`` (fraction) right after them."""

    def edit(data: bytearray) -> bytearray:
        offset = int(len(data) * start)
        return data[: offset + length] + data[offset : offset + length] + data[offset + length :]

    return edit


def build_corpus(root: Path) -> list[Case]:
    """Write the corpus into ``root``; return its cases."""
    base = root / "base"
    base.mkdir()
    kw = {"width": WIDTH, "height": HEIGHT, "num_frames": NUM_FRAMES, "noisy": True}
    mp4 = videos.write_video(base / "h264.mp4", "libx264", **kw)  # moov at the end (FFmpeg's default)
    fast = videos.write_video(base / "faststart.mp4", "libx264", options={"movflags": "faststart"}, **kw)
    mkv = videos.write_video(base / "mpeg4.mkv", "mpeg4", **kw)
    avi = videos.write_video(base / "mjpeg.avi", "mjpeg", **kw)
    ts = _write_ts(base / "h264.ts")
    mjpeg = _write_raw_mjpeg(base / "raw.mjpeg")
    y4m = _write_y4m(base / "raw.y4m")
    audio = videos.write_audio_only(base / "audio.m4a")

    c = root / "corpus"
    c.mkdir()
    rng = random.Random(20240611)
    cases: list[Case] = []

    def add(name: str, path: Path, **expect: object) -> None:
        cases.append(Case(name, path, **expect))  # type: ignore[arg-type]

    # intact files of each container: every frame, in order
    for name, path in (("mp4", mp4), ("mkv", mkv), ("avi-mjpeg", avi), ("mpegts", ts), ("raw-mjpeg", mjpeg), ("y4m", y4m)):
        add(f"intact-{name}", path, expect="frames", frames=NUM_FRAMES)
    # not media / not a file at all
    (c / "empty.mp4").write_bytes(b"")
    add("empty-file", c / "empty.mp4", expect="error", at_open=True, cause="empty")
    (c / "notes.mp4").write_text("this is not a video\n" * 40)
    add("text-file", c / "notes.mp4", expect="error", at_open=True, cause="not a media file")
    (c / "notes.y4m").write_text("just some text, no YUV4MPEG2 header\n" * 40)
    add("text-named-y4m", c / "notes.y4m", expect="error", at_open=True, cause="not a media file")
    (c / "noise.mkv").write_bytes(rng.randbytes(20_000))
    add("random-bytes", c / "noise.mkv", expect="error", at_open=True)
    (c / "folder.mp4").mkdir()
    add("directory-named-mp4", c / "folder.mp4", expect="error", at_open=True, cause="directory")
    add("audio-only", audio, expect="error", at_open=True, cause="no video stream")
    # broken YUV4MPEG headers (FFmpeg says "Device or resource busy" / "Invalid argument" for these)
    (c / "zero-size.y4m").write_bytes(b"YUV4MPEG2 W0 H0 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(64))
    add("y4m-zero-size", c / "zero-size.y4m", expect="error", at_open=True, cause="corrupt YUV4MPEG")
    (c / "no-size.y4m").write_bytes(b"YUV4MPEG2 F25:1 Ip C420jpeg\nFRAME\n" + bytes(64))
    add("y4m-no-size", c / "no-size.y4m", expect="error", at_open=True, cause="corrupt YUV4MPEG")
    (c / "endless-header.y4m").write_bytes(b"YUV4MPEG2 W128 H64 " + b"X" * 2000)
    add("y4m-header-without-newline", c / "endless-header.y4m", expect="error", at_open=True)
    add("y4m-truncated-mid-frame", videos.truncate(y4m, 0.5, c / "half.y4m"), expect="error", cause="truncated")
    # wrong extensions: FFmpeg probes the content, not the name
    add("mkv-named-mp4", _mutate(mkv, c / "really-mkv.mp4", lambda d: d), expect="frames", frames=NUM_FRAMES)
    add("mp4-named-avi", _mutate(mp4, c / "really-mp4.avi", lambda d: d), expect="frames", frames=NUM_FRAMES)
    add("mpegts-named-y4m", _mutate(ts, c / "really-ts.y4m", lambda d: d), expect="frames", frames=NUM_FRAMES)
    # truncations: an MP4 with its index at the end fails at open; the others keep their good prefix
    for fraction in (0.003, 0.3, 0.9):
        add(f"mp4-truncated-{fraction}", videos.truncate(mp4, fraction, c / f"mp4-{fraction}.mp4"),
            expect="error", at_open=True, cause="truncated")
    for fraction in (0.3, 0.7):
        add(f"faststart-mp4-truncated-{fraction}", videos.truncate(fast, fraction, c / f"fast-{fraction}.mp4"),
            expect="error", at_open=False, prefix_max=NUM_FRAMES - 1)
    for fraction in (0.001, 0.25, 0.6, 0.95):
        add(f"mkv-truncated-{fraction}", videos.truncate(mkv, fraction, c / f"mkv-{fraction}.mkv"), expect="error")
    add("avi-truncated-0.5", videos.truncate(avi, 0.5, c / "avi-0.5.avi"), expect="error")
    add("mpegts-truncated-0.5", videos.truncate(ts, 0.5, c / "ts-0.5.ts"), expect="error")
    # header damage
    add("mp4-header-flipped", _mutate(mp4, c / "mp4-head-flip.mp4", _flip(0, 48, seed=1)), expect="error", at_open=True)
    add("mkv-header-zeroed", _mutate(mkv, c / "mkv-head-zero.mkv", _zero(0, 64)), expect="error", at_open=True)
    add("avi-header-flipped", _mutate(avi, c / "avi-head-flip.avi", _flip(8, 200, seed=2)))
    add("faststart-moov-flipped", _mutate(fast, c / "fast-moov-flip.mp4", _flip(40, 600, seed=3)))
    # damage in the middle (the demuxer may resync: frames or an error, but no crash or hang)
    add("mp4-middle-flipped", _mutate(fast, c / "fast-mid-flip.mp4", _flip(0.5, 400, seed=4)))
    add("mkv-middle-zeroed", _mutate(mkv, c / "mkv-mid-zero.mkv", _zero(0.5, 2000)))
    add("mpegts-middle-flipped", _mutate(ts, c / "ts-mid-flip.ts", _flip(0.4, 3000, seed=5)))
    add("avi-middle-zeroed", _mutate(avi, c / "avi-mid-zero.avi", _zero(0.5, 3000)))
    # appended garbage, duplicated chunks
    add("mkv-garbage-appended", _mutate(mkv, c / "mkv-tail.mkv", lambda d: d + rng.randbytes(5000)))
    add("mp4-garbage-appended", _mutate(fast, c / "mp4-tail.mp4", lambda d: d + rng.randbytes(5000)))
    add("mkv-chunk-duplicated", _mutate(mkv, c / "mkv-dup.mkv", _duplicate(0.4, 4000)))
    add("mpegts-chunk-duplicated", _mutate(ts, c / "ts-dup.ts", _duplicate(0.4, 188 * 20)))
    return cases


# -- running one case ----------------------------------------------------------------------------


@dataclass
class Outcome:
    frames: list[DecodedFrame]
    error: DecodeError | None
    at_open: bool
    other: BaseException | None
    elapsed_s: float


def run_case(stream_id: str, path: Path, deadline_s: float = DEADLINE_S) -> Outcome:
    """Open and iterate ``path`` on a worker thread; fail the test if it does not end within ``deadline_s``."""
    source = AvSource(stream_id, str(path))
    result: dict[str, object] = {"frames": [], "error": None, "at_open": False, "other": None}
    started = time.monotonic()

    def work() -> None:
        frames: list[DecodedFrame] = result["frames"]  # type: ignore[assignment]
        try:
            try:
                source.open()
            except DecodeError as exc:
                result["error"], result["at_open"] = exc, True
                return
            for frame in source.frames():
                frames.append(frame)
        except DecodeError as exc:
            result["error"] = exc
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["other"] = exc
        finally:
            source.close()

    worker = threading.Thread(target=work, name=f"corpus-{stream_id}", daemon=True)
    worker.start()
    worker.join(deadline_s)
    elapsed = time.monotonic() - started
    if worker.is_alive():
        source.stop()
        pytest.fail(f"{stream_id}: {path.name} did not end within {deadline_s:g} s (hang)")
    return Outcome(result["frames"], result["error"], result["at_open"], result["other"], elapsed)  # type: ignore[arg-type]
