"""Mask R-CNN models: builders (random weights), maskstream checkpoints, and weight loading.

Imports only torch, torchvision and numpy-free stdlib modules at import time (no ray, av, redis,
pydantic or pycocotools), so it runs on a bare GPU machine.
"""

from pipeline.model.builders import ARCHS, DEFAULT_SIZES, build_compact_maskrcnn, build_model, state_dict_nbytes
from pipeline.model.checkpoint import load_checkpoint, save_checkpoint
from pipeline.model.loading import LoadedModel, default_class_names, hub_checkpoint_dir, input_size, load_model

__all__ = [
    "ARCHS",
    "DEFAULT_SIZES",
    "LoadedModel",
    "build_compact_maskrcnn",
    "build_model",
    "default_class_names",
    "hub_checkpoint_dir",
    "input_size",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "state_dict_nbytes",
]
