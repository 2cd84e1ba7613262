"""pipeline.model.load_model: random weights, and torchvision weights on an offline machine."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pipeline.errors import InferenceError
from pipeline.model import load_model

RUNTIME = dict(min_size=160, max_size=224, score_threshold=0.05, max_detections=10)


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """torch.hub looks in an empty tmp dir, and no connection can be opened."""
    old = torch.hub.get_dir()
    hub = tmp_path / "hub"
    torch.hub.set_dir(str(hub))

    def no_network(*args, **kwargs):  # noqa: ANN002, ANN003
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    try:
        yield hub
    finally:
        torch.hub.set_dir(old)


def test_random_weights() -> None:
    loaded = load_model("maskrcnn_compact", None, **RUNTIME)
    assert loaded.source == "random" and len(loaded.class_names) == 91
    assert loaded.class_names[:2] == ("__background__", "class_1")
    named = load_model("maskrcnn_compact", "none", class_names=["bg", "a", "b"], **RUNTIME)
    assert named.class_names == ("bg", "a", "b")
    assert named.model.roi_heads.box_predictor.cls_score.out_features == 3


def test_coco_weights_offline_fail_fast_with_how_to_fix(empty_hub: Path) -> None:
    expected_file = empty_hub / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    with pytest.raises(InferenceError) as info:
        load_model("maskrcnn_resnet50_fpn", "DEFAULT", **RUNTIME)
    message = str(info.value)
    assert "MaskRCNN_ResNet50_FPN_Weights.COCO_V1" in message
    assert str(expected_file) in message  # where the cache was looked for
    assert "network disabled by the test" in message  # why it could not be downloaded
    assert "/path/to/model.pt" in message and "maskstream train" in message
    assert "TORCH_HOME" in message and "model.weights: none" in message

    with pytest.raises(InferenceError, match="MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1"):
        load_model("maskrcnn_resnet50_fpn_v2", "COCO_V1", **RUNTIME)


def test_cached_coco_file_is_used_without_network(empty_hub: Path) -> None:
    cached = empty_hub / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"corrupt")  # found in the cache (no download attempted), but unreadable
    with pytest.raises(InferenceError, match=rf"cannot load MaskRCNN_ResNet50_FPN_Weights.COCO_V1 from {cached}"):
        load_model("maskrcnn_resnet50_fpn", "COCO_V1", **RUNTIME)


def test_bad_weights_names(empty_hub: Path) -> None:
    with pytest.raises(InferenceError, match="arch 'maskrcnn_compact' has none"):
        load_model("maskrcnn_compact", "DEFAULT", **RUNTIME)
    with pytest.raises(InferenceError, match=r"COCO_V9.*\(DEFAULT, COCO_V1\)"):
        load_model("maskrcnn_resnet50_fpn", "COCO_V9", **RUNTIME)
    with pytest.raises(InferenceError, match="unknown model arch"):
        load_model("resnet", None, **RUNTIME)


def test_input_size_defaults_to_the_size_the_checkpoint_was_trained_at(tmp_path: Path) -> None:
    from pipeline.model import build_model, input_size, save_checkpoint

    path = tmp_path / "trained.pt"
    model = build_model("maskrcnn_compact", num_classes=3, min_size=96, max_size=128)
    save_checkpoint(path, model, arch="maskrcnn_compact", class_names=["bg", "a", "b"],
                    model_kwargs={"min_size": 96, "max_size": 128})
    assert input_size("maskrcnn_compact", str(path), None, None) == (96, 128)
    assert input_size("maskrcnn_compact", str(path), 64, None) == (64, 128)  # what is given wins
    assert input_size("maskrcnn_compact", None, None, None) == (240, 320)  # random weights: the arch's default
    assert input_size("maskrcnn_resnet50_fpn", "DEFAULT", None, None) == (800, 1333)  # no file is read for a name
    loaded = load_model("maskrcnn_compact", str(path), score_threshold=0.05, max_detections=10)
    assert loaded.model.transform.min_size == (96,) and loaded.model.transform.max_size == 128
    with pytest.raises(InferenceError, match="min_size 200 is above max_size 128"):
        input_size("maskrcnn_compact", str(path), 200, None)
