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
from dataclasses import dataclass
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
    (a ``DecodeError``, at open if ``at_open`` is True, later if False, containing ``cause`` if set) or
    ``"either"``; ``good_prefix``: the frames yielded before the error are the file's first ones, undamaged."""

    name: str
    path: Path
    expect: str = "either"
    frames: int | None = None
    at_open: bool | None = None
    cause: str | None = None
    good_prefix: bool = False


# -- building the corpus -----------------------------------------------------------------------


def _write_ts(path: Path) -> Path:
    """H.264 in MPEG-TS (``write_video`` picks the container from the suffix; ``.ts`` is MPEG-TS)."""
    return videos.write_video(path, "libx264", width=WIDTH, height=HEIGHT, num_frames=NUM_FRAMES, noisy=True)


def _write_raw_mjpeg(path: Path) -> Path:
    """A bare MJPEG elementary stream (``.mjpeg``): concatenated JPEG images, no container."""
    return videos.write_video(path, "mjpeg", width=WIDTH, height=HEIGHT, num_frames=NUM_FRAMES, container_format="mjpeg")


def _write_y4m(path: Path) -> Path:
    """Raw YUV 4:2:0 frames in a YUV4MPEG2 file."""
    return videos.write_video(path, "rawvideo", width=WIDTH, height=HEIGHT, num_frames=NUM_FRAMES,
                              container_format="yuv4mpegpipe")


def _write_latin1_title(path: Path) -> Path:
    """A valid Matroska file whose title tag is Latin-1, not UTF-8 (as older tools wrote them)."""
    with av.open(str(path), "w", metadata_encoding="latin-1") as container:
        container.metadata["title"] = "Caméra d'entrée"
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height = WIDTH, HEIGHT
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
    add("latin1-metadata-mkv", _write_latin1_title(c / "latin1-title.mkv"), expect="frames", frames=NUM_FRAMES)
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
    add("y4m-truncated-mid-frame", videos.truncate(y4m, 0.5, c / "half.y4m"),
        expect="error", at_open=False, cause="truncated", good_prefix=True)
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
            expect="error", at_open=False, cause="truncated", good_prefix=True)
    add("mkv-truncated-0.001", videos.truncate(mkv, 0.001, c / "mkv-0.001.mkv"), expect="error", at_open=True)
    for fraction in (0.25, 0.6, 0.95):
        add(f"mkv-truncated-{fraction}", videos.truncate(mkv, fraction, c / f"mkv-{fraction}.mkv"),
            expect="error", at_open=False, cause="truncated", good_prefix=True)
    add("avi-truncated-0.5", videos.truncate(avi, 0.5, c / "avi-0.5.avi"),
        expect="error", at_open=False, cause="truncated", good_prefix=True)
    add("mpegts-truncated-0.02", videos.truncate(ts, 0.02, c / "ts-0.02.ts"), expect="error")
    add("mpegts-truncated-0.5", videos.truncate(ts, 0.5, c / "ts-0.5.ts"),
        expect="error", at_open=False, cause="truncated", good_prefix=True)
    add("raw-mjpeg-truncated-0.5", videos.truncate(mjpeg, 0.5, c / "raw-0.5.mjpeg"),
        expect="error", at_open=False, cause="cut short", good_prefix=True)
    # a valid MPEG-TS file of two frames, which FFmpeg's format probe gives up on
    add("mpegts-two-frames", videos.write_video(c / "tiny.ts", "libx264", width=WIDTH, height=HEIGHT, num_frames=2),
        expect="frames", frames=2)
    # header damage
    add("mp4-header-flipped", _mutate(mp4, c / "mp4-head-flip.mp4", _flip(0, 48, seed=1)), expect="error", at_open=True)
    # FFmpeg reads it as a bare MPEG-4 stream: the decoder flags every frame damaged (Matroska framing bytes in it)
    add("mkv-header-zeroed", _mutate(mkv, c / "mkv-head-zero.mkv", _zero(0, 64)))
    add("avi-header-flipped", _mutate(avi, c / "avi-head-flip.avi", _flip(8, 200, seed=2)),
        expect="error", at_open=True, cause="corrupt RIFF (AVI) file")
    add("faststart-moov-cut", _mutate(fast, c / "fast-moov-cut.mp4", lambda d: d[:983] + d[1983:]))
    add("faststart-moov-flipped", _mutate(fast, c / "fast-moov-flip.mp4", _flip(40, 600, seed=3)),
        expect="error", at_open=True, cause="corrupt or truncated MP4/MOV file")
    # damage in the middle (the demuxer may resync: frames or an error, but no crash or hang)
    add("mp4-middle-flipped", _mutate(fast, c / "fast-mid-flip.mp4", _flip(0.5, 400, seed=4)))
    add("mkv-middle-zeroed", _mutate(mkv, c / "mkv-mid-zero.mkv", _zero(0.5, 2000)))
    add("mpegts-middle-flipped", _mutate(ts, c / "ts-mid-flip.ts", _flip(0.4, 3000, seed=5)))
    add("avi-middle-zeroed", _mutate(avi, c / "avi-mid-zero.avi", _zero(0.5, 3000)))
    # appended garbage, duplicated chunks
    add("mkv-garbage-appended", _mutate(mkv, c / "mkv-tail.mkv", lambda d: d + rng.randbytes(5000)),
        expect="frames", frames=NUM_FRAMES)
    add("mp4-garbage-appended", _mutate(fast, c / "mp4-tail.mp4", lambda d: d + rng.randbytes(5000)),
        expect="frames", frames=NUM_FRAMES)
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


# -- the tests ---------------------------------------------------------------------------------

CASE_NAMES = (
    "intact-mp4", "intact-mkv", "intact-avi-mjpeg", "intact-mpegts", "intact-raw-mjpeg", "intact-y4m",
    "latin1-metadata-mkv",
    "empty-file", "text-file", "text-named-y4m", "random-bytes", "directory-named-mp4", "audio-only",
    "y4m-zero-size", "y4m-no-size", "y4m-header-without-newline", "y4m-truncated-mid-frame",
    "mkv-named-mp4", "mp4-named-avi", "mpegts-named-y4m",
    "mp4-truncated-0.003", "mp4-truncated-0.3", "mp4-truncated-0.9",
    "faststart-mp4-truncated-0.3", "faststart-mp4-truncated-0.7",
    "mkv-truncated-0.001", "mkv-truncated-0.25", "mkv-truncated-0.6", "mkv-truncated-0.95",
    "avi-truncated-0.5", "mpegts-truncated-0.02", "mpegts-truncated-0.5", "raw-mjpeg-truncated-0.5", "mpegts-two-frames",
    "mp4-header-flipped", "mkv-header-zeroed", "avi-header-flipped", "faststart-moov-cut",
    "faststart-moov-flipped",
    "mp4-middle-flipped", "mkv-middle-zeroed", "mpegts-middle-flipped", "avi-middle-zeroed",
    "mkv-garbage-appended", "mp4-garbage-appended", "mkv-chunk-duplicated", "mpegts-chunk-duplicated",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    cases = build_corpus(tmp_path_factory.mktemp("corpus"))
    assert [case.name for case in cases] == list(CASE_NAMES)
    return {case.name: case for case in cases}


def _cause_text(message: str, prefix: str) -> str:
    """The message after the ``stream 'id' (path): `` prefix, without the FFmpeg error it quotes."""
    body = message[len(prefix) :]
    return re.split(r"\(?FFmpeg's error:", body)[0]


def test_the_corpus_is_big_enough(corpus: dict[str, Case]) -> None:
    assert len(corpus) >= 30
    assert sum(case.expect == "frames" for case in corpus.values()) >= 8
    assert sum(case.expect == "error" for case in corpus.values()) >= 20


@pytest.mark.parametrize("name", CASE_NAMES)
def test_case_gives_clean_frames_or_a_clear_error(corpus: dict[str, Case], name: str) -> None:
    case = corpus[name]
    outcome = run_case(name, case.path)
    assert outcome.other is None, f"{name}: crashed with {outcome.other!r}"

    indices = [frame.index for frame in outcome.frames]
    assert all(b > a for a, b in zip(indices, indices[1:])), f"{name}: indices not increasing: {indices}"
    pts = [frame.pts_s for frame in outcome.frames]
    assert all(b > a for a, b in zip(pts, pts[1:])), f"{name}: pts not increasing: {pts}"
    for frame in outcome.frames:
        assert frame.image.shape == (HEIGHT, WIDTH, 3)

    if outcome.error is None:
        assert case.expect != "error", f"{name}: expected a DecodeError, got {len(indices)} clean frames"
        if case.frames is not None:
            assert [videos.read_index(f.image) for f in outcome.frames] == list(range(case.frames))
        return

    message = str(outcome.error)
    assert case.expect != "frames", f"{name}: expected clean frames, got {message}"
    prefix = f"stream {name!r} ({case.path}): "
    assert message.startswith(prefix), message
    cause = _cause_text(message, prefix)
    assert any(word in cause for word in HUMAN_CAUSES), f"{name}: no cause in words: {message}"
    assert cause.strip(" ;:().") not in BARE_ERRNO_TEXTS and not cause.lstrip().startswith("[Errno"), message
    assert not any(cause.strip(" ;:().").startswith(text) for text in BARE_ERRNO_TEXTS), message
    if case.at_open is not None:
        assert outcome.at_open is case.at_open, f"{name}: at_open={outcome.at_open}: {message}"
    if case.cause is not None:
        assert case.cause in message, message
    if case.good_prefix:
        assert [videos.read_index(f.image) for f in outcome.frames] == list(range(len(outcome.frames))), message
        assert len(outcome.frames) < NUM_FRAMES, message
    if outcome.frames:
        assert f"after {len(outcome.frames)} good frame" in message or "decoded" in message, message


def test_a_stop_from_another_thread_ends_a_damaged_file_promptly(corpus: dict[str, Case]) -> None:
    """``stop()`` mid-iteration of a damaged file: ``frames()`` returns (no error, no hang), ``close()`` too."""
    source = AvSource("stopper", str(corpus["mkv-chunk-duplicated"].path))
    source.open()
    got = []
    started = time.monotonic()
    for frame in source.frames():
        got.append(frame)
        if len(got) == 3:
            source.stop()
    source.close()
    assert len(got) == 3 and time.monotonic() - started < DEADLINE_S
