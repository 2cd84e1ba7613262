"""Scoring of the pipeline's JSON Lines output and of the model alone, with hand-made outputs (no Ray, no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation import pipeline_eval as pe
from pipeline.evaluation.model_ap import HOLDOUT_SEED_BASE, EngineSettings, evaluate_model, heldout_frames
from pipeline.messages import Detections, FrameMeta, FrameResult, Instance, RleMask, StreamEnd
from pipeline.scenes import SceneConfig, write_dataset

W, H, N = 96, 64, 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    config = SceneConfig(seed=HOLDOUT_SEED_BASE + 12345, width=W, height=H, num_frames=N, min_objects=2, max_objects=3,
                         min_size=30, max_size=60)
    return write_dataset(config, tmp_path_factory.mktemp("videos"), name="clip-a")


def gt_by_frame(dataset) -> dict[int, list[dict]]:
    coco = json.loads(Path(dataset.coco).read_text())
    out: dict[int, list[dict]] = {img["frame_index"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        out[ann["image_id"] - 1].append(ann)
    return out


def perfect_instances(anns: list[dict]) -> tuple[Instance, ...]:
    names = ("background", "circle", "square", "triangle", "star")
    return tuple(
        Instance(label=a["category_id"], class_name=names[a["category_id"]], score=0.9,
                 box=(a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]),
                 mask=RleMask.from_coco(a["segmentation"]), track_id=100 + a["track_id"])
        for a in anns
    )


def write_jsonl(path: Path, frames: dict[int, tuple[Instance, ...]], n: int) -> None:
    lines = []
    for i in sorted(frames):
        meta = FrameMeta(stream_id="clip-a", index=i, seq=i, pts_s=i / 25, captured_at=0.0, width=W, height=H)
        lines.append(json.dumps(FrameResult(meta=meta, instances=frames[i]).to_json()))
    lines.append(json.dumps(StreamEnd(stream_id="clip-a", frames=len(frames), decoded=n).to_json()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


class ReplayEngine:
    """Returns the given per-frame detections in call order (stands in for InferenceEngine)."""

    def __init__(self, detections: list[Detections], shape: tuple[int, int, int] = (H, W, 3)) -> None:
        self.queue = list(detections)
        self.shape = shape

    def infer(self, images: list[np.ndarray]) -> list[Detections]:
        assert all(img.dtype == np.uint8 and img.shape == self.shape for img in images)
        out, self.queue = self.queue[: len(images)], self.queue[len(images):]
        return out


def as_detections(instances: tuple[Instance, ...]) -> Detections:
    return Detections(
        boxes=np.array([i.box for i in instances], np.float32).reshape(-1, 4),
        labels=np.array([i.label for i in instances], np.int64),
        scores=np.array([i.score for i in instances], np.float32),
        class_names=tuple(i.class_name for i in instances),
        masks=tuple(i.mask for i in instances),
    )


def test_perfect_pipeline_output_scores_one(dataset, tmp_path: Path) -> None:
    gt = gt_by_frame(dataset)
    frames = {i: perfect_instances(anns) for i, anns in gt.items()}
    write_jsonl(tmp_path / "clip-a.jsonl", frames, N)
    engine = ReplayEngine([as_detections(frames[i]) for i in range(N)])
    report = pe.evaluate_pipeline([dataset], tmp_path, engine)
    assert report["frames"] == N and report["frames_missing"] == 0
    assert report["gt_instances"] == sum(len(a) for a in gt.values()) > 0
    for key in ("pipeline", "model_same_frames"):
        assert report[key]["segm"]["AP"] == pytest.approx(1.0)
        assert report[key]["bbox"]["AP"] == pytest.approx(1.0)
    assert report["ap_difference"]["segm"]["AP"] == pytest.approx(0.0, abs=1e-9)
    n = report["gt_instances"]
    assert report["agreement"]["matched"] == report["agreement"]["pipeline_instances"] == n
    assert report["agreement"]["matched_fraction"] == 1.0
    tr = report["tracking"]
    assert (tr["MOTA"], tr["IDF1"], tr["IDSW"]) == (1.0, 1.0, 0)
    assert tr["HOTA"] == pytest.approx(1.0)


def test_missing_frame_and_untracked_instances(dataset, tmp_path: Path) -> None:
    """Frame 3 missing from the output: its GT objects are all misses (MOTA = 1 - k/total); an
    instance without a track id counts for AP but is not tracker output."""
    gt = gt_by_frame(dataset)
    frames = {i: perfect_instances(anns) for i, anns in gt.items() if i != 3}
    last = max(frames)
    frames[last] = tuple(Instance(**{**vars(x), "track_id": None}) for x in frames[last])
    write_jsonl(tmp_path / "clip-a.jsonl", frames, N)
    report = pe.evaluate_pipeline([dataset], tmp_path, None)
    total = sum(len(a) for a in gt.values())
    missed = len(gt[3]) + len(gt[last])
    assert report["frames_missing"] == 1 and "model_same_frames" not in report
    assert report["tracking"]["CLR_FN"] == missed
    assert report["tracking"]["MOTA"] == pytest.approx(1 - missed / total)
    # AP: every GT detected except frame 3's; all detections are correct, so AP = recall-capped precision.
    assert 0 < report["pipeline"]["segm"]["AP"] < 1.0


def test_missing_jsonl_is_a_clear_error(dataset, tmp_path: Path) -> None:
    with pytest.raises(pe.EvaluationError, match="clip-a.jsonl"):
        pe.evaluate_pipeline([dataset], tmp_path, None)


def test_read_mot_matches_the_coco_boxes(dataset) -> None:
    gt = gt_by_frame(dataset)
    frames = pe.read_mot(dataset.mot, N)
    assert len(frames) == N
    for i, f in enumerate(frames):
        assert sorted(f.ids.tolist()) == sorted(a["track_id"] for a in gt[i])
        for tid, box in zip(f.ids, f.boxes):
            (ann,) = [a for a in gt[i] if a["track_id"] == tid]
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(box, [x, y, x + w, y + h])


def test_pipeline_config_is_valid(tmp_path: Path) -> None:
    from pipeline.config import parse_config

    for weights in (None, str(tmp_path / "m.pt")):
        cfg = pe.pipeline_config([tmp_path / "heldout-00.mp4"], tmp_path / "jsonl", EngineSettings(weights=weights))
        parsed = parse_config(cfg)
        assert parsed.streams[0].id == "heldout-00"
        assert parsed.model.score_threshold == 0.05 and parsed.model.device == "cpu"
        assert parsed.inference.num_gpus == 0
        assert parsed.sinks.jsonl is not None and parsed.sinks.redis is None and parsed.sinks.video is None
        assert (parsed.model.weights is None) == (weights is None)
    tracked = parse_config(pe.pipeline_config([tmp_path / "a.mp4"], tmp_path, EngineSettings(),
                                              tracking={"low_score_threshold": 0.45, "min_hits_to_confirm": 2}))
    assert tracked.tracking.low_score_threshold == 0.45 and tracked.tracking.min_hits_to_confirm == 2


def test_eval_takes_the_tracking_section_of_a_pipeline_config(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from pipeline.evaluation.cli import DEFAULT_TRACKING_CONFIG, _tracking_section

    path = tmp_path / "p.yaml"
    path.write_text("streams: [{id: a, url: 'synthetic:'}]\ntracking: {low_score_threshold: 0.42}\n")
    assert _tracking_section(str(path))["low_score_threshold"] == 0.42
    assert _tracking_section("none") == {}
    shipped = _tracking_section(str(DEFAULT_TRACKING_CONFIG))
    assert set(shipped) >= {"high_score_threshold", "low_score_threshold", "duplicate_mask_iou_threshold"}
    with pytest.raises(ConfigError, match="--tracking-config .*nope.yaml: no such file"):
        _tracking_section(str(tmp_path / "nope.yaml"))


def test_model_ap_with_a_perfect_engine() -> None:
    frames = list(heldout_frames(4))
    assert len(frames) == 4
    from pycocotools import mask as mask_utils

    def dets(frame) -> Detections:
        insts = frame.instances
        return Detections(
            boxes=np.array([g.box for g in insts], np.float32).reshape(-1, 4),
            labels=np.array([g.label for g in insts], np.int64),
            scores=np.full(len(insts), 0.9, np.float32),
            class_names=tuple(g.class_name for g in insts),
            masks=tuple(RleMask.from_coco(mask_utils.encode(np.asfortranarray(g.mask.astype(np.uint8)))) for g in insts),
        )

    report = evaluate_model(ReplayEngine([dets(f) for f in frames], (240, 320, 3)), 4)
    assert report["frames"] == 4 and report["gt_instances"] == sum(len(f.instances) for f in frames)
    assert report["segm"]["AP"] == pytest.approx(1.0) and report["bbox"]["AP75"] == pytest.approx(1.0)
    assert report["at_threshold"] is None
    report = evaluate_model(ReplayEngine([dets(f) for f in frames], (240, 320, 3)), 4, publish_threshold=0.95)
    at = report["at_threshold"]  # every detection scores 0.9: nothing is published at 0.95
    assert at["all"]["published"] == 0 and at["all"]["recall"] == 0.0 and "by_tag" not in at
    report = evaluate_model(ReplayEngine([dets(f) for f in frames], (240, 320, 3)), 4, publish_threshold=0.5)
    at = report["at_threshold"]
    assert (at["all"]["precision"], at["all"]["recall"], at["duplicate_pairs"]) == (1.0, 1.0, 0)
    assert at["all"]["gt"] == report["gt_instances"] and report["score_threshold"] == 0.5


def test_heldout_frames_are_seeded_above_training_seeds() -> None:
    a = list(heldout_frames(7))
    b = list(heldout_frames(7))
    assert [f.index for f in a] == [0, 10, 20, 30, 40, 50, 0]  # 6 frames per 60-frame clip, then the next clip
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert HOLDOUT_SEED_BASE >= 999 * 1_000_003 + 997_002
