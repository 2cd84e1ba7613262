"""The inference engine: a torchvision Mask R-CNN run stage by stage on batches of frames.

``InferenceEngine.infer(images)`` is the hot path of maskstream (the Ray inference actor wraps it):

1. :mod:`~pipeline.engine.preprocess`: uint8 frames -> device -> float CHW in ``[0, 1]``.
2. ``model.transform`` (normalise, resize, batch; on the device, always in fp32), then
   ``model.backbone`` -> ``model.rpn`` -> ``model.roi_heads`` under ``torch.inference_mode()`` and,
   for fp16/bf16, ``torch.autocast``: the stages of ``GeneralizedRCNN.forward`` without its
   ``transform.postprocess`` (which pastes every mask into a full frame in a Python loop).
3. :mod:`~pipeline.engine.duplicates` (inside postprocess): one instance per object; a detection
   scoring >= 0.5 whose mask overlaps a higher-scoring one's of the same frame, any class, by more than
   ``duplicate_mask_iou_threshold`` is demoted to a tenth of its score (torchvision suppresses overlaps
   per class only), and dropped there when that is below the model's score threshold (the shipped 0.5).
4. :mod:`~pipeline.engine.postprocess`: boxes back to frame coordinates, masks pasted into their
   boxes only and run-length encoded on the device.

Precision: under autocast the RPN head's and box/mask predictors' outputs are cast back to fp32 and
anchors are generated in fp32 (forward hooks the engine installs on the model), so that box
decoding does not happen in 8-bit-mantissa coordinates. fp16 on the CPU is refused (torch's CPU
fp16 autocast is slow and incomplete): use bf16 or fp32 there.

``compile_backbone``: the backbone (trunk + FPN, most of the arithmetic) runs through
``torch.compile`` (Inductor: fused kernels, CUDA graphs with ``mode="reduce-overhead"`` on a GPU).
The first batch of each new input shape compiles (tens of seconds); the RPN and heads stay eager,
as their shapes change with the number of proposals.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN

from pipeline.engine.adapter import detections_from_torchvision
from pipeline.engine.duplicates import DEFAULT_DUPLICATE_MASK_IOU, demoted_scores, duplicate_flags_exact
from pipeline.engine.postprocess import DEFAULT_MAX_ELEMENTS, postprocess_detections
from pipeline.engine.preprocess import Preprocessor
from pipeline.errors import InferenceError
from pipeline.frames import Pixels
from pipeline.messages import Detections
from pipeline.precision import ChannelsLastSetting, Precision, PrecisionChoice, PrecisionSetting, probe_capabilities, resolve_precision

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` (the current CUDA device) or ``"cuda:<i>"``."""
    text = str(device).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise InferenceError(f"device {device!r} is not valid; expected auto, cpu, cuda or cuda:<index>") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise InferenceError(f"device {device!r} is not supported; expected auto, cpu, cuda or cuda:<index>")
    if not torch.cuda.is_available():
        raise InferenceError(
            f"device {device!r} asks for CUDA, but CUDA is not available here (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}); use device: cpu or auto"
        )
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise InferenceError(f"device {device!r}: there are only {count} CUDA devices (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


def _fp32_output_hook(module: nn.Module, args: Any, output: Any) -> Any:
    return _to_float32(output)


def _fp32_anchor_pre_hook(module: nn.Module, args: Any) -> Any:
    # AnchorGenerator only reads the feature maps' shapes, dtype and device: give it float32 stand-ins
    # (zero-stride views, no memory) so that anchors are float32.
    image_list, feature_maps = args
    proxies = [
        torch.empty((), dtype=torch.float32, device=f.device).expand(f.shape) if f.is_floating_point() else f
        for f in feature_maps
    ]
    return image_list, proxies


class InferenceEngine:
    """Runs ``model`` on batches of frames and returns one :class:`Detections` per frame.

    ``class_names[label]`` names label ``label`` (index 0 is the background). ``mask_threshold``:
    a pixel is in the mask when its probability is ``> mask_threshold``. ``duplicate_mask_iou_threshold``
    (in ``(0, 1]``, or ``None``: off, torchvision's per-class suppression only): a detection scoring at
    least ``pipeline.engine.duplicates.DUPLICATE_MIN_SCORE`` whose mask
    overlaps a higher-scoring detection's of the same frame (any class) by more than this IoU is
    demoted to a tenth of its score, and dropped when that falls below the model's score threshold,
    so at thresholds above 0.1 one object is reported once. ``channels_last`` runs the
    backbone in NHWC (faster convolutions on tensor cores). ``precision`` and ``channels_last`` may be
    ``"auto"``: :func:`pipeline.precision.resolve_precision` decides from the device's capabilities, and
    ``self.choice`` says what it chose and why. The engine owns ``model``: it is moved
    to ``device``, put in eval mode and, for fp16/bf16, given fp32-output hooks (see the module docstring).
    """

    def __init__(
        self,
        model: MaskRCNN,
        class_names: Sequence[str],
        *,
        device: str | torch.device = "cpu",
        precision: PrecisionSetting = "fp32",
        mask_threshold: float = 0.5,
        channels_last: ChannelsLastSetting = False,
        max_paste_elements: int = DEFAULT_MAX_ELEMENTS,
        compile_backbone: bool = False,
        duplicate_mask_iou_threshold: float | None = DEFAULT_DUPLICATE_MASK_IOU,
    ) -> None:
        if not 0.0 <= float(mask_threshold) < 1.0:
            raise InferenceError(f"mask_threshold must be in [0, 1), got {mask_threshold!r}")
        self.duplicate_mask_iou_threshold = _checked_iou(duplicate_mask_iou_threshold)
        if not all(hasattr(model, name) for name in ("transform", "backbone", "rpn", "roi_heads")):
            raise InferenceError(f"model must be a torchvision Mask R-CNN, got {type(model).__name__}")
        if not getattr(model.roi_heads, "has_mask", lambda: False)():
            raise InferenceError("model has no mask head (a Faster R-CNN?); maskstream needs a Mask R-CNN")
        self.device = resolve_device(device)
        self.choice: PrecisionChoice = resolve_precision(precision, channels_last, probe_capabilities(self.device))
        self.precision: Precision = self.choice.precision
        self.class_names = tuple(str(n) for n in class_names)
        num_classes = _num_classes(model)
        if num_classes is not None and num_classes != len(self.class_names):
            raise InferenceError(
                f"the model predicts {num_classes} classes (background included) but {len(self.class_names)} "
                "class_names were given"
            )
        self.mask_threshold = float(mask_threshold)
        self.channels_last = self.choice.channels_last
        self.max_paste_elements = int(max_paste_elements)
        try:
            self.model = model.eval().to(self.device)
            if self.channels_last:
                self.model.backbone.to(memory_format=torch.channels_last)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            raise InferenceError(f"cannot move the model to {self.device}: {exc}") from exc
        self._hooks: list[Any] = []
        if self.precision != "fp32":
            self._install_fp32_hooks()
        self._preprocess = Preprocessor(self.device)
        self.compile_backbone = bool(compile_backbone)
        self._backbone: Any = self.model.backbone
        if self.compile_backbone:
            # reduce-overhead adds CUDA graphs on a GPU (replays kernels without per-launch CPU cost)
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            self._backbone = torch.compile(self.model.backbone, mode=mode, dynamic=False)

    def _install_fp32_hooks(self) -> None:
        m = self.model
        self._hooks.append(m.rpn.anchor_generator.register_forward_pre_hook(_fp32_anchor_pre_hook))
        for module in (m.rpn.head, m.roi_heads.box_predictor, m.roi_heads.mask_predictor):
            self._hooks.append(module.register_forward_hook(_fp32_output_hook))

    def close(self) -> None:
        """Remove the hooks the engine installed on the model."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
        else:
            with torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision]):
                yield

    def _describe(self, tensors: Sequence[torch.Tensor]) -> str:
        sizes = ", ".join(f"{t.shape[-1]}x{t.shape[-2]}" for t in tensors[:4]) + (", ..." if len(tensors) > 4 else "")
        return f"a batch of {len(tensors)} frames ({sizes}) on {self.device} ({self.precision})"

    def run_stages(self, tensors: list[torch.Tensor]) -> tuple[list[dict[str, torch.Tensor]], list[tuple[int, int]]]:
        """transform -> backbone -> rpn -> roi_heads; returns roi_heads' detections (resized
        coordinates, 28x28 mask probabilities) and the resized image sizes."""
        model = self.model
        image_list, _ = model.transform(tensors)  # fp32: normalisation and resizing stay exact
        batch = image_list.tensors
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            features = self._run_backbone(batch)
            if isinstance(features, torch.Tensor):
                features = OrderedDict([("0", features)])
            proposals, _ = model.rpn(image_list, features)
            detections, _ = model.roi_heads(features, proposals, image_list.image_sizes)
        return detections, [(int(h), int(w)) for h, w in image_list.image_sizes]

    def _run_backbone(self, batch: torch.Tensor) -> Any:
        if not self.compile_backbone:
            return self._backbone(batch)
        try:
            return self._backbone(batch)
        except Exception as exc:  # noqa: BLE001 - torch.compile raises its own many types (no compiler, unsupported op)
            if isinstance(exc, (torch.cuda.OutOfMemoryError, KeyboardInterrupt)):
                raise
            raise InferenceError(
                f"torch.compile of the backbone failed ({type(exc).__name__}: {str(exc).strip()[:300]}); "
                "set model.compile_backbone: false (or check that a C++ compiler is installed)"
            ) from exc

    def infer(self, images: Sequence[Pixels]) -> list[Detections]:
        """Detections of each frame (uint8 ``(H, W, 3)`` RGB arrays or ``Yuv420Frame``; sizes and forms
        may differ within the batch)."""
        if len(images) == 0:
            return []
        tensors = self._preprocess(images)
        original = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        try:
            with torch.inference_mode():
                detections, resized = self.run_stages(tensors)
                return postprocess_detections(
                    detections,
                    resized,
                    original,
                    self.class_names,
                    self.mask_threshold,
                    max_elements=self.max_paste_elements,
                    duplicate_mask_iou=self.duplicate_mask_iou_threshold,
                    min_score=self._score_threshold(),
                )
        except InferenceError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise InferenceError(f"inference failed on {self._describe(tensors)}: {exc}") from exc

    def infer_reference(self, images: Sequence[Pixels]) -> list[Detections]:
        """The naive path: torchvision's own ``model(images)`` (full-frame masks) through the adapter, then
        the duplicate rule on exact full-frame mask IoU. Slow; for tests and benchmarks."""
        if len(images) == 0:
            return []
        tensors = self._preprocess(images)
        try:
            with torch.inference_mode(), self._autocast():
                outputs = self.model(tensors)
            return [detections_from_torchvision(self._without_duplicates(o), self.class_names, self.mask_threshold)
                    for o in outputs]
        except InferenceError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise InferenceError(f"reference inference failed on {self._describe(tensors)}: {exc}") from exc


    def _score_threshold(self) -> float:
        """The model's score threshold (torchvision's ``box_score_thresh``): demoted duplicates below it are dropped."""
        return float(getattr(self.model.roi_heads, "score_thresh", 0.0))

    def _without_duplicates(self, output: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One image's torchvision output with the duplicate rule applied on exact mask IoU: duplicates
        demoted, then those below the model's score threshold dropped."""
        if self.duplicate_mask_iou_threshold is None:
            return output
        masks = output["masks"][:, 0] > self.mask_threshold
        duplicate = duplicate_flags_exact(masks, output["scores"], self.duplicate_mask_iou_threshold)
        scores = demoted_scores(output["scores"], duplicate)
        keep = scores >= self._score_threshold()
        return {**{key: value[keep] for key, value in output.items()}, "scores": scores[keep]}


def _checked_iou(value: float | None) -> float | None:
    """``duplicate_mask_iou_threshold``: ``None`` or a float in ``(0, 1]``; else an :class:`InferenceError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise InferenceError(f"duplicate_mask_iou_threshold must be in (0, 1] or None (off), got {value!r}")
    return float(value)


def _num_classes(model: MaskRCNN) -> int | None:
    predictor = getattr(model.roi_heads, "box_predictor", None)
    cls_score = getattr(predictor, "cls_score", None)
    return int(cls_score.out_features) if isinstance(cls_score, nn.Linear) else None
