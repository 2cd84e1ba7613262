"""Write one stream's annotated frames as an H.264 MP4: ``<directory>/<stream_id>.mp4``."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from pipeline.drawing import draw_instances
from pipeline.errors import SinkError
from pipeline.frames import Pixels, as_rgb
from pipeline.messages import FrameResult, MessageError, StreamEnd, StreamInfo
from pipeline.sinks.base import check_stream_id, sink_error

DEFAULT_FPS = 25.0
FRAGMENT_S = 2.0  # seconds per fragment (GOP) of a fragmented MP4

OddSize = Literal["yuv444p", "pad"]


def video_rate(fps: float | None) -> Fraction:
    """The output frame rate for a stream's native ``fps``: ``DEFAULT_FPS`` when unknown or invalid."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        fps = DEFAULT_FPS
    # 29.97 -> 2997/100, 30000/1001 (as a float) -> 30000/1001: exact enough for any real rate.
    return Fraction(fps).limit_denominator(1001)


class VideoSink:
    """Annotated frames (``drawing.draw_instances``) encoded as H.264 in an MP4.

    - One output frame per ``write`` (so as many frames as results written), presentation
      times from a frame counter at ``info.fps`` (25 when unknown): the video plays the
      processed frames back to back, also when the source skipped frames.
    - Pixel format ``yuv420p`` (plays everywhere) at the input's exact size.
    - Odd frame sizes: 4:2:0 chroma needs an even width and height. With the default
      ``odd_size="yuv444p"`` the video keeps the exact input size and is encoded
      ``yuv444p`` (H.264 High 4:4:4: plays in ffmpeg/VLC/mpv, not in most browsers).
      With ``odd_size="pad"`` it stays ``yuv420p`` and is padded by repeating the last
      column/row to the next even size (one pixel larger than the input).
    - A frame whose result has an error, or no instances, is written unannotated.

    Delivery guarantee: the file is complete and playable once ``end`` or ``close``
    returned (the encoder is flushed and the MP4 index, ``moov``, written); ``close``
    without ``end`` does the same. A plain MP4 whose process dies before ``close`` is
    not playable (no ``moov``); with ``fragmented=True`` the MP4 is written as fragments
    (``frag_keyframe+empty_moov``, a keyframe every 2 s, each packet flushed to the OS),
    and a crash loses only the frames after the last complete fragment (up to 2 s plus
    the encoder's look-ahead); fragmented MP4 plays in ffmpeg, VLC, mpv and browsers
    but seeks less well in some desktop players.

    Stream ids that are not safe file names are refused with ``SinkError`` (see
    ``base.check_stream_id``). ``frames`` counts frames encoded.
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
        fragmented: bool = False,
    ) -> None:
        self.stream_id = check_stream_id(stream_id, "VideoSink")
        if odd_size not in ("yuv444p", "pad"):
            raise self._error("bad odd_size", f"must be 'yuv444p' or 'pad', got {odd_size!r}")
        self.path = Path(directory) / f"{stream_id}.mp4"
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
        if self._closed:
            raise self._error("cannot start", "the sink is closed")
        if self._container is not None:
            return
        self.width, self.height = info.width, info.height
        odd = self.width % 2 == 1 or self.height % 2 == 1
        if odd and self.odd_size == "pad":
            self._pad = (self.height % 2, self.width % 2)
        self.pix_fmt = "yuv444p" if odd and self.odd_size == "yuv444p" else "yuv420p"
        rate = video_rate(info.fps)
        container_options = (
            # Fragments start at keyframes; flush_packets pushes each packet through FFmpeg's I/O buffer to the OS.
            {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"} if self.fragmented else {}
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
                stream.codec_context.gop_size = max(1, round(rate * FRAGMENT_S))  # a keyframe (fragment) every 2 s
        except (ValueError, TypeError, av.FFmpegError) as exc:
            container.close()
            raise self._error(f"cannot set up codec {self.codec!r} ({self.pix_fmt}, {self.width}x{self.height} @ {rate})", exc) from exc
        self._container, self._stream = container, stream

    def write(self, result: FrameResult, image: Pixels | None) -> None:
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

    def end(self, end: StreamEnd) -> None:
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

    def _error(self, what: str, cause: BaseException | str) -> SinkError:
        return sink_error("VideoSink", self.stream_id, what, cause)
