"""Shapes and their textures, rasterised only inside each shape's bounding box.

Masks are computed with elementwise float32 arithmetic and ``sqrt`` only, so they are
bit-identical on any CPU. Coordinates: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)`` and is sampled at its
centre ``(x + 0.5, y + 0.5)``; a shape covers a pixel when that centre is inside it
(so masks are binary, with no partial coverage). Object-local coordinates ``(u, v)``
are the pixel centre relative to the shape's centre, rotated by minus its angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.scenes.background import hsv_to_rgb, smooth_noise

CIRCLE, SQUARE, TRIANGLE, STAR = 1, 2, 3, 4  # labels, indices into CLASS_NAMES
TEXTURES: tuple[str, ...] = ("solid", "stripes", "checker", "gradient", "noise")
_STAR_INNER = 0.48  # inner / outer radius of the five-pointed star (0.38 is the classic; fatter is easier to segment)
_NOISE_TABLE = 24  # side of an object's noise-texture table (cells across the object)


@dataclass(frozen=True, eq=False)
class Appearance:
    """What an object looks like; fixed for its life.

    ``size`` is in frame pixels: the circle's diameter, the square's side, the
    triangle's side, the star's outer diameter. ``color1``/``color2`` are float32 ``(3,)``
    RGB in [0, 255]; the texture blends them by a per-pixel weight in [0, 1]. ``period``
    (px) and ``direction`` (radians, object-local) drive stripes, checker and gradient;
    ``noise`` is a float32 ``(T, T)`` table in [0, 1] for the noise texture (else ``None``).
    """

    label: int
    size: float
    texture: str
    color1: np.ndarray
    color2: np.ndarray
    period: float
    direction: float
    noise: np.ndarray | None

    @property
    def radius(self) -> float:
        """Circumradius in pixels: the shape stays within this distance of its centre at any angle."""
        return circumradius(self.label, self.size)


def circumradius(label: int, size: float) -> float:
    """Distance from the centre to the farthest point of the shape, pixels."""
    if label == SQUARE:
        return size * math.sqrt(0.5)
    if label == TRIANGLE:
        return size / math.sqrt(3.0)
    return size / 2.0


def random_appearance(rng: np.random.Generator, label: int, size: float) -> Appearance:
    """Draw a colour pair and a texture for a shape of ``label`` and ``size`` (pixels)."""
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    hue = float(rng.random())
    color1 = hsv_to_rgb(hue, float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.55, 1.0)))
    if rng.random() < 0.5:  # a second hue
        hue2 = (hue + float(rng.uniform(0.15, 0.5)) * float(rng.choice([-1.0, 1.0]))) % 1.0
        color2 = hsv_to_rgb(hue2, float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.45, 1.0)))
    else:  # the same hue, darker
        color2 = color1 * np.float32(rng.uniform(0.3, 0.6))
    period = max(2.5, size * float(rng.uniform(0.12, 0.3)))
    noise = None
    if texture == "noise":
        field = smooth_noise(rng, _NOISE_TABLE, _NOISE_TABLE, 5, 5, 1)[:, :, 0]
        field += rng.standard_normal(field.shape).astype(np.float32) * 0.35
        lo, hi = float(field.min()), float(field.max())
        noise = ((field - lo) / max(hi - lo, 1e-6)).astype(np.float32)
    return Appearance(
        label=label,
        size=size,
        texture=texture,
        color1=color1,
        color2=color2,
        period=period,
        direction=float(rng.uniform(0, math.pi)),
        noise=noise,
    )


@dataclass(frozen=True, eq=False)
class Stamp:
    """A shape rasterised into the frame: ``mask`` bool ``(y1 - y0, x1 - x0)`` covers
    ``frame[y0:y1, x0:x1]``; ``colors`` uint8 ``(mask.sum(), 3)`` are the RGB values of the
    covered pixels in row-major order (as ``frame[y0:y1, x0:x1][mask]`` lists them)."""

    y0: int
    y1: int
    x0: int
    x1: int
    mask: np.ndarray
    colors: np.ndarray


def rasterize(app: Appearance, cx: float, cy: float, angle: float, width: int, height: int) -> Stamp | None:
    """Rasterise ``app`` centred at ``(cx, cy)`` (pixels), rotated by ``angle`` (radians,
    clockwise on screen), clipped to a ``width x height`` frame; ``None`` when nothing is inside."""
    r = app.radius + 1.0
    x0, x1 = max(0, int(math.floor(cx - r))), min(width, int(math.ceil(cx + r)) + 1)
    y0, y1 = max(0, int(math.floor(cy - r))), min(height, int(math.ceil(cy + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - cx)
    dy = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - cy))[:, None]
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = c * dx + s * dy
    v = c * dy - s * dx
    mask = _inside(app.label, app.size, u, v)
    if not mask.any():
        return None
    um, vm = u[mask], v[mask]
    return Stamp(y0, y1, x0, x1, mask, shade(app, um, vm))


def _inside(label: int, size: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bool mask of object-local points ``(u, v)`` (float32, same shape) inside the shape."""
    if label == CIRCLE:
        return u * u + v * v <= np.float32((size / 2.0) ** 2)
    if label == SQUARE:
        half = np.float32(size / 2.0)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if label == TRIANGLE:
        # Equilateral, apex up (-v) at angle 0: three half-planes at the inradius.
        inr = np.float32(size / (2.0 * math.sqrt(3.0)))
        h = np.float32(math.sqrt(3.0) / 2.0)
        return (v <= inr) & (h * u - 0.5 * v <= inr) & (-h * u - 0.5 * v <= inr)
    if label == STAR:
        # Project onto the direction of the nearest outer point (the largest projection), giving
        # local coordinates (px, py >= 0) in the wedge [0, pi/5] from that point; then test against
        # the edge from the outer point (R, 0) to the inner point (r cos pi/5, r sin pi/5).
        # Arithmetic and sqrt only, so the mask is bit-identical on any CPU.
        outer = size / 2.0
        inner = outer * _STAR_INNER
        half_sector = math.pi / 5.0
        px = -v  # outer points at angles 2 pi k / 5 from "up" (-v), clockwise on screen; k = 0 is up
        for k in range(1, 5):
            a = 2.0 * half_sector * k
            px = np.maximum(px, u * np.float32(math.sin(a)) - v * np.float32(math.cos(a)))
        py = np.sqrt(np.maximum(u * u + v * v - px * px, np.float32(0.0)))
        bx, by = inner * math.cos(half_sector), inner * math.sin(half_sector)
        return np.float32(bx - outer) * py - np.float32(by) * (px - np.float32(outer)) >= 0
    raise ValueError(f"no shape for label {label}")


def shade(app: Appearance, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(n, 3)`` of the texture at object-local points ``u``, ``v`` (float32 ``(n,)``)."""
    if app.texture == "solid":
        return np.broadcast_to(np.rint(app.color1).astype(np.uint8), (u.shape[0], 3))
    d = u * np.float32(math.cos(app.direction)) + v * np.float32(math.sin(app.direction))
    if app.texture == "stripes":
        t = np.floor(d / np.float32(app.period)) % 2
    elif app.texture == "checker":
        e = v * np.float32(math.cos(app.direction)) - u * np.float32(math.sin(app.direction))
        t = (np.floor(d / np.float32(app.period)) + np.floor(e / np.float32(app.period))) % 2
    elif app.texture == "gradient":
        t = np.clip(d / np.float32(2.0 * app.radius) + np.float32(0.5), 0.0, 1.0)
    else:  # noise
        table = app.noise if app.noise is not None else np.zeros((1, 1), np.float32)
        n = table.shape[0]
        k = np.float32(n / (2.0 * app.radius))
        r = np.float32(app.radius)
        iu = np.clip(((u + r) * k).astype(np.int32), 0, n - 1)
        iv = np.clip(((v + r) * k).astype(np.int32), 0, n - 1)
        t = table[iv, iu]
    rgb = app.color1 + t[:, None].astype(np.float32) * (app.color2 - app.color1)
    return (rgb + np.float32(0.5)).astype(np.uint8)
