"""The tracker alone: our ``ByteTracker`` against roboflow ``trackers.ByteTrackTracker`` on noisy GT boxes.

The ground truth is the boxes and ids of generated clips (held-out scene seeds from
``HOLDOUT_TRACKER_SEED_BASE`` = ``10**9 + 900_000``). A detector is simulated by
corrupting them at a noise level (:data:`NOISE_LEVELS`):

- each true box is missed with probability ``miss_prob``; otherwise each coordinate gets
  Gaussian jitter of ``jitter_px`` pixels (then clipped to the frame, at least 2 px wide/tall);
- a kept true detection scores ``U(0.6, 0.95)``, or, with probability ``low_score_prob``
  (a partly occluded, blurred object), ``U(0.15, 0.5)``;
- ``Poisson(fp_per_frame)`` false positives per frame: boxes of 10-60 px anywhere, scoring
  ``U(0.1, 0.7)``;
- detections are shuffled.

Everything is drawn from ``numpy.random.default_rng([seed, level, clip])``: the same seed gives
the same detections. Both trackers see exactly the same detections, frame by frame: ours with
its defaults (the pipeline's), the peer with ITS defaults (``ByteTrackTracker()``). Their
outputs (the detections each returns with an id; -1 / ``None`` are not output) are scored with
MOTA, IDF1 and HOTA against the GT (:func:`pipeline.evaluation.metrics.mot_metrics`).

A second benchmark, ``walkers``, does the same on human-like motion (:mod:`pipeline.evaluation.walkers`:
pedestrians in perspective that stop, turn, walk in groups, cross and hide each other) at the noise levels
:data:`~pipeline.evaluation.walkers.WALKER_NOISE_LEVELS` (jitter relative to the box size, misses and low
scores driven by occlusion), from held-out seeds ``WALKER_HOLDOUT_SEED_BASE + clip``; GT walkers less than
:data:`~pipeline.evaluation.walkers.MIN_SCORED_VISIBILITY` visible are ignore boxes
(:func:`~pipeline.evaluation.walkers.drop_ignored`). Tuning (``docs/eval/tune_tracker.py``) uses other
seeds for both benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.evaluation.metrics import MotFrame, mot_metrics
from pipeline.evaluation.model_ap import HOLDOUT_SEED_BASE

HOLDOUT_TRACKER_SEED_BASE = HOLDOUT_SEED_BASE + 900_000
WALKER_HOLDOUT_SEED_BASE = HOLDOUT_TRACKER_SEED_BASE + 50_000
"""Walker clip ``c`` of the reported benchmark is simulated from seed ``WALKER_HOLDOUT_SEED_BASE + c``."""
WALKER_FRAMES_PER_SHAPES_FRAME = 2
"""The walker clips are this many times longer than the shapes clips: at walking speed a crossing of the view
takes about 10 s (250 frames), and identity errors need walkers that stay, stop and meet again."""


@dataclass(frozen=True)
class NoiseLevel:
    level: int
    jitter_px: float  # sigma of the per-coordinate Gaussian box jitter, pixels
    miss_prob: float  # probability that a true object is not detected in a frame
    fp_per_frame: float  # mean false positives per frame (Poisson)
    low_score_prob: float  # probability that a true detection gets a low score (0.15-0.5)


NOISE_LEVELS: tuple[NoiseLevel, ...] = (
    NoiseLevel(0, 0.0, 0.00, 0.0, 0.00),
    NoiseLevel(1, 1.0, 0.02, 0.2, 0.05),
    NoiseLevel(2, 2.0, 0.05, 0.5, 0.10),
    NoiseLevel(3, 4.0, 0.10, 1.0, 0.20),
)

TRUE_SCORE = (0.6, 0.95)
LOW_SCORE = (0.15, 0.5)
FP_SCORE = (0.1, 0.7)
FP_SIZE = (10.0, 60.0)


@dataclass(frozen=True)
class NoisyFrame:
    """Simulated detections of one frame: ``boxes`` ``(N, 4)`` xyxy, ``scores`` ``(N,)``, ``gt_ids`` (-1: false positive)."""

    boxes: np.ndarray
    scores: np.ndarray
    gt_ids: np.ndarray


@dataclass(frozen=True)
class GtClip:
    frames: list[MotFrame]
    width: int
    height: int


def gt_clips(n_clips: int, n_frames: int, *, seed_base: int = HOLDOUT_TRACKER_SEED_BASE, width: int = 320,
             height: int = 240, fps: float = 25.0) -> list[GtClip]:
    """Ground-truth boxes and ids of ``n_clips`` generated clips of ``n_frames`` frames."""
    from pipeline.scenes import SceneConfig, SceneGenerator

    clips = []
    for c in range(n_clips):
        config = SceneConfig(seed=seed_base + c, width=width, height=height, fps=fps, num_frames=n_frames)
        frames = [MotFrame.of([g.track_id for g in f.instances], [g.box for g in f.instances] or np.zeros((0, 4)))
                  for f in SceneGenerator(config)]
        clips.append(GtClip(frames, width, height))
    return clips


def add_noise(clip: GtClip, level: NoiseLevel, rng: np.random.Generator) -> list[NoisyFrame]:
    """Simulated detections of ``clip`` at ``level`` (see the module docstring)."""
    limit = np.array([clip.width, clip.height, clip.width, clip.height], np.float64)
    out = []
    for gt in clip.frames:
        keep = rng.random(len(gt.ids)) >= level.miss_prob
        boxes = gt.boxes[keep] + rng.normal(0.0, level.jitter_px, (int(keep.sum()), 4)) if level.jitter_px else gt.boxes[keep]
        boxes = np.clip(boxes, 0, limit)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 2)
        low = rng.random(len(boxes)) < level.low_score_prob
        scores = np.where(low, rng.uniform(*LOW_SCORE, len(boxes)), rng.uniform(*TRUE_SCORE, len(boxes)))
        ids = gt.ids[keep]
        n_fp = int(rng.poisson(level.fp_per_frame)) if level.fp_per_frame else 0
        if n_fp:
            wh = rng.uniform(*FP_SIZE, (n_fp, 2))
            xy = rng.uniform(0, 1, (n_fp, 2)) * (limit[:2] - wh)
            boxes = np.concatenate([boxes, np.concatenate([xy, xy + wh], axis=1)])
            scores = np.concatenate([scores, rng.uniform(*FP_SCORE, n_fp)])
            ids = np.concatenate([ids, np.full(n_fp, -1, np.int64)])
        order = rng.permutation(len(scores))
        out.append(NoisyFrame(boxes[order].reshape(-1, 4), scores[order], ids[order]))
    return out


def noisy_clip(clip: GtClip, level: NoiseLevel, seed: int, clip_index: int) -> list[NoisyFrame]:
    return add_noise(clip, level, np.random.default_rng([seed, level.level, clip_index]))


def run_ours(frames: Sequence[NoisyFrame], **kwargs: Any) -> list[MotFrame]:
    """Our ``ByteTracker`` (its defaults unless ``kwargs``) on the frames; per frame the detections it gave ids."""
    from pipeline.tracking import ByteTracker

    tracker = ByteTracker(**kwargs)
    out = []
    for f in frames:
        ids = tracker.update(f.boxes, f.scores)
        keep = [i for i, t in enumerate(ids) if t is not None]
        out.append(MotFrame.of([ids[i] for i in keep], f.boxes[keep]))
    return out


def run_peer(frames: Sequence[NoisyFrame]) -> list[MotFrame]:
    """roboflow ``trackers.ByteTrackTracker()`` with its defaults; per frame the detections with an id != -1."""
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker()
    out = []
    for f in frames:
        dets = sv.Detections(xyxy=f.boxes.astype(np.float32).reshape(-1, 4), confidence=f.scores.astype(np.float32),
                             class_id=np.zeros(len(f.scores), dtype=int))
        result = tracker.update(dets)
        tids = np.asarray(result.tracker_id if result.tracker_id is not None else [], dtype=np.int64)
        keep = tids != -1
        out.append(MotFrame.of(tids[keep], np.asarray(result.xyxy, np.float64).reshape(-1, 4)[keep]))
    return out


def evaluate_trackers(n_clips: int = 4, n_frames: int = 150, *, seed: int = 0,
                      levels: Sequence[NoiseLevel] = NOISE_LEVELS,
                      seed_base: int = HOLDOUT_TRACKER_SEED_BASE,
                      walker_levels: Sequence[Any] | None = None,
                      walker_seed_base: int = WALKER_HOLDOUT_SEED_BASE) -> dict[str, Any]:
    """Per noise level: MOTA/IDF1/HOTA of ours and of the peer on the same simulated detections.

    ``{"clips", "frames_per_clip", "seed", "gt_instances", "levels": [...], "walkers": {...}}``: ``levels`` on
    the shapes clips (one dict per level: the :class:`NoiseLevel` fields, ``"ours"`` and ``"peer"`` each a
    :func:`~pipeline.evaluation.metrics.mot_metrics` dict); ``walkers`` the same on ``n_clips`` walker clips
    of ``WALKER_FRAMES_PER_SHAPES_FRAME * n_frames`` frames (see :func:`evaluate_walkers`). ``walker_levels``
    ``None``: every :data:`~pipeline.evaluation.walkers.WALKER_NOISE_LEVELS`; empty: ``walkers`` is ``None``.
    """
    clips = gt_clips(n_clips, n_frames, seed_base=seed_base)
    results = []
    for level in levels:
        noisy = [noisy_clip(clip, level, seed, c) for c, clip in enumerate(clips)]
        ours = mot_metrics([(clip.frames, run_ours(n)) for clip, n in zip(clips, noisy)])
        peer = mot_metrics([(clip.frames, run_peer(n)) for clip, n in zip(clips, noisy)])
        results.append({**asdict(level), "ours": ours, "peer": peer})
    walkers = evaluate_walkers(n_clips, WALKER_FRAMES_PER_SHAPES_FRAME * n_frames, seed=seed,
                               levels=walker_levels, seed_base=walker_seed_base)
    return {
        "clips": n_clips,
        "frames_per_clip": n_frames,
        "seed": seed,
        "gt_instances": sum(len(f.ids) for clip in clips for f in clip.frames),
        "levels": results,
        "walkers": walkers,
    }


def evaluate_walkers(n_clips: int, n_frames: int, *, seed: int = 0, levels: Sequence[Any] | None = None,
                     seed_base: int = WALKER_HOLDOUT_SEED_BASE, **ours_kwargs: Any) -> dict[str, Any] | None:
    """Ours (its defaults, or ``ours_kwargs``) against the peer on walker clips, per noise level.

    ``{"clips", "frames_per_clip", "seed", "seed_base", "gt_instances", "ignored_instances", "levels"}``:
    ``gt_instances`` the scored GT boxes, ``ignored_instances`` the ignore boxes (too hidden to score), and
    ``levels`` one dict per level: the :class:`~pipeline.evaluation.walkers.WalkerNoiseLevel` fields
    (``level``, ``jitter_frac``, ``miss_prob``, ``fp_per_frame``, ``low_score_prob``), ``"ours"`` and
    ``"peer"`` (:func:`~pipeline.evaluation.metrics.mot_metrics` dicts: MOTA, IDF1, HOTA, IDSW, ...).
    ``None`` when ``levels`` is empty or ``n_clips`` is 0.
    """
    from pipeline.evaluation.walkers import MIN_SCORED_VISIBILITY, WALKER_NOISE_LEVELS, noisy_walker_clip, walker_clips

    levels = WALKER_NOISE_LEVELS if levels is None else levels
    if not levels or n_clips < 1:
        return None
    clips = walker_clips(n_clips, n_frames, seed_base)
    results = []
    for level in levels:
        noisy = [noisy_walker_clip(clip, level, seed, c) for c, clip in enumerate(clips)]
        ours = mot_metrics([score_walkers(clip, run_ours(n, **ours_kwargs)) for clip, n in zip(clips, noisy)])
        peer = mot_metrics([score_walkers(clip, run_peer(n)) for clip, n in zip(clips, noisy)])
        results.append({**asdict(level), "ours": ours, "peer": peer})
    scored = [f.scored(MIN_SCORED_VISIBILITY) for clip in clips for f in clip.frames]
    return {
        "clips": n_clips,
        "frames_per_clip": n_frames,
        "seed": seed,
        "seed_base": seed_base,
        "gt_instances": int(sum(s.sum() for s in scored)),
        "ignored_instances": int(sum((~s).sum() for s in scored)),
        "levels": results,
    }


def score_walkers(clip: Any, pred: Sequence[MotFrame]) -> tuple[list[MotFrame], list[MotFrame]]:
    """``(gt, pred)`` frames of a :class:`~pipeline.evaluation.walkers.WalkerClip` ready for ``mot_metrics``:
    ignore boxes and the predictions matched to them removed (:func:`~pipeline.evaluation.walkers.drop_ignored`)."""
    from pipeline.evaluation.walkers import drop_ignored

    pairs = [drop_ignored(g, p) for g, p in zip(clip.frames, pred)]
    return [g for g, _ in pairs], [p for _, p in pairs]
