"""Write one stream's annotated frames as H.264 MP4: ``<directory>/<stream_id>.mp4``, then one
numbered segment per restart of the owning actor (``<stream_id>+1.mp4``, ``<stream_id>+2.mp4``...)."""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from pipeline.drawing import draw_instances
from pipeline.errors import SinkError
from pipeline.frames import Pixels, as_rgb
from pipeline.messages import FrameResult, MessageError, StreamEnd, StreamInfo, StreamStatus
from pipeline.sinks.base import check_stream_id, sink_error

DEFAULT_FPS = 25.0
# Seconds per fragment (= GOP, one keyframe each) of a fragmented MP4: what a crash can lose at most,
# besides the encoder's delay. Shorter costs compression (a keyframe is several times a P-frame).
FRAGMENT_S = 2.0
# Separates a stream id from a segment number: '+' is not allowed in stream ids, so "<id>+<n>.mp4"
# can never be another stream's file (with '.', stream "cam"'s segment 1 would be stream "cam.1"'s video).
SEGMENT_SEPARATOR = "+"

OddSize = Literal["yuv444p", "pad"]


def video_rate(fps: float | None) -> Fraction:
    """The output frame rate for a stream's native ``fps``: ``DEFAULT_FPS`` when unknown or invalid."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        fps = DEFAULT_FPS
    # 29.97 -> 2997/100, 30000/1001 (as a float) -> 30000/1001: exact enough for any real rate.
    return Fraction(fps).limit_denominator(1001)


def segment_name(stream_id: str, segment: int) -> str:
    """The file name of a stream's video segment: ``<id>.mp4`` for segment 0, ``<id>+<n>.mp4`` after."""
    return f"{stream_id}.mp4" if segment == 0 else f"{stream_id}{SEGMENT_SEPARATOR}{segment}.mp4"


def segment_paths(directory: Path, stream_id: str) -> list[Path]:
    """The existing video segments of ``stream_id`` in ``directory``, in playing order (segment 0 first,
    then ``+1``, ``+2``... by number, gaps allowed); ``[]`` when the directory does not exist.
    Raises ``OSError`` when the directory cannot be read."""
    segments = _existing_segments(Path(directory), stream_id)
    return [segments[n] for n in sorted(segments)]


def _existing_segments(directory: Path, stream_id: str) -> dict[int, Path]:
    """``{n: path}`` of segment 0 (``<id>.mp4``) and every ``<id>+<n>.mp4`` (n >= 1, no leading zeros)."""
    pattern = re.compile(re.escape(stream_id) + r"(?:" + re.escape(SEGMENT_SEPARATOR) + r"([1-9][0-9]*))?\.mp4")
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return {}
    out: dict[int, Path] = {}
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is not None and entry.is_file():
            out[int(match.group(1) or 0)] = Path(entry.path)
    return out


class VideoSink:
    """Annotated frames (``drawing.draw_instances``) encoded as H.264 in MP4 segments.

    - One output frame per ``write`` (so as many frames as results written), presentation
      times from a frame counter at ``info.fps`` (25 when unknown): the video plays the
      processed frames back to back, also when the source skipped frames.
    - ``write`` takes a uint8 ``(H, W, 3)`` RGB array or a ``frames.Yuv420Frame`` (converted to RGB
      with numpy for drawing: this module never imports torch).
    - Pixel format ``yuv420p`` (plays everywhere) at the input's exact size.
    - Odd frame sizes: 4:2:0 chroma needs an even width and height. With the default
      ``odd_size="yuv444p"`` the video keeps the exact input size and is encoded
      ``yuv444p`` (H.264 High 4:4:4: plays in ffmpeg/VLC/mpv, not in most browsers).
      With ``odd_size="pad"`` it stays ``yuv420p`` and is padded by repeating the last
      column/row to the next even size (one pixel larger than the input).
    - A frame whose result has an error, or no instances, is written unannotated.
    - ``status`` events are ignored (a video has no place for them).

    Files (segments): a run's video is ``<directory>/<id>.mp4`` (segment 0); each ``resume`` (the
    owning actor was restarted after a crash) opens the next segment, ``<id>+1.mp4``, ``<id>+2.mp4``
    ... (one above the highest existing number, so a gap never makes a later segment sort before an
    earlier one), each a complete MP4 starting at time 0 with its own frame counter. Play or
    concatenate them in number order (:func:`segment_paths` lists them). ``'+'`` never occurs in a
    stream id, so no other stream's file matches (with ``'.'``, stream ``cam``'s segment 1 would be
    stream ``cam.1``'s video). ``start`` (a new run) deletes a previous run's ``<id>.mp4`` and
    numbered segments; ``end`` without ``start``/``resume`` (the stream failed before it opened)
    deletes them too and writes nothing, so no previous run's video looks like this run's. An owner
    restarted after a crash must call ``resume`` (not ``start``, and not ``end`` alone) to keep the
    segments written before the crash. FFmpeg creates a segment's file when the encoder hands out its
    first packet, so a segment whose process wrote no frame (or died that early) has no file.

    Delivery guarantee: a segment is complete and playable once ``end`` or ``close`` returned (the
    encoder is flushed, the last fragment written); ``close`` without ``end`` does the same. By
    default (``fragmented=True``) the MP4 is written as fragments (``frag_keyframe+empty_moov+
    delay_moov``, a keyframe every ``FRAGMENT_S`` = 2 s, each fragment handed to the operating
    system when complete), so when the process dies without ``close`` (SIGKILL, out of memory, a
    crash of its Ray actor) the segment stays playable up to its last complete fragment. A crash
    loses the frames of the fragment being built (up to ``FRAGMENT_S``) plus those still inside the
    encoder (x264's look-ahead, B-frames and frame threads: about 50 frames with the defaults):
    measured at 25 fps, 50-100 frames, i.e. 2-4 s. A process that dies before its first fragment
    is complete leaves an empty (0-byte) file, which ``resume`` deletes. A crash of the machine may
    lose more (nothing is fsync-ed). After ``resume`` the lost frames are not written again
    (``resume`` returns ``None``: the sink cannot tell which frames made it). Fragmented MP4 plays
    in ffmpeg, VLC, mpv and browsers but seeks less well in some desktop players;
    ``fragmented=False`` writes a plain MP4, which is not playable at all after a crash (its index,
    ``moov``, is written at the end).

    Stream ids that are not safe file names are refused with ``SinkError`` (see
    ``base.check_stream_id``). ``frames`` counts frames encoded into the current segment,
    ``segment`` is its number, ``path`` its file.
    """

    needs_image = True

    def __init__(
        self,
        stream_id: str,
        *,
        directory: Path,
        codec: str = "libx264",
        crf: int = 23,
        odd_size: OddSize = "yuv444p",
        fragmented: bool = True,
    ) -> None:
        self.stream_id = check_stream_id(stream_id, "VideoSink")
        if odd_size not in ("yuv444p", "pad"):
            raise self._error("bad odd_size", f"must be 'yuv444p' or 'pad', got {odd_size!r}")
        self.directory = Path(directory)
        self.segment = 0
        self.path = self.directory / segment_name(stream_id, 0)
        self.codec = codec
        self.crf = crf
        self.odd_size = odd_size
        self.fragmented = fragmented
        self.frames = 0
        self.width = 0  # of the input frames
        self.height = 0
        self.pix_fmt = ""
        self._container: Any = None
        self._stream: Any = None
        self._pad = (0, 0)  # rows, columns added at the bottom/right
        self._closed = False

    def start(self, info: StreamInfo) -> None:
        """Open segment 0, ``<id>.mp4``, for a new run after deleting a previous run's ``<id>.mp4`` and
        numbered segments. Idempotent while open."""
        if self._closed:
            raise self._error("cannot start", "the sink is closed")
        if self._container is not None:
            return
        # Deleted now, not merely overwritten: FFmpeg creates the file only when the first packet is muxed
        # (after the encoder's delay), and a run that dies before that must not leave the old video in place.
        self._remove_files()
        self._open(info, 0)

    def resume(self, info: StreamInfo) -> None:
        """Open the next segment, ``<id>+<n>.mp4`` (``n`` one above the highest existing segment; segment
        0 when none exists), keeping every existing one except empty (0-byte) ones, which are deleted.
        Returns ``None``: the sink cannot tell which frames the dead process's last fragment held, so it
        takes every frame from the owner's resume point."""
        if self._closed:
            raise self._error("cannot resume", "the sink is closed")
        if self._container is not None:
            raise self._error("cannot resume", f"{self.path} is already open")
        try:
            existing = _existing_segments(self.directory, self.stream_id)
            for number, path in list(existing.items()):
                # Empty: the dead process got a first packet out of the encoder but no fragment (FFmpeg
                # creates the file at the first packet). Nothing to keep, and no player could open it.
                if path.stat().st_size == 0:
                    path.unlink(missing_ok=True)
                    del existing[number]
        except OSError as exc:
            raise self._error(f"cannot list the segments in {self.directory}", exc) from exc
        self._open(info, max(existing, default=-1) + 1)
        return None

    def _open(self, info: StreamInfo, segment: int) -> None:
        """Open segment ``segment`` for ``info``'s frames: container, H.264 stream, pixel format."""
        self.segment = segment
        self.path = self.directory / segment_name(self.stream_id, segment)
        self.frames = 0
        self._pad = (0, 0)
        self.width, self.height = info.width, info.height
        odd = self.width % 2 == 1 or self.height % 2 == 1
        if odd and self.odd_size == "pad":
            self._pad = (self.height % 2, self.width % 2)
        self.pix_fmt = "yuv444p" if odd and self.odd_size == "yuv444p" else "yuv420p"
        rate = video_rate(info.fps)
        container_options = (
            # Fragments start at keyframes; flush_packets pushes each packet through FFmpeg's I/O buffer to the OS.
            # delay_moov writes the (empty) moov with the first fragment, with the edit list that starts the
            # video at time 0 despite the B-frame delay (without it the first frame shows at 2 frames' time).
            {"movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof", "flush_packets": "1"}
            if self.fragmented else {}
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), mode="w", format="mp4", container_options=container_options)
        except (OSError, av.FFmpegError) as exc:
            raise self._error(f"cannot open {self.path}", exc) from exc
        try:
            options = {"crf": str(self.crf)} if self.codec in ("libx264", "libx265") else {}
            stream = container.add_stream(self.codec, rate=rate, options=options)
            stream.width = self.width + self._pad[1]
            stream.height = self.height + self._pad[0]
            stream.pix_fmt = self.pix_fmt
            stream.codec_context.time_base = 1 / rate
            stream.codec_context.framerate = rate
            # Tag what swscale's RGB -> YUV conversion produces (BT.601 matrix, limited range),
            # so players do not guess BT.709 for HD sizes and shift the colours.
            stream.codec_context.colorspace = 6  # AVCOL_SPC_SMPTE170M
            stream.codec_context.color_range = 1  # AVCOL_RANGE_MPEG
            if self.fragmented:
                stream.codec_context.gop_size = max(1, round(rate * FRAGMENT_S))  # a keyframe (fragment) every FRAGMENT_S
        except (ValueError, TypeError, av.FFmpegError) as exc:
            container.close()
            raise self._error(f"cannot set up codec {self.codec!r} ({self.pix_fmt}, {self.width}x{self.height} @ {rate})", exc) from exc
        self._container, self._stream = container, stream

    def write(self, result: FrameResult, image: Pixels | None) -> None:
        """Annotate and encode one frame. ``image``: uint8 ``(H, W, 3)`` RGB or a ``Yuv420Frame`` of the
        stream's size (``info.width`` x ``info.height``); never modified."""
        index = result.meta.index
        if self._container is None:
            raise self._error(f"cannot write frame {index}", "the sink is closed" if self._closed else "start() was not called")
        if image is None:
            raise self._error(f"cannot write frame {index}", "VideoSink needs the frame's image, got None")
        image = as_rgb(image)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (self.height, self.width, 3):
            desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise self._error(
                f"cannot write frame {index}", f"image must be uint8 ({self.height}, {self.width}, 3) RGB, got {desc}"
            )
        try:
            annotated = draw_instances(image, result.instances) if result.instances else image
        except (MessageError, ValueError) as exc:
            raise self._error(f"cannot annotate frame {index}", exc) from exc
        if self._pad != (0, 0):
            annotated = np.pad(annotated, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(annotated), format="rgb24")
            frame = frame.reformat(format=self.pix_fmt)
            frame.pts = self.frames
            frame.time_base = self._stream.codec_context.time_base
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise self._error(f"cannot encode frame {index} into {self.path}", exc) from exc
        self.frames += 1

    def status(self, event: StreamStatus) -> None:
        """Ignored: a video has no place for status events."""

    def end(self, end: StreamEnd) -> None:
        """Finish the segment (see ``close``). Without ``start``/``resume`` (the stream failed before it
        opened), delete the previous run's ``<id>.mp4`` and numbered segments and write nothing."""
        if self._container is None and not self._closed:
            self._remove_files()
        self.close()

    def close(self) -> None:
        """Flush the encoder and finish the MP4 (idempotent). Raises ``SinkError`` if that fails; the file is closed anyway."""
        if self._closed:
            return
        self._closed = True
        container, self._container = self._container, None
        if container is None:
            return
        error: BaseException | None = None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            error = exc
        try:
            container.close()
        except (av.FFmpegError, OSError) as exc:
            error = error or exc
        if error is not None:
            raise self._error(f"cannot finish {self.path}", error) from error

    def _remove_files(self) -> None:
        """Delete every segment of the stream: ``<id>.mp4`` and ``<id>+<n>.mp4``."""
        try:
            for path in _existing_segments(self.directory, self.stream_id).values():
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error(f"cannot delete a previous run's video in {self.directory}", exc) from exc

    def _error(self, what: str, cause: BaseException | str) -> SinkError:
        return sink_error("VideoSink", self.stream_id, what, cause)
