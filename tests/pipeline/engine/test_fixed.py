"""The benchmark-only engine: the same realistic detections for every frame of a size, masks inside their boxes."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pipeline.engine.fixed import FixedDetectionsEngine
from pipeline.errors import InferenceError
from pipeline.frames import Yuv420Frame


def test_fixed_detections_are_valid_and_repeat_per_size() -> None:
    engine = FixedDetectionsEngine(["background", "a", "b"], instances=15)
    rgb = np.zeros((120, 160, 3), np.uint8)
    first, second, other = engine.infer([rgb, rgb, Yuv420Frame.from_rgb(np.zeros((240, 320, 3), np.uint8))])
    assert first is second and len(first) == 15 and len(other) == 15
    assert [m.height for m in other.masks] == [240] * 15
    assert set(first.class_names) == {"a", "b"} and first.labels.tolist()[:3] == [1, 2, 1]
    assert np.all(np.diff(first.scores) <= 0) and first.scores[0] == pytest.approx(0.95)
    decoded = mask_utils.decode([m.to_coco() for m in first.masks])  # (H, W, N)
    for i, (x1, y1, x2, y2) in enumerate(first.boxes):
        ys, xs = np.nonzero(decoded[:, :, i])
        assert len(xs) > 0, f"instance {i} has an empty mask"
        assert xs.min() >= int(x1) and xs.max() < np.ceil(x2) and ys.min() >= int(y1) and ys.max() < np.ceil(y2)
    areas = decoded.reshape(-1, 15).sum(axis=0)
    assert areas.min() > 0.5 * areas.max()  # alike objects, none degenerate
    # the instances do not overlap: a tracker sees 15 separate objects
    assert decoded.sum(axis=2).max() == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InferenceError, match="background and at least one class"):
        FixedDetectionsEngine(["background"])
    with pytest.raises(InferenceError, match=r"instances must be in \[0, 1000\], got -1"):
        FixedDetectionsEngine(["background", "a"], instances=-1)
    assert len(FixedDetectionsEngine(["background", "a"], instances=0).infer([np.zeros((8, 8, 3), np.uint8)])[0]) == 0
