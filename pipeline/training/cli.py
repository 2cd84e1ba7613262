"""``maskstream train``: train or fine-tune a Mask R-CNN on COCO-format data or on generated scenes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from pipeline.errors import ConfigError
from pipeline.scenes.config import BACKDROP_MIXES, SceneConfig, parse_min_max, parse_object_counts
from pipeline.training.loop import TRAINING_PRECISIONS

# --variety: the SceneConfig.variety of each clip, cycled over the clips (SceneSamples' tuple overrides).
_VARIETIES: dict[str, tuple[str, ...]] = {"classic": ("classic",), "rich": ("rich",), "mixed": ("classic", "rich")}


# --rich-sizes and --rich-objects: the SceneConfig fields each sets on the rich clips, and what it expects.
_RICH_RANGES: dict[str, tuple[tuple[str, str], str]] = {
    "rich_sizes": (("min_size", "max_size"), "MIN-MAX sizes in px at 320x240, e.g. 24-150"),
    "rich_objects": (("min_objects", "max_objects"), "N or MIN-MAX objects, e.g. 4-8"),
}


def _rich_range(option: str, parse: Callable[[str], tuple[Any, Any]]) -> Callable[[str], tuple[Any, Any]]:
    """An argparse type for ``option``: ``parse``'s pair, checked as ``SceneConfig`` checks a rich scene's fields."""
    (low_field, high_field), expected = _RICH_RANGES[option]

    def checked(text: str) -> tuple[Any, Any]:
        try:
            lo, hi = parse(text)
            SceneConfig(variety="rich", **{low_field: lo, high_field: hi})
        except (ValueError, ConfigError) as e:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected} ({e})") from e
        return lo, hi

    return checked


def _scene_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``SceneSamples``' overrides for ``--variety``, ``--backdrops``, ``--rich-sizes`` and ``--rich-objects`` (tuples
    cycle over the clips; a ``None`` field is the clip's variety default)."""
    varieties = _VARIETIES[args.variety]
    overrides: dict[str, Any] = {"variety": varieties, "backdrops": args.backdrops}
    for option, (names, _) in _RICH_RANGES.items():
        pair = getattr(args, option, None)
        if pair is not None:
            for i, name in enumerate(names):
                overrides[name] = tuple(pair[i] if v == "rich" else None for v in varieties)
    return overrides


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train or fine-tune a Mask R-CNN (COCO-format data or generated scenes)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="COCO instances JSON (images as files, or video frames 'clip.mp4#17')")
    data.add_argument("--synthetic", metavar="SEED", type=int, help="train on endless generated scenes from this seed")
    p.add_argument("--variety", choices=tuple(_VARIETIES), default="classic",
                   help="--synthetic: the scenes' variety (pipeline.scenes.SceneConfig.variety; classic: the scenes the "
                        "shipped model's first stages saw, rich: backgrounds, distractors, lighting, JPEG, frame edges; "
                        "mixed: classic and rich clips alternately, so that a fine-tune on rich keeps the classic look)")
    p.add_argument("--backdrops", choices=tuple(BACKDROP_MIXES), default="even",
                   help="--synthetic: the rich clips' mix of background kinds (pipeline.scenes.SceneConfig.backdrops; "
                        "even: every kind equally often, plain: flat, gradient and noise backgrounds more often)")
    p.add_argument("--rich-sizes", metavar="MIN-MAX", type=_rich_range("rich_sizes", parse_min_max),
                   help="--synthetic: the rich clips' object sizes, px at 320x240, drawn log-uniformly (default: the rich "
                        "variety's 8-150); classic clips keep theirs. 24-150: half the objects over 60 px instead of a third")
    p.add_argument("--rich-objects", metavar="N|MIN-MAX", type=_rich_range("rich_objects", parse_object_counts),
                   help="--synthetic: how many objects the rich clips hold at once (default: the scenes' 2-6); classic "
                        "clips keep theirs. More, with --rich-sizes' large ones, crowd the frame: background left between "
                        "objects, a negative the out-of-distribution frames show and sparse scenes seldom do")
    p.add_argument("--image-root", type=Path, help="folder the COCO file_name paths are relative to (default: the JSON's folder)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (a .resume.pt beside it allows --resume)")
    p.add_argument("--arch", default="maskrcnn_compact", help="maskrcnn_compact (default), maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2")
    p.add_argument("--init", help="start from these weights: a checkpoint path or a torchvision weights name (DEFAULT); "
                                  "heads are replaced when the class count differs")
    p.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--roi-samples", type=int, default=None,
                   help="proposals sampled per image for the box and mask heads (torchvision's default: 512); "
                        "fewer train faster when images hold few objects")
    p.add_argument("--interleave-clips", type=int, default=1,
                   help="--synthetic: render this many clips side by side and alternate their frames, so a batch "
                        "mixes scenes (1: clip after clip, as the shipped model's first stages)")
    p.add_argument("--min-size", type=int, default=240, help="the model's input short side")
    p.add_argument("--max-size", type=int, default=320, help="the model's input long side at most")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (the checkpoint is written for any device)")
    p.add_argument("--workers", type=int, default=0,
                   help="--synthetic: processes rendering scenes ahead of the training (the same stream for any "
                        "count; a GPU needs several: one core renders about 110 samples/s at 320x240)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="train about this long: --steps becomes an upper bound, lowered to what the speed of the "
                        "first steps fits (the checkpoint records the count)")
    p.add_argument("--precision", choices=TRAINING_PRECISIONS, default="fp32",
                   help="bf16: the forward under torch.autocast, weights and optimizer in fp32 (measured 1.5x faster "
                        "steps on a CPU with AVX-512 BF16)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _replace_heads(model: Any, num_classes: int) -> None:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    box = model.roi_heads.box_predictor
    if box.cls_score.out_features != num_classes:
        model.roi_heads.box_predictor = FastRCNNPredictor(box.cls_score.in_features, num_classes)
    mask = model.roi_heads.mask_predictor
    if mask.mask_fcn_logits.out_channels != num_classes:
        model.roi_heads.mask_predictor = MaskRCNNPredictor(
            mask.conv5_mask.in_channels, mask.conv5_mask.out_channels, num_classes
        )


def run(args: argparse.Namespace) -> int:
    from pipeline.model import build_model, load_model, save_checkpoint
    from pipeline.training.datasets import CocoFrames, SceneSamples
    from pipeline.training.loop import TrainingConfig, seed_everything, train

    console = Console(stderr=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    if args.data is not None:
        samples: Any = CocoFrames(args.data, image_root=args.image_root)
        class_names = samples.class_names
        source = f"COCO file {args.data} ({len(samples)} images)"
    else:
        from pipeline.scenes import CLASS_NAMES

        samples = SceneSamples(seed=args.synthetic, clips_interleaved=args.interleave_clips, workers=args.workers,
                               scene_overrides=_scene_overrides(args))
        class_names = CLASS_NAMES
        rich = "" if args.rich_sizes is None else ", rich sizes {:g}-{:g} px".format(*args.rich_sizes)
        rich += "" if args.rich_objects is None else ", rich objects {}-{}".format(*args.rich_objects)
        source = (f"generated scenes ({args.variety}, {args.backdrops} backdrops{rich}), seed {args.synthetic}, {args.interleave_clips} clip(s) "
                  "interleaved")
    model_kwargs = {"min_size": args.min_size, "max_size": args.max_size}
    if args.init is not None:
        loaded = load_model(args.arch, args.init, min_size=args.min_size, max_size=args.max_size,
                            score_threshold=0.05, max_detections=100)
        model = loaded.model
        _replace_heads(model, len(class_names))
    else:
        model = build_model(args.arch, num_classes=len(class_names), **model_kwargs)
    config = TrainingConfig(steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                            warmup_steps=args.warmup_steps, checkpoint_every=args.checkpoint_every, seed=args.seed,
                            roi_samples_per_image=args.roi_samples, time_budget_s=args.time_budget_s,
                            precision=args.precision)
    resume_path = args.out.with_suffix(".resume.pt")
    if args.resume and not resume_path.is_file():
        raise ConfigError(f"--resume: {resume_path} does not exist; run without --resume to start a new training")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from dataclasses import asdict

    def save(m: Any, step: int, final: bool, optimizer: Any, in_force: TrainingConfig) -> None:
        training_info = json.loads(json.dumps({"source": source, "arch": args.arch, "init": args.init,
                                               "device": args.device, "config": asdict(in_force)}, default=str))
        torch.save({"model": m.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, resume_path)
        save_checkpoint(args.out, m, arch=args.arch, class_names=class_names, model_kwargs=model_kwargs,
                        extra={"training": training_info, "step": step})
        console.print(f"step {step}: wrote {args.out}" + (" (final)" if final else ""), highlight=False)

    console.print(f"training {args.arch} on {source}: {len(class_names) - 1} classes, {args.steps} steps of {args.batch_size}",
                  highlight=False)
    losses = train(model, samples, config, save=save, resume_path=resume_path if args.resume else None, console=console,
                   device=args.device)
    console.print("final losses: " + "  ".join(f"{k} {v:.4f}" for k, v in losses.items()), highlight=False)
    return 0
