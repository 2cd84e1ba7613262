"""Backgrounds of many kinds for the rich variety: flat, gradients, noise, textures, clutter.

Each builder returns float32 ``(height, width, 3)`` RGB in about [0, 255] (the caller clips and
rounds once); :func:`make_backdrop` picks a kind and returns the final uint8 image. Same rules as
:mod:`pipeline.scenes.background`: elementwise arithmetic, ``sqrt`` and ``numpy.random.Generator``
draws only, so frames are bit-identical on any CPU. Colours here may be as saturated as the
objects' (unlike the classic background): the model must tell objects by shape, not by colour.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable

import numpy as np

from pipeline.scenes.background import _resample_axis, _wave, hsv_to_rgb, make_background
from pipeline.scenes.config import BACKDROP_KINDS, BACKDROP_MIXES

NOISE_DISTRIBUTIONS: tuple[str, ...] = ("gaussian", "uniform", "laplace", "salt_pepper")

_CELL_MAX = 12.0  # px at 320x240: checker cells and dots at most this (the rich variety's objects start at 8 px)
_CLUTTER_ELONGATION = 2.5  # clutter is at least this much longer than thick: never a circle or a square


def random_color(rng: np.random.Generator) -> np.ndarray:
    """Any colour, muted or saturated, dark or light: float32 ``(3,)`` RGB in [0, 255]."""
    return hsv_to_rgb(float(rng.random()), float(rng.uniform(0.0, 1.0)), float(rng.uniform(0.12, 1.0)))


def _coords(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates: ``ys`` float32 ``(H, 1)``, ``xs`` float32 ``(1, W)``."""
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    return ys, xs


def flat(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """One colour."""
    img = np.empty((height, width, 3), np.float32)
    img[:] = random_color(rng)
    return img


def gradient(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """Two colours blended linearly along a random direction, or radially from a random centre."""
    c1, c2 = random_color(rng), random_color(rng)
    ys, xs = _coords(height, width)
    if rng.random() < 0.5:
        theta = float(rng.uniform(0, 2 * math.pi))
        along = xs * np.float32(math.cos(theta)) + ys * np.float32(math.sin(theta))
        lo, hi = float(along.min()), float(along.max())
        t = (along - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    else:
        cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        reach = np.float32(float(rng.uniform(0.4, 1.2)) * math.hypot(width, height))
        t = np.minimum(np.sqrt((xs - np.float32(cx)) ** 2 + (ys - np.float32(cy)) ** 2) / reach, np.float32(1.0))
    return c1 + t[:, :, None] * (c2 - c1)


def _noise_field(rng: np.random.Generator, shape: tuple[int, int, int], distribution: str) -> np.ndarray:
    """Zero-centred noise of about unit spread, float32 ``shape``."""
    if distribution == "gaussian":
        return rng.standard_normal(shape, dtype=np.float32)
    if distribution == "uniform":
        return rng.uniform(-1.7, 1.7, shape).astype(np.float32)
    if distribution == "laplace":
        return rng.laplace(0.0, 0.7, shape).astype(np.float32)
    draw = rng.random(shape[:2] + (1,))  # salt and pepper: a few pixels far off, the rest at 0
    density = float(rng.uniform(0.01, 0.08))
    return (np.where(draw < density / 2, -3.0, 0.0) + np.where(draw > 1 - density / 2, 3.0, 0.0)).astype(
        np.float32
    ) * np.ones((1, 1, shape[2]), np.float32)


def noise(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """A base colour plus noise of a random distribution, at a random scale (per pixel, or smooth over
    cells of 3 to 60 px), grey or coloured, of a random amplitude."""
    base = random_color(rng)
    distribution = NOISE_DISTRIBUTIONS[int(rng.integers(len(NOISE_DISTRIBUTIONS)))]
    channels = 3 if rng.random() < 0.5 else 1
    amplitude = float(rng.uniform(8, 50))
    cell = float(rng.choice([1.0, 3.0, 8.0, 20.0, 60.0])) * scale
    if cell <= 1.5 or distribution == "salt_pepper":
        field = _noise_field(rng, (height, width, channels), distribution)
    else:
        gh, gw = max(2, int(round(height / cell)) + 1), max(2, int(round(width / cell)) + 1)
        coarse = _noise_field(rng, (gh, gw, channels), distribution)
        field = smooth_noise_from(coarse, height, width)
    return base + field * np.float32(amplitude)


def smooth_noise_from(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """``grid`` ``(gh, gw, C)`` bilinearly interpolated to ``(height, width, C)`` (float32)."""
    return _resample_axis(_resample_axis(grid.astype(np.float32), height, 0), width, 1)


def texture(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """A periodic two-colour pattern: stripes, checker, dots or waves, at a random period and angle.

    Checker cells and dots stay small (<= _CELL_MAX px): a tiling, not a field of objects; a dot or a
    cell as large as an object would be an unlabelled circle or square."""
    c1, c2 = random_color(rng), random_color(rng)
    ys, xs = _coords(height, width)
    pattern = int(rng.integers(4))
    period = np.float32(float(rng.uniform(4, 40 if pattern in (0, 3) else _CELL_MAX)) * scale)
    theta = float(rng.uniform(0, math.pi))
    d = xs * np.float32(math.cos(theta)) + ys * np.float32(math.sin(theta))
    e = ys * np.float32(math.cos(theta)) - xs * np.float32(math.sin(theta))
    if pattern == 0:
        t = np.floor(d / period) % 2
    elif pattern == 1:
        t = (np.floor(d / period) + np.floor(e / period)) % 2
    elif pattern == 2:
        fu, fv = d / period - np.floor(d / period) - 0.5, e / period - np.floor(e / period) - 0.5
        t = (fu * fu + fv * fv <= np.float32(float(rng.uniform(0.04, 0.2)))).astype(np.float32)
    else:
        t = (_wave(d / period) + np.float32(1.0)) * np.float32(0.5)
    return c1 + t.astype(np.float32)[:, :, None] * (c2 - c1)


def clutter(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """A flat or gradient base strewn with many elongated rectangles, ellipses and lines of random colours
    (never round or square: those would be unlabelled circles and squares)."""
    img = (flat if rng.random() < 0.5 else gradient)(rng, width, height, scale)
    ys, xs = _coords(height, width)
    for _ in range(int(rng.integers(15, 60))):
        color = random_color(rng)
        cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        length = float(rng.uniform(3, 30)) * scale
        thickness = length / float(rng.uniform(_CLUTTER_ELONGATION, 12.0))
        phi = float(rng.uniform(0, math.pi))
        along = (xs - np.float32(cx)) * np.float32(math.cos(phi)) + (ys - np.float32(cy)) * np.float32(math.sin(phi))
        across = (ys - np.float32(cy)) * np.float32(math.cos(phi)) - (xs - np.float32(cx)) * np.float32(math.sin(phi))
        if rng.random() < 0.5:  # a bar or a line
            inside = (np.abs(along) <= np.float32(length / 2)) & (np.abs(across) <= np.float32(max(0.6, thickness / 2)))
        else:  # an ellipse
            inside = (along / np.float32(length / 2)) ** 2 + (across / np.float32(max(0.6, thickness / 2))) ** 2 <= 1.0
        img[inside] = color
    return img


def _classic(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    return make_background(rng, width, height, scale).astype(np.float32)


_BUILDERS: dict[str, Callable[[np.random.Generator, int, int, float], np.ndarray]] = {
    "classic": _classic,
    "flat": flat,
    "gradient": gradient,
    "noise": noise,
    "texture": texture,
    "clutter": clutter,
}


def draw_kind(rng: np.random.Generator, mix: str = "even") -> str:
    """One of :data:`BACKDROP_KINDS`, drawn with ``BACKDROP_MIXES[mix]``'s weights (one integer draw: with
    ``"even"``'s weights of 1 it is the same draw, so the same kind, as before mixes existed)."""
    bounds = list(itertools.accumulate(BACKDROP_MIXES[mix]))  # kind k owns tickets bounds[k-1] .. bounds[k] - 1
    return BACKDROP_KINDS[bisect.bisect_right(bounds, int(rng.integers(bounds[-1])))]


def make_backdrop(rng: np.random.Generator, width: int, height: int, scale: float, kind: str | None = None,
                  mix: str = "even") -> np.ndarray:
    """A static background of ``kind`` (``None``: drawn with the weights of ``BACKDROP_MIXES[mix]``), uint8
    ``(height, width, 3)`` RGB, C-contiguous, with a faint static grain on every kind."""
    if kind is None:
        kind = draw_kind(rng, mix)
    img = _BUILDERS[kind](rng, width, height, scale)
    img = img + rng.uniform(-3.0, 3.0, (height, width, 1)).astype(np.float32)
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
