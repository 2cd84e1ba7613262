"""Objects in the scene: spawning, motion (velocity plus bounded, slowly varying acceleration), leaving.

Units inside this module are frame pixels and frames (the config's per-second values
at 320x240 are converted once, in ``MotionParams``).

Life of an object: the first objects are placed anywhere in the frame (rich variety: a third of
them across an edge, partly outside); later ones
spawn just outside an edge (their bounding circle already touching the frame), heading
into it. An object is removed, for good, on the first step after its bounding box no
longer meets the frame. While fewer than ``min_objects`` exist, new ones spawn at once;
while fewer than ``max_objects`` exist, one spawns with probability ``spawn_rate / fps``
per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.scenes.config import CLASS_NAMES, SceneConfig
from pipeline.scenes.shapes import Appearance, random_appearance

_ACCEL_TIME_S = 1.0  # correlation time of an object's acceleration, seconds
_EDGE_SHARE = 0.35  # rich variety: first objects centred across a frame edge (partly outside): the clipped cases, often


@dataclass(frozen=True)
class MotionParams:
    """The config's motion values in frame units (pixels, frames, radians)."""

    width: int
    height: int
    min_size: float  # px
    max_size: float  # px
    min_speed: float  # px / frame
    max_speed: float  # px / frame
    max_accel: float  # px / frame^2
    accel_keep: float  # per-frame factor of the acceleration's memory, in (0, 1)
    rotate: bool  # random initial angles
    max_spin: float  # rad / frame
    spawn_prob: float  # per frame
    min_objects: int
    max_objects: int
    log_sizes: bool = False  # sizes log-uniform in [min_size, max_size] (small and large equally often); else uniform
    edge_share: float = 0.0  # share of the first objects centred across a frame edge

    @classmethod
    def from_config(cls, config: SceneConfig) -> "MotionParams":
        s, fps = config.scale, config.fps
        min_size, max_size = config.size_range
        return cls(
            width=config.width,
            height=config.height,
            min_size=min_size * s,
            max_size=max_size * s,
            min_speed=config.min_speed * s / fps,
            max_speed=config.max_speed * s / fps,
            max_accel=config.max_accel * s / (fps * fps),
            accel_keep=math.exp(-1.0 / (_ACCEL_TIME_S * fps)),
            rotate=config.rotate,
            max_spin=math.radians(config.max_spin) / fps if config.rotate else 0.0,
            spawn_prob=min(1.0, config.spawn_rate / fps),
            min_objects=config.min_objects,
            max_objects=config.max_objects,
            log_sizes=config.rich,
            edge_share=_EDGE_SHARE if config.rich else 0.0,
        )


@dataclass(slots=True, eq=False)
class SceneObject:
    """One object's mutable state. Position ``(x, y)`` is its centre in pixels (continuous
    coordinates, the frame spans ``[0, width] x [0, height]``); velocity in px/frame,
    acceleration in px/frame^2, ``angle`` in radians, ``spin`` in radians/frame. Higher
    ``z`` is nearer the camera (drawn later, occludes lower ``z``)."""

    track_id: int
    appearance: Appearance
    x: float
    y: float
    vx: float
    vy: float
    ax: float
    ay: float
    angle: float
    spin: float
    z: float

    def meets_frame(self, width: int, height: int) -> bool:
        """Whether the bounding box of the bounding circle overlaps the frame."""
        r = self.appearance.radius
        return self.x + r > 0 and self.x - r < width and self.y + r > 0 and self.y - r < height


class World:
    """The set of live objects and its evolution; all randomness from one ``np.random.Generator``."""

    def __init__(self, config: SceneConfig, rng: np.random.Generator) -> None:
        self._p = MotionParams.from_config(config)
        self._rng = rng
        self._next_id = 1
        self._class_bag: list[int] = []
        self.objects: list[SceneObject] = []
        count = int(rng.integers(self._p.min_objects, self._p.max_objects + 1))
        for _ in range(count):
            app = self._new_appearance()
            x, y = float(rng.uniform(0, self._p.width)), float(rng.uniform(0, self._p.height))
            if self._p.edge_share > 0 and rng.random() < self._p.edge_share:
                x, y = self._across_edge(x, y, app.radius)
            self._add(app, x, y, float(rng.uniform(0, 2 * math.pi)))

    def _across_edge(self, x: float, y: float, radius: float) -> tuple[float, float]:
        """``(x, y)`` moved onto a random frame edge, then up to half the radius in or out of the frame."""
        p, rng = self._p, self._rng
        edge = int(rng.integers(4))  # 0 top, 1 right, 2 bottom, 3 left
        d = radius * float(rng.uniform(-0.5, 0.5))
        return [(x, d), (p.width + d, y), (x, p.height + d), (d, y)][edge]

    def step(self) -> None:
        """Advance one frame: move, drop objects that left, spawn new ones."""
        p, rng = self._p, self._rng
        accel_noise = p.max_accel * 0.6 * math.sqrt(1.0 - p.accel_keep**2)
        for obj in self.objects:
            ax, ay = rng.normal(0.0, accel_noise, 2) if accel_noise > 0 else (0.0, 0.0)
            obj.ax = obj.ax * p.accel_keep + float(ax)
            obj.ay = obj.ay * p.accel_keep + float(ay)
            a = math.hypot(obj.ax, obj.ay)
            if a > p.max_accel:
                obj.ax, obj.ay = obj.ax * p.max_accel / a, obj.ay * p.max_accel / a
            obj.vx += obj.ax
            obj.vy += obj.ay
            speed = math.hypot(obj.vx, obj.vy)
            if speed > p.max_speed:
                obj.vx, obj.vy = obj.vx * p.max_speed / speed, obj.vy * p.max_speed / speed
            elif speed < p.min_speed:
                if speed == 0.0:
                    obj.vx, obj.vy = p.min_speed, 0.0
                else:
                    obj.vx, obj.vy = obj.vx * p.min_speed / speed, obj.vy * p.min_speed / speed
            obj.x += obj.vx
            obj.y += obj.vy
            obj.angle = (obj.angle + obj.spin) % (2 * math.pi)
        self.objects = [o for o in self.objects if o.meets_frame(p.width, p.height)]
        while len(self.objects) < p.min_objects:
            self._spawn_at_edge()
        if len(self.objects) < p.max_objects and rng.random() < p.spawn_prob:
            self._spawn_at_edge()

    def _next_label(self) -> int:
        """Labels come from a shuffled bag of all classes, so every class is spawned equally often."""
        if not self._class_bag:
            self._class_bag = [int(v) for v in self._rng.permutation(np.arange(1, len(CLASS_NAMES)))]
        return self._class_bag.pop()

    def _spawn_at_edge(self) -> None:
        p, rng = self._p, self._rng
        app = self._new_appearance()
        edge_len = np.array([p.width, p.height, p.width, p.height], np.float64)
        edge = int(rng.choice(4, p=edge_len / edge_len.sum()))  # 0 top, 1 right, 2 bottom, 3 left
        along = float(rng.random())
        d = app.radius * float(rng.uniform(0.3, 0.9))  # centre this far outside the edge
        x, y = [
            (along * p.width, -d),
            (p.width + d, along * p.height),
            (along * p.width, p.height + d),
            (-d, along * p.height),
        ][edge]
        # Head for a point in the middle of the frame.
        tx, ty = float(rng.uniform(0.2, 0.8)) * p.width, float(rng.uniform(0.2, 0.8)) * p.height
        self._add(app, x, y, math.atan2(ty - y, tx - x))

    def _new_appearance(self) -> Appearance:
        label = self._next_label()
        p = self._p
        if p.log_sizes:
            size = math.exp(float(self._rng.uniform(math.log(p.min_size), math.log(p.max_size))))
        else:
            size = float(self._rng.uniform(p.min_size, p.max_size))
        return random_appearance(self._rng, label, size)

    def _add(self, app: Appearance, x: float, y: float, heading: float) -> None:
        p, rng = self._p, self._rng
        speed = float(rng.uniform(p.min_speed, p.max_speed))
        angle = float(rng.uniform(0, 2 * math.pi)) if p.rotate else 0.0
        spin = float(rng.uniform(-p.max_spin, p.max_spin))
        self.objects.append(
            SceneObject(
                track_id=self._next_id,
                appearance=app,
                x=x,
                y=y,
                vx=speed * math.cos(heading),
                vy=speed * math.sin(heading),
                ax=0.0,
                ay=0.0,
                angle=angle,
                spin=spin,
                z=float(rng.random()),
            )
        )
        self._next_id += 1
