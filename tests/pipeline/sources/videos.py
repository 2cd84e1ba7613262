"""Write small real video files with PyAV for the source tests.

Each frame shows its index as a row of 8 vertical black/white stripes (bit 7 on the left,
white = 1), so a test can read back which frame it got even after lossy compression.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

# container suffix -> codec; the pixel format each codec gets.
FORMATS: dict[str, tuple[str, str]] = {
    "h264-mp4": ("mp4", "libx264"),
    "mjpeg-avi": ("avi", "mjpeg"),
    "mpeg4-mkv": ("mkv", "mpeg4"),
    "vp9-mkv": ("mkv", "libvpx-vp9"),
}
_PIX_FMT = {"mjpeg": "yuvj420p"}
INDEX_BITS = 8


def frame_image(index: int, width: int, height: int, noisy: bool = False) -> np.ndarray:
    """``uint8 (height, width, 3)`` RGB frame encoding ``index`` (0..255) as 8 stripes.

    ``noisy`` adds per-frame random texture (+-40 grey levels) so that every frame compresses
    badly: the file's bytes are then mostly frame data, spread evenly over the frames.
    """
    image = np.full((height, width, 3), 0, np.uint8)
    stripe = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        if index >> (INDEX_BITS - 1 - bit) & 1:
            image[:, bit * stripe : (bit + 1) * stripe] = 255
    if noisy:
        rng = np.random.default_rng(index)
        levels = np.where(image > 127, 200, 55).astype(np.int16)
        image = np.clip(levels + rng.integers(-40, 41, size=image.shape), 0, 255).astype(np.uint8)
    return image


def read_index(image: np.ndarray) -> int:
    """The index ``frame_image`` encoded in a decoded ``(H, W, 3)`` frame."""
    height, width = image.shape[:2]
    stripe = width // INDEX_BITS
    index = 0
    for bit in range(INDEX_BITS):
        centre = image[height // 4 : 3 * height // 4, bit * stripe + stripe // 4 : (bit + 1) * stripe - stripe // 4]
        index = index << 1 | int(centre.mean() > 127)
    return index


def write_video(
    path: Path,
    codec: str = "libx264",
    *,
    width: int = 128,
    height: int = 64,
    fps: int = 25,
    num_frames: int = 10,
    noisy: bool = False,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
    codec_options: dict[str, str] | None = None,
) -> Path:
    """Write ``num_frames`` index-coded frames at ``fps`` to ``path``.

    ``container_format``: FFmpeg's muxer name (``mjpeg``, ``yuv4mpegpipe``...); ``None``: from the suffix.
    ``options``: the muxer's options; ``codec_options``: the encoder's (e.g. ``{"g": "10"}``).
    """
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = _PIX_FMT.get(codec, "yuv420p")
        if codec_options:
            stream.options = codec_options
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height, noisy), format="rgb24")
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


def write_format(tmp_path: Path, kind: str, **kwargs: object) -> Path:
    """Write a video of one of ``FORMATS`` (``"h264-mp4"``...) into ``tmp_path``."""
    suffix, codec = FORMATS[kind]
    return write_video(tmp_path / f"{kind}.{suffix}", codec, **kwargs)  # type: ignore[arg-type]


def write_audio_only(path: Path, seconds: float = 0.5, sample_rate: int = 16000) -> Path:
    """Write an AAC audio-only file (e.g. ``.m4a`` or ``.mp4``): a media file without video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        samples_per_frame = 1024
        for i in range(int(seconds * sample_rate) // samples_per_frame):
            t = (np.arange(samples_per_frame) + i * samples_per_frame) / sample_rate
            frame = av.AudioFrame.from_ndarray(
                (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :], format="fltp", layout="mono"
            )
            frame.sample_rate = sample_rate
            frame.pts = i * samples_per_frame
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(path: Path, fraction: float, out: Path | None = None) -> Path:
    """Copy the first ``fraction`` of ``path``'s bytes to ``out`` (default: overwrite ``path``)."""
    data = path.read_bytes()
    target = out or path
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def write_hls(directory: Path, *, width: int = 128, height: int = 64, fps: int = 25, num_frames: int = 30) -> Path:
    """Write an H.264 HLS VOD playlist (``index.m3u8`` + MPEG-TS segments of ~0.4 s) into ``directory``."""
    playlist = directory / "index.m3u8"
    options = {"hls_time": "0.4", "hls_playlist_type": "vod", "hls_segment_type": "mpegts"}
    with av.open(str(playlist), "w", format="hls", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "10"}  # a keyframe every 10 frames, so segments can be cut
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return playlist
