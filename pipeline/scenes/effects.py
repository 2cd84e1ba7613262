"""Lighting, contrast and compression for the rich variety, drawn once per scene.

- :class:`Lighting`: a static gain field (uniform, a linear ramp, a vignette or a spotlight), a
  brightness offset and a contrast factor about mid-grey, and a slow flicker of the gain over time.
  Applied to the composed frame before the camera's blur and noise, so it never touches GT.
- :func:`object_contrast`: per object, a factor that pulls its colours towards the mean colour of
  the background under it (a quarter of the objects are low-contrast).
- :func:`jpeg_round_trip`: the frame encoded as JPEG at a given quality and decoded (PIL, which
  torchvision brings): blocking and ringing, as a compressed camera stream shows.

Arithmetic as elsewhere in :mod:`pipeline.scenes` (elementwise float32, scalar ``math``); the JPEG
codec is libjpeg's, deterministic for a given Pillow build.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np

_LOW_CONTRAST_SHARE = 0.25  # objects drawn at low contrast: enough to learn them, few enough not to drown the rest
_LOW_CONTRAST = (0.15, 0.4)  # their colour distance to the background, as a fraction of the drawn one
_JPEG_SHARE = 0.5  # scenes compressed as JPEG
_JPEG_QUALITY = (15, 85)  # libjpeg quality range of those scenes (15: heavy blocking; 85: faint ringing)


@dataclass(frozen=True, eq=False)
class Lighting:
    """``gain`` float32 ``(H, W, 1)``, ``offset`` and ``contrast`` scalars, ``flicker`` amplitude (fraction of
    the gain) and ``period`` (frames) of a slow sinusoidal change, ``phase`` in radians."""

    gain: np.ndarray
    offset: float
    contrast: float
    flicker: float
    period: float
    phase: float

    def apply(self, canvas: np.ndarray, index: int) -> np.ndarray:
        """Frame ``index`` of ``canvas`` (uint8 ``(H, W, 3)``) under this light: a new uint8 array."""
        wobble = 1.0 + self.flicker * math.sin(2.0 * math.pi * index / self.period + self.phase)
        x = canvas.astype(np.float32) * (self.gain * np.float32(wobble))
        x = (x - np.float32(128.0)) * np.float32(self.contrast) + np.float32(128.0 + self.offset)
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def random_lighting(rng: np.random.Generator, width: int, height: int) -> Lighting:
    """A scene's light: one of four gain fields, brightness and contrast, maybe a flicker."""
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / np.float32(height)
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / np.float32(width)
    field = int(rng.integers(4))
    cx, cy = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
    if field == 0:
        gain = np.ones((height, width), np.float32)
    elif field == 1:  # a ramp: light from one side
        theta = float(rng.uniform(0, 2 * math.pi))
        ramp = (xs - 0.5) * np.float32(math.cos(theta)) + (ys - 0.5) * np.float32(math.sin(theta))
        gain = np.float32(1.0) + ramp * np.float32(rng.uniform(0.3, 1.0))
    elif field == 2:  # a vignette: dark corners
        gain = np.float32(1.0) - ((xs - 0.5) ** 2 + (ys - 0.5) ** 2) * np.float32(rng.uniform(0.5, 1.6))
    else:  # a spotlight
        spread = np.float32(rng.uniform(0.05, 0.3))
        gain = np.float32(0.55) + np.float32(0.7) * spread / (spread + (xs - np.float32(cx)) ** 2 + (ys - np.float32(cy)) ** 2)
    gain = np.maximum(gain, np.float32(0.2))[:, :, None] * np.float32(rng.uniform(0.6, 1.3))
    flicker = float(rng.uniform(0.02, 0.15)) if rng.random() < 0.3 else 0.0
    return Lighting(gain=gain.astype(np.float32), offset=float(rng.uniform(-30, 30)), contrast=float(rng.uniform(0.5, 1.2)),
                    flicker=flicker, period=float(rng.uniform(20, 120)), phase=float(rng.uniform(0, 2 * math.pi)))


def object_contrast(seed: int, track_id: int) -> float:
    """Object ``track_id``'s contrast factor in scene ``seed``: 1, or low for :data:`_LOW_CONTRAST_SHARE` of objects.
    Its own generator (seeded by scene and id), so the world's random stream is left as the classic one."""
    rng = np.random.default_rng((seed, 0x5EED, track_id))
    return float(rng.uniform(*_LOW_CONTRAST)) if rng.random() < _LOW_CONTRAST_SHARE else 1.0


def toward(colors: np.ndarray, reference: np.ndarray, factor: float) -> np.ndarray:
    """``colors`` uint8 ``(n, 3)`` moved towards ``reference`` float32 ``(3,)``: ``ref + (c - ref) * factor``, uint8."""
    out = reference + (colors.astype(np.float32) - reference) * np.float32(factor)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def random_jpeg_quality(rng: np.random.Generator) -> int | None:
    """A scene's JPEG quality, or ``None`` (not compressed) for ``1 - _JPEG_SHARE`` of scenes."""
    quality = int(rng.integers(_JPEG_QUALITY[0], _JPEG_QUALITY[1] + 1))
    return quality if rng.random() < _JPEG_SHARE else None


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` uint8 ``(H, W, 3)`` RGB through a JPEG encode (4:2:0, ``quality`` 1..95) and decode."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling=2)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.ascontiguousarray(np.asarray(decoded.convert("RGB"), dtype=np.uint8))
