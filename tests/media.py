"""Real test videos, written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_pattern(index: int, width: int, height: int) -> np.ndarray:
    """A uint8 (H, W, 3) RGB frame: a gradient background with a bright square that moves with ``index``."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)), np.full_like(x, 60)], axis=-1)
    image = image.astype(np.uint8)
    side = max(8, min(width, height) // 4)
    x0 = (index * 5) % max(1, width - side)
    y0 = height // 3
    image[y0 : y0 + side, x0 : x0 + side] = (240, 240, 40)
    return image


def write_video(path: Path, *, width: int, height: int, fps: int, frames: int, codec: str = "libx264") -> Path:
    """Write ``frames`` frames of ``frame_pattern`` at ``fps`` into ``path`` (container from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps, 1))
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(i, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def count_frames(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) of the first video stream, by decoding every frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(stream))
        return n, stream.codec_context.width, stream.codec_context.height
