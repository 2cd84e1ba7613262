"""Backgrounds, smooth noise, and the per-frame camera model (blur + sensor noise), numpy only.

The background is built once per scene (it is static); per frame only a copy, the
objects, a separable blur and a slice of a precomputed noise bank are paid for.

Bit-identical output on any machine: only elementwise arithmetic, ``sqrt`` and
``numpy.random.Generator`` draws touch arrays (no BLAS, no numpy ``sin``/``exp``,
whose SIMD implementations differ between CPUs); scalar trigonometry uses ``math``.
"""

from __future__ import annotations

import math

import numpy as np

_NOISE_BANK = 4  # precomputed sensor-noise fields; each frame uses one, at a random offset
_NOISE_PAD = 32  # the fields are this much larger than the frame, for the random offsets
FIXED_POINT_SHIFT = 4  # the frame is composed in int16 with 4 fractional bits (x16)


def _resample_axis(grid: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``grid`` along ``axis`` to ``n_out`` samples, the first and last
    grid values landing on the first and last output samples. Elementwise float32 arithmetic
    only (no BLAS, no transcendental functions), so results are bit-identical on every CPU."""
    n_in = grid.shape[axis]
    if n_in == 1:
        return np.repeat(grid, n_out, axis=axis)
    pos = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / max(n_out - 1, 1))
    lo = np.minimum(np.floor(pos).astype(np.int64), n_in - 2)
    frac = (pos - lo).astype(np.float32)
    shape = [1] * grid.ndim
    shape[axis] = n_out
    frac = frac.reshape(shape)
    a = np.take(grid, lo, axis=axis)
    b = np.take(grid, lo + 1, axis=axis)
    return a + (b - a) * frac


def smooth_noise(rng: np.random.Generator, height: int, width: int, grid_h: int, grid_w: int, channels: int) -> np.ndarray:
    """Smooth random field, float32 ``(height, width, channels)``: standard-normal values on a
    ``grid_h x grid_w`` grid, bilinearly interpolated (so roughly unit variance, low frequency)."""
    grid = rng.standard_normal((grid_h, grid_w, channels), dtype=np.float32)
    return _resample_axis(_resample_axis(grid, height, 0), width, 1)


def _wave(phase: np.ndarray) -> np.ndarray:
    """A sine-like periodic wave in [-1, 1], period 1, from arithmetic only (bit-identical on any CPU)."""
    tri = np.float32(4.0) * np.abs(phase - np.floor(phase) - np.float32(0.5)) - np.float32(1.0)
    return tri * (np.float32(1.5) - np.float32(0.5) * tri * tri)


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (each in [0, 1]) as float32 RGB ``(3,)`` in [0, 255]."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, np.float32) * 255.0


def make_background(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """A static textured background, uint8 ``(height, width, 3)`` RGB, C-contiguous.

    A muted base colour, low-frequency luminance and colour noise, a mid-frequency layer,
    one or two kinds of structure (straight lines, a tiled floor, wavy grain) and a fixed
    fine grain. Deliberately low in saturation so that the coloured objects stay learnable.
    """
    base = hsv_to_rgb(float(rng.random()), float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.3, 0.62)))
    img = np.empty((height, width, 3), np.float32)
    img[:] = base
    cell = 80.0 * scale  # low-frequency grid spacing
    gh, gw = max(2, int(round(height / cell)) + 1), max(2, int(round(width / cell)) + 1)
    img += smooth_noise(rng, height, width, gh, gw, 1) * float(rng.uniform(14, 30))
    img += smooth_noise(rng, height, width, gh, gw, 3) * float(rng.uniform(4, 10))
    cell = 20.0 * scale  # mid-frequency
    gh, gw = max(2, int(round(height / cell)) + 1), max(2, int(round(width / cell)) + 1)
    img += smooth_noise(rng, height, width, gh, gw, 1) * float(rng.uniform(3, 7))

    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :]
    kinds = rng.permutation(3)[: int(rng.integers(1, 3))]
    for kind in kinds:
        if kind == 0:  # a few long straight lines (cables, edges, cracks)
            for _ in range(int(rng.integers(2, 6))):
                theta = float(rng.uniform(0, np.pi))
                px, py = float(rng.uniform(0, width)), float(rng.uniform(0, height))
                dist = np.abs((xs - px) * np.float32(math.sin(theta)) - (ys - py) * np.float32(math.cos(theta)))
                half = float(rng.uniform(0.5, 1.8)) * scale
                weight = np.clip(half + 0.5 - dist, 0.0, 1.0)
                img += (weight * float(rng.choice([-1.0, 1.0]) * rng.uniform(10, 24)))[:, :, None]
        elif kind == 1:  # a tiled floor: a faint grid of grout lines
            period = float(rng.uniform(28, 60)) * scale
            ox, oy = float(rng.uniform(0, period)), float(rng.uniform(0, period))
            gx = np.abs(((xs + ox) % period) - period / 2)
            gy = np.abs(((ys + oy) % period) - period / 2)
            edge = np.maximum(gx, gy) - (period / 2 - 1.0 * scale)
            weight = np.clip(edge + 0.5, 0.0, 1.0)
            img -= (weight * float(rng.uniform(8, 18)))[:, :, None]
        else:  # wavy grain (wood, fabric), warped by smooth noise
            period = float(rng.uniform(6, 16)) * scale
            theta = float(rng.uniform(0, np.pi))
            warp = smooth_noise(rng, height, width, 4, 5, 1)[:, :, 0] * np.float32(period)
            along = xs * np.float32(math.cos(theta)) + ys * np.float32(math.sin(theta))
            img += (_wave((along + warp) / np.float32(period)) * np.float32(rng.uniform(3, 8)))[:, :, None]
    img += rng.uniform(-4.0, 4.0, (height, width, 1)).astype(np.float32)  # static fine grain
    return np.ascontiguousarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))


class SensorNoise:
    """Per-frame Gaussian sensor noise from a small precomputed bank (cheap to draw).

    ``sample`` returns an int16 ``(height, width, 3)`` view holding ``noise * 16 + 8``
    (fixed point with 4 fractional bits, plus the rounding half), to be added to a x16 frame.
    """

    def __init__(self, rng: np.random.Generator, width: int, height: int, sigma: float) -> None:
        self._height, self._width = height, width
        self._pad = _NOISE_PAD
        one = 1 << (FIXED_POINT_SHIFT - 1)
        if sigma > 0:
            shape = (height + self._pad, width + self._pad, 3)
            self._bank = np.empty((_NOISE_BANK, *shape), np.int16)
            for k in range(_NOISE_BANK):  # one field at a time: the float32 temporary stays small
                noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma * (1 << FIXED_POINT_SHIFT))
                self._bank[k] = np.rint(noise) + one
        else:
            self._bank = np.full((1, height + self._pad, width + self._pad, 3), one, np.int16)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """A noise field for one frame: int16 ``(height, width, 3)`` view, in x16 fixed point."""
        k = int(rng.integers(self._bank.shape[0]))
        dy, dx = (int(v) for v in rng.integers(self._pad, size=2))
        return self._bank[k, dy : dy + self._height, dx : dx + self._width]


def develop(canvas: np.ndarray, blur: bool, noise: np.ndarray) -> np.ndarray:
    """The camera: optional [1,2,1]x[1,2,1]/16 blur (edge pixels replicated), then the sensor noise.

    ``canvas`` uint8 ``(H, W, 3)``; ``noise`` int16 ``(H, W, 3)`` from ``SensorNoise.sample``.
    Returns a new C-contiguous uint8 ``(H, W, 3)`` frame.
    """
    x = canvas.astype(np.int16)
    if blur:
        h = x * 2
        h[:, 1:] += x[:, :-1]
        h[:, :-1] += x[:, 1:]
        h[:, 0] += x[:, 0]
        h[:, -1] += x[:, -1]
        x = h * 2
        x[1:] += h[:-1]
        x[:-1] += h[1:]
        x[0] += h[0]
        x[-1] += h[-1]
    else:
        x <<= FIXED_POINT_SHIFT
    x += noise
    x >>= FIXED_POINT_SHIFT
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)
