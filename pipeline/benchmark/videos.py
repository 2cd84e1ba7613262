"""The H.264 files the pipeline bench decodes: generated scenes at a given size, written once and cached.

Camera-like: ``pipeline.scenes`` scenes (moving shapes on a textured background) with sensor noise, encoded
by libx264 (``preset veryfast``, ``crf 18``, 25 frames/s, a keyframe every 50 frames): about 5 Mbit/s at
1080p, the bitrate of a typical 1080p IP camera, so that decoding costs what a camera's stream costs.
(Measured at 1080p: noise 1 at crf 23 gives 0.7 Mbit/s, which decodes at 322 frames/s on one core; noise 2
at crf 18, 5.0 Mbit/s, 261 frames/s; noise 3 at crf 18, 18.6 Mbit/s, 114 frames/s.)
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from pipeline.errors import ConfigError

FPS = 25
CRF = 18  # with NOISE_SIGMA: about 5 Mbit/s at 1080p, a typical IP camera's bitrate
GOP_FRAMES = 50  # a keyframe every 2 s, a common camera setting
NOISE_SIGMA = 2.0  # grey levels of sensor noise: the grain a camera's encoder spends its bits on


def video_name(width: int, height: int, frames: int, seed: int) -> str:
    return f"bench-{width}x{height}-{frames}f-seed{seed}-crf{CRF}-noise{NOISE_SIGMA:g}.mp4"


def bench_video(folder: Path, width: int, height: int, frames: int, *, seed: int = 0) -> Path:
    """The cached file for these settings (written first when missing; an interrupted write leaves no file)."""
    if width % 2 or height % 2 or width < 32 or height < 32:
        raise ConfigError(f"bench video size {width}x{height}: expected even sides of at least 32 pixels")
    if frames < 1:
        raise ConfigError(f"bench video frames: expected at least 1, got {frames}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / video_name(width, height, frames, seed)
    if path.is_file():
        return path
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        _write(partial, width, height, frames, seed)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write(path: Path, width: int, height: int, frames: int, seed: int) -> None:
    import av

    from pipeline.scenes import SceneConfig, SceneGenerator

    rate = Fraction(FPS)
    # The classic scenes, whatever the generator's default: the measured bitrates above are theirs.
    config = SceneConfig(seed=seed, width=width, height=height, fps=FPS, num_frames=frames, noise_sigma=NOISE_SIGMA,
                         variety="classic")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "veryfast", "g": str(GOP_FRAMES)}
        stream.codec_context.time_base = 1 / rate
        for frame in SceneGenerator(config):
            video_frame = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
            video_frame.pts = frame.index
            video_frame.time_base = 1 / rate
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
