"""A scene's look, drawn once per scene: background, distractors, light, camera and compression.

``classic_style`` is the classic variety's (its background, the config's noise and blur, nothing
else); ``draw_style`` draws the rich variety's from its own random stream (the fifth child of the
scene seed), so the objects' motion and looks stay those of the classic stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.scenes.backdrops import make_backdrop
from pipeline.scenes.config import SceneConfig
from pipeline.scenes.distractors import random_distractor, rasterize_distractor
from pipeline.scenes.effects import Lighting, random_jpeg_quality, random_lighting
from pipeline.scenes.shapes import Stamp

_MAX_DISTRACTORS = 6  # per scene, 0..this (uniform): as many as the objects at most, so they do not crowd them out
_DISTRACTOR_SIZES = (6.0, 110.0)  # px at 320x240, log-uniform: from specks to larger than most objects
_NOISE_SCALE = (0.0, 2.5)  # rich: per-scene sensor noise, this range times config.noise_sigma
_LIT_SHARE = 0.7  # rich: scenes under a lighting change (the rest under plain light)


@dataclass(frozen=True, eq=False)
class SceneStyle:
    """``background`` uint8 ``(H, W, 3)``; ``distractors`` ``(z, stamp)`` pairs; ``lighting`` or ``None``;
    the camera's ``noise_sigma`` (grey levels) and ``blur``; ``jpeg_quality`` or ``None`` (uncompressed)."""

    background: np.ndarray
    distractors: tuple[tuple[float, Stamp], ...]
    lighting: Lighting | None
    noise_sigma: float
    blur: bool
    jpeg_quality: int | None


def classic_style(background: np.ndarray, config: SceneConfig) -> SceneStyle:
    """The classic variety: ``background``, the config's camera, no distractors, light or compression."""
    return SceneStyle(background, (), None, float(config.noise_sigma), bool(config.blur), None)


def draw_style(rng: np.random.Generator, config: SceneConfig) -> SceneStyle:
    """The rich variety's look for ``config`` (only ``rng`` is drawn from)."""
    w, h, s = config.width, config.height, config.scale
    background = make_backdrop(rng, w, h, s, mix=config.backdrops)
    distractors = []
    for _ in range(int(rng.integers(0, _MAX_DISTRACTORS + 1))):
        d = random_distractor(rng, w, h, _DISTRACTOR_SIZES[0] * s, _DISTRACTOR_SIZES[1] * s)
        stamp = rasterize_distractor(d, w, h)
        if stamp is not None:
            distractors.append((d.z, stamp))
    lighting = random_lighting(rng, w, h) if rng.random() < _LIT_SHARE else None
    noise_sigma = float(config.noise_sigma) * float(rng.uniform(*_NOISE_SCALE))
    blur = bool(config.blur) and bool(rng.random() < 0.7)
    return SceneStyle(background, tuple(distractors), lighting, min(noise_sigma, 40.0), blur, random_jpeg_quality(rng))
