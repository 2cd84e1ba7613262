"""Hard negatives: static shapes that are none of the classes, never in the ground truth.

Ellipses (clearly elongated, so not circles), bars (long rectangles, not squares), rings,
crosses, blobs (unions of overlapping discs), crescents, pentagons and hexagons, textured and
coloured like the objects. A distractor is placed once per scene, at a depth ``z`` in [0, 1] like
the objects': behind some objects, in front of others (then it hides their pixels, and those
pixels leave the objects' GT masks). Rasterised as :mod:`pipeline.scenes.shapes` does (pixel
centre inside the shape, elementwise float32 arithmetic and ``sqrt`` only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.scenes.shapes import Appearance, Stamp, random_appearance, shade

DISTRACTOR_KINDS: tuple[str, ...] = ("ellipse", "bar", "ring", "cross", "blob", "crescent", "pentagon", "hexagon")

_MIN_ELONGATION = 1.8  # ellipses and bars are at least this much longer than wide: never mistakable for circles or squares
_BLOB_DISCS = 4  # discs united into one blob


@dataclass(frozen=True, eq=False)
class Distractor:
    """One static distractor: ``kind`` from :data:`DISTRACTOR_KINDS`, centre ``(x, y)`` and ``size``
    (its longest extent) in frame pixels, ``angle`` in radians, depth ``z`` (higher is nearer),
    shading from ``appearance`` (its ``label`` is 0: no class), and kind-specific ``params``."""

    kind: str
    x: float
    y: float
    size: float
    angle: float
    z: float
    appearance: Appearance
    params: tuple[float, ...]


def random_distractor(rng: np.random.Generator, width: int, height: int, min_size: float, max_size: float) -> Distractor:
    """A distractor anywhere in (or partly out of) a ``width x height`` frame; sizes in frame pixels."""
    kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
    size = float(math.exp(rng.uniform(math.log(min_size), math.log(max_size))))
    app = random_appearance(rng, 0, size)
    if kind in ("ellipse", "bar"):
        params: tuple[float, ...] = (float(rng.uniform(_MIN_ELONGATION, 5.0)),)
    elif kind == "ring":
        params = (float(rng.uniform(0.45, 0.8)),)  # inner / outer radius
    elif kind == "cross":
        params = (float(rng.uniform(0.18, 0.4)),)  # arm width / size
    elif kind == "crescent":
        params = (float(rng.uniform(0.25, 0.6)), float(rng.uniform(0.75, 1.0)))  # offset, radius of the bite
    elif kind == "blob":
        params = tuple(float(v) for v in rng.uniform(-0.3, 0.3, 2 * _BLOB_DISCS)) + tuple(
            float(v) for v in rng.uniform(0.18, 0.3, _BLOB_DISCS)
        )
    else:
        params = ()
    return Distractor(kind, float(rng.uniform(0, width)), float(rng.uniform(0, height)), size,
                      float(rng.uniform(0, 2 * math.pi)), float(rng.random()), app, params)


def _polygon(sides: int, radius: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside a regular polygon of circumradius ``radius``, a vertex up: half-planes at the apothem."""
    apothem = np.float32(radius * math.cos(math.pi / sides))
    inside = np.ones(u.shape, bool)
    for k in range(sides):
        a = math.pi / sides + 2 * math.pi * k / sides  # direction of edge k's outward normal
        inside &= u * np.float32(math.sin(a)) - v * np.float32(math.cos(a)) <= apothem
    return inside


def inside(d: Distractor, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bool mask of object-local points ``(u, v)`` (float32, same shape) inside distractor ``d``."""
    half = np.float32(d.size / 2.0)
    r2 = u * u + v * v
    if d.kind == "ellipse":
        minor = half / np.float32(d.params[0])
        return (u / half) ** 2 + (v / minor) ** 2 <= np.float32(1.0)
    if d.kind == "bar":
        return (np.abs(u) <= half) & (np.abs(v) <= half / np.float32(d.params[0]))
    if d.kind == "ring":
        return (r2 <= half * half) & (r2 >= (half * np.float32(d.params[0])) ** 2)
    if d.kind == "cross":
        arm = half * np.float32(d.params[0])
        return ((np.abs(u) <= half) & (np.abs(v) <= arm)) | ((np.abs(v) <= half) & (np.abs(u) <= arm))
    if d.kind == "crescent":
        offset, bite = half * np.float32(d.params[0]), half * np.float32(d.params[1])
        return (r2 <= half * half) & ((u - offset) ** 2 + v * v > bite * bite)
    if d.kind == "blob":
        n = _BLOB_DISCS
        out = np.zeros(u.shape, bool)
        for k in range(n):
            cu, cv = np.float32(d.params[2 * k]) * half * 2, np.float32(d.params[2 * k + 1]) * half * 2
            rad = np.float32(d.params[2 * n + k]) * half * 2
            out |= (u - cu) ** 2 + (v - cv) ** 2 <= rad * rad
        return out
    return _polygon(5 if d.kind == "pentagon" else 6, float(half), u, v)


def rasterize_distractor(d: Distractor, width: int, height: int) -> Stamp | None:
    """``d`` rasterised into a ``width x height`` frame (clipped); ``None`` when nothing is inside."""
    r = d.size + 1.0  # the blob's discs reach at most 0.73 size from the centre; every other kind 0.5
    x0, x1 = max(0, int(math.floor(d.x - r))), min(width, int(math.ceil(d.x + r)) + 1)
    y0, y1 = max(0, int(math.floor(d.y - r))), min(height, int(math.ceil(d.y + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - d.x)
    dy = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - d.y))[:, None]
    c, s = np.float32(math.cos(d.angle)), np.float32(math.sin(d.angle))
    u = c * dx + s * dy
    v = c * dy - s * dx
    mask = inside(d, u, v)
    if not mask.any():
        return None
    return Stamp(y0, y1, x0, x1, mask, shade(d.appearance, u[mask], v[mask]))
