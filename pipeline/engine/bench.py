"""Time the engine on random frames with a random-weights model (no data, no download).

    python -m pipeline.engine.bench --arch maskrcnn_compact --size 320x240 --batch 1 4 \
        [--device cpu|cuda|auto] [--precision fp32|bf16|fp16] [--score-threshold 0.05] \
        [--max-detections 100] [--iters 10] [--reference]

Prints milliseconds per batch and per frame (median of ``--iters`` after 2 warm-up runs) and the
number of detections per frame. ``--reference`` also times torchvision's own forward
(full-frame mask pasting) through the adapter, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pipeline.engine.engine import InferenceEngine
from pipeline.model.builders import ARCHS, build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="maskrcnn_compact", choices=ARCHS)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the frames")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--num-classes", type=int, default=91)
    parser.add_argument("--min-size", type=int, default=None)
    parser.add_argument("--max-size", type=int, default=None)
    parser.add_argument("--score-threshold", type=float, default=0.05)
    parser.add_argument("--max-detections", type=int, default=100)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--reference", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    model = build_model(
        args.arch,
        num_classes=args.num_classes,
        min_size=args.min_size,
        max_size=args.max_size,
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
    )
    names = ["__background__"] + [f"class_{i}" for i in range(1, args.num_classes)]
    engine = InferenceEngine(
        model, names, device=args.device, precision=args.precision, channels_last=args.channels_last
    )
    rng = np.random.default_rng(0)
    print(
        f"{args.arch} {width}x{height} on {engine.device} ({args.precision}, {torch.get_num_threads()} threads), "
        f"score_threshold={args.score_threshold}, max_detections={args.max_detections}"
    )
    for batch in args.batch:
        frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]
        paths = [("engine", engine.infer)] + ([("reference", engine.infer_reference)] if args.reference else [])
        for name, fn in paths:
            for _ in range(2):
                fn(frames)
            times, dets = [], 0
            for _ in range(args.iters):
                _sync(engine.device)
                t0 = time.perf_counter()
                out = fn(frames)
                _sync(engine.device)
                times.append(time.perf_counter() - t0)
                dets = sum(len(d) for d in out)
            ms = 1000 * statistics.median(times)
            print(
                f"  {name:9s} batch {batch}: {ms:8.1f} ms/batch  {ms / batch:7.1f} ms/frame  "
                f"(min {1000 * min(times) / batch:.1f}) {dets / batch:.1f} detections/frame"
            )


if __name__ == "__main__":
    main()
