"""The benchmark-only engine: a fixed, realistic set of detections for every frame, without running a model.

``maskstream bench-pipeline`` puts it in the inference actors (``model.arch: benchmark_fixed``) to measure
how many frames per second the actor graph itself moves: sources, batching, the object store, tracking,
encoding and the sinks all do their real work on real frames; only the model's arithmetic is left out.
``maskstream run`` refuses it (``pipeline.config.parse_config``).

Per frame size it builds once ``instances`` detections laid out on a grid over the frame (boxes of about
a tenth of the frame's sides, elliptical masks filling them, scores from 0.95 down to 0.60, classes in
turn) and RLE-encodes the masks; every later frame of that size gets the same, already encoded,
:class:`~pipeline.messages.Detections`. Tracking therefore sees ``instances`` objects standing still.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pipeline.engine.rle import CropLayout, encode_ragged
from pipeline.errors import InferenceError
from pipeline.frames import Pixels, frame_size
from pipeline.messages import Detections
from pipeline.precision import PrecisionChoice

DEFAULT_INSTANCES = 15
"""Instances per frame: the realistic case of the engine bench (``pipeline.engine.bench``, mode realistic)."""

_MAX_INSTANCES = 1000  # the config's bound on model.max_detections


class FixedDetectionsEngine:
    """``infer(images)`` returns the same ``instances`` detections for every frame of a size (see module docstring).

    ``class_names[0]`` is the background; the detections use classes ``1 .. len(class_names) - 1`` in turn.
    """

    device = torch.device("cpu")
    choice = PrecisionChoice(precision="fp32", channels_last=False,
                             reason="benchmark engine: fixed detections, the model is not run")

    def __init__(self, class_names: Sequence[str], *, instances: int = DEFAULT_INSTANCES) -> None:
        if len(class_names) < 2:
            raise InferenceError(f"class_names must list the background and at least one class, got {list(class_names)}")
        if not 0 <= instances <= _MAX_INSTANCES:
            raise InferenceError(f"instances must be in [0, {_MAX_INSTANCES}], got {instances}")
        self.class_names = tuple(str(n) for n in class_names)
        self.instances = int(instances)
        self._by_size: dict[tuple[int, int], Detections] = {}

    def infer(self, images: Sequence[Pixels]) -> list[Detections]:
        """One :class:`Detections` per image (RGB ``(H, W, 3)`` uint8 arrays or ``Yuv420Frame``), in order."""
        out = []
        for image in images:
            size = frame_size(image)
            detections = self._by_size.get(size)
            if detections is None:
                detections = self._by_size[size] = self._build(*size)
            out.append(detections)
        return out

    def close(self) -> None:
        self._by_size.clear()

    def _build(self, height: int, width: int) -> Detections:
        n = self.instances
        if n == 0:
            return Detections.empty()
        columns = math.ceil(math.sqrt(n))
        rows = math.ceil(n / columns)
        cell_w, cell_h = width / columns, height / rows
        box_w, box_h = max(1.0, min(cell_w * 0.8, width * 0.1)), max(1.0, min(cell_h * 0.8, height * 0.1))
        boxes = np.zeros((n, 4), np.float32)
        crops: list[torch.Tensor] = []  # each box's pixels, column-major (the RLE's order)
        origin = np.zeros((n, 4), np.int64)  # x0, y0, crop height, crop width
        for i in range(n):
            cx, cy = (i % columns + 0.5) * cell_w, (i // columns + 0.5) * cell_h
            x1, y1 = max(0.0, cx - box_w / 2), max(0.0, cy - box_h / 2)
            x2, y2 = min(float(width), cx + box_w / 2), min(float(height), cy + box_h / 2)
            boxes[i] = (x1, y1, x2, y2)
            # the ellipse inside the box, computed on the box's pixels only (cheap at any frame size)
            top, left, bottom, right = int(y1), int(x1), math.ceil(y2), math.ceil(x2)
            yy, xx = torch.meshgrid(torch.arange(top, bottom) + 0.5, torch.arange(left, right) + 0.5, indexing="ij")
            inside = ((xx - cx) / (box_w / 2)) ** 2 + ((yy - cy) / (box_h / 2)) ** 2 <= 1.0
            crops.append(inside.t().reshape(-1))
            origin[i] = (left, top, bottom - top, right - left)
        layout = CropLayout.build(origin[:, 0], origin[:, 1], origin[:, 2], origin[:, 3],
                                  np.full(n, height), np.full(n, width))
        classes = len(self.class_names) - 1
        labels = np.array([1 + i % classes for i in range(n)], np.int64)
        return Detections(
            boxes=boxes,
            labels=labels,
            scores=np.linspace(0.95, 0.60, n, dtype=np.float32),
            class_names=tuple(self.class_names[label] for label in labels),
            masks=tuple(encode_ragged(torch.cat(crops), layout)),
        )
