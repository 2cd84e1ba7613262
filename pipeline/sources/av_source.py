"""``AvSource``: frames of a local file or a network stream, demuxed and decoded by PyAV (FFmpeg).

Local files in any container/codec FFmpeg reads; ``rtsp://`` (TCP transport unless the
options say otherwise), ``rtmp://``, ``http(s)://`` (HLS, MJPEG...), ``udp://``. The first
video stream is decoded with FFmpeg's own threading and converted to RGB.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import get_args
from urllib.parse import urlsplit

import av
import av.error

from pipeline.errors import ConfigError, DecodeError
from pipeline.frames import TransferFormat, pixels_from_av
from pipeline.messages import StreamInfo
from pipeline.sources.base import FILE_SCHEMES, LIVE_SCHEMES, DecodedFrame, error_prefix, url_scheme
from pipeline.sources.pacing import (
    MaxFpsFilter,
    PtsNormalizer,
    RealtimePacer,
    kept_frame_count,
    validate_max_fps,
    wait_until_due,
)

DEFAULT_OPTIONS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "rtsp": MappingProxyType({"rtsp_transport": "tcp"}),
        "rtsps": MappingProxyType({"rtsp_transport": "tcp"}),
    }
)
"""FFmpeg options applied per URL scheme unless the caller's ``options`` set them."""

CAMERA_SCHEMES: frozenset[str] = frozenset({"rtsp", "rtsps"})
"""Schemes of camera streams, which never end on their own: FFmpeg reports a dropped connection
as a plain end of stream (like an RTCP BYE), so ``frames()`` raises ``DecodeError`` when one ends."""

TRUNCATION_TOLERANCE_FRAMES = 2
"""A file that ends this many frames (or 2 %, whichever is more) short of its header is not called truncated."""

# Leading bytes of containers FFmpeg reads: (offset, magic, name). Used only to tell "not a media
# file at all" from "a media file whose header is corrupt or truncated" when FFmpeg cannot open it.
_CONTAINER_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/MOV"),
    (4, b"moov", "MP4/MOV"),
    (4, b"mdat", "MP4/MOV"),
    (4, b"free", "MP4/MOV"),
    (4, b"wide", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "RIFF (AVI)"),
    (0, b"FLV", "FLV"),
    (0, b"OggS", "Ogg"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"YUV4MPEG2", "YUV4MPEG"),
)

# The demuxers that read each sniffed container (a name of FFmpeg's comma-separated demuxer names).
_CONTAINER_DEMUXERS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "MP4/MOV": frozenset({"mov", "mp4"}),
        "Matroska/WebM": frozenset({"matroska", "webm"}),
    }
)
_TS_PACKET = 188
_JPEG_TAIL_BYTES = 64
"""Bytes at the end of a bare MJPEG packet searched for the JPEG end-of-image marker (after zero padding)."""

SNIFF_BYTES = 1024
"""Bytes read from the start of a file FFmpeg could not open, to say why: the longest YUV4MPEG header line fits."""


class _PassFailed(Exception):
    """Internal: reading or decoding failed mid-pass; carries the step that failed and FFmpeg's error if any."""

    def __init__(self, step: str, cause: av.error.FFmpegError | None = None, detail: str = "") -> None:
        detail = detail or _ffmpeg_error_text(cause)
        super().__init__(detail)
        self.step = step  # "read" (demuxing) or "decode"
        self.cause = cause
        self.detail = detail


class AvSource:
    """A ``FrameSource`` over PyAV; see ``pipeline.sources.open_source`` for the arguments.

    - ``max_fps``: keep a frame only if its pts is >= ``1 / max_fps`` s after the last kept one.
    - ``realtime``: release frames of a file no earlier than their pts (monotonic clock) from the
      first frame; network streams are paced by their sender and are never delayed.
    - ``loop``: reopen a file at its end; indices and pts keep increasing. Ignored for live urls.
    - ``open_timeout_s`` / ``read_timeout_s``: seconds FFmpeg may wait for the stream to open /
      for each read; ``stop()`` takes effect within about ``read_timeout_s``.
    - ``options``: FFmpeg format/protocol options (``{"rtsp_transport": "udp"}``...).
    - ``transfer``: ``"rgb"`` or ``"yuv420"`` (see ``pipeline.frames.pixels_from_av``).
    """

    def __init__(
        self,
        stream_id: str,
        url: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        max_fps: float | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        options: Mapping[str, str] | None = None,
        transfer: TransferFormat = "rgb",
    ) -> None:
        for name, value in (("open_timeout_s", open_timeout_s), ("read_timeout_s", read_timeout_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"stream {stream_id!r}: {name}: got {value!r}, expected a number of seconds > 0")
        self.stream_id = stream_id
        self.url = url
        self.realtime = realtime
        self.loop = loop
        self.max_fps = validate_max_fps(max_fps)
        if transfer not in get_args(TransferFormat):
            raise ConfigError(f"stream {stream_id!r}: transfer: got {transfer!r}, expected one of {get_args(TransferFormat)}")
        self.transfer: TransferFormat = transfer
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.scheme = url_scheme(url)
        self.live = self.scheme in LIVE_SCHEMES
        self.options: dict[str, str] = dict(DEFAULT_OPTIONS.get(self.scheme or "", {}))
        self.options.update({str(k): str(v) for k, v in (options or {}).items()})
        self._info: StreamInfo | None = None
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._expected_frames: int | None = None  # per pass, before max_fps, from the file's header
        self._expected_duration_s: float | None = None  # per pass, from the file's header
        self._format_name: str | None = None  # FFmpeg's demuxer of the open container
        self._pass_end_byte: int | None = None  # per pass: the byte after the last packet's data (files)
        self._stop = threading.Event()
        self._closed = False
        self._iterated = False
        self._io_lock = threading.Lock()  # held while FFmpeg uses the container; close() takes it too

    # -- FrameSource --------------------------------------------------------------------------

    @property
    def info(self) -> StreamInfo:
        """What ``open()`` learnt; raises ``AttributeError`` before ``open()``."""
        if self._info is None:
            raise AttributeError(f"{error_prefix(self.stream_id, self.url)}info is not known until open() is called")
        return self._info

    def open(self) -> StreamInfo:
        """Open the stream and read its header; raises ``DecodeError`` naming the stream, the url and the cause."""
        if self._closed:
            raise DecodeError(f"{self._prefix()}cannot open: the source was closed")
        if self._info is not None:
            return self._info
        self._container, self._stream = self._open_container()
        stream = self._stream
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if width <= 0 or height <= 0:
            self._release_container()
            raise DecodeError(
                f"{self._prefix()}video stream has no frame size ({width}x{height}, codec {stream.codec_context.name})"
            )
        # A live stream's average rate is measured over the few frames probed (24.75 for a 25 fps
        # RTSP camera); its codec/container rate (guessed_rate) is the nominal one.
        rates = (stream.guessed_rate, stream.average_rate) if self.live else (stream.average_rate, stream.guessed_rate)
        fps = _positive_float(rates[0]) or _positive_float(rates[1])
        duration_s = self._duration_s(self._container, stream)
        if not self.live:
            header_frames = int(stream.frames or 0)
            self._expected_frames = header_frames if header_frames > 0 else None
            self._expected_duration_s = duration_s
        total_frames: int | None = None
        if not self.live and not self.loop:
            per_pass = self._expected_frames
            if per_pass is None and duration_s is not None and fps is not None:
                per_pass = max(1, round(duration_s * fps))
            if per_pass is not None:
                total_frames = kept_frame_count(per_pass, fps, self.max_fps)
        self._info = StreamInfo(
            stream_id=self.stream_id,
            width=width,
            height=height,
            fps=fps,
            total_frames=total_frames,
            live=self.live,
        )
        return self._info

    def frames(self) -> Iterator[DecodedFrame]:
        """Yield the decoded frames (see ``DecodedFrame``); raises ``DecodeError`` after the last good frame.

        Opens the source first if ``open()`` was not called. Iterate it once. An ``rtsp(s)://``
        stream that ends (server gone, connection dropped, or RTCP BYE) raises ``DecodeError``.
        """
        if self._iterated:
            raise RuntimeError(f"{self._prefix()}frames() can be iterated only once")
        self._iterated = True
        info = self.open()
        limiter = MaxFpsFilter(self.max_fps)
        pacer = RealtimePacer() if self.realtime and not self.live else None
        normalizer = PtsNormalizer(info.fps)
        index = 0  # frames decoded so far, all passes
        while not self._stop.is_set():
            normalizer.start_pass()
            in_pass = 0
            first_raw_s: float | None = None
            last_raw_s: float | None = None
            pass_frames = self._decode_pass()
            try:
                for frame in pass_frames:
                    raw_s = _frame_time_s(frame)
                    if raw_s is not None:
                        first_raw_s = raw_s if first_raw_s is None else first_raw_s
                        last_raw_s = raw_s
                    pts_s = normalizer.normalize(raw_s, in_pass, time.monotonic())
                    in_pass += 1
                    index += 1
                    if not limiter.keep(pts_s):
                        continue
                    image = pixels_from_av(frame, self.transfer)
                    if pacer is not None and not wait_until_due(pacer, pts_s, self._stop):
                        return
                    yield DecodedFrame(index=index - 1, pts_s=pts_s, captured_at=time.time(), image=image)
                    if self._stop.is_set():
                        return
            except _PassFailed as failure:
                cause = self._midstream_cause(failure, index, normalizer)
                raise DecodeError(f"{self._prefix()}{cause}") from failure.cause
            finally:
                pass_frames.close()
            if self._stop.is_set():
                return
            if self.scheme in CAMERA_SCHEMES:
                after = self._after(index, normalizer)
                raise DecodeError(
                    f"{self._prefix()}{self._network_location()} ended the stream {after}: "
                    "the connection was closed or the server ended the session (RTCP BYE)"
                )
            truncated = self._truncation_cause(in_pass, first_raw_s, last_raw_s, normalizer.frame_interval_s)
            if truncated is not None:
                raise DecodeError(f"{self._prefix()}{truncated}")
            if not self.loop or self.live:
                return
            if in_pass == 0:
                raise DecodeError(f"{self._prefix()}cannot loop: a pass over the file decoded no frames")
            self._reopen()

    def stop(self) -> None:
        """Make ``frames()`` return; thread-safe. A blocked read returns within about ``read_timeout_s``."""
        self._stop.set()

    def close(self) -> None:
        """Stop and release the container; idempotent, thread-safe (waits for a read in progress)."""
        self._stop.set()
        with self._io_lock:
            self._closed = True
            self._release_container_locked()

    # -- opening ------------------------------------------------------------------------------

    def _prefix(self) -> str:
        return error_prefix(self.stream_id, self.url)

    def _local_path(self) -> str:
        if self.scheme in FILE_SCHEMES:
            return self.url.split("://", 1)[1]
        return self.url

    def _open_container(self) -> tuple[av.container.InputContainer, av.VideoStream]:
        """Open the url and find its first video stream; raises ``DecodeError`` with a specific cause."""
        if self.scheme is not None and self.scheme not in LIVE_SCHEMES | FILE_SCHEMES:
            supported = ", ".join(sorted(LIVE_SCHEMES | FILE_SCHEMES | {"synthetic"}))
            raise DecodeError(
                f"{self._prefix()}unsupported URL scheme {self.scheme!r} (supported: {supported}, or a file path)"
            )
        if not self.live:
            path = self._local_path()
            if not os.path.exists(path):
                raise DecodeError(f"{self._prefix()}file does not exist: {os.path.abspath(path)}")
            if os.path.isdir(path):
                raise DecodeError(f"{self._prefix()}is a directory, not a video file: {os.path.abspath(path)}")
            if not os.access(path, os.R_OK):
                raise DecodeError(f"{self._prefix()}permission denied: cannot read {os.path.abspath(path)}")
        started_s = time.monotonic()
        try:
            container = self._av_open()
        except av.error.FFmpegError as exc:
            cause = self._open_failure_cause(exc, time.monotonic() - started_s)
            raise DecodeError(f"{self._prefix()}{cause}") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise DecodeError(f"{self._prefix()}could not open: {type(exc).__name__}: {exc}") from exc
        if not self.live:
            problem = self._container_problem(container)
            if problem is not None:
                container.close()
                raise DecodeError(f"{self._prefix()}{problem}")
        if not container.streams.video:
            kinds = ", ".join(f"{s.type}" for s in container.streams) or "none"
            container.close()
            what = "stream" if self.live else "file"
            raise DecodeError(f"{self._prefix()}{what} has no video stream (streams found: {kinds})")
        self._format_name = container.format.name
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _av_open(self) -> av.container.InputContainer:
        """``av.open`` the url (metadata that is not UTF-8 is read with replacement characters); a local
        file FFmpeg's probe misses but whose bytes are MPEG-TS is opened as such.

        FFmpeg's probe gives up on some very short MPEG-TS files (a few 188-byte packets: "End of
        file"), which its MPEG-TS demuxer reads fine when asked for that format.
        """
        # Metadata (titles, tags) that is not UTF-8 (Latin-1 tags of older files, or damage) must not
        # stop a video from opening: PyAV's default would raise UnicodeDecodeError; nothing here reads it.
        kwargs = {
            "options": self.options,
            "timeout": (self.open_timeout_s, self.read_timeout_s),
            "metadata_errors": "replace",
        }
        try:
            return av.open(self.url, mode="r", **kwargs)  # type: ignore[arg-type]
        except av.error.FFmpegError:
            if self.live or _sniff_container(self._read_head()) != "MPEG-TS":
                raise
            try:
                return av.open(self.url, mode="r", format="mpegts", **kwargs)  # type: ignore[arg-type]
            except av.error.FFmpegError:
                pass
            raise  # the probe's error, which the caller explains

    def _read_head(self) -> bytes:
        """The first ``SNIFF_BYTES`` of the local file (empty if it cannot be read)."""
        try:
            with open(self._local_path(), "rb") as f:
                return f.read(SNIFF_BYTES)
        except OSError:
            return b""

    def _container_problem(self, container: av.container.InputContainer) -> str | None:
        """What is wrong with a local file FFmpeg opened, judged from its first bytes (``None`` when nothing is).

        - A file that starts like a container whose header FFmpeg could not read can still be
          opened by a demuxer of bare streams (a RIFF (AVI) file with a damaged header read as
          raw MJPEG): frames are then silently lost or misplaced, so it is refused.
        - A file in which FFmpeg found no stream at all is a damaged container (an MP4 whose
          ``moov`` box is corrupt), not merely a file without video.
        """
        head = self._read_head()
        name = _sniff_container(head)
        expected = _expected_demuxers(name, head)
        demuxer = container.format.name
        if expected is not None and not set(demuxer.split(",")) & expected:
            return (
                f"corrupt {name} file: FFmpeg could not read its {name} header and could only read the data "
                f"as a bare {demuxer!r} stream, which loses or misplaces frames"
            )
        if not container.streams:
            what = f"corrupt or truncated {name} file" if name is not None else "not a media file, or a corrupt one"
            return f"{what}: FFmpeg found no audio or video stream in it (read as {demuxer!r})"
        return None

    def _open_failure_cause(self, exc: av.error.FFmpegError, elapsed_s: float) -> str:
        """Say clearly why ``av.open`` failed: missing file, refused, timed out, not media, corrupt..."""
        where = self._network_location()
        if isinstance(exc, av.error.ProtocolNotFoundError):
            return f"unsupported URL scheme {self.scheme!r}: FFmpeg has no protocol for it ({exc})"
        if isinstance(exc, av.error.FileNotFoundError):
            if self.live:
                return f"{where} has no such stream ({exc})"
            return f"file does not exist: {os.path.abspath(self._local_path())}"
        if isinstance(exc, av.error.IsADirectoryError):
            return f"is a directory, not a video file ({exc})"
        if isinstance(exc, av.error.PermissionError):
            return f"permission denied ({exc})"
        if isinstance(exc, av.error.ConnectionRefusedError):
            return f"connection refused by {where} (is the server running?)"
        if isinstance(exc, (av.error.ExitError, av.error.TimeoutError)) or (
            self.live and elapsed_s >= 0.9 * self.open_timeout_s
        ):
            limit = f"open_timeout_s={self.open_timeout_s:g}"
            return f"timed out after {elapsed_s:.1f} s ({limit}) waiting for {where} ({exc})"
        if isinstance(exc, (av.error.HTTPError, av.error.HTTPClientError, av.error.HTTPServerError)):
            return f"{where} answered with an HTTP error ({exc})"
        if self.live:
            if isinstance(exc, av.error.InvalidDataError):
                return f"{where} sent data FFmpeg cannot read as a media stream ({exc})"
            return f"could not reach {where} ({exc})"
        return self._unopenable_file_cause(exc)

    def _unopenable_file_cause(self, exc: av.error.FFmpegError) -> str:
        """Why FFmpeg could not open a local file that exists, from the file itself.

        A demuxer's error code alone can mislead: FFmpeg reports a YUV4MPEG header with a 0x0
        frame size as "Device or resource busy" and a text file named ``.y4m`` as "Invalid
        argument". The code is still quoted, after the cause found in the file.
        """
        path = self._local_path()
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(SNIFF_BYTES)
        except OSError as os_exc:
            return f"cannot read the file: {os_exc.strerror or os_exc} ({os.path.abspath(path)})"
        code = f"FFmpeg's error: {exc.strerror or type(exc).__name__}"
        if size == 0:
            return "file is empty (0 bytes): not a media file"
        container = _sniff_container(head)
        if container is None:
            return f"not a media file: FFmpeg recognises no audio/video container in it ({code})"
        problem = _y4m_header_problem(head) if container == "YUV4MPEG" else None
        if problem is not None:
            return f"corrupt {container} file: {problem}; {code}"
        return f"corrupt or truncated {container} file: FFmpeg could not read its header ({code})"

    def _network_location(self) -> str:
        if not self.live:
            return "the file"
        try:
            parts = urlsplit(self.url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return f"the {self.scheme} server"
        if host is None:
            return f"the {self.scheme} server"
        return f"{self.scheme} server {host}:{port}" if port is not None else f"{self.scheme} server {host}"

    @staticmethod
    def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float | None:
        """The video's duration in seconds from the header: the stream's, else the container's if it has one stream."""
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration and len(container.streams) == 1:
            return container.duration / av.time_base
        return None

    def _reopen(self) -> None:
        """Start the next pass of a looping file by opening it again."""
        with self._io_lock:
            self._release_container_locked()
            if self._closed:
                return
            self._container, self._stream = self._open_container()

    def _release_container(self) -> None:
        with self._io_lock:
            self._release_container_locked()

    def _release_container_locked(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            container.close()

    # -- decoding -----------------------------------------------------------------------------

    def _decode_pass(self) -> Iterator[av.VideoFrame]:
        """Decoded frames of one pass over the stream, in presentation order.

        On a read or decode error, yields the frames still buffered in the decoder, then
        raises ``_PassFailed``. In a file, a packet FFmpeg flags as corrupt (cut short by the
        end of a truncated file) counts as such an error and is not decoded, and so does a frame
        the decoder flags as damaged (decoded from missing or corrupt data: the last frame of an
        MPEG-TS file cut mid-frame), which is not yielded, nor any frame after it: no damaged
        frame is yielded. Live streams decode and yield them (FFmpeg conceals lost data). Ends
        quietly when stopped or closed. Records where the last packet's data ends
        (``_pass_end_byte``).
        """
        self._pass_end_byte = None
        with self._io_lock:
            if self._container is None or self._stream is None:
                return
            container, stream = self._container, self._stream
            packets = container.demux(stream)
        try:
            while not self._stop.is_set():
                step = "read"
                try:
                    with self._io_lock:
                        if self._container is not container:
                            return  # closed meanwhile
                        packet = next(packets, None)
                        if packet is None:
                            return
                        corrupt = not self.live and (packet.is_corrupt or self._jpeg_cut_short(packet))
                        if packet.size > 0 and packet.pos is not None and packet.pos >= 0:
                            self._pass_end_byte = packet.pos + packet.size
                        step = "decode"
                        frames = [] if corrupt else packet.decode()
                except av.error.FFmpegError as exc:
                    if self._stop.is_set():
                        return
                    yield from self._undamaged(self._drain_decoder(container, stream))
                    raise _PassFailed(step, exc) from exc
                if corrupt:
                    yield from self._undamaged(self._drain_decoder(container, stream))
                    detail = f"packet of {packet.size} bytes at byte {packet.pos} is corrupt or cut short"
                    raise _PassFailed("read", detail=detail)
                good = self._undamaged(frames)  # type: ignore[arg-type]
                yield from good
                if len(good) < len(frames):  # type: ignore[arg-type]
                    detail = "the decoder flagged the next frame as damaged (data missing or corrupt)"
                    raise _PassFailed("decode", detail=detail)
        finally:
            with self._io_lock:
                packets.close()

    def _jpeg_cut_short(self, packet: av.Packet) -> bool:
        """True for a JPEG image of a bare MJPEG file (``.mjpeg``) without its end-of-image marker: the
        last image of a truncated file, which FFmpeg's MJPEG decoder would conceal without a word."""
        if self._format_name != "mjpeg" or packet.size < 2:
            return False
        tail = bytes(memoryview(packet)[-_JPEG_TAIL_BYTES:]).rstrip(b"\x00")  # AVI-style zero padding
        return not tail.endswith(b"\xff\xd9")

    def _undamaged(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        """``frames`` up to the first one the decoder flagged as damaged (all of them for a live stream)."""
        if self.live:
            return frames
        for n, frame in enumerate(frames):
            if frame.is_corrupt:
                return frames[:n]
        return frames

    def _drain_decoder(self, container: av.container.InputContainer, stream: av.VideoStream) -> list[av.VideoFrame]:
        """Frames the (threaded) decoder still holds after a failure; empty if it cannot give them."""
        with self._io_lock:
            if self._container is not container:
                return []
            try:
                frames = list(stream.codec_context.decode(None))
            except av.error.FFmpegError:
                return []  # the decoder is broken too: the caller raises the original error
        for frame in frames:
            if frame.time_base is None:
                frame.time_base = stream.time_base  # frames flushed without a packet carry no time base
        return frames

    @staticmethod
    def _after(frames_decoded: int, normalizer: PtsNormalizer) -> str:
        """``after N good frames (last at X s)`` for error messages."""
        after = f"after {frames_decoded} good frame{'s' if frames_decoded != 1 else ''}"
        if normalizer.last_pts_s is not None:
            after += f" (last at {normalizer.last_pts_s:.3f} s)"
        return after

    def _midstream_cause(self, failure: _PassFailed, frames_decoded: int, normalizer: PtsNormalizer) -> str:
        """Say why a pass failed mid-stream, and after how many good frames."""
        exc = failure.cause
        after = self._after(frames_decoded, normalizer)
        if isinstance(exc, (av.error.ExitError, av.error.TimeoutError)):
            return f"read timeout: no data for {self.read_timeout_s:g} s {after} ({exc})"
        if self.live and failure.step == "read":
            return f"connection to {self._network_location()} failed {after} ({failure.detail})"
        what = "corrupt or truncated data" if exc is None or isinstance(exc, av.error.InvalidDataError) else "error"
        return f"{what} while {'decoding' if failure.step == 'decode' else 'reading'} {after}: {failure.detail}"

    def _partial_last_frame(self, decoded: int) -> str | None:
        """Why a YUV4MPEG file that ended cleanly is truncated: bytes after its last complete frame
        (FFmpeg drops a frame cut short silently, and sizes its duration to the complete ones)."""
        if self._format_name != "yuv4mpegpipe" or self._pass_end_byte is None:
            return None
        try:
            size = os.path.getsize(self._local_path())
        except OSError:
            return None
        extra = size - self._pass_end_byte
        if extra <= 0:
            return None
        return (
            f"file is truncated: it ends {extra} bytes into frame {decoded + 1} "
            f"(decoded {decoded} complete frame{'s' if decoded != 1 else ''})"
        )

    def _truncation_cause(
        self, decoded: int, first_raw_s: float | None, last_raw_s: float | None, frame_interval_s: float
    ) -> str | None:
        """Why a pass over a file that ended cleanly still looks truncated (``None`` when it does not)."""
        if self.live:
            return None
        cut_frame = self._partial_last_frame(decoded)
        if cut_frame is not None:
            return cut_frame
        expected = self._expected_frames
        if expected is not None:
            tolerance = max(TRUNCATION_TOLERANCE_FRAMES, math.ceil(0.02 * expected))
            if decoded < expected - tolerance:
                return f"file is truncated or corrupt: decoded {decoded} of the {expected} frames its header announces"
            return None
        duration_s = self._expected_duration_s
        if duration_s is None:
            if decoded == 0:
                return "file has a video stream but not one frame could be decoded from it: it is empty or truncated"
            return None
        decoded_s = 0.0 if first_raw_s is None or last_raw_s is None else last_raw_s - first_raw_s + frame_interval_s
        tolerance_s = max(TRUNCATION_TOLERANCE_FRAMES, 0.02 * duration_s / frame_interval_s) * frame_interval_s
        if decoded == 0 or decoded_s < duration_s - tolerance_s:
            return (
                f"file is truncated or corrupt: decoded {decoded} frames covering {decoded_s:.3f} s "
                f"of the {duration_s:.3f} s its header announces"
            )
        return None


def _ffmpeg_error_text(exc: av.error.FFmpegError | None) -> str:
    """``FFmpeg's error: <text> (<where>)`` for an FFmpeg error, without PyAV's ``[Errno N]`` prefix."""
    if exc is None:
        return "FFmpeg's error: unknown"
    text = exc.strerror or type(exc).__name__
    where = exc.filename if isinstance(exc.filename, str) and exc.filename else None
    return f"FFmpeg's error: {text}" + (f" ({where})" if where else "")


def _positive_float(rate: Fraction | float | None) -> float | None:
    """``rate`` as a float if it is a finite number > 0, else ``None``."""
    if rate is None:
        return None
    value = float(rate)
    return value if math.isfinite(value) and value > 0 else None


def _frame_time_s(frame: av.VideoFrame) -> float | None:
    """The frame's presentation time in seconds from its pts, ``None`` when it has none."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def _sniff_container(head: bytes) -> str | None:
    """The name of the container whose magic bytes start ``head`` (a file's first bytes), ``None`` if none matches."""
    for offset, magic, name in _CONTAINER_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    # MPEG-TS: 188-byte packets, each starting with the sync byte 0x47 (at least two seen).
    if len(head) > _TS_PACKET and all(head[i] == 0x47 for i in range(0, len(head), _TS_PACKET)):
        return "MPEG-TS"
    return None


def _expected_demuxers(name: str | None, head: bytes) -> frozenset[str] | None:
    """FFmpeg demuxer names one of which must read a file whose first bytes ``head`` sniff as ``name``;
    ``None`` when any demuxer may (a container not checked, or a RIFF form such as WAVE or CDXA)."""
    if name == "RIFF (AVI)":
        form = head[8:12]
        if form == b"AVI ":
            return frozenset({"avi"})
        if len(form) == 4 and all(0x20 <= byte < 0x7F for byte in form):
            return None  # another RIFF form (WAVE, AMV, CDXA...): its own demuxer
        return frozenset({"avi", "wav", "amv"})  # the form type is damaged: no RIFF demuxer took it
    return _CONTAINER_DEMUXERS.get(name or "")


def _y4m_header_problem(head: bytes) -> str | None:
    """What is wrong with the header line of a YUV4MPEG file starting with ``head``; ``None`` if nothing obvious."""
    end = head.find(b"\n")
    if end < 0:
        return f"its header line does not end within the first {len(head)} bytes"
    params = {token[:1]: token[1:] for token in head[:end].split()[1:] if token}
    width, height = params.get(b"W"), params.get(b"H")
    if width is None or height is None or not width.isdigit() or not height.isdigit() or int(width) <= 0 or int(height) <= 0:
        shown = " ".join(f"{key.decode()}{value.decode(errors='replace')}" for key, value in params.items() if key in b"WH")
        return f"its header gives no valid frame size ({shown or 'no W and H parameters'})"
    return None
