"""Model builders: torchvision's Mask R-CNN variants with random weights, and a compact Mask R-CNN.

Every builder returns a :class:`torchvision.models.detection.MaskRCNN` in eval mode, with random
weights (no download ever happens here: ``weights=None, weights_backbone=None``). Loading trained
weights is :mod:`pipeline.model.loading`'s job.

Imports only torch and torchvision (no ray/av/redis/pydantic/pycocotools), so the model can be
built on a bare GPU machine.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from pipeline.errors import InferenceError

ARCHS = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_compact")

#: Input-size defaults per architecture (used when ``build_model`` gets ``min_size``/``max_size`` of ``None``).
DEFAULT_SIZES: dict[str, tuple[int, int]] = {
    "maskrcnn_resnet50_fpn": (800, 1333),
    "maskrcnn_resnet50_fpn_v2": (800, 1333),
    "maskrcnn_compact": (240, 320),
}

#: The ``build_model`` keywords that are runtime settings rather than part of the architecture.
RUNTIME_KWARGS = frozenset({"num_classes", "min_size", "max_size", "score_threshold", "max_detections"})


def build_model(
    arch: str,
    *,
    num_classes: int,
    min_size: int | None = None,
    max_size: int | None = None,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    **arch_kwargs: Any,
) -> MaskRCNN:
    """Build ``arch`` with random weights, in eval mode.

    ``num_classes`` counts the background (label 0), as torchvision does. ``min_size``/``max_size``
    of ``None`` take the architecture's default (800/1333 for the ResNet-50 models, 240/320 for
    ``maskrcnn_compact``). ``arch_kwargs`` go to the torchvision builder (e.g.
    ``trainable_backbone_layers``, ``rpn_post_nms_top_n_test``) or to :func:`build_compact_maskrcnn`.
    """
    if arch not in ARCHS:
        raise InferenceError(f"unknown model arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise InferenceError(f"num_classes must be an int >= 2 (background included), got {num_classes!r}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise InferenceError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    if int(max_detections) < 1:
        raise InferenceError(f"max_detections must be >= 1, got {max_detections!r}")
    default_min, default_max = DEFAULT_SIZES[arch]
    min_size = default_min if min_size is None else int(min_size)
    max_size = default_max if max_size is None else int(max_size)
    if min_size < 1 or max_size < min_size:
        raise InferenceError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    try:
        if arch == "maskrcnn_compact":
            model = build_compact_maskrcnn(
                num_classes=num_classes,
                min_size=min_size,
                max_size=max_size,
                score_threshold=score_threshold,
                max_detections=max_detections,
                **arch_kwargs,
            )
        else:
            builder = maskrcnn_resnet50_fpn if arch == "maskrcnn_resnet50_fpn" else maskrcnn_resnet50_fpn_v2
            model = builder(
                weights=None,
                weights_backbone=None,
                progress=False,
                num_classes=num_classes,
                min_size=min_size,
                max_size=max_size,
                box_score_thresh=float(score_threshold),
                box_detections_per_img=int(max_detections),
                **arch_kwargs,
            )
    except TypeError as exc:  # an unknown keyword
        raise InferenceError(f"cannot build {arch} with {sorted(arch_kwargs)}: {exc}") from exc
    return model.eval()


def build_compact_maskrcnn(
    *,
    num_classes: int,
    trunk_stages: int = 3,
    fpn_channels: int = 64,
    box_head_dim: int = 256,
    mask_head_channels: int = 64,
    mask_head_layers: int = 4,
    min_size: int = 240,
    max_size: int = 320,
    score_threshold: float = 0.05,
    max_detections: int = 100,
    anchor_sizes: tuple[int, ...] | None = None,
    rpn_pre_nms_top_n_test: int = 500,
    rpn_post_nms_top_n_test: int = 300,
    **maskrcnn_kwargs: Any,
) -> MaskRCNN:
    """A small Mask R-CNN for low-resolution frames (tuned for 320x240, objects of ~12-100 px).

    - Trunk: ResNet-18 (BatchNorm, trainable) up to stage ``trunk_stages`` (2-4; default 3 drops
      ``layer4``, the bulk of ResNet-18's weights, keeping strides 4, 8 and 16).
    - Neck: FPN with ``fpn_channels`` channels over the returned stages plus a max-pool level.
    - RPN: per FPN level ``i`` (stride ``4 * 2**i``) anchors of sizes ``base * 2**i`` and
      ``base * 2**i * sqrt(2)`` with ``base`` = ``anchor_sizes[0]`` (default 12) and aspect
      ratios 0.5, 1, 2: 12-136 px with the default 3 stages (4 levels).
    - Box head: ``TwoMLPHead`` of ``box_head_dim``; mask head: ``MaskRCNNHeads`` with
      ``mask_head_layers`` convs of ``mask_head_channels``.

    The default configuration has ~3.9 M parameters (~16 MB fp32 state dict). ``trunk_stages=4``
    adds ResNet-18's ``layer4`` (8.4 M parameters) and no longer fits 20 MB in fp32 (it does in fp16,
    see :func:`pipeline.model.save_checkpoint`).
    """
    if trunk_stages not in (2, 3, 4):
        raise InferenceError(f"trunk_stages must be 2, 3 or 4, got {trunk_stages!r}")
    for name, value in (
        ("fpn_channels", fpn_channels),
        ("box_head_dim", box_head_dim),
        ("mask_head_channels", mask_head_channels),
        ("mask_head_layers", mask_head_layers),
    ):
        if not isinstance(value, int) or value < 1:
            raise InferenceError(f"{name} must be a positive int, got {value!r}")

    trunk = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
    stage_channels = [64, 128, 256, 512][:trunk_stages]
    return_layers = {f"layer{i + 1}": str(i) for i in range(trunk_stages)}
    backbone = BackboneWithFPN(
        trunk,
        return_layers=return_layers,
        in_channels_list=stage_channels,
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    num_levels = trunk_stages + 1  # + the max-pool level

    if anchor_sizes is None:
        base = 12.0
        sizes = tuple((round(base * 2**i), round(base * 2**i * math.sqrt(2))) for i in range(num_levels))
    else:
        if len(anchor_sizes) < 1:
            raise InferenceError("anchor_sizes must name at least one size")
        sizes = tuple(tuple(round(float(s) * 2**i) for s in anchor_sizes) for i in range(num_levels))
    anchor_generator = AnchorGenerator(sizes=sizes, aspect_ratios=((0.5, 1.0, 2.0),) * num_levels)
    rpn_head = RPNHead(fpn_channels, anchor_generator.num_anchors_per_location()[0])

    featmap_names = [str(i) for i in range(trunk_stages)]
    box_roi_pool = MultiScaleRoIAlign(featmap_names=featmap_names, output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(fpn_channels * 7 * 7, box_head_dim)
    box_predictor = FastRCNNPredictor(box_head_dim, num_classes)
    mask_roi_pool = MultiScaleRoIAlign(featmap_names=featmap_names, output_size=14, sampling_ratio=2)
    mask_head = MaskRCNNHeads(fpn_channels, [mask_head_channels] * mask_head_layers, 1)
    mask_predictor = MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes)

    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=int(min_size),
        max_size=int(max_size),
        rpn_anchor_generator=anchor_generator,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_test=int(rpn_pre_nms_top_n_test),
        rpn_post_nms_top_n_test=int(rpn_post_nms_top_n_test),
        box_roi_pool=box_roi_pool,
        box_head=box_head,
        box_predictor=box_predictor,
        box_score_thresh=float(score_threshold),
        box_detections_per_img=int(max_detections),
        mask_roi_pool=mask_roi_pool,
        mask_head=mask_head,
        mask_predictor=mask_predictor,
        **maskrcnn_kwargs,
    )
    return model.eval()


def state_dict_nbytes(model: nn.Module) -> int:
    """Bytes of the model's state dict tensors (what a fp32 checkpoint costs, less pickling overhead)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "ARCHS",
    "DEFAULT_SIZES",
    "RUNTIME_KWARGS",
    "build_compact_maskrcnn",
    "build_model",
    "count_parameters",
    "state_dict_nbytes",
]
