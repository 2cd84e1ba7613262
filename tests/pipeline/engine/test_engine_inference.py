"""InferenceEngine: same detections and masks as torchvision's own forward, precision modes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from pipeline.engine import InferenceEngine, detections_from_torchvision, resolve_device
from pipeline.engine.adapter import class_names_for
from pipeline.errors import InferenceError
from pipeline.messages import Detections
from pipeline.model import build_model

SIZES = [(150, 200), (180, 240)]  # (H, W): a batch of two different sizes


def frames(seed: int = 0) -> list[np.ndarray]:
    """Smooth random images (blocky colour fields + noise): more structure than white noise."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in SIZES:
        coarse = rng.integers(0, 256, size=(h // 10 + 1, w // 10 + 1, 3))
        img = np.kron(coarse, np.ones((10, 10, 1)))[:h, :w] + rng.integers(-20, 21, size=(h, w, 3))
        out.append(img.clip(0, 255).astype(np.uint8))
    return out


def names(n: int) -> list[str]:
    return ["__background__"] + [f"class_{i}" for i in range(1, n)]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def match(ours: Detections, ref_boxes: np.ndarray, ref_labels: np.ndarray) -> list[tuple[int, int, float]]:
    """Greedy matching of reference detections to ours (same label, best box IoU): (ref i, our j, iou)."""
    if len(ours) == 0 or len(ref_boxes) == 0:
        return []
    iou = box_iou(ref_boxes, ours.boxes)
    iou[ref_labels[:, None] != ours.labels[None, :]] = -1
    pairs, used = [], set()
    for i in range(len(ref_boxes)):
        for j in np.argsort(-iou[i]):
            if j not in used and iou[i, j] >= 0:
                used.add(int(j))
                pairs.append((i, int(j), float(iou[i, j])))
                break
    return pairs


def check_against_torchvision(arch: str, min_size: int, max_size: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(
        arch, num_classes=91, min_size=min_size, max_size=max_size, score_threshold=0.0, max_detections=15
    )
    engine = InferenceEngine(model, names(91), duplicate_mask_iou_threshold=None)  # torchvision's output, all of it
    images = frames()
    ours = engine.infer(images)
    with torch.inference_mode():
        ref = model([torch.from_numpy(im).permute(2, 0, 1).float() / 255 for im in images])
    box_ious, score_diffs, mask_ious, n_ref = [], [], [], 0
    for img, det, r in zip(images, ours, ref):
        h, w = img.shape[:2]
        assert isinstance(det, Detections) and det.boxes.dtype == np.float32 and det.labels.dtype == np.int64
        assert np.all(np.diff(det.scores) <= 0), "scores sorted descending"
        assert np.all(det.boxes[:, 2] <= w) and np.all(det.boxes[:, 3] <= h) and np.all(det.boxes >= 0)
        assert det.class_names == tuple(f"class_{i}" for i in det.labels)
        ref_boxes = r["boxes"].numpy()
        ref_masks = (r["masks"][:, 0] > 0.5).numpy()
        n_ref += len(ref_boxes)
        assert len(det) == len(ref_boxes) > 0
        decoded = mask_utils.decode([m.to_coco() for m in det.masks])  # (H, W, N)
        assert decoded.shape == (h, w, len(det))
        for i, j, iou in match(det, ref_boxes, r["labels"].numpy()):
            box_ious.append(iou)
            score_diffs.append(abs(float(det.scores[j]) - float(r["scores"][i])))
            mask_ious.append(mask_iou(decoded[:, :, j].astype(bool), ref_masks[i]))
    figures = {
        "matched": len(box_ious) / n_ref,
        "min_box_iou": min(box_ious),
        "max_score_diff": max(score_diffs),
        "min_mask_iou": min(mask_ious),
        "mean_mask_iou": float(np.mean(mask_ious)),
        "mask_pixels": float(sum(m.sum() for m in [(o["masks"] > 0.5).sum() for o in ref])),
    }
    print(arch, figures)
    assert figures["matched"] == 1.0, figures
    assert figures["min_box_iou"] >= 0.99, figures
    assert figures["max_score_diff"] <= 1e-3, figures
    assert figures["min_mask_iou"] >= 0.98, figures
    assert figures["mask_pixels"] > 0
    return figures


def test_compact_matches_torchvision_forward() -> None:
    check_against_torchvision("maskrcnn_compact", 160, 240)


def test_resnet50_fpn_matches_torchvision_forward() -> None:
    check_against_torchvision("maskrcnn_resnet50_fpn", 160, 240)


@pytest.fixture(scope="module")
def compact_model() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model("maskrcnn_compact", num_classes=5, min_size=160, max_size=240, score_threshold=0.0, max_detections=20)


def test_bf16_agrees_with_fp32(compact_model: torch.nn.Module) -> None:
    images = frames(seed=2)
    fp32 = InferenceEngine(compact_model, names(5)).infer(images)
    bf16_engine = InferenceEngine(compact_model, names(5), precision="bf16")
    try:
        bf16 = bf16_engine.infer(images)
    finally:
        bf16_engine.close()
    matched = total = 0
    for a, b in zip(fp32, bf16):
        assert len(b) > 0 and all(m.height == a.masks[0].height for m in b.masks)
        pairs = match(b, a.boxes, a.labels)
        matched += sum(iou >= 0.7 for _, _, iou in pairs)
        total += len(a)
    print(f"bf16 vs fp32: {matched}/{total} fp32 detections have a bf16 match with box IoU >= 0.7")
    assert matched / total >= 0.5


def test_engine_edge_cases_and_errors(compact_model: torch.nn.Module) -> None:
    engine = InferenceEngine(compact_model, names(5))
    assert engine.infer([]) == []
    tiny = np.zeros((7, 5, 3), np.uint8)
    out = engine.infer([tiny])
    assert len(out) == 1 and all((m.height, m.width) == (7, 5) for m in out[0].masks)
    with pytest.raises(InferenceError, match=r"image 1 of the batch has dtype float32 and shape \(10, 10, 3\)"):
        engine.infer([tiny, np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(InferenceError, match=r"image 0 .* shape \(10, 10\)"):
        engine.infer([np.zeros((10, 10), np.uint8)])
    with pytest.raises(InferenceError, match="predicts 5 classes .* but 3 class_names"):
        InferenceEngine(compact_model, ["a", "b", "c"])
    with pytest.raises(InferenceError, match="fp16 is not supported on the CPU"):
        InferenceEngine(compact_model, names(5), precision="fp16")
    with pytest.raises(InferenceError, match="precision 'fp8'"):
        InferenceEngine(compact_model, names(5), precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(InferenceError, match="mask_threshold"):
        InferenceEngine(compact_model, names(5), mask_threshold=1.5)


def test_resolve_device_and_label_mapping() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(InferenceError, match="device 'tpu' is not valid"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InferenceError, match="device 'cuda:1' asks for CUDA, but CUDA is not available"):
            resolve_device("cuda:1")
    assert class_names_for(np.array([2, 1]), ["bg", "a", "b"]) == ["b", "a"]
    with pytest.raises(InferenceError, match="predicted label 7, but only 3 class names"):
        class_names_for(np.array([1, 7]), ["bg", "a", "b"])
    output = {
        "boxes": torch.tensor([[1.0, 2.0, 5.0, 6.0]]),
        "labels": torch.tensor([9]),
        "scores": torch.tensor([0.9]),
        "masks": torch.zeros(1, 1, 8, 8),
    }
    with pytest.raises(InferenceError, match="label 9, but only 3 class names"):
        detections_from_torchvision(output, ["bg", "a", "b"])
    output["labels"] = torch.tensor([2])
    output["masks"][0, 0, 2:4, 1:3] = 0.8
    det = detections_from_torchvision(output, ["bg", "a", "b"])
    assert det.class_names == ("b",)
    assert np.array_equal(mask_utils.decode(det.masks[0].to_coco()), (output["masks"][0, 0] > 0.5).numpy())


def test_yuv420_frames_give_the_detections_of_their_rgb() -> None:
    """The shipped model on generated scenes: 4:2:0 planes converted on the device vs the same frames
    as RGB (converted on the host), in one mixed batch."""
    from pathlib import Path

    from pipeline.frames import Yuv420Frame
    from pipeline.model import load_model
    from pipeline.scenes import SceneConfig, SceneGenerator

    weights = Path(__file__).parents[3] / "pipeline" / "models" / "shapes.pt"
    loaded = load_model("maskrcnn_compact", str(weights), score_threshold=0.3, max_detections=50)  # its trained size
    engine = InferenceEngine(loaded.model, loaded.class_names)
    scenes = SceneGenerator(SceneConfig(seed=77, num_frames=40))
    yuv = [Yuv420Frame.from_rgb(f.image) for f in scenes if f.index % 13 == 0]
    rgb = [y.to_rgb() for y in yuv]
    out = engine.infer([*yuv, *rgb])
    from_yuv, from_rgb = out[: len(yuv)], out[len(yuv) :]
    found = 0
    for a, b in zip(from_yuv, from_rgb, strict=True):
        assert len(a) == len(b)
        pairs = match(a, b.boxes, b.labels)
        assert len(pairs) == len(b) and all(iou >= 0.95 for _, _, iou in pairs)
        for i, j, _ in pairs:  # i: RGB detection, j: YUV detection
            yuv_mask, rgb_mask = (mask_utils.decode(m.to_coco()).astype(bool) for m in (a.masks[j], b.masks[i]))
            assert mask_iou(yuv_mask, rgb_mask) >= 0.9
        found += len(a)
    assert found >= 3  # the comparison is over real detections


def test_compiled_backbone_gives_the_eager_detections(compact_model: torch.nn.Module) -> None:
    """torch.compile (Inductor, a real C++ build on the CPU) of the backbone: same detections as eager fp32."""
    import copy

    images = frames(seed=3)
    eager = InferenceEngine(compact_model, names(5)).infer(images)
    compiled_engine = InferenceEngine(copy.deepcopy(compact_model), names(5), compile_backbone=True)
    compiled = compiled_engine.infer(images)
    assert compiled_engine._backbone is not compiled_engine.model.backbone  # it really ran the compiled module
    for a, b in zip(eager, compiled, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)  # kernels fused: float sums in another order
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
        for ma, mb in zip(a.masks, b.masks):
            assert mask_iou(*(mask_utils.decode(m.to_coco()).astype(bool) for m in (ma, mb))) >= 0.98


def test_auto_precision_runs_what_the_rule_chooses_for_this_cpu(compact_model: torch.nn.Module) -> None:
    import copy

    from pipeline.precision import probe_capabilities, resolve_precision

    # a copy: channels-last changes the backbone's weights' layout in place
    engine = InferenceEngine(copy.deepcopy(compact_model), names(5), precision="auto", channels_last="auto")
    try:
        expected = resolve_precision("auto", "auto", probe_capabilities(torch.device("cpu")))
        assert engine.choice == expected
        assert (engine.precision, engine.channels_last) == (expected.precision, expected.channels_last)
        assert len(engine.infer(frames(seed=3))) == len(frames(seed=3))
    finally:
        engine.close()
