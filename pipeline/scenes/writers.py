"""Write a finite scene as a dataset: H.264 MP4 + COCO instances JSON + MOTChallenge ground truth.

PyAV and pycocotools are imported where they are used, so that ``pipeline.scenes`` (the generator
behind training) imports on a machine with torch and numpy alone, such as the GPU machine.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.scenes.config import CLASS_NAMES, SceneConfig
from pipeline.scenes.generator import SceneFrame, SceneGenerator


@dataclass(frozen=True)
class DatasetPaths:
    """The files ``write_dataset`` wrote."""

    video: Path  # out_dir/name.mp4: H.264, yuv420p, one video frame per scene frame, at config.fps
    coco: Path  # out_dir/name.coco.json: COCO instances with RLE masks and track ids
    mot: Path  # out_dir/name.mot.txt: MOTChallenge ground truth


def write_dataset(config: SceneConfig, out_dir: Path, *, name: str) -> DatasetPaths:
    """Render the ``config`` scene and write ``name.mp4``, ``name.coco.json`` and ``name.mot.txt`` into ``out_dir``.

    COCO file: ``images`` have ``id = frame_index + 1``, ``file_name = "name.mp4#<frame_index>"``,
    ``frame_index`` (0-based), ``width``, ``height``; ``categories`` are ids 1..4 named after
    ``CLASS_NAMES``; each annotation has ``segmentation`` as compressed RLE (``counts`` a str,
    column-major as pycocotools writes it), ``bbox`` ``[x, y, w, h]`` (pixels, from the GT box, so
    ``w = x2 - x1``), ``area`` (visible pixels), ``iscrowd`` 0 and ``track_id``.
    MOT file: one row per GT instance, ``frame,id,bb_left,bb_top,bb_width,bb_height,1,class,1`` with
    a 1-based frame number and the class label. The config must be finite and, for yuv420p, have
    an even width and height; otherwise ``ConfigError``.
    """
    if config.num_frames is None:
        raise ConfigError("write_dataset: config.num_frames is None (endless), expected a finite number of frames")
    if config.width % 2 or config.height % 2:
        raise ConfigError(
            f"write_dataset: frame size {config.width}x{config.height} has an odd side, "
            "expected an even width and height (H.264 yuv420p)"
        )
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"write_dataset: name {name!r} is not a plain file name")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = DatasetPaths(
        video=out_dir / f"{name}.mp4", coco=out_dir / f"{name}.coco.json", mot=out_dir / f"{name}.mot.txt"
    )
    import av

    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    mot_rows: list[str] = []
    rate = Fraction(config.fps).limit_denominator(1001)
    with av.open(str(paths.video), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = config.width, config.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        stream.codec_context.time_base = 1 / rate
        for frame in SceneGenerator(config):
            video_frame = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
            video_frame.pts = frame.index
            video_frame.time_base = 1 / rate
            for packet in stream.encode(video_frame):
                container.mux(packet)
            images.append(
                {
                    "id": frame.index + 1,
                    "file_name": f"{paths.video.name}#{frame.index}",
                    "frame_index": frame.index,
                    "width": config.width,
                    "height": config.height,
                }
            )
            _annotate(frame, annotations, mot_rows)
        for packet in stream.encode(None):
            container.mux(packet)
    coco = {
        "info": {"description": f"maskstream synthetic scene {name}", "scene_config": asdict(config)},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": label, "name": CLASS_NAMES[label], "supercategory": "shape"} for label in range(1, len(CLASS_NAMES))
        ],
    }
    paths.coco.write_text(json.dumps(coco, separators=(",", ":")))
    paths.mot.write_text("".join(mot_rows))
    return paths


def _annotate(frame: SceneFrame, annotations: list[dict[str, Any]], mot_rows: list[str]) -> None:
    """Append the COCO annotations and MOT rows of one frame."""
    from pycocotools import mask as mask_utils

    if not frame.instances:
        return
    stacked = np.asfortranarray(np.stack([g.mask for g in frame.instances], axis=2).astype(np.uint8))
    rles = mask_utils.encode(stacked)
    for inst, rle in zip(frame.instances, rles):
        x1, y1, x2, y2 = inst.box
        counts = rle["counts"]
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": frame.index + 1,
                "category_id": inst.label,
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
                },
                "area": int(np.count_nonzero(inst.mask)),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0,
                "track_id": inst.track_id,
            }
        )
        mot_rows.append(
            f"{frame.index + 1},{inst.track_id},{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g},1,{inst.label},1\n"
        )
