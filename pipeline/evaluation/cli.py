"""``maskstream eval``: accuracy of the model, the pipeline and the tracker, as a table, JSON and a PNG chart.

    maskstream eval --out eval-out                       # the shipped model, everything
    maskstream eval --weights none --frames 8 --skip-pipeline --out /tmp/ev   # random weights, quick
    maskstream eval --skip-model --skip-pipeline --skip-tracker --out /tmp/ood   # out-of-distribution part only

The out-of-distribution part scores two sets of PIL-drawn frames: the hard default (the targets' set, its worst
frames drawn) and ``ood_scenes.ISSUE_CASE``, the plain scenes issue 13 reports (``ood_issue_case`` in the report).

Writes ``OUT/report.json`` and ``OUT/report.png``, the out-of-distribution part's worst frames as
``OUT/ood_worst_<rank>.png``, and, for the pipeline part, the held-out videos, the generated
``pipeline.yaml``, its log and JSON Lines output under ``OUT/pipeline/``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.errors import ConfigError
from pipeline.precision import PRECISION_SETTINGS

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "shapes.pt"
# The tracking thresholds suit a detector's score calibration; the shipped config's are tuned for the shipped model.
DEFAULT_TRACKING_CONFIG = Path(__file__).resolve().parents[2] / "pipeline.yaml"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("eval", help="accuracy report: model AP, pipeline AP + MOTA/IDF1/HOTA, tracker vs peer")
    p.add_argument("--out", type=Path, required=True, help="folder for report.json, report.png and the pipeline run")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                   help="checkpoint (default: the shipped %(default)s), a torchvision weights name, or none (random)")
    p.add_argument("--arch", default="maskrcnn_compact", help="model arch (default: %(default)s)")
    p.add_argument("--frames", type=int, default=200, help="held-out frames for the model-alone AP (default: %(default)s)")
    p.add_argument("--videos", type=int, default=2, help="held-out videos for the pipeline part (default: %(default)s)")
    p.add_argument("--video-frames", type=int, default=150, help="frames per held-out video (default: %(default)s)")
    p.add_argument("--skip-model", action="store_true", help="skip the model-alone AP")
    p.add_argument("--skip-pipeline", action="store_true", help="skip the pipeline part (no Ray)")
    p.add_argument("--skip-tracker", action="store_true", help="skip the tracker-vs-peer part")
    p.add_argument("--skip-ood", action="store_true", help="skip the out-of-distribution part (PIL-drawn shapes: the "
                                                                "hard set and the issue's plain case)")
    p.add_argument("--ood-frames", type=int, default=200,
                   help="out-of-distribution frames (pipeline.evaluation.ood_scenes; default: %(default)s)")
    p.add_argument("--publish-threshold", type=float, default=None,
                   help="score at which a detection counts as published, for precision/recall on the held-out and "
                        f"OOD frames (default: model.score_threshold of the shipped {DEFAULT_TRACKING_CONFIG.name})")
    p.add_argument("--ood-codec", choices=("h264", "none"), default="h264",
                   help="h264: the OOD frames are encoded and decoded again as a user's video (default); "
                        "none: the rendered pixels")
    p.add_argument("--ood-worst", type=int, default=4, help="OOD frames with most errors drawn (default: %(default)s)")
    p.add_argument("--ood-seed", type=int, default=0, help="seed of the first OOD frame (default: %(default)s)")
    p.add_argument("--tracking-config", default=str(DEFAULT_TRACKING_CONFIG),
                   help="pipeline config whose tracking section the pipeline part uses (default: the shipped "
                        "%(default)s, tuned for the shipped model); none: the built-in defaults")
    p.add_argument("--pipeline-jsonl", type=Path, default=None,
                   help="score this folder's <stream>.jsonl from an earlier run instead of running the pipeline")
    p.add_argument("--min-size", type=int, default=None,
                   help="model input short side (default: the size the weights were trained at)")
    p.add_argument("--max-size", type=int, default=None,
                   help="model input long side at most (default: the size the weights were trained at)")
    p.add_argument("--score-threshold", type=float, default=0.05,
                   help="model score threshold; low because AP needs the low-score detections (default: %(default)s)")
    p.add_argument("--mask-threshold", type=float, default=0.5, help="mask probability threshold (default: %(default)s)")
    p.add_argument("--max-detections", type=int, default=100, help="instances per frame at most (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (default: %(default)s)")
    p.add_argument("--precision", choices=PRECISION_SETTINGS, default="auto",
                   help="the model's precision (default: %(default)s, the shipped default; channels-last follows "
                        "model.channels_last: auto). When it is not fp32, the model-alone AP is also measured in fp32 "
                        "on the same frames and the difference is a target")
    p.add_argument("--duplicate-mask-iou", default=None, metavar="IOU|off",
                   help="the engine's duplicate rule, model.duplicate_mask_iou_threshold (default: the shipped "
                        "config's; off: none)")
    p.add_argument("--batch-size", type=int, default=4, help="frames per engine call (default: %(default)s)")
    p.add_argument("--tracker-clips", type=int, default=4, help="clips for the tracker part (default: %(default)s)")
    p.add_argument("--tracker-frames", type=int, default=150, help="frames per tracker clip (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tracker part's simulated detector noise")
    p.add_argument("--pipeline-timeout-s", type=float, default=3600, help="give up on `maskstream run` after this long")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace, *, need_model: bool) -> Any:
    from pipeline.evaluation.model_ap import EngineSettings

    weights = args.weights
    if weights is not None and weights.strip().lower() in ("", "none", "null", "random"):
        weights = None
    elif weights is not None and ("/" in weights or weights.endswith((".pt", ".pth"))):
        path = Path(weights).expanduser().resolve()
        if need_model and not path.is_file():
            raise ConfigError(f"--weights {weights}: no such checkpoint (train one with `maskstream train`, "
                              "or pass --weights none for random weights)")
        weights = str(path)
    for name in ("frames", "videos", "video_frames", "batch_size", "tracker_clips", "tracker_frames", "ood_frames"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    from pipeline.model import input_size

    # resolved here, so that the report records the size the model ran at
    min_size, max_size = input_size(args.arch, weights, args.min_size, args.max_size) if need_model else (
        args.min_size, args.max_size)
    return EngineSettings(arch=args.arch, weights=weights, min_size=min_size, max_size=max_size,
                          score_threshold=args.score_threshold, mask_threshold=args.mask_threshold,
                          max_detections=args.max_detections, device=args.device, precision=args.precision,
                          duplicate_mask_iou_threshold=_duplicate_iou(args.duplicate_mask_iou))


def _duplicate_iou(text: str | None) -> float | None:
    """``--duplicate-mask-iou``: the shipped config's threshold when not given (parsed here: the engine imports torch)."""
    import argparse

    from pipeline.engine.duplicates import parse_duplicate_iou
    from pipeline.evaluation.model_ap import SHIPPED_DUPLICATE_MASK_IOU

    if text is None:
        return SHIPPED_DUPLICATE_MASK_IOU
    try:
        return parse_duplicate_iou(text)
    except argparse.ArgumentTypeError as err:
        raise ConfigError(f"--duplicate-mask-iou: {err}") from None


def _tracking_section(spec: str) -> dict[str, Any]:
    """The ``tracking:`` section of the pipeline config at ``spec`` (validated), or ``{}`` for ``none``."""
    from pipeline.config import load_config

    if spec.strip().lower() in ("", "none", "default", "defaults"):
        return {}
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"--tracking-config {spec}: no such file (a pipeline config, or none for the defaults)")
    return load_config(path).tracking.model_dump()


def _shipped_score_threshold() -> float:
    """``model.score_threshold`` of the shipped pipeline config: the score at which ``maskstream run`` publishes."""
    from pipeline.config import load_config

    return float(load_config(DEFAULT_TRACKING_CONFIG).model.score_threshold)


def _publish_threshold(args: argparse.Namespace) -> float:
    return args.publish_threshold if args.publish_threshold is not None else _shipped_score_threshold()


def _ood_settings(args: argparse.Namespace) -> Any:
    from pipeline.evaluation.ood_eval import OodSettings

    return OodSettings(frames=args.ood_frames, score_threshold=_publish_threshold(args), seed_base=args.ood_seed,
                       codec=args.ood_codec, worst=args.ood_worst, batch_size=args.batch_size)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from pipeline.evaluation import report as rep

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file or pipe: wide enough for the tables
    need_model = not (args.skip_model and args.skip_pipeline and args.skip_ood)
    settings = _settings(args, need_model=need_model)
    ood_settings = None if args.skip_ood else _ood_settings(args)
    tracking = _tracking_section(args.tracking_config) if not args.skip_pipeline else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "frames": args.frames, "videos": args.videos,
                     "video_frames": args.video_frames, "tracker_clips": args.tracker_clips,
                     "tracker_frames": args.tracker_frames, "seed": args.seed,
                     "tracking_config": args.tracking_config, "tracking": tracking,
                     "ood": None if ood_settings is None else asdict(ood_settings)},
        "model": None, "model_fp32": None, "ood": None, "ood_issue_case": None, "pipeline": None, "tracker": None,
    }
    timings: dict[str, float] = {}
    engine = None
    if need_model:
        from pipeline.evaluation.model_ap import build_engine

        engine = build_engine(settings)

    if not args.skip_model:
        from pipeline.evaluation.model_ap import evaluate_model

        t0 = time.monotonic()
        console.print(f"model: {args.frames} held-out frames in {engine.choice.describe()} ...", highlight=False)
        report["model"] = evaluate_model(engine, args.frames, batch_size=args.batch_size,
                                         publish_threshold=_publish_threshold(args))
        report["model"]["precision"] = engine.choice.describe()
        timings["model_s"] = time.monotonic() - t0
        if engine.precision != "fp32":
            from dataclasses import replace

            t0 = time.monotonic()
            console.print(f"model: the same {args.frames} frames in fp32, for comparison ...", highlight=False)
            reference = build_engine(replace(settings, precision="fp32", channels_last=False))
            report["model_fp32"] = evaluate_model(reference, args.frames, batch_size=args.batch_size)
            report["model_fp32"]["precision"] = reference.choice.describe()
            reference.close()
            timings["model_fp32_s"] = time.monotonic() - t0

    if ood_settings is not None:
        from pipeline.evaluation.ood_eval import evaluate_issue_case, evaluate_ood

        t0 = time.monotonic()
        console.print(f"ood: {ood_settings.frames} out-of-distribution frames (PIL shapes, {ood_settings.codec}) in "
                      f"{engine.choice.describe()}, published at score >= {ood_settings.score_threshold:g} ...",
                      highlight=False)
        report["ood"] = evaluate_ood(engine, ood_settings, picture_dir=out)
        report["ood"]["engine_precision"] = engine.choice.describe()
        timings["ood_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        console.print(f"ood: the issue's case, {ood_settings.frames} frames of plain shapes on grey ...", highlight=False)
        report["ood_issue_case"] = evaluate_issue_case(engine, ood_settings)
        timings["ood_issue_case_s"] = time.monotonic() - t0

    if not args.skip_pipeline:
        from pipeline.evaluation import pipeline_eval as pe

        t0 = time.monotonic()
        work = out / "pipeline"
        console.print(f"pipeline: writing {args.videos} held-out videos of {args.video_frames} frames ...", highlight=False)
        datasets = pe.write_heldout_videos(work / "videos", args.videos, args.video_frames)
        jsonl_dir = args.pipeline_jsonl
        if jsonl_dir is None:
            jsonl_dir = work / "jsonl"
            for ds in datasets:  # a stale file from an earlier run must not be scored
                (jsonl_dir / f"{Path(ds.video).stem}.jsonl").unlink(missing_ok=True)
            console.print("pipeline: running `maskstream run` (local Ray) ...", highlight=False)
            config = pe.pipeline_config([ds.video for ds in datasets], jsonl_dir, settings, tracking=tracking,
                                        max_batch_size=args.batch_size)
            pe.run_pipeline(config, work, timeout_s=args.pipeline_timeout_s)
        console.print("pipeline: scoring, and running the model alone on the same frames ...", highlight=False)
        report["pipeline"] = pe.evaluate_pipeline(datasets, jsonl_dir, engine, batch_size=args.batch_size)
        timings["pipeline_s"] = time.monotonic() - t0

    if not args.skip_tracker:
        from pipeline.evaluation.tracker_eval import evaluate_trackers

        t0 = time.monotonic()
        console.print(f"tracker: {args.tracker_clips} clips x {args.tracker_frames} frames per noise level ...",
                      highlight=False)
        report["tracker"] = evaluate_trackers(args.tracker_clips, args.tracker_frames, seed=args.seed)
        timings["tracker_s"] = time.monotonic() - t0

    report["timings"] = {k: round(v, 2) for k, v in timings.items()}
    rep.finalize(report)
    json_path = rep.write_json(report, out / "report.json")
    png_path = rep.write_chart(report, out / "report.png")
    rep.render(report, console)
    console.print(f"wrote {json_path} and {png_path}", highlight=False)
    return 1 if args.strict and not report["passed"] else 0
