"""Tune the tracker's thresholds on the model's detections of generated tuning videos.

The tuning videos (scene seeds from 777777 on, 150 frames each, as ``maskstream eval``'s
held-out videos but disjoint from them) are written once, decoded with PyAV and run through
the inference engine once (cached in ``WORK/detections-<weights stem>-<digest>-<videos>.pkl``); then every
tracker setting of the grid replays those detections and is scored with the eval's own
MOTA/IDF1/HOTA (``pipeline.evaluation.metrics.mot_metrics``).

    .venv/bin/python docs/eval/tune_tracker.py --weights pipeline/models/shapes.pt --work /tmp/tune

``--simulated`` tunes the tracker's generic defaults instead, on simulated detections with no model: the
walkers of :mod:`pipeline.evaluation.walkers` (clip seeds ``SIM_WALKER_SEED_BASES``, each ``+ clip``) and
the shapes clips of :mod:`pipeline.evaluation.tracker_eval` (``SIM_SHAPES_SEED_BASE + clip``), noise seed
``SIM_NOISE_SEED``; all disjoint from the reported ones (``WALKER_HOLDOUT_SEED_BASE`` and
``HOLDOUT_TRACKER_SEED_BASE``, noise seed 0). Each setting of ``SIM_GRID`` is printed as IDF1/MOTA/IDSW per
benchmark and noise level, next to roboflow's ByteTrack on the same detections:

    .venv/bin/python docs/eval/tune_tracker.py --simulated --work /tmp/tune
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.evaluation import pipeline_eval as pe
from pipeline.evaluation.metrics import MotFrame, mot_metrics
from pipeline.evaluation.model_ap import EngineSettings, build_engine, infer_all
from pipeline.tracking import ByteTracker

TUNING_SEED_BASE = 777777

GRID: dict[str, list[Any]] = {
    "high_score_threshold": [0.5, 0.6, 0.7],
    "low_score_threshold": [0.1, 0.3, 0.5],
    "new_track_score_threshold": [0.7, 0.8, 0.9],
    "min_hits_to_confirm": [1, 2, 3],
    "duplicate_mask_iou_threshold": [0.3],
}


SIM_WALKER_SEED_BASES = (777_000_000, 777_100_000, 777_200_000)  # 3 tuning sets of walker clips
SIM_SHAPES_SEED_BASE = 888_000_000
SIM_NOISE_SEED = 11
SIM_GRID: dict[str, list[Any]] = {
    "low_score_weight": [0.3, 0.5, 0.8, 1.0],
    "match_iou_threshold": [0.15, 0.2],
    "low_match_iou_threshold": [0.2, 0.3],
}


def simulated(work: Path, n_clips: int) -> None:
    """The ``--simulated`` grid (see the module docstring); rows also go to ``WORK/grid-simulated.json``."""
    from pipeline.evaluation import tracker_eval as te
    from pipeline.evaluation import walkers as wk

    cases: list[tuple[str, list[Any], Any]] = []  # (name, per-clip detections, scorer of per-clip predictions)
    for base in SIM_WALKER_SEED_BASES:
        clips = wk.walker_clips(n_clips, 300, base)
        for level in wk.WALKER_NOISE_LEVELS:
            noisy = [wk.noisy_walker_clip(c, level, SIM_NOISE_SEED, i) for i, c in enumerate(clips)]
            cases.append((f"walkers{base}/{level.level}", noisy,
                          lambda preds, clips=clips: [te.score_walkers(c, p) for c, p in zip(clips, preds)]))
    shapes = te.gt_clips(n_clips, 150, seed_base=SIM_SHAPES_SEED_BASE)
    for level in te.NOISE_LEVELS:
        noisy = [te.noisy_clip(c, level, SIM_NOISE_SEED, i) for i, c in enumerate(shapes)]
        cases.append((f"shapes/{level.level}", noisy,
                      lambda preds: [(c.frames, p) for c, p in zip(shapes, preds)]))

    def score(run: Any) -> dict[str, str]:
        return {name: "{IDF1:.4f}/{MOTA:.4f}/{IDSW}".format(**mot_metrics(scorer([run(n) for n in noisy])))
                for name, noisy, scorer in cases}

    rows = [{"tracker": "peer", **score(te.run_peer)}]
    print(json.dumps(rows[0]))
    for values in itertools.product(*SIM_GRID.values()):
        kwargs = dict(zip(SIM_GRID, values))
        rows.append({"tracker": kwargs, **score(lambda n, kw=kwargs: te.run_ours(n, **kw))})
        print(json.dumps(rows[-1]), flush=True)
    (work / "grid-simulated.json").write_text(json.dumps(rows, indent=1))


def detections(weights: str, work: Path, n_videos: int) -> tuple[list[list[Any]], list[list[MotFrame]]]:
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:12]  # two checkpoints may share a name
    cache = work / f"detections-{Path(weights).stem}-{digest}-{n_videos}.pkl"
    datasets = pe.write_heldout_videos(work / "videos", n_videos, 150, seed_base=TUNING_SEED_BASE)
    gts = [pe.read_mot(ds.mot, 150) for ds in datasets]
    if cache.is_file():
        return pickle.loads(cache.read_bytes()), gts
    engine = build_engine(EngineSettings(weights=weights))
    dets = [infer_all(engine, pe.decode_video(ds.video)) for ds in datasets]
    cache.write_bytes(pickle.dumps(dets))
    return dets, gts


def replay(video_dets: list[Any], **kwargs: Any) -> list[MotFrame]:
    tracker = ByteTracker(**kwargs)
    out = []
    for d in video_dets:
        ids = tracker.update(d.boxes, d.scores, d.labels, [m.to_coco() for m in d.masks])
        keep = [i for i, t in enumerate(ids) if t is not None]
        out.append(MotFrame.of([ids[i] for i in keep], d.boxes[keep] if keep else np.zeros((0, 4))))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", help="the model whose detections tune the thresholds (not with --simulated)")
    p.add_argument("--simulated", action="store_true", help="tune the generic defaults on simulated detections")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--clips", type=int, default=6, help="--simulated: clips per seed set (default: %(default)s)")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.simulated:
        simulated(args.work, args.clips)
        return
    if not args.weights:
        p.error("--weights is required without --simulated")
    dets, gts = detections(args.weights, args.work, args.videos)
    rows = []
    for values in itertools.product(*GRID.values()):
        kwargs = dict(zip(GRID, values))
        if kwargs["low_score_threshold"] > kwargs["high_score_threshold"]:
            continue
        if kwargs["new_track_score_threshold"] < kwargs["high_score_threshold"]:
            continue
        m = mot_metrics([(gt, replay(d, **kwargs)) for gt, d in zip(gts, dets)])
        rows.append({**kwargs, **{k: m[k] for k in ("MOTA", "IDF1", "HOTA", "CLR_FP", "CLR_FN", "IDSW")}})
    rows.sort(key=lambda r: -(r["MOTA"] + r["IDF1"]))
    for r in rows[:15]:
        print(json.dumps(r))
    (args.work / f"grid-{Path(args.weights).stem}-{args.videos}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
