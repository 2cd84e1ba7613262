"""write_dataset: the MP4 reads back, the COCO RLE round-trips, the MOT rows match the GT."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from pipeline.errors import ConfigError
from pipeline.scenes import CLASS_NAMES, DatasetPaths, SceneConfig, SceneFrame, SceneGenerator, write_dataset

CFG = SceneConfig(seed=21, num_frames=48, fps=12.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetPaths:
    return write_dataset(CFG, tmp_path_factory.mktemp("scene") / "out", name="clip")


@pytest.fixture(scope="module")
def frames() -> list[SceneFrame]:
    return list(SceneGenerator(CFG))


def test_paths(dataset: DatasetPaths) -> None:
    assert dataset.video.name == "clip.mp4" and dataset.coco.name == "clip.coco.json" and dataset.mot.name == "clip.mot.txt"
    assert dataset.video.parent == dataset.coco.parent == dataset.mot.parent
    for path in (dataset.video, dataset.coco, dataset.mot):
        assert path.stat().st_size > 0


def test_video_reads_back(dataset: DatasetPaths, frames: list[SceneFrame]) -> None:
    with av.open(str(dataset.video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == pytest.approx(CFG.fps)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert container.streams.video[0].format.name == "yuv420p"
    assert len(decoded) == CFG.num_frames
    assert all(d.shape == (CFG.height, CFG.width, 3) for d in decoded)
    # The right frames in the right order: each decoded frame is closest to its own source frame.
    for i in (0, len(frames) // 2, len(frames) - 1):
        errors = [np.abs(decoded[i].astype(np.int16) - f.image).mean() for f in frames]
        assert int(np.argmin(errors)) == i
        assert errors[i] < 6.0


def test_coco_rle_round_trip(dataset: DatasetPaths, frames: list[SceneFrame]) -> None:
    raw = json.loads(dataset.coco.read_text())
    assert [c["id"] for c in raw["categories"]] == [1, 2, 3, 4]
    assert [c["name"] for c in raw["categories"]] == list(CLASS_NAMES[1:])
    coco = COCO(str(dataset.coco))
    images = sorted(coco.dataset["images"], key=lambda im: im["frame_index"])
    assert [im["frame_index"] for im in images] == list(range(CFG.num_frames))
    assert all(im["file_name"] == f"clip.mp4#{im['frame_index']}" for im in images)
    total = 0
    for image, frame in zip(images, frames):
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])), key=lambda a: a["track_id"])
        assert [a["track_id"] for a in anns] == [g.track_id for g in frame.instances]
        for ann, inst in zip(anns, frame.instances):
            assert isinstance(ann["segmentation"]["counts"], str)
            decoded = coco.annToMask(ann).astype(bool)
            assert np.array_equal(decoded, inst.mask)
            x1, y1, x2, y2 = inst.box
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert list(mask_utils.toBbox(ann["segmentation"])) == ann["bbox"]
            assert ann["area"] == inst.area and ann["iscrowd"] == 0 and ann["category_id"] == inst.label
            total += 1
    assert total == len(coco.dataset["annotations"]) > 0


def test_mot_rows_match_gt(dataset: DatasetPaths, frames: list[SceneFrame]) -> None:
    rows = [line.split(",") for line in dataset.mot.read_text().splitlines()]
    expected = [
        [f.index + 1, g.track_id, *g.box[:2], g.box[2] - g.box[0], g.box[3] - g.box[1], 1, g.label, 1]
        for f in frames
        for g in f.instances
    ]
    assert len(rows) == len(expected) > 0
    for row, exp in zip(rows, expected):
        assert len(row) == 9
        assert [float(v) for v in row] == [float(v) for v in exp]


def test_refuses_endless_and_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="endless"):
        write_dataset(SceneConfig(num_frames=None), tmp_path, name="x")
    with pytest.raises(ConfigError, match="321x240"):
        write_dataset(SceneConfig(width=321, num_frames=2), tmp_path, name="x")
    with pytest.raises(ConfigError, match="name"):
        write_dataset(SceneConfig(num_frames=2), tmp_path, name="a/b")
