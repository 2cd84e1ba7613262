"""The whole pipeline: mask/box AP and MOTA/IDF1/HOTA of ``maskstream run``'s JSON Lines output.

1. ``write_heldout_videos``: held-out scenes (seeds from ``HOLDOUT_VIDEO_SEED_BASE`` =
   ``10**9 + 500_000``, disjoint from training seeds and from the model-alone frames; see
   :mod:`pipeline.evaluation.model_ap`) written by ``write_dataset`` (mp4 + COCO + MOT).
2. ``run_pipeline``: a config with one stream per mp4, the ``model`` section of the eval
   settings, the ``tracking`` section of a pipeline config (``maskstream eval`` takes the
   shipped pipeline.yaml's), and only the JSON Lines sink, run as
   ``python -m pipeline.cli run CFG --no-progress`` in a subprocess.
3. ``evaluate_pipeline``:
   - AP of every published instance (score = the instance's score) against the COCO GT;
   - MOTA, IDF1, HOTA of the instances that carry a track id against the MOT GT (box IoU,
     as MOTChallenge); an instance without a track id is not part of the tracker's output;
     a frame missing from the JSON Lines, or published with an error, counts as a frame with
     no output;
   - the model alone on the SAME frames (decoded from the mp4 to RGB with PyAV, and run through
     ``InferenceEngine`` directly; the pipeline's source sends the decoder's YUV 4:2:0 planes by
     default, converted on the model's device, so the comparison covers that too), and the AP difference
     pipeline minus model: the pipeline should lose nothing; and, independent of the GT, how
     many published instances are the engine's own detections (:class:`Agreement`). With
     ``--weights none`` the pipeline's actor and this process build different random weights,
     so only a checkpoint makes these two comparisons meaningful.

The pipeline runs at the eval score threshold (0.05) so that its AP is comparable; the
tracker ignores detections below its ``low_score_threshold`` (0.1) anyway, so tracking is the
same as with any score threshold up to 0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pipeline.errors import MaskstreamError
from pipeline.evaluation.metrics import (
    CocoGtBuilder,
    MotFrame,
    coco_ap,
    mot_metrics,
    results_from_detections,
    results_from_instances,
)
from pipeline.evaluation.model_ap import HOLDOUT_SEED_BASE, EngineSettings, infer_all
from pipeline.messages import FrameMessage

HOLDOUT_VIDEO_SEED_BASE = HOLDOUT_SEED_BASE + 500_000
IMAGE_ID_STRIDE = 1_000_000  # image ids of video v are v * IMAGE_ID_STRIDE + frame_index + 1
REPO_ROOT = Path(__file__).resolve().parents[2]


class EvaluationError(MaskstreamError):
    """The evaluation could not run (the pipeline failed, an output is missing or malformed)."""


def video_name(i: int) -> str:
    return f"heldout-{i:02d}"


def write_heldout_videos(out_dir: Path, n_videos: int, n_frames: int, *, seed_base: int = HOLDOUT_VIDEO_SEED_BASE,
                         fps: float = 25.0, width: int = 320, height: int = 240) -> list[Any]:
    """Write ``n_videos`` held-out scenes (``heldout-00.mp4`` + ``.coco.json`` + ``.mot.txt`` ...); their ``DatasetPaths``."""
    from pipeline.scenes import SceneConfig, write_dataset

    return [
        write_dataset(SceneConfig(seed=seed_base + i, width=width, height=height, fps=fps, num_frames=n_frames),
                      Path(out_dir), name=video_name(i))
        for i in range(n_videos)
    ]


def pipeline_config(videos: Sequence[Path], jsonl_dir: Path, settings: EngineSettings, *,
                    tracking: dict[str, Any] | None = None, ray_num_cpus: int | None = 2,
                    max_batch_size: int = 4) -> dict[str, Any]:
    """A pipeline config: one file stream per video (id = file stem), the eval model, JSON Lines only.

    ``tracking``: the ``tracking:`` section (for example the shipped pipeline.yaml's); None: the defaults.
    """
    on_gpu = settings.device.startswith("cuda")
    return {
        "ray": {"num_cpus": ray_num_cpus},
        "streams": [{"id": Path(v).stem, "url": str(Path(v).resolve())} for v in videos],
        "model": settings.model_section(),
        "tracking": dict(tracking or {}),
        "inference": {"replicas": 1, "num_gpus": 1 if on_gpu else 0, "num_cpus": 1,
                      "max_batch_size": max_batch_size, "max_wait_ms": 50},
        "sinks": {"jsonl": {"dir": str(Path(jsonl_dir).resolve())}},
        "run": {"progress": False, "drain_timeout_s": 600},
    }


def run_pipeline(config: dict[str, Any], work_dir: Path, *, timeout_s: float = 3600) -> Path:
    """Write ``work_dir/pipeline.yaml`` and run ``maskstream run`` on it; the log is ``work_dir/pipeline.log``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = work_dir / "pipeline.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = work_dir / "pipeline.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(cfg_path), "--no-progress"]
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, env=env,
                                  cwd=str(REPO_ROOT))
        except subprocess.TimeoutExpired as exc:
            raise EvaluationError(f"`{' '.join(cmd)}` ran past {timeout_s:g} s; see {log_path}") from exc
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise EvaluationError(f"`{' '.join(cmd)}` exited with {proc.returncode}; see {log_path}:\n{tail}")
    return cfg_path


def read_frames(jsonl_path: Path) -> dict[int, FrameMessage]:
    """Frame messages of one stream's JSON Lines output by frame index (errors kept, the end message dropped)."""
    from pipeline.client import read_jsonl

    jsonl_path = Path(jsonl_path)
    if not jsonl_path.is_file():
        raise EvaluationError(f"{jsonl_path}: the pipeline's JSON Lines output is missing")
    return {m.index: m for m in read_jsonl(jsonl_path) if isinstance(m, FrameMessage)}


def read_mot(path: Path, num_frames: int) -> list[MotFrame]:
    """A MOTChallenge file (``frame,id,left,top,width,height,...``, 1-based frames) as ``num_frames`` frames."""
    rows: dict[int, list[tuple[int, list[float]]]] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split(",")
        frame, tid = int(float(parts[0])), int(float(parts[1]))
        x, y, w, h = (float(v) for v in parts[2:6])
        rows.setdefault(frame, []).append((tid, [x, y, x + w, y + h]))
    return [MotFrame.of([r[0] for r in rows.get(f, [])], [r[1] for r in rows.get(f, [])] or np.zeros((0, 4)))
            for f in range(1, num_frames + 1)]


def tracks_of(frames: dict[int, FrameMessage], num_frames: int) -> list[MotFrame]:
    """The tracker's output: per frame, the instances with a track id."""
    out = []
    for i in range(num_frames):
        msg = frames.get(i)
        insts = [] if msg is None or msg.error else [x for x in msg.instances if x.track_id is not None]
        out.append(MotFrame.of([x.track_id for x in insts], [x.box for x in insts] or np.zeros((0, 4))))
    return out


def decode_video(path: Path) -> list[np.ndarray]:
    """Every frame of a video as uint8 RGB ``(H, W, 3)``, as PyAV (FFmpeg's swscale) converts them."""
    import av

    with av.open(str(path)) as container:
        return [np.ascontiguousarray(f.to_ndarray(format="rgb24"), dtype=np.uint8) for f in container.decode(video=0)]


def evaluate_pipeline(datasets: Sequence[Any], jsonl_dir: Path, engine: Any | None, *,
                      batch_size: int = 4) -> dict[str, Any]:
    """Score the pipeline's output for ``datasets`` (``DatasetPaths``) found in ``jsonl_dir/<stem>.jsonl``.

    With an ``engine``, also the model alone on the decoded frames and the AP difference.
    """
    gt = CocoGtBuilder()
    pipeline_results: list[dict[str, Any]] = []
    model_results: list[dict[str, Any]] = []
    sequences = []
    missing = errors = instances = 0
    total_frames = 0
    agreement = Agreement()
    for v, ds in enumerate(datasets):
        coco = json.loads(Path(ds.coco).read_text())
        offset = v * IMAGE_ID_STRIDE
        gt.extend_from_coco(coco, offset)
        n = len(coco["images"])
        total_frames += n
        frames = read_frames(Path(jsonl_dir) / f"{Path(ds.video).stem}.jsonl")
        for img in coco["images"]:
            msg = frames.get(int(img["frame_index"]))
            if msg is None:
                missing += 1
                continue
            if msg.error:
                errors += 1
                continue
            instances += len(msg.instances)
            pipeline_results.extend(results_from_instances(offset + int(img["id"]), msg.instances))
        sequences.append((read_mot(ds.mot, n), tracks_of(frames, n)))
        if engine is not None:
            images = decode_video(ds.video)
            if len(images) != n:
                raise EvaluationError(f"{ds.video}: decoded {len(images)} frames, the COCO file has {n}")
            for i, dets in enumerate(infer_all(engine, images, batch_size)):
                model_results.extend(results_from_detections(offset + i + 1, dets))
                msg = frames.get(i)
                if msg is not None and not msg.error:
                    agreement.add(msg.instances, dets)
    gt_dict = gt.build()
    report: dict[str, Any] = {
        "videos": len(datasets),
        "frames": total_frames,
        "frames_missing": missing,
        "frames_with_error": errors,
        "gt_instances": len(gt_dict["annotations"]),
        "instances": instances,
        "pipeline": coco_ap(gt_dict, pipeline_results),
        "tracking": mot_metrics(sequences),
    }
    if engine is not None:
        model = coco_ap(gt_dict, model_results)
        report["model_same_frames"] = model
        report["ap_difference"] = {
            t: {k: _diff(report["pipeline"][t][k], model[t][k]) for k in model[t]} for t in ("segm", "bbox")
        }
        report["agreement"] = agreement.summary()
    return report


class Agreement:
    """How many published instances are the model's own detections (same class, score within 1e-4, mask IoU >= 0.99).

    Independent of the ground truth: with the same weights, the pipeline should publish exactly the
    engine's detections (scores rounded to 5 decimals, boxes to 2, in the JSON).
    """

    MASK_IOU = 0.99
    SCORE_TOL = 1e-4

    def __init__(self) -> None:
        self.instances = self.detections = self.matched = 0
        self.min_iou = 1.0
        self.max_score_diff = 0.0

    def add(self, instances: Sequence[Any], dets: Any) -> None:
        from pycocotools import mask as mask_utils
        from scipy.optimize import linear_sum_assignment

        self.instances += len(instances)
        self.detections += len(dets)
        if not len(instances) or not len(dets):
            return
        a = [{"size": i.mask.to_coco()["size"], "counts": i.mask.counts.encode("ascii")} for i in instances]
        b = [{"size": m.to_coco()["size"], "counts": m.counts.encode("ascii")} for m in dets.masks]
        iou = np.asarray(mask_utils.iou(a, b, [0] * len(b)), np.float64).reshape(len(a), len(b))
        same = np.array([[x.class_name == n for n in dets.class_names] for x in instances])
        score_diff = np.abs(np.array([x.score for x in instances])[:, None] - np.asarray(dets.scores, np.float64)[None, :])
        rows, cols = linear_sum_assignment(-(iou * same))
        for r, c in zip(rows, cols):
            if same[r, c] and iou[r, c] >= self.MASK_IOU and score_diff[r, c] <= self.SCORE_TOL:
                self.matched += 1
                self.min_iou = min(self.min_iou, float(iou[r, c]))
                self.max_score_diff = max(self.max_score_diff, float(score_diff[r, c]))

    def summary(self) -> dict[str, Any]:
        return {
            "pipeline_instances": self.instances,
            "model_detections": self.detections,
            "matched": self.matched,
            "matched_fraction": self.matched / max(1, self.instances, self.detections),
            "min_mask_iou_matched": self.min_iou if self.matched else None,
            "max_score_diff_matched": self.max_score_diff if self.matched else None,
        }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
