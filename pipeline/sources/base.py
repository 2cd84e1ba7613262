"""What every frame source yields and promises, and how a URL is classified.

A source is opened once (``open()`` returns its ``StreamInfo``), iterated once
(``frames()``), may be told to stop from any thread (``stop()``) and is closed by its
owner (``close()``). Every failure to open, demux or decode is a ``DecodeError`` whose
message names the stream id, the url and the cause (see ``error_prefix``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.messages import StreamInfo
from pipeline.naming import (
    FILE_SCHEMES,
    LIVE_SCHEMES,
    SUPPORTED_SCHEMES,
    SYNTHETIC_PREFIX,
    local_path,
    supported_schemes_text,
    url_scheme,
)

# The url rules are defined once in pipeline.naming (standard library only, so that the config can use
# them without importing PyAV); the sources' names for them stay importable from here.
__all__ = [
    "FILE_SCHEMES",
    "LIVE_SCHEMES",
    "SUPPORTED_SCHEMES",
    "SYNTHETIC_PREFIX",
    "DecodedFrame",
    "FrameSource",
    "error_prefix",
    "is_live_url",
    "local_path",
    "supported_schemes_text",
    "url_scheme",
]


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded video frame.

    - ``index``: 0-based index among all frames decoded from the stream, counted before
      ``max_fps`` subsampling (so a subsampled stream shows gaps); keeps increasing across loops.
    - ``pts_s``: presentation time in seconds from the stream's first frame; strictly
      increasing, also across loops.
    - ``captured_at``: wall-clock time (``time.time()``, seconds since the epoch) when the
      frame was decoded (for a realtime-paced source: when the pacer released it, as a camera
      would have captured it).
    - ``image``: ``uint8`` array of shape ``(height, width, 3)``, RGB, C-contiguous; or, from a
      source asked for ``transfer="yuv420"``, a :class:`~pipeline.frames.Yuv420Frame`.
    """

    index: int
    pts_s: float
    captured_at: float
    image: np.ndarray


@runtime_checkable
class FrameSource(Protocol):
    """A stream of decoded frames; see the module docstring for the life cycle."""

    @property
    def info(self) -> StreamInfo:
        """What ``open()`` learnt about the stream (size, fps, frame count, live)."""
        ...

    def open(self) -> StreamInfo:
        """Open the stream; raises ``DecodeError`` naming the stream id, the url and the cause."""
        ...

    def frames(self) -> Iterator[DecodedFrame]:
        """Yield frames in order until the stream ends or ``stop()`` is called.

        Raises ``DecodeError`` on corrupt or truncated data, after yielding every good frame first.
        """
        ...

    def stop(self) -> None:
        """Make ``frames()`` return promptly (within about the read timeout); callable from any thread."""
        ...

    def close(self) -> None:
        """Stop and release the stream; idempotent."""
        ...


def is_live_url(url: str) -> bool:
    """Whether ``url`` names a live stream: a network url (rtsp, rtmp, udp, http(s)...) or an endless synthetic scene.

    Local files (plain paths, ``file://``) are not live. A ``synthetic:`` url is live when it
    has no frame count (``frames=0`` or ``frames=inf``); an invalid one raises ``ConfigError``.
    """
    scheme = url_scheme(url)
    if scheme == "synthetic":
        from pipeline.scenes import SceneConfig  # imported here: only synthetic urls need the scene generator

        return SceneConfig.from_url(url).num_frames is None
    return scheme in LIVE_SCHEMES


def error_prefix(stream_id: str, url: str) -> str:
    """The start of every ``DecodeError`` message of a source: ``stream 'id' (url): ``."""
    return f"stream {stream_id!r} ({url}): "
