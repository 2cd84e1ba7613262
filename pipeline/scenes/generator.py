"""The scene generator: frames with exact, occlusion-aware ground truth.

Ground truth rules:

- A ``GtInstance`` is the *visible* part of an object, after occlusion by nearer
  objects (higher z) and clipping to the frame, so the masks of one frame are
  pairwise disjoint. Its box is the bounding box of that visible mask.
- An object with fewer than ``SceneConfig.min_visible_area`` visible pixels (mostly
  hidden, or just entering/leaving) is left out of that frame's GT, though it still
  exists and keeps its ``track_id`` for when it shows again.
- ``track_id`` is 1-based and given in spawn order; an object keeps it for its whole
  life and it is never reused. An id may never show up in GT (an object that stayed
  hidden); ids in GT are not necessarily contiguous.
- Instances are listed by increasing ``track_id``.
- Masks are exact for the image before blur and noise (pixel centre inside the shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.scenes.background import SensorNoise, develop, make_background
from pipeline.scenes.config import CLASS_NAMES, SceneConfig
from pipeline.scenes.motion import World
from pipeline.scenes.shapes import Stamp, rasterize


@dataclass(frozen=True, eq=False)
class GtInstance:
    """One visible object in one frame.

    ``mask`` is bool ``(H, W)``, True on the object's visible pixels only. ``box`` is
    ``(x1, y1, x2, y2)`` of that mask in pixels, float, with ``x2``/``y2`` exclusive
    (``x2 = max_x + 1``), so ``x2 - x1`` is the mask's width in pixels. ``label`` indexes
    ``CLASS_NAMES`` (1..4) and ``class_name`` is ``CLASS_NAMES[label]``.
    """

    track_id: int
    label: int
    class_name: str
    mask: np.ndarray
    box: tuple[float, float, float, float]

    @property
    def area(self) -> int:
        """Visible pixels."""
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True, eq=False)
class SceneFrame:
    """One frame: ``image`` uint8 ``(H, W, 3)`` RGB, C-contiguous; ``index`` 0-based; GT ``instances``."""

    index: int
    image: np.ndarray
    instances: tuple[GtInstance, ...]


class SceneGenerator:
    """Frames of the scene ``config`` describes; iterate to get them.

    Each ``iter()`` starts the same deterministic sequence again (bit-identical frames and
    GT for the same config). Finite configs give ``config.num_frames`` frames; endless ones
    (``num_frames=None``) never stop. The static background and the sensor-noise bank are
    built once, here.
    """

    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        bg_seq, noise_bank_seq, world_seq, frame_noise_seq = np.random.SeedSequence(config.seed).spawn(4)
        self._background = make_background(np.random.default_rng(bg_seq), config.width, config.height, config.scale)
        self._noise = SensorNoise(np.random.default_rng(noise_bank_seq), config.width, config.height, config.noise_sigma)
        self._world_seq = world_seq
        self._frame_noise_seq = frame_noise_seq

    @property
    def background(self) -> np.ndarray:
        """The static background, uint8 ``(H, W, 3)`` RGB (a copy)."""
        return self._background.copy()

    def __iter__(self) -> Iterator[SceneFrame]:
        world = World(self.config, np.random.default_rng(self._world_seq))
        noise_rng = np.random.default_rng(self._frame_noise_seq)
        index = 0
        while self.config.num_frames is None or index < self.config.num_frames:
            if index > 0:
                world.step()
            yield self._render(index, world, noise_rng)
            index += 1

    def _render(self, index: int, world: World, noise_rng: np.random.Generator) -> SceneFrame:
        cfg = self.config
        h, w = cfg.height, cfg.width
        canvas = self._background.copy()
        owner = np.zeros((h, w), np.uint8)  # 1 + position in draw order of the object seen at each pixel
        drawn: list[tuple[int, int, int, Stamp]] = []  # (owner value, track id, label, stamp)
        for k, obj in enumerate(sorted(world.objects, key=lambda o: (o.z, o.track_id)), start=1):
            stamp = rasterize(obj.appearance, obj.x, obj.y, obj.angle, w, h)
            if stamp is None:
                continue
            canvas[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1][stamp.mask] = stamp.colors
            owner[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1][stamp.mask] = k
            drawn.append((k, obj.track_id, obj.appearance.label, stamp))
        instances = []
        for k, track_id, label, st in drawn:
            visible = owner[st.y0 : st.y1, st.x0 : st.x1] == k
            if np.count_nonzero(visible) < cfg.min_visible_area:
                continue
            rows = np.flatnonzero(visible.any(axis=1))
            cols = np.flatnonzero(visible.any(axis=0))
            ry0, ry1, cx0, cx1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            mask = np.zeros((h, w), bool)
            mask[st.y0 + ry0 : st.y0 + ry1, st.x0 + cx0 : st.x0 + cx1] = visible[ry0:ry1, cx0:cx1]
            box = (float(st.x0 + cx0), float(st.y0 + ry0), float(st.x0 + cx1), float(st.y0 + ry1))
            instances.append(GtInstance(track_id, label, CLASS_NAMES[label], mask, box))
        instances.sort(key=lambda g: g.track_id)
        image = develop(canvas, cfg.blur, self._noise.sample(noise_rng))
        return SceneFrame(index=index, image=image, instances=tuple(instances))
