"""The tracker-alone evaluation: the simulated detector is seeded, and both trackers are scored on the same input."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation.metrics import MotFrame, mot_metrics
from pipeline.evaluation.tracker_eval import (
    TRUE_SCORE,
    NOISE_LEVELS,
    GtClip,
    NoiseLevel,
    evaluate_trackers,
    gt_clips,
    noisy_clip,
    run_ours,
    run_peer,
)


@pytest.fixture(scope="module")
def clip() -> GtClip:
    return gt_clips(1, 30)[0]


def test_noise_is_deterministic_by_seed(clip: GtClip) -> None:
    level = NOISE_LEVELS[3]
    a, b = noisy_clip(clip, level, 7, 0), noisy_clip(clip, level, 7, 0)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.boxes, fb.boxes)
        np.testing.assert_array_equal(fa.scores, fb.scores)
        np.testing.assert_array_equal(fa.gt_ids, fb.gt_ids)
    c = noisy_clip(clip, level, 8, 0)
    assert any(fa.boxes.shape != fc.boxes.shape or not np.array_equal(fa.boxes, fc.boxes) for fa, fc in zip(a, c))


def test_level_zero_is_the_ground_truth(clip: GtClip) -> None:
    for gt, noisy in zip(clip.frames, noisy_clip(clip, NOISE_LEVELS[0], 0, 0)):
        order = np.argsort(noisy.gt_ids)
        np.testing.assert_array_equal(noisy.gt_ids[order], np.sort(gt.ids))
        np.testing.assert_allclose(noisy.boxes[order], gt.boxes[np.argsort(gt.ids)])
        assert np.all(noisy.scores >= 0.6)


def test_noise_parameters_show_in_the_detections(clip: GtClip) -> None:
    level = NoiseLevel(9, jitter_px=3.0, miss_prob=0.3, fp_per_frame=2.0, low_score_prob=0.0)
    frames = noisy_clip(clip, level, 1, 0)
    n_gt = sum(len(f.ids) for f in clip.frames)
    n_true = sum(int((f.gt_ids >= 0).sum()) for f in frames)
    n_fp = sum(int((f.gt_ids < 0).sum()) for f in frames)
    assert 0.5 * n_gt < n_true < 0.9 * n_gt  # ~70 % kept
    assert 30 <= n_fp <= 95  # Poisson(2) x 30 frames
    for f in frames:
        assert np.all(f.boxes[:, 2] - f.boxes[:, 0] >= 2) and np.all(f.boxes[:, 3] - f.boxes[:, 1] >= 2)
        assert np.all((f.boxes >= 0) & (f.boxes <= [320, 240, 320, 240]))


def test_our_tracker_is_perfect_without_noise(clip: GtClip) -> None:
    # True detections score from TRUE_SCORE[0]; a new-track threshold there lets every object start at once
    # (the default, 0.7, delays some births by a frame or more: fewer spurious tracks under noise).
    tracks = run_ours(noisy_clip(clip, NOISE_LEVELS[0], 0, 0), new_track_score_threshold=TRUE_SCORE[0])
    m = mot_metrics([(clip.frames, tracks)])
    assert (m["MOTA"], m["IDF1"], m["IDSW"]) == (1.0, 1.0, 0)


def test_peer_output_is_mapped_to_its_ids() -> None:
    """Peer defaults: a track gets an id on its 2nd consecutive frame (minimum_consecutive_frames=2)
    and only from a detection scoring >= 0.7; so frame 1 has no output, frames 2-4 have id 1."""
    box = np.array([[10.0, 10.0, 30.0, 30.0]])
    from pipeline.evaluation.tracker_eval import NoisyFrame

    frames = [NoisyFrame(box + t, np.array([0.9]), np.array([1])) for t in range(4)]
    out = run_peer(frames)
    assert [len(f.ids) for f in out] == [0, 1, 1, 1]
    assert len({int(f.ids[0]) for f in out[1:]}) == 1
    np.testing.assert_allclose(out[3].boxes, box + 3)


def test_evaluate_trackers_is_reproducible_and_complete() -> None:
    a = evaluate_trackers(1, 20, seed=3, levels=NOISE_LEVELS[:2])
    b = evaluate_trackers(1, 20, seed=3, levels=NOISE_LEVELS[:2])
    assert a == b
    assert [lvl["level"] for lvl in a["levels"]] == [0, 1]
    for lvl in a["levels"]:
        for who in ("ours", "peer"):
            assert set(lvl[who]) >= {"MOTA", "IDF1", "HOTA", "IDSW"}
    assert isinstance(a["levels"][0]["ours"]["MOTA"], float)
    assert all(isinstance(f, MotFrame) for f in gt_clips(1, 2)[0].frames)
