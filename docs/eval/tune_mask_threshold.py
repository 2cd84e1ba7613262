"""Mask AP of a checkpoint at several mask thresholds and input sizes, on generated TUNING frames (not the eval's).

The frames are every 5th frame of clips seeded from 555555 on (no training or evaluation seed).

    .venv/bin/python docs/eval/tune_mask_threshold.py --weights pipeline/models/shapes.pt --frames 120
"""

from __future__ import annotations

import argparse
import json

from pipeline.evaluation.model_ap import EngineSettings, build_engine, evaluate_model

TUNING_SEED_BASE = 555555


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", required=True)
    p.add_argument("--frames", type=int, default=120)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6])
    p.add_argument("--min-sizes", type=int, nargs="+", default=[240], help="input short sides (long side: 4/3 of it)")
    args = p.parse_args()
    for min_size in args.min_sizes:
        for threshold in args.thresholds:
            engine = build_engine(EngineSettings(weights=args.weights, mask_threshold=threshold, min_size=min_size,
                                                 max_size=min_size * 4 // 3))
            report = evaluate_model(engine, args.frames, seed_base=TUNING_SEED_BASE)
            print(json.dumps({"min_size": min_size, "mask_threshold": threshold,
                              "mask_AP": round(report["segm"]["AP"], 4), "mask_AP75": round(report["segm"]["AP75"], 4),
                              "box_AP": round(report["bbox"]["AP"], 4)}), flush=True)


if __name__ == "__main__":
    main()
