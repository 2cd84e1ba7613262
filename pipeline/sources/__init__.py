"""Frame sources: decode a stream (file, network url or synthetic scene) into RGB frames, without Ray.

``open_source(stream_id, url, ...)`` returns an unopened ``FrameSource`` of the right kind:
``synthetic:...`` urls give a ``SyntheticSource``, everything else an ``AvSource`` (PyAV); a network
stream given a ``ReconnectPolicy`` gives a ``ReconnectingSource`` around ``AvSource``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.frames import TransferFormat
from pipeline.sources.av_source import AvSource
from pipeline.sources.base import LIVE_SCHEMES, SYNTHETIC_PREFIX, DecodedFrame, FrameSource, is_live_url, url_scheme
from pipeline.sources.pacing import MaxFpsFilter, RealtimePacer, kept_frame_count
from pipeline.sources.reconnect import CLOSE_MARGIN_S, ReconnectingSource, ReconnectPolicy, StatusCallback

if TYPE_CHECKING:
    from pipeline.sources.synthetic import SyntheticSource

__all__ = [
    "AvSource",
    "DecodedFrame",
    "FrameSource",
    "MaxFpsFilter",
    "RealtimePacer",
    "ReconnectPolicy",
    "ReconnectingSource",
    "StatusCallback",
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
    reconnect: ReconnectPolicy | None = None,
    on_status: StatusCallback | None = None,
) -> FrameSource:
    """An unopened source for ``url``: ``SyntheticSource`` for ``synthetic:...``, else ``AvSource``.

    - ``realtime``: pace a file or synthetic scene to its pts (seconds) on a monotonic clock, like a camera.
    - ``loop``: restart a finite source at its end; indices and pts keep increasing.
    - ``max_fps``: keep a frame only if its pts is at least ``1 / max_fps`` s after the last kept one.
    - ``open_timeout_s`` / ``read_timeout_s``: seconds to wait for a network stream to open / per read.
    - ``options``: FFmpeg options (e.g. ``{"rtsp_transport": "udp"}``); ignored by synthetic sources.
    - ``transfer``: ``"yuv420"`` yields decoded 4:2:0 video as :class:`~pipeline.frames.Yuv420Frame`
      planes (no colour conversion); ``"rgb"`` yields RGB arrays. Synthetic scenes are always RGB.
    - ``reconnect``: for a network stream (a scheme of ``LIVE_SCHEMES``: rtsp, udp, http...), a
      ``ReconnectingSource`` reopens the ``AvSource`` with this policy's backoff whenever it drops,
      ends, fails or stalls. Files and synthetic scenes have no connection to lose: ignored for them.
    - ``on_status``: receives the ``ReconnectingSource``'s state changes (see ``StatusCallback``);
      only used with ``reconnect`` for a network stream.

    Invalid arguments (``max_fps <= 0``, timeouts <= 0) raise ``ConfigError``; ``open()`` raises ``DecodeError``.
    """
    if url.startswith(SYNTHETIC_PREFIX):
        from pipeline.sources.synthetic import SyntheticSource  # imported here: it needs pipeline.scenes

        return SyntheticSource(stream_id, url, realtime=realtime, loop=loop, max_fps=max_fps)

    def make() -> AvSource:
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

    source = make()  # validates the arguments now (ConfigError), as for a source that is not reconnected
    if reconnect is None or url_scheme(url) not in LIVE_SCHEMES:
        return source
    return ReconnectingSource(
        stream_id,
        url,
        make,
        reconnect,
        on_status=on_status,
        # a reader thread is in an open or a read when told to stop: it ends within that timeout
        close_timeout_s=max(open_timeout_s, read_timeout_s) + CLOSE_MARGIN_S,
    )


def __getattr__(name: str) -> Any:
    """Import ``SyntheticSource`` on first use (it pulls in the scene generator)."""
    if name == "SyntheticSource":
        from pipeline.sources.synthetic import SyntheticSource

        return SyntheticSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
