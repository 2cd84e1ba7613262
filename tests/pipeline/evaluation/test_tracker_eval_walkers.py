"""The walkers benchmark: hand-checked camera, motion, occlusion and scoring, determinism, the report's shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.evaluation import walkers as wk
from pipeline.evaluation.metrics import MotFrame
from pipeline.evaluation.tracker_eval import NOISE_LEVELS, evaluate_trackers, evaluate_walkers
from pipeline.evaluation.walkers import (
    WALKER_NOISE_LEVELS,
    Camera,
    Walker,
    WalkerError,
    WalkerFrame,
    WalkerNoiseLevel,
    drop_ignored,
    noisy_walker_clip,
    simulate_walkers,
    visibility,
)


def test_camera_box_by_hand() -> None:
    # 420 px focal length, 4 m away: 105 px per metre. Feet at 40 + 105 * 3 m = 355; 1.75 m tall = 183.75 px;
    # 0.7 m wide = 73.5 px, centred on column 320 + 105 * 1 m.
    box = Camera().box(1.0, 4.0, 1.75, 0.7)
    np.testing.assert_allclose(box, [425 - 36.75, 355 - 183.75, 425 + 36.75, 355])


def test_farther_walkers_are_smaller_and_higher_in_the_image() -> None:
    near, far = Camera().box(0.0, 5.0, 1.7, 0.68), Camera().box(0.0, 20.0, 1.7, 0.68)
    assert (far[3] - far[1]) == pytest.approx((near[3] - near[1]) / 4)
    assert far[3] < near[3]


@pytest.fixture
def calm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walkers that never stop or turn on their own and keep a straight heading."""
    for name in ("HEADING_NOISE_RAD", "STOP_RATE_PER_S", "TURN_RATE_PER_S"):
        monkeypatch.setattr(wk, name, 0.0)


def _walker(**kwargs: float) -> Walker:
    values = {"x_m": 0.0, "z_m": 10.0, "heading": 0.0, "preferred_speed": 1.5, "body_height_m": 1.8, "aspect": 0.4}
    values.update(kwargs)
    w = Walker(1, **values)  # type: ignore[arg-type]
    w.speed = w.preferred_speed
    return w


@pytest.mark.usefixtures("calm")
def test_a_walker_at_a_known_time_and_place() -> None:
    # 1.5 m/s to the right for 1 s (25 steps of 40 ms) from X = 0, Z = 10: X = 1.5 m. At 10 m: 42 px per metre,
    # so the box is centred on column 320 + 63, 75.6 px tall, its feet on row 40 + 126.
    w, rng = _walker(), np.random.default_rng(0)
    for _ in range(25):
        wk._step_leader(w, rng, 0.04)
    assert (w.x_m, w.z_m) == pytest.approx((1.5, 10.0))
    w.gait_phase = 0.0  # legs together: the box has its standing width
    np.testing.assert_allclose(w.box(Camera()), [383 - 15.12, 166 - 75.6, 383 + 15.12, 166])


@pytest.mark.usefixtures("calm")
def test_a_walker_walking_away_shrinks_and_a_stop_is_gradual() -> None:
    w, rng = _walker(heading=math.pi / 2), np.random.default_rng(0)
    h0 = w.box(Camera())[3] - w.box(Camera())[1]
    for _ in range(25):
        wk._step_leader(w, rng, 0.04)
    assert w.z_m == pytest.approx(11.5)
    assert w.box(Camera())[3] - w.box(Camera())[1] == pytest.approx(h0 * 10 / 11.5)
    w.stop_left_s = 2.0
    wk._step_leader(w, rng, 0.04)
    assert 0.5 * w.preferred_speed < w.speed < w.preferred_speed  # slowing down, not stopped dead
    for _ in range(47):  # 1.92 s into the 2 s stop
        wk._step_leader(w, rng, 0.04)
    assert w.speed < 0.05 * w.preferred_speed
    for _ in range(52):
        wk._step_leader(w, rng, 0.04)
    assert w.speed > 0.95 * w.preferred_speed  # walking again


def test_a_follower_walks_beside_its_leader() -> None:
    lead = _walker(heading=math.pi / 2)  # walking away from the camera: "left" is -X
    follower = _walker(preferred_speed=0.0)
    follower.leader, follower.offset_m = lead, (0.0, 0.7)
    wk._place_follower(follower)
    assert (follower.x_m, follower.z_m, follower.heading) == pytest.approx((-0.7, 10.0, math.pi / 2))


def test_visibility_of_two_overlapping_walkers() -> None:
    near = [0.0, 0.0, 10.0, 20.0]
    far = [5.0, 0.0, 15.0, 20.0]  # its left half is behind the near one
    np.testing.assert_allclose(visibility(np.array([near, far]), np.array([5.0, 10.0]), 100, 100), [1.0, 0.5])
    # Depth decides, not the order of the list.
    np.testing.assert_allclose(visibility(np.array([far, near]), np.array([10.0, 5.0]), 100, 100), [0.5, 1.0])


def test_visibility_counts_overlapping_occluders_once_and_the_frame_edge() -> None:
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 6.0, 10.0], [4.0, 0.0, 8.0, 10.0], [-5.0, 50.0, 5.0, 60.0]])
    vis = visibility(boxes, np.array([9.0, 1.0, 2.0, 1.0]), 100, 100)
    # Box 0 is covered on x in [0, 8] by the union of boxes 1 and 2 (which overlap on [4, 6]): 0.2 visible.
    # Box 2 (depth 2) is behind box 1 on x in [4, 6]: half hidden. Box 3 is half outside the frame.
    np.testing.assert_allclose(vis, [0.2, 1.0, 0.5, 0.5])


def test_a_walker_fully_behind_another_is_invisible() -> None:
    vis = visibility(np.array([[0.0, 0.0, 20.0, 40.0], [5.0, 5.0, 15.0, 25.0]]), np.array([4.0, 12.0]), 100, 100)
    np.testing.assert_allclose(vis, [1.0, 0.0])


def test_the_clip_is_deterministic_by_seed() -> None:
    a, b, c = simulate_walkers(60, 3), simulate_walkers(60, 3), simulate_walkers(60, 4)
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa.ids, fb.ids)
        np.testing.assert_array_equal(fa.boxes, fb.boxes)
        np.testing.assert_array_equal(fa.visibility, fb.visibility)
    assert any(fa.boxes.shape != fc.boxes.shape or not np.array_equal(fa.boxes, fc.boxes)
               for fa, fc in zip(a.frames, c.frames))
    level = WALKER_NOISE_LEVELS[2]
    for da, db in zip(noisy_walker_clip(a, level, 5, 0), noisy_walker_clip(b, level, 5, 0)):
        np.testing.assert_array_equal(da.boxes, db.boxes)
        np.testing.assert_array_equal(da.scores, db.scores)


def test_clip_ground_truth_is_well_formed() -> None:
    clip = simulate_walkers(200, 11)
    counts = [len(f.ids) for f in clip.frames]
    assert min(counts) >= 3 and max(counts) <= 60
    for f in clip.frames:
        assert len(set(f.ids.tolist())) == len(f.ids)
        assert np.all((f.boxes >= 0) & (f.boxes <= [640, 360, 640, 360]))
        assert np.all(f.boxes[:, 2] > f.boxes[:, 0]) and np.all(f.boxes[:, 3] > f.boxes[:, 1])
        assert np.all((f.visibility >= 0) & (f.visibility <= 1))
    all_vis = np.concatenate([f.visibility for f in clip.frames])
    assert 0.01 < float(np.mean(all_vis < 0.5)) < 0.6  # occlusion happens, but most boxes are mostly visible
    first, last = set(clip.frames[0].ids.tolist()), set(clip.frames[-1].ids.tolist())
    assert first - last and last - first  # walkers leave and others enter


def test_simulate_walkers_refuses_an_empty_clip() -> None:
    with pytest.raises(WalkerError, match="n_frames"):
        simulate_walkers(0, 1)


def _frame(boxes: list[list[float]], vis: list[float]) -> WalkerFrame:
    n = len(boxes)
    return WalkerFrame(np.arange(1, n + 1), np.array(boxes, float).reshape(-1, 4), np.array(vis), np.full(n, 5.0))


def test_drop_ignored_removes_the_hidden_walker_and_its_match_only() -> None:
    gt = _frame([[0, 0, 10, 20], [50, 0, 60, 20]], [1.0, 0.1])  # walker 2 is an ignore box
    pred = MotFrame.of([7, 8, 9], [[0, 0, 10, 20], [50, 1, 60, 21], [80, 0, 90, 20]])
    scored_gt, kept = drop_ignored(gt, pred)
    assert scored_gt.ids.tolist() == [1]
    assert kept.ids.tolist() == [7, 9]  # 8 matched the ignore box; 9 matched nothing: a false positive, kept


def test_drop_ignored_keeps_a_prediction_that_overlaps_an_ignore_box_too_little() -> None:
    gt = _frame([[50, 0, 60, 20]], [0.1])
    pred = MotFrame.of([8], [[55, 0, 65, 20]])  # IoU 1/3 < 0.5
    scored_gt, kept = drop_ignored(gt, pred)
    assert len(scored_gt.ids) == 0 and kept.ids.tolist() == [8]


def test_detections_follow_visibility_and_size() -> None:
    clip = simulate_walkers(150, 21)
    hidden = {(t, int(i)) for t, f in enumerate(clip.frames) for i, v in zip(f.ids, f.visibility)
              if v < wk.UNDETECTABLE_VISIBILITY}
    assert hidden  # the test needs some fully hidden walkers
    level = WalkerNoiseLevel(9, jitter_frac=0.05, miss_prob=0.0, fp_per_frame=0.0, low_score_prob=0.0)
    errors = []
    for t, (gt, det) in enumerate(zip(clip.frames, noisy_walker_clip(clip, level, 0, 0))):
        assert not {(t, int(i)) for i in det.gt_ids} & hidden
        for box, gid in zip(det.boxes, det.gt_ids):
            k = int(np.flatnonzero(gt.ids == gid)[0])
            if gt.visibility[k] == 1.0:
                true = gt.boxes[k]
                errors.append((box - true) / np.tile(true[2:] - true[:2], 2))
    rel = np.concatenate(errors)
    assert 0.04 < float(np.std(rel)) < 0.06  # jitter of 5 % of the box's size (a little less where clipped)


def test_level_zero_detects_visible_walkers_exactly() -> None:
    clip = simulate_walkers(40, 2)
    for gt, det in zip(clip.frames, noisy_walker_clip(clip, WALKER_NOISE_LEVELS[0], 0, 0)):
        visible = gt.visibility >= wk.DETECTABLE_VISIBILITY
        assert set(gt.ids[visible].tolist()) <= set(det.gt_ids.tolist())
        assert np.all(det.gt_ids >= 0)
        for box, gid in zip(det.boxes, det.gt_ids):
            true = gt.boxes[gt.ids == gid][0]
            np.testing.assert_allclose(box[:2], true[:2])


def test_evaluate_walkers_shape_on_a_tiny_case() -> None:
    r = evaluate_walkers(1, 30, seed=2, levels=WALKER_NOISE_LEVELS[:2], seed_base=5)
    assert r is not None
    assert set(r) == {"clips", "frames_per_clip", "seed", "seed_base", "gt_instances", "ignored_instances", "levels"}
    assert (r["clips"], r["frames_per_clip"], r["seed"], r["seed_base"]) == (1, 30, 2, 5)
    clip = simulate_walkers(30, 5)
    assert r["gt_instances"] + r["ignored_instances"] == sum(len(f.ids) for f in clip.frames)
    assert [lvl["level"] for lvl in r["levels"]] == [0, 1]
    for lvl in r["levels"]:
        assert set(lvl) == {"level", "jitter_frac", "miss_prob", "fp_per_frame", "low_score_prob", "ours", "peer"}
        for who in ("ours", "peer"):
            assert set(lvl[who]) >= {"MOTA", "IDF1", "HOTA", "IDSW"}
            assert 0.0 < lvl[who]["IDF1"] <= 1.0
    assert evaluate_walkers(1, 30, levels=()) is None


def test_evaluate_trackers_adds_walkers_and_keeps_its_keys() -> None:
    r = evaluate_trackers(1, 10, seed=1, levels=NOISE_LEVELS[:1], walker_levels=WALKER_NOISE_LEVELS[:1])
    assert {"clips", "frames_per_clip", "seed", "gt_instances", "levels", "walkers"} <= set(r)
    assert r["walkers"]["frames_per_clip"] == 20 and r["walkers"]["clips"] == 1
    assert [lvl["level"] for lvl in r["walkers"]["levels"]] == [0]
    assert evaluate_trackers(1, 10, levels=NOISE_LEVELS[:1], walker_levels=())["walkers"] is None
