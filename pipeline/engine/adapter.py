"""The one place where torchvision's output dicts become maskstream's types.

:func:`detections_from_torchvision` converts one image's output of ``MaskRCNN.forward`` (full-frame
mask probabilities ``(N, 1, H, W)`` from torchvision's own ``paste_masks_in_image``): the reference
("naive") path, used by :meth:`InferenceEngine.infer_reference` and the tests. The engine's fast
path (:mod:`pipeline.engine.postprocess`) never builds full-frame masks but shares the label
mapping here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pipeline.errors import InferenceError
from pipeline.messages import Detections


def class_names_for(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """``class_names[label]`` for each label; an out-of-range label is an :class:`InferenceError`."""
    n = len(class_names)
    labels = np.asarray(labels)
    if labels.size:
        bad = labels[(labels < 0) | (labels >= n)]
        if bad.size:
            raise InferenceError(
                f"the model predicted label {int(bad[0])}, but only {n} class names are known "
                f"(labels 0..{n - 1}); the class_names do not match the model's classes"
            )
    return [class_names[i] for i in labels.tolist()]


def detections_from_torchvision(
    output: dict[str, torch.Tensor], class_names: Sequence[str], mask_threshold: float = 0.5
) -> Detections:
    """One image's torchvision Mask R-CNN output (``boxes``, ``labels``, ``scores``, ``masks``
    ``(N, 1, H, W)`` probabilities) as :class:`Detections`; masks are ``prob > mask_threshold``."""
    from pipeline.engine.rle import encode_masks

    try:
        boxes = output["boxes"].detach().to("cpu", torch.float32).numpy().reshape(-1, 4)
        labels = output["labels"].detach().to("cpu", torch.int64).numpy().reshape(-1)
        scores = output["scores"].detach().to("cpu", torch.float32).numpy().reshape(-1)
        masks = output["masks"].detach()
    except KeyError as exc:
        raise InferenceError(f"torchvision output lacks {exc.args[0]!r} (has {sorted(output)})") from exc
    if masks.dim() == 4:
        masks = masks[:, 0]
    if masks.dim() != 3 or masks.shape[0] != len(scores):
        raise InferenceError(f"torchvision masks must be (N, 1, H, W) with N={len(scores)}, got {tuple(output['masks'].shape)}")
    names = class_names_for(labels, class_names)
    height, width = int(masks.shape[-2]), int(masks.shape[-1])
    boxes = boxes.copy()
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    rles = encode_masks(masks > mask_threshold) if len(scores) else []
    return Detections(
        boxes=boxes.astype(np.float32),
        labels=labels.copy(),
        scores=scores.copy(),
        class_names=tuple(names),
        masks=tuple(rles),
    )
