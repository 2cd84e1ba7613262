"""``SyntheticSource``: frames of a generated scene (``pipeline.scenes``), for urls ``synthetic:key=value&...``.

Deterministic for a given url (the seed fixes everything). ``pts_s = index / fps``. A scene
without a frame count (``frames=0`` or ``frames=inf``) is endless and counts as live.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from pipeline.errors import ConfigError, DecodeError
from pipeline.messages import StreamInfo
from pipeline.scenes import SceneConfig, SceneGenerator
from pipeline.sources.base import DecodedFrame, error_prefix
from pipeline.sources.pacing import MaxFpsFilter, RealtimePacer, kept_frame_count, validate_max_fps, wait_until_due


class SyntheticSource:
    """A ``FrameSource`` over ``SceneGenerator``; see ``pipeline.sources.open_source`` for the arguments.

    ``realtime`` paces frames to ``index / fps`` on a monotonic clock (also when endless: the
    generator itself runs as fast as it can). ``loop`` replays a finite scene from its start
    (the same frames again), with indices and pts continuing.
    """

    def __init__(
        self,
        stream_id: str,
        url: str,
        *,
        realtime: bool = False,
        loop: bool = False,
        max_fps: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.url = url
        self.realtime = realtime
        self.loop = loop
        self.max_fps = validate_max_fps(max_fps)
        self._config: SceneConfig | None = None
        self._info: StreamInfo | None = None
        self._stop = threading.Event()

    @property
    def info(self) -> StreamInfo:
        """What ``open()`` learnt; raises ``AttributeError`` before ``open()``."""
        if self._info is None:
            raise AttributeError(f"{error_prefix(self.stream_id, self.url)}info is not known until open() is called")
        return self._info

    def open(self) -> StreamInfo:
        """Parse the url into a ``SceneConfig``; a bad url raises ``DecodeError`` naming the stream, url and key."""
        if self._info is not None:
            return self._info
        try:
            config = SceneConfig.from_url(self.url)
        except ConfigError as exc:
            raise DecodeError(f"{error_prefix(self.stream_id, self.url)}invalid synthetic scene url: {exc}") from exc
        endless = config.num_frames is None
        total_frames = None
        if not endless and not self.loop:
            total_frames = kept_frame_count(config.num_frames, config.fps, self.max_fps)  # type: ignore[arg-type]
        self._config = config
        self._info = StreamInfo(
            stream_id=self.stream_id,
            width=config.width,
            height=config.height,
            fps=float(config.fps),
            total_frames=total_frames,
            live=endless,
        )
        return self._info

    def frames(self) -> Iterator[DecodedFrame]:
        """Yield the scene's frames (``uint8 (H, W, 3)`` RGB) until it ends, or forever when endless or looping."""
        info = self.open()
        config = self._config
        if config is None or info.fps is None:
            return
        limiter = MaxFpsFilter(self.max_fps)
        pacer = RealtimePacer() if self.realtime else None
        generator = SceneGenerator(config)  # built once: each iter() replays the same scene
        index = 0
        while not self._stop.is_set():
            in_pass = 0
            for scene_frame in generator:
                if self._stop.is_set():
                    return
                pts_s = index / info.fps
                index += 1
                in_pass += 1
                if not limiter.keep(pts_s):
                    continue
                image = np.ascontiguousarray(scene_frame.image, dtype=np.uint8)
                if pacer is not None and not wait_until_due(pacer, pts_s, self._stop):
                    return
                yield DecodedFrame(index=index - 1, pts_s=pts_s, captured_at=time.time(), image=image)
            if not self.loop or in_pass == 0:
                return

    def stop(self) -> None:
        """Make ``frames()`` return after the frame in progress; thread-safe."""
        self._stop.set()

    def close(self) -> None:
        """Stop; there is nothing else to release."""
        self._stop.set()
