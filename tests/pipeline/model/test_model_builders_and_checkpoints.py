"""pipeline.model: builders, the compact model's size, and the checkpoint format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import InferenceError
from pipeline.model import (
    ARCHS,
    build_compact_maskrcnn,
    build_model,
    load_checkpoint,
    load_model,
    save_checkpoint,
    state_dict_nbytes,
)

SMALL = dict(min_size=160, max_size=224, score_threshold=0.0, max_detections=10)
NAMES = ("__background__", "person", "car", "dog")


def compact(seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("maskrcnn_compact", num_classes=len(NAMES), **{**SMALL, **kwargs})


def run(model: torch.nn.Module, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 150, 200, generator=g), torch.rand(3, 180, 240, generator=g)]
    with torch.inference_mode():
        return model(images)


def test_imports_need_only_torch_torchvision_numpy() -> None:
    code = (
        "import sys, pipeline.model, pipeline.engine; "
        "bad = [m for m in ('ray', 'av', 'redis', 'pydantic', 'pycocotools') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_build_model_all_archs() -> None:
    assert ARCHS == ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2", "maskrcnn_compact")
    for arch in ARCHS:
        model = build_model(arch, num_classes=3, min_size=200, max_size=300, score_threshold=0.3, max_detections=7)
        assert not model.training
        assert model.roi_heads.box_predictor.cls_score.out_features == 3
        assert model.roi_heads.score_thresh == 0.3 and model.roi_heads.detections_per_img == 7
        assert model.transform.min_size == (200,) and model.transform.max_size == 300
    assert build_model("maskrcnn_compact", num_classes=3).transform.min_size == (240,)
    with pytest.raises(InferenceError, match="unknown model arch 'yolo'"):
        build_model("yolo", num_classes=3)
    with pytest.raises(InferenceError, match="num_classes"):
        build_model("maskrcnn_compact", num_classes=1)
    with pytest.raises(InferenceError, match="trunk_stages"):
        build_compact_maskrcnn(num_classes=3, trunk_stages=7)


def test_compact_model_is_small_and_runs(tmp_path: Path) -> None:
    model = build_compact_maskrcnn(num_classes=91)
    assert state_dict_nbytes(model) <= 20e6
    path = tmp_path / "compact.pt"
    save_checkpoint(path, model, arch="maskrcnn_compact", class_names=[f"c{i}" for i in range(91)], model_kwargs={})
    assert path.stat().st_size <= 20e6
    half = tmp_path / "compact-fp16.pt"
    save_checkpoint(half, model, arch="maskrcnn_compact", class_names=[f"c{i}" for i in range(91)], model_kwargs={}, half=True)
    assert half.stat().st_size < 0.55 * path.stat().st_size
    out = run(compact())
    assert [o["masks"].shape[-2:] for o in out] == [(150, 200), (180, 240)]


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = compact(seed=3, trunk_stages=2, fpn_channels=32)
    path = tmp_path / "ckpt" / "model.pt"
    kwargs = {"trunk_stages": 2, "fpn_channels": 32, "min_size": 999}  # runtime keys are overridden on load
    save_checkpoint(path, model, arch="maskrcnn_compact", class_names=NAMES, model_kwargs=kwargs, extra={"epoch": 4})
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == "maskstream-checkpoint" and ckpt["version"] == 1
    assert ckpt["arch"] == "maskrcnn_compact" and ckpt["class_names"] == list(NAMES)
    assert ckpt["extra"] == {"epoch": 4} and ckpt["model_kwargs"] == kwargs

    loaded = load_model("maskrcnn_compact", str(path), **SMALL)
    assert loaded.class_names == NAMES and loaded.arch == "maskrcnn_compact"
    assert loaded.source == f"checkpoint:{path}"
    expected, got = run(model), run(loaded.model)
    for e, g in zip(expected, got):
        assert len(e["boxes"]) > 0
        for key in ("boxes", "labels", "scores", "masks"):
            assert torch.equal(e[key], g[key]), key

    # fp16 storage: loads back as float32, outputs close
    half = tmp_path / "half.pt"
    save_checkpoint(half, model, arch="maskrcnn_compact", class_names=NAMES, model_kwargs=kwargs, half=True)
    assert all(t.dtype != torch.float16 for t in load_checkpoint(half)["state_dict"].values())
    approx = run(load_model("maskrcnn_compact", str(half), **SMALL).model)
    assert torch.allclose(approx[0]["scores"][:3], expected[0]["scores"][:3], atol=5e-3)


def test_checkpoint_errors_name_the_path_and_cause(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(InferenceError, match=f"checkpoint {missing} not found"):
        load_model("maskrcnn_compact", str(missing), **SMALL)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(InferenceError, match=f"{garbage} is not a maskstream checkpoint"):
        load_checkpoint(garbage)

    bare = tmp_path / "bare.pt"
    torch.save(compact().state_dict(), bare)
    with pytest.raises(InferenceError, match="looks like a bare state_dict"):
        load_checkpoint(bare)

    good = tmp_path / "good.pt"
    save_checkpoint(good, compact(), arch="maskrcnn_compact", class_names=NAMES, model_kwargs={})
    data = torch.load(good, weights_only=True)
    data["version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(data, newer)
    with pytest.raises(InferenceError, match=f"checkpoint {newer} has version 99"):
        load_checkpoint(newer)

    with pytest.raises(InferenceError, match=r"holds a 'maskrcnn_compact' model but model.arch is 'maskrcnn_resnet50_fpn'"):
        load_model("maskrcnn_resnet50_fpn", str(good), **SMALL)

    data = torch.load(good, weights_only=True)
    data["model_kwargs"] = {"fpn_channels": 32}  # the weights were trained with 64 channels
    mismatch = tmp_path / "mismatch.pt"
    torch.save(data, mismatch)
    with pytest.raises(InferenceError, match=rf"weights from checkpoint {mismatch} do not fit the model: .*shape mismatches"):
        load_model("maskrcnn_compact", str(mismatch), **SMALL)

    with pytest.raises(InferenceError, match="has 4 classes .* but 3 class_names"):
        load_model("maskrcnn_compact", str(good), class_names=["a", "b", "c"], **SMALL)

    # what could not be loaded back is refused at save time
    with pytest.raises(InferenceError, match=r"extra\['loss'\] is a float64"):
        save_checkpoint(tmp_path / "x.pt", compact(), arch="maskrcnn_compact", class_names=NAMES, model_kwargs={},
                        extra={"loss": np.float64(0.5)})
    with pytest.raises(InferenceError, match="predicts 4 classes .* but 2 class_names"):
        save_checkpoint(tmp_path / "x.pt", compact(), arch="maskrcnn_compact", class_names=NAMES[:2], model_kwargs={})
    assert not (tmp_path / "x.pt").exists()
