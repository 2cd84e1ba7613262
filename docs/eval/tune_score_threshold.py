"""Precision and recall at several score thresholds, on TUNING frames (not the eval's), from one engine run.

Out-of-distribution frames come from ``pipeline.evaluation.ood_scenes`` seeded from 700000 on (the
eval's OOD frames are seeds 0-199), encoded with H.264 as the eval's; classic frames from
``pipeline.scenes`` seeded from 555555 on (as ``tune_mask_threshold.py``). The engine runs with the
eval's settings (score >= 0.05, the shipped duplicate rule); the frames' detections are then counted
at each threshold as ``maskstream eval`` counts them at the shipped one.

    .venv/bin/python docs/eval/tune_score_threshold.py --weights pipeline/models/shapes.pt --frames 96
"""

from __future__ import annotations

import argparse
import json

from pipeline.evaluation.model_ap import EngineSettings, build_engine, heldout_frames, infer_all
from pipeline.evaluation.ood_eval import OodSettings, inferred_frames
from pipeline.evaluation.ood_match import OodTally, score_detections
from pipeline.evaluation.ood_scenes import OBJECT_CLASSES
from pipeline.scenes import CLASS_NAMES

OOD_TUNING_SEED_BASE = 700000
CLASSIC_TUNING_SEED_BASE = 555555


def _row(tally: OodTally) -> dict[str, float | None]:
    s = tally.summary()["all"]
    return {"precision": s["precision"] and round(s["precision"], 3), "recall": s["recall"] and round(s["recall"], 3)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", required=True)
    p.add_argument("--frames", type=int, default=96, help="frames of each kind")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    args = p.parse_args()
    engine = build_engine(EngineSettings(weights=args.weights))
    ood = {t: OodTally(OBJECT_CLASSES) for t in args.thresholds}
    for frame, _, dets in inferred_frames(engine, OodSettings(frames=args.frames, seed_base=OOD_TUNING_SEED_BASE)):
        for t, tally in ood.items():
            score_detections(frame.instances, dets, t, tally, distractors=frame.distractors)
    classic = {t: OodTally(CLASS_NAMES[1:]) for t in args.thresholds}
    frames = list(heldout_frames(args.frames, seed_base=CLASSIC_TUNING_SEED_BASE))
    for frame, dets in zip(frames, infer_all(engine, [f.image for f in frames], 4)):
        for t, tally in classic.items():
            score_detections(frame.instances, dets, t, tally)
    for t in args.thresholds:
        print(json.dumps({"score_threshold": t, "ood": _row(ood[t]), "classic": _row(classic[t])}), flush=True)


if __name__ == "__main__":
    main()
