"""The inference actor's class, in-process (its frames come from a real Ray object store)."""

from __future__ import annotations

import dataclasses

import numpy as np
import ray

from actors.inference import InferenceWorker
from pipeline.config import ModelConfig
from pipeline.messages import FrameMeta


def model_config(**overrides: object) -> ModelConfig:
    base = dict(arch="maskrcnn_compact", weights=None, class_names=["background", "a", "b"], score_threshold=0.0,
                max_detections=3, min_size=96, max_size=128, device="cpu")
    return ModelConfig(**{**base, **overrides})


def meta(seq: int, width: int, height: int) -> FrameMeta:
    return FrameMeta(stream_id="s", index=seq, seq=seq, pts_s=seq / 25, captured_at=0.0, width=width, height=height)


def test_batch_results_in_order_with_instances(ray_session: None) -> None:
    worker = InferenceWorker(model_config())
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 128, 3), np.uint8), rng.integers(0, 255, (120, 100, 3), np.uint8)]
    metas = [meta(0, 128, 96), meta(1, 100, 120)]
    results = worker.infer(metas, [ray.put(i) for i in images])
    assert [r.meta for r in results] == metas
    for result, image in zip(results, images):
        assert result.error is None and result.inferred_at is not None
        assert 0 < len(result.instances) <= 3
        for inst in result.instances:
            assert (inst.mask.height, inst.mask.width) == image.shape[:2]
            assert inst.class_name in ("a", "b")


def test_a_failed_batch_gives_every_frame_the_error(ray_session: None) -> None:
    worker = InferenceWorker(model_config())
    good = np.zeros((96, 128, 3), np.uint8)
    broken = np.zeros((96, 128), np.uint8)  # no channel axis: the engine refuses it
    results = worker.infer([meta(0, 128, 96), meta(1, 128, 96)], [ray.put(good), ray.put(broken)])
    assert len(results) == 2
    for result in results:
        assert result.instances == ()
        assert result.error is not None and "inference failed on a batch of 2 frames" in result.error


def test_unloadable_weights_are_reported_not_raised(ray_session: None, tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    worker = InferenceWorker(model_config(weights=str(missing)))
    ready = worker.ready()
    assert ready.error is not None and str(missing) in ready.error
    results = worker.infer([meta(0, 8, 8)], [ray.put(np.zeros((8, 8, 3), np.uint8))])
    assert results[0].error == ready.error


def test_ready_says_what_auto_chose_and_why() -> None:
    from pipeline.precision import probe_capabilities, resolve_precision
    import torch

    info = InferenceWorker(model_config()).ready()  # precision and channels_last: auto (the defaults)
    expected = resolve_precision("auto", "auto", probe_capabilities(torch.device("cpu")))
    assert info.error is None and info.device == "cpu" and info.precision == expected.describe()
    assert info.describe() == f"maskrcnn_compact on cpu (random, 3 classes), {expected.describe()}"
    forced = InferenceWorker(model_config(precision="fp32", channels_last=False)).ready()
    assert forced.precision == "fp32 (as set)"


def test_frames_of_one_bundle_are_read_at_their_slots(ray_session: None) -> None:
    from pipeline.frames import FrameBundle

    worker = InferenceWorker(model_config())
    rng = np.random.default_rng(1)
    images = (rng.integers(0, 255, (96, 128, 3), np.uint8), rng.integers(0, 255, (120, 100, 3), np.uint8))
    bundle = ray.put(FrameBundle(images))
    metas = [meta(1, 100, 120), meta(0, 128, 96)]
    metas = [dataclasses.replace(metas[0], slot=1), metas[1]]
    results = worker.infer(metas, [bundle, bundle])
    for result, image in zip(results, (images[1], images[0])):
        assert result.error is None
        assert result.instances and all((i.mask.height, i.mask.width) == image.shape[:2] for i in result.instances)


def test_the_engine_gets_the_configured_duplicate_rule(ray_session: None) -> None:
    assert InferenceWorker(model_config(duplicate_mask_iou_threshold=None)).engine.duplicate_mask_iou_threshold is None
    assert InferenceWorker(model_config(duplicate_mask_iou_threshold=0.6)).engine.duplicate_mask_iou_threshold == 0.6
