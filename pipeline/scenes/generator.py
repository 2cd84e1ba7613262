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
- Distractors (rich variety, :mod:`pipeline.scenes.distractors`) are never instances; one
  drawn in front of an object hides its pixels like a nearer object does. Lighting, contrast,
  blur, noise and JPEG compression change pixel values only, never the masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.scenes.background import SensorNoise, develop, make_background
from pipeline.scenes.config import CLASS_NAMES, SceneConfig
from pipeline.scenes.effects import jpeg_round_trip, object_contrast, toward
from pipeline.scenes.motion import World
from pipeline.scenes.shapes import Stamp, rasterize
from pipeline.scenes.style import SceneStyle, classic_style, draw_style


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
        # a fifth child for the rich variety: the first four (and so the classic scenes) stay as they were
        bg_seq, noise_bank_seq, world_seq, frame_noise_seq, style_seq = np.random.SeedSequence(config.seed).spawn(5)
        if config.rich:
            self.style: SceneStyle = draw_style(np.random.default_rng(style_seq), config)
        else:
            background = make_background(np.random.default_rng(bg_seq), config.width, config.height, config.scale)
            self.style = classic_style(background, config)
        self._background = self.style.background
        self._noise = SensorNoise(np.random.default_rng(noise_bank_seq), config.width, config.height,
                                  self.style.noise_sigma)
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

    def _layers(self, world: World) -> list[tuple[float, int, int, Stamp]]:
        """What is drawn, far to near: ``(z, track id, label, stamp)``; distractors have track id and label 0."""
        cfg = self.config
        layers = [(z, 0, 0, stamp) for z, stamp in self.style.distractors]
        for obj in world.objects:
            stamp = rasterize(obj.appearance, obj.x, obj.y, obj.angle, cfg.width, cfg.height)
            if stamp is not None:
                layers.append((obj.z, obj.track_id, obj.appearance.label, self._contrasted(stamp, obj.track_id)))
        layers.sort(key=lambda layer: (layer[0], layer[1]))
        return layers

    def _contrasted(self, stamp: Stamp, track_id: int) -> Stamp:
        """``stamp`` with its colours pulled towards the background under it (rich variety, low-contrast objects)."""
        if not self.config.rich:
            return stamp
        factor = object_contrast(self.config.seed, track_id)
        if factor == 1.0:
            return stamp
        under = self._background[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1][stamp.mask]
        mean = under.sum(axis=0, dtype=np.int64).astype(np.float32) / np.float32(len(under))  # integer sum: exact
        return Stamp(stamp.y0, stamp.y1, stamp.x0, stamp.x1, stamp.mask, toward(stamp.colors, mean, factor))

    def _render(self, index: int, world: World, noise_rng: np.random.Generator) -> SceneFrame:
        cfg = self.config
        h, w = cfg.height, cfg.width
        canvas = self._background.copy()
        owner = np.zeros((h, w), np.uint16)  # 1 + position in draw order of the layer seen at each pixel
        drawn: list[tuple[int, int, int, Stamp]] = []  # objects only: (owner value, track id, label, stamp)
        for k, (_, track_id, label, stamp) in enumerate(self._layers(world), start=1):
            canvas[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1][stamp.mask] = stamp.colors
            owner[stamp.y0 : stamp.y1, stamp.x0 : stamp.x1][stamp.mask] = k
            if label:
                drawn.append((k, track_id, label, stamp))
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
        return SceneFrame(index=index, image=self._camera(canvas, index, noise_rng), instances=tuple(instances))

    def _camera(self, canvas: np.ndarray, index: int, noise_rng: np.random.Generator) -> np.ndarray:
        """Light, blur, sensor noise, compression: the composed ``canvas`` as the camera delivers it."""
        style = self.style
        if style.lighting is not None:
            canvas = style.lighting.apply(canvas, index)
        image = develop(canvas, style.blur, self._noise.sample(noise_rng))
        if style.jpeg_quality is not None:
            image = jpeg_round_trip(image, style.jpeg_quality)
        return image
