"""The inference engine: batches of frames in, :class:`~pipeline.messages.Detections` out.

Runs alone without Ray (the Ray inference actor wraps :class:`InferenceEngine`). Imports only
torch, torchvision and numpy (no ray, av, redis, pydantic or pycocotools): COCO RLE is computed by
:mod:`pipeline.engine.rle`.
"""

from pipeline.engine.adapter import detections_from_torchvision
from pipeline.engine.engine import InferenceEngine, resolve_device
from pipeline.precision import Precision
from pipeline.engine.rle import encode_masks, rle_string

__all__ = [
    "InferenceEngine",
    "Precision",
    "detections_from_torchvision",
    "encode_masks",
    "resolve_device",
    "rle_string",
]
