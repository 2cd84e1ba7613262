"""Frame sources: decode a stream (file, network url or synthetic scene) into RGB frames, without Ray.

``open_source(stream_id, url, ...)`` returns an unopened ``FrameSource`` of the right kind:
``synthetic:...`` urls give a ``SyntheticSource``, everything else an ``AvSource`` (PyAV).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.frames import TransferFormat
from pipeline.sources.av_source import AvSource
from pipeline.sources.base import SYNTHETIC_PREFIX, DecodedFrame, FrameSource, is_live_url
from pipeline.sources.pacing import MaxFpsFilter, RealtimePacer, kept_frame_count

if TYPE_CHECKING:
    from pipeline.sources.synthetic import SyntheticSource

__all__ = [
    "AvSource",
    "DecodedFrame",
    "FrameSource",
    "MaxFpsFilter",
    "RealtimePacer",
    "SyntheticSource",
    "is_live_url",
    "kept_frame_count",
    "open_source",
]


def open_source(
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
) -> FrameSource:
    """An unopened source for ``url``: ``SyntheticSource`` for ``synthetic:...``, else ``AvSource``.

    - ``realtime``: pace a file or synthetic scene to its pts (seconds) on a monotonic clock, like a camera.
    - ``loop``: restart a finite source at its end; indices and pts keep increasing.
    - ``max_fps``: keep a frame only if its pts is at least ``1 / max_fps`` s after the last kept one.
    - ``open_timeout_s`` / ``read_timeout_s``: seconds to wait for a network stream to open / per read.
    - ``options``: FFmpeg options (e.g. ``{"rtsp_transport": "udp"}``); ignored by synthetic sources.
    - ``transfer``: ``"yuv420"`` yields decoded 4:2:0 video as :class:`~pipeline.frames.Yuv420Frame`
      planes (no colour conversion); ``"rgb"`` yields RGB arrays. Synthetic scenes are always RGB.

    Invalid arguments (``max_fps <= 0``, timeouts <= 0) raise ``ConfigError``; ``open()`` raises ``DecodeError``.
    """
    if url.startswith(SYNTHETIC_PREFIX):
        from pipeline.sources.synthetic import SyntheticSource  # imported here: it needs pipeline.scenes

        return SyntheticSource(stream_id, url, realtime=realtime, loop=loop, max_fps=max_fps)
    return AvSource(
        stream_id,
        url,
        realtime=realtime,
        loop=loop,
        max_fps=max_fps,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        options=options,
        transfer=transfer,
    )


def __getattr__(name: str) -> Any:
    """Import ``SyntheticSource`` on first use (it pulls in the scene generator)."""
    if name == "SyntheticSource":
        from pipeline.sources.synthetic import SyntheticSource

        return SyntheticSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
