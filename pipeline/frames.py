"""Frame pixels as they travel from a decoder to the model: RGB, or YUV 4:2:0 at half the bytes.

A frame's pixels are one of:

- a numpy ``uint8`` array ``(H, W, 3)``, RGB (3 bytes a pixel);
- a :class:`Yuv420Frame`: the decoder's own planar YUV 4:2:0 planes (1.5 bytes a pixel), as
  H.264/H.265/MJPEG decoders produce them. Sending these instead of RGB skips the colour conversion
  on the decoding host, halves what the object store and the host-to-GPU copy carry, and leaves the
  conversion to the device (``pipeline.engine.preprocess.yuv420_to_rgb``, torch), where it costs a
  few elementwise operations.

This module imports numpy only (no torch): the per-stream actors (source, tracker, sink) import it,
and torch would cost each of those processes about 550 MB. The host conversion for drawing,
:meth:`Yuv420Frame.to_rgb` (:func:`yuv420_to_rgb_numpy`), is numpy.

Both conversions follow what FFmpeg's swscale does when PyAV converts a frame to ``rgb24`` (the RGB
path): the matrix named by the frame (BT.601 unless it says BT.709), limited ("TV", 16..235) or
full ("JPEG", 0..255) range, and each chroma sample used for its 2x2 block of pixels. Measured
against PyAV's own ``to_ndarray(format="rgb24")`` on H.264 frames: at most 2 grey levels apart
(mean 0.6), see ``tests/pipeline/test_frames.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

import numpy as np

from pipeline.errors import DecodeError

Matrix = Literal["bt601", "bt709"]
TransferFormat = Literal["rgb", "yuv420"]

#: (Kr, Kb) of each matrix (ITU-R BT.601 and BT.709).
LUMA_WEIGHTS: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
#: FFmpeg's AVColorSpace value for BT.709 (``AVCOL_SPC_BT709``); anything else converts as BT.601, as swscale does.
_AVCOL_SPC_BT709 = 1
#: FFmpeg's AVColorRange value for full range (``AVCOL_RANGE_JPEG``).
_AVCOL_RANGE_JPEG = 2
#: Limited ("TV") range: luma 16..235 (219 steps), chroma 16..240 around 128 (224 steps), per BT.601/BT.709.
TV_LUMA_OFFSET, TV_LUMA_STEPS, TV_CHROMA_STEPS = 16.0, 219.0, 224.0
#: The chroma value that means "no colour" in 8-bit YUV.
CHROMA_ZERO = 128.0
#: Decoder pixel formats sent as they are: 8-bit planar 4:2:0, limited range and (deprecated "j") full range.
_PLANAR_420 = {"yuv420p": False, "yuvj420p": True}


@dataclass(frozen=True)
class Yuv420Frame:
    """One frame's planar YUV 4:2:0 (I420) planes.

    ``data``: uint8, C-contiguous, ``height * width * 3 // 2`` bytes: Y ``(height, width)``, then U
    and V ``(height // 2, width // 2)`` each. ``height`` and ``width`` are even. ``matrix`` is the
    YUV->RGB matrix; ``full_range`` is True for 0..255 luma (JPEG), False for 16..235 (TV).
    """

    data: np.ndarray
    width: int
    height: int
    matrix: Matrix = "bt601"
    full_range: bool = False

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise DecodeError(f"YUV 4:2:0 frame size must be even and >= 2, got {self.width}x{self.height}")
        if self.matrix not in LUMA_WEIGHTS:
            raise DecodeError(f"YUV matrix must be one of {', '.join(LUMA_WEIGHTS)}, got {self.matrix!r}")
        expected = self.height * self.width * 3 // 2
        if not isinstance(self.data, np.ndarray) or self.data.dtype != np.uint8 or self.data.size != expected:
            got = f"{self.data.dtype} array of {self.data.size} values" if isinstance(self.data, np.ndarray) \
                else type(self.data).__name__
            raise DecodeError(f"YUV 4:2:0 {self.width}x{self.height} frame needs {expected} uint8 values, got {got}")

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    @classmethod
    def from_rgb(cls, image: np.ndarray, matrix: Matrix = "bt601") -> Yuv420Frame:
        """Limited-range YUV 4:2:0 of a uint8 ``(H, W, 3)`` RGB image with even sides (chroma: 2x2 means)."""
        rgb = image.astype(np.float32)
        kr, kb = LUMA_WEIGHTS[matrix]
        y = rgb @ np.array([kr, 1 - kr - kb, kb], np.float32)
        u = (rgb[..., 2] - y) / (2 * (1 - kb))
        v = (rgb[..., 0] - y) / (2 * (1 - kr))
        h, w = y.shape

        def sub(c: np.ndarray) -> np.ndarray:
            return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

        planes = [TV_LUMA_OFFSET + y * TV_LUMA_STEPS / 255, CHROMA_ZERO + sub(u) * TV_CHROMA_STEPS / 255,
                  CHROMA_ZERO + sub(v) * TV_CHROMA_STEPS / 255]
        data = np.concatenate([np.clip(np.rint(p), 0, 255).astype(np.uint8).reshape(-1) for p in planes])
        return cls(data=data, width=w, height=h, matrix=matrix)

    def to_rgb(self) -> np.ndarray:
        """A new uint8 ``(H, W, 3)`` RGB array on the host (for drawing), by :func:`yuv420_to_rgb_numpy`.

        ``data`` may be read-only (a frame read zero-copy from Ray's object store): it is only read.
        """
        return yuv420_to_rgb_numpy(self.data, self.height, self.width, self.matrix, self.full_range)


Pixels = Union[np.ndarray, Yuv420Frame]


@dataclass(frozen=True)
class FrameBundle:
    """Consecutive frames of one stream that its source put into the object store as one object.

    One object for several frames: each ``ray.put`` costs two round trips to the node's object store
    (create, seal) besides the copy, several times the copy itself for a 720p frame; a bundle pays them once.
    A frame's reference names its bundle and ``FrameMeta.slot`` its place in ``frames``.
    """

    frames: tuple[Pixels, ...]

    def __post_init__(self) -> None:
        if not self.frames:
            raise DecodeError("FrameBundle needs at least one frame, got none")


def frame_in(obj: FrameBundle | Pixels, slot: int) -> Pixels:
    """The frame at ``slot`` of what a frame reference names: a :class:`FrameBundle`, or one frame's pixels
    (``slot`` 0). Raises ``DecodeError`` naming the slot and the bundle's size when it is out of range."""
    if not isinstance(obj, FrameBundle):
        if slot != 0:
            raise DecodeError(f"frame slot {slot} of an object holding one frame (expected slot 0)")
        return obj
    if not 0 <= slot < len(obj.frames):
        raise DecodeError(f"frame slot {slot} is outside a bundle of {len(obj.frames)} frames")
    return obj.frames[slot]


def frame_size(pixels: Pixels) -> tuple[int, int]:
    """``(height, width)`` of an RGB array or a :class:`Yuv420Frame`."""
    if isinstance(pixels, Yuv420Frame):
        return pixels.height, pixels.width
    return int(pixels.shape[0]), int(pixels.shape[1])


def as_rgb(pixels: Pixels) -> np.ndarray:
    """The RGB uint8 ``(H, W, 3)`` array of either form: an RGB array as it is (not copied), a
    :class:`Yuv420Frame` converted on the host with numpy (:func:`yuv420_to_rgb_numpy`, a new array)."""
    return pixels.to_rgb() if isinstance(pixels, Yuv420Frame) else pixels


def yuv420_to_rgb_numpy(data: np.ndarray, height: int, width: int, matrix: Matrix = "bt601",
                        full_range: bool = False) -> np.ndarray:
    """I420 bytes (uint8, ``height * width * 3 // 2`` values; ``height``, ``width`` even) -> a new
    C-contiguous uint8 ``(H, W, 3)`` RGB array, numpy only.

    The same arithmetic as the engine's torch conversion (float32; chroma repeated over its 2x2
    block, as swscale does), then clipped to 0..255 and truncated (swscale truncates too: rounding
    doubles the mean error against PyAV's ``rgb24``). The chroma terms are computed once per 2x2
    block and broadcast over it. About 8 ms for a 1280x720 frame on one CPU core. ``data`` is only read.
    """
    h2, w2 = height // 2, width // 2
    area, quarter = height * width, h2 * w2
    flat = data.reshape(-1)
    # (H/2, 2, W/2, 2): [i, a, j, b] is the luma of pixel (2i + a, 2j + b), so a 2x2 block shares (i, j).
    y = flat[:area].reshape(h2, 2, w2, 2).astype(np.float32)
    u = flat[area : area + quarter].reshape(h2, w2).astype(np.float32) - CHROMA_ZERO
    v = flat[area + quarter : area + 2 * quarter].reshape(h2, w2).astype(np.float32) - CHROMA_ZERO
    if full_range:
        luma_scale, chroma_scale = 1.0, 1.0
    else:
        y -= TV_LUMA_OFFSET
        luma_scale, chroma_scale = 255.0 / TV_LUMA_STEPS, 255.0 / TV_CHROMA_STEPS
        y *= luma_scale
    kr, kb = LUMA_WEIGHTS[matrix]
    kg = 1.0 - kr - kb
    offsets = (
        v * np.float32(2 * (1 - kr) * chroma_scale),
        u * np.float32(-2 * kb * (1 - kb) / kg * chroma_scale) + v * np.float32(-2 * kr * (1 - kr) / kg * chroma_scale),
        u * np.float32(2 * (1 - kb) * chroma_scale),
    )
    out = np.empty((h2, 2, w2, 2, 3), np.uint8)
    channel = np.empty_like(y)
    for c, offset in enumerate(offsets):
        np.add(y, offset[:, None, :, None], out=channel)
        np.clip(channel, 0.0, 255.0, out=channel)
        out[..., c] = channel  # float -> uint8 truncates, after the clip: always within 0..255
    return out.reshape(height, width, 3)


def pixels_from_av(frame: Any, transfer: TransferFormat) -> Pixels:
    """A decoded PyAV ``VideoFrame`` in the requested transfer form.

    ``yuv420`` keeps the decoder's planes when they are 8-bit planar 4:2:0 with even sides (no
    colour conversion on the host); any other pixel format, or odd sides, is converted to RGB.
    """
    if transfer == "yuv420" and frame.format.name in _PLANAR_420 and frame.width % 2 == 0 and frame.height % 2 == 0:
        data = np.ascontiguousarray(frame.to_ndarray(format=frame.format.name)).reshape(-1)
        matrix: Matrix = "bt709" if int(frame.colorspace) == _AVCOL_SPC_BT709 else "bt601"
        full = _PLANAR_420[frame.format.name] or int(frame.color_range) == _AVCOL_RANGE_JPEG
        return Yuv420Frame(data=data, width=frame.width, height=frame.height, matrix=matrix, full_range=full)
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
