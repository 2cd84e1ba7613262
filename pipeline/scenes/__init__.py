"""Synthetic scenes with exact ground truth: video frames of moving, occluding shapes.

Backs the ``synthetic:`` stream source (``SceneConfig.from_url``), evaluation of the
model/pipeline/tracker, and training data for a small Mask R-CNN (``write_dataset``).
Generation is numpy only; the writers use PyAV and pycocotools.
"""

from pipeline.scenes.config import CLASS_NAMES, SceneConfig
from pipeline.scenes.generator import GtInstance, SceneFrame, SceneGenerator
from pipeline.scenes.writers import DatasetPaths, write_dataset

__all__ = [
    "CLASS_NAMES",
    "DatasetPaths",
    "GtInstance",
    "SceneConfig",
    "SceneFrame",
    "SceneGenerator",
    "write_dataset",
]
