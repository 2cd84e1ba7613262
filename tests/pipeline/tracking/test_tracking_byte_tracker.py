"""ByteTracker: known detections in, ids out."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, MaskstreamError
from pipeline.tracking import ByteTracker, TrackingError
from synthetic_clips import Obj, disc, id_switches, ids_per_object, make_clip, rle, run

STATIC = (100.0, 100.0, 160.0, 220.0)


def one(box, score=0.9, label=1):
    return np.array([box], dtype=np.float64), np.array([score]), np.array([label])


def test_static_and_moving_object_keep_one_id_through_occlusion_and_misses():
    static = Obj(STATIC, hidden=frozenset({7, 23, 51}))  # random missed detections
    moving = Obj(
        (20.0, 300.0, 50.0, 360.0),  # 30 px wide: after the occlusion it has moved 24 px, IoU with its last box < 0.2
        velocity=(4.0, -1.0),  # crosses 400 px in 100 frames, passing under the static object
        hidden=frozenset({30, 31, 32, 33, 34} | {12, 61, 62, 80}),  # 5-frame occlusion + random misses
    )
    frames = make_clip([static, moving], 100, jitter=1.0, seed=1)
    ids = run(ByteTracker(), frames)
    per = ids_per_object(frames, ids)
    assert len(per[0]) == 97 and len(per[1]) == 91
    assert set(per[0]) == {per[0][0]} and per[0][0] is not None, per[0]
    assert set(per[1]) == {per[1][0]} and per[1][0] is not None, per[1]
    assert per[0][0] != per[1][0]
    assert sorted([per[0][0], per[1][0]]) == [1, 2]


def test_moving_object_is_lost_during_occlusion_then_refound_with_its_id():
    tracker = ByteTracker()
    obj = Obj((50.0, 50.0, 90.0, 130.0), velocity=(6.0, 0.0))
    for t in range(10):
        assert tracker.update(*one(obj.box(t))) == [1]
    for t in range(10, 14):  # hidden: 24 px of motion, more than half the width
        assert tracker.update(np.zeros((0, 4)), np.zeros(0)) == []
        assert tracker.active_track_ids == [] and tracker.lost_track_ids == [1]
    assert tracker.update(*one(obj.box(14))) == [1]
    assert tracker.active_track_ids == [1] and tracker.lost_track_ids == []


def test_without_motion_prediction_the_gap_would_be_too_wide():
    """Guard for the test above: the reappearing box does not overlap the last seen box at all."""
    obj = Obj((50.0, 50.0, 90.0, 130.0), velocity=(6.0, 0.0))
    last, again = obj.box(9), obj.box(14)
    assert again[0] > last[2] - 12  # IoU of last vs reappearing box below the 0.2 gate
    from pipeline.tracking import box_iou

    assert box_iou(last[None], again[None])[0, 0] < 0.2


def test_low_score_detection_continues_a_track_but_never_starts_one():
    tracker = ByteTracker(high_score_threshold=0.5, low_score_threshold=0.1, new_track_score_threshold=0.6)
    box = np.array([200.0, 200.0, 260.0, 300.0])
    far = np.array([500.0, 50.0, 560.0, 150.0])
    for _ in range(3):
        assert tracker.update(*one(box, 0.9)) == [1]
    # Blurred: the object's score drops to 0.3; a low clutter detection elsewhere.
    ids = tracker.update(np.stack([box + 1, far]), np.array([0.3, 0.3]), np.array([1, 1]))
    assert ids == [1, None]
    assert tracker.active_track_ids == [1]
    # Below the low threshold: ignored, the track is lost.
    assert tracker.update(*one(box, 0.05)) == [None]
    assert tracker.lost_track_ids == [1]
    # A low detection alone never starts a track, for any number of frames.
    for _ in range(5):
        assert tracker.update(*one(far, 0.45)) == [None]
    # High but below new_track_score_threshold: unmatched, no track either.
    assert tracker.update(*one(far, 0.55)) == [None]
    assert tracker.active_track_ids == []
    # The lost track is re-found by a high detection; a high clutter detection starts track 2.
    assert tracker.update(np.stack([box, far]), np.array([0.8, 0.7]), np.array([1, 1])) == [1, 2]


def test_object_reappearing_with_a_low_score_gets_its_own_id_back_not_its_neighbours():
    """A reappears (low score) overlapping B while B is hidden: A's lost track takes it, not B's live one."""
    a_box = np.array([300.0, 140.0, 360.0, 240.0])
    b_box = np.array([305.0, 120.0, 355.0, 215.0])
    tracker = ByteTracker()
    both = np.stack([a_box, b_box])
    assert tracker.update(both, np.array([0.9, 0.9])) == [1, 2]
    assert tracker.update(both, np.array([0.9, 0.9])) == [1, 2]
    assert tracker.update(b_box[None], np.array([0.9])) == [2]  # A hidden: lost
    assert tracker.lost_track_ids == [1]
    assert tracker.update(a_box[None], np.array([0.3])) == [1]  # B hidden, A back at a low score
    assert tracker.update(both, np.array([0.9, 0.9])) == [1, 2]


def test_low_score_detection_is_gated_by_the_stricter_second_pass_iou():
    tracker = ByteTracker(match_iou_threshold=0.2, low_match_iou_threshold=0.5)
    box = np.array([200.0, 200.0, 300.0, 300.0])
    assert tracker.update(*one(box)) == [1]
    shifted = box + np.array([50.0, 0.0, 50.0, 0.0])  # IoU 1/3 with the track
    assert tracker.update(*one(shifted, 0.3)) == [None]  # low: needs 0.5
    assert tracker.update(*one(shifted, 0.9)) == [1]  # high: 0.2 suffices (track was lost, same id)


@pytest.mark.parametrize("buffer", [0, 3, 5])
def test_lost_buffer_boundary(buffer):
    box = np.array([300.0, 200.0, 350.0, 300.0])

    def reappear_after(missed: int) -> int | None:
        tracker = ByteTracker(lost_track_buffer_frames=buffer)
        for _ in range(4):
            assert tracker.update(*one(box)) == [1]
        for _ in range(missed):
            tracker.update(np.zeros((0, 4)), np.zeros(0))
        if missed > buffer:
            assert tracker.lost_track_ids == []
        return tracker.update(*one(box))[0]

    assert reappear_after(buffer) == 1  # kept exactly `buffer` missed frames
    assert reappear_after(buffer + 1) == 2  # dropped: new id


def test_track_lost_longer_than_the_buffer_gets_a_new_id_in_a_clip():
    obj = Obj((100.0, 100.0, 150.0, 200.0), velocity=(2.0, 0.0), hidden=frozenset(range(20, 32)))
    frames = make_clip([obj], 50, jitter=0.5, seed=3)
    ids = run(ByteTracker(lost_track_buffer_frames=10), frames)
    seen = ids_per_object(frames, ids)[0]
    assert seen[:20] == [1] * 20
    assert seen[20:] == [2] * 18


@pytest.mark.parametrize("occluded_while_crossing", [False, True])
def test_two_crossing_objects_keep_their_ids(occluded_while_crossing):
    # A moves right, B left, 15 px lower: they overlap heavily around frame 50.
    hidden = frozenset(range(48, 53)) if occluded_while_crossing else frozenset()
    a = Obj((50.0, 200.0, 100.0, 300.0), velocity=(5.0, 0.0))
    b = Obj((555.0, 215.0, 605.0, 315.0), velocity=(-5.0, 0.0), hidden=hidden)
    frames = make_clip([a, b], 100, jitter=0.5, seed=4)
    # At the crossing the boxes overlap enough to match either track.
    from pipeline.tracking import box_iou

    assert box_iou(a.box(50)[None], b.box(50)[None])[0, 0] > 0.5
    per = ids_per_object(frames, run(ByteTracker(), frames))
    assert set(per[0]) == {per[0][0]}, per[0]
    assert set(per[1]) == {per[1][0]}, per[1]
    assert per[0][0] != per[1][0]


def test_random_jitter_clip_with_many_objects_has_no_id_switches():
    rng = np.random.default_rng(7)
    objects = []
    for k in range(5):
        x, y = 40 + 110 * k, 40 + 60 * k
        misses = frozenset(int(t) for t in rng.choice(80, 6, replace=False))
        objects.append(Obj((x, y, x + 50, y + 90), velocity=(rng.uniform(-2, 2), rng.uniform(-1, 1)), hidden=misses))
    frames = make_clip(objects, 80, jitter=1.5, seed=8)
    per = ids_per_object(frames, run(ByteTracker(), frames))
    assert id_switches(per) == 0
    assert len({ids[0] for ids in per.values()}) == 5


def test_trackers_have_independent_id_counters_and_reset_restarts():
    t1, t2 = ByteTracker(), ByteTracker()
    boxes = np.array([[0.0, 0, 10, 10], [100, 100, 150, 150], [300, 300, 350, 350]])
    assert t1.update(boxes, np.full(3, 0.9)) == [1, 2, 3]
    assert t2.update(boxes[:1], np.array([0.9])) == [1]
    assert t1.update(boxes[:1] + 200, np.array([0.9])) == [4]  # a new object elsewhere
    assert t2.update(boxes[1:2], np.array([0.9])) == [2]
    assert t1.active_track_ids == [4] and t1.lost_track_ids == [1, 2, 3]
    t1.reset()
    assert t1.active_track_ids == [] and t1.lost_track_ids == []
    assert t1.update(boxes[2:], np.array([0.9])) == [1]
    assert t2.active_track_ids == [2]


def test_empty_frames_and_no_labels():
    tracker = ByteTracker()
    assert tracker.update(np.zeros((0, 4)), np.zeros(0)) == []
    assert tracker.update([], []) == []
    assert tracker.update([[1.0, 2.0, 30.0, 40.0]], [0.9]) == [1]


def test_min_hits_to_confirm_deletes_one_frame_false_positives():
    tracker = ByteTracker(min_hits_to_confirm=3)
    box = np.array([100.0, 100.0, 150.0, 200.0])
    flicker = np.array([400.0, 100.0, 450.0, 200.0])
    assert tracker.update(np.stack([box, flicker]), np.array([0.9, 0.9])) == [1, 2]  # ids at birth
    assert tracker.update(*one(box)) == [1]  # flicker missed while tentative: deleted, not lost
    assert tracker.lost_track_ids == [] and tracker.active_track_ids == [1]
    assert tracker.update(np.stack([box, flicker]), np.array([0.9, 0.9])) == [1, 3]  # flicker: a new track
    assert tracker.update(np.stack([box, flicker]), np.array([0.9, 0.9])) == [1, 3]
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert tracker.lost_track_ids == [1]  # track 1 confirmed (4 hits): kept; track 3 (2 hits) deleted


def test_class_aware_tracks_only_match_their_label():
    box = np.array([[100.0, 100.0, 200.0, 200.0]])
    aware, blind = ByteTracker(class_aware=True), ByteTracker()
    for tracker in (aware, blind):
        assert tracker.update(box, [0.9], np.array([1])) == [1]
    assert aware.update(box + 2, [0.9], np.array([3])) == [2]  # other class: a new track
    assert blind.update(box + 2, [0.9], np.array([3])) == [1]
    with pytest.raises(TrackingError, match="class_aware=True needs labels"):
        aware.update(box, [0.9])


# ---------------------------------------------------------------- mask IoU mode


def test_mask_mode_follows_masks_when_boxes_are_identical():
    """Two triangles sharing one bounding box: only the masks tell them apart."""
    yy, xx = np.mgrid[0:240, 0:320]
    region = (xx >= 100) & (xx < 200) & (yy >= 50) & (yy < 150)
    upper = region & ((xx - 100) > (yy - 50))
    lower = region & ((xx - 100) < (yy - 50) - 1)
    masks = [rle(upper), rle(lower)]
    box = [100.0, 50.0, 200.0, 150.0]
    tracker = ByteTracker(use_mask_iou=True)
    assert tracker.update(np.array([box, box]), np.array([0.9, 0.8]), masks=masks) == [1, 2]
    for _ in range(5):  # reversed order each frame: box IoU is 1 for every pair
        ids = tracker.update(np.array([box, box]), np.array([0.8, 0.9]), masks=masks[::-1])
        assert ids == [2, 1]


def test_mask_mode_shifts_the_last_mask_by_the_kalman_displacement():
    """A small fast disc hidden for 3 frames moves 32 px, more than its diameter: the unshifted mask misses it."""
    r, v = 10.0, 8.0
    tracker = ByteTracker(use_mask_iou=True)

    def det(t):
        cx = 40 + v * t
        return (
            np.array([[cx - r, 100 - r, cx + r, 100 + r]]),
            np.array([0.9]),
            None,
            [rle(disc(cx, 100, r, 200, 320))],
        )

    for t in range(8):
        assert tracker.update(*det(t)) == [1]
    for _ in range(3):
        tracker.update(np.zeros((0, 4)), np.zeros(0), masks=[])
    from pipeline.tracking import mask_iou

    last, again = det(7)[3], det(11)[3]
    assert mask_iou(last, again)[0, 0] == 0.0
    assert tracker.update(*det(11)) == [1]


def test_mask_mode_with_a_moving_and_a_static_object():
    frames = make_clip(
        [
            Obj((60.0, 60.0, 100.0, 100.0)),
            Obj((10.0, 150.0, 50.0, 190.0), velocity=(4.0, -1.0), hidden=frozenset({20, 21, 22})),
        ],
        40,
        shuffle=True,
        seed=5,
    )
    for f in frames:  # a disc inscribed in each box
        f.masks = [
            rle(disc((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) / 2, 240, 320)) for b in f.boxes
        ]
    per = ids_per_object(frames, run(ByteTracker(use_mask_iou=True), frames, with_masks=True))
    assert per[0] == [per[0][0]] * 40 and per[1] == [per[1][0]] * 37 and per[0][0] != per[1][0]


def test_mask_mode_input_errors():
    tracker = ByteTracker(use_mask_iou=True)
    box = np.array([[10.0, 10.0, 30.0, 30.0]])
    with pytest.raises(TrackingError, match="use_mask_iou=True needs masks"):
        tracker.update(box, [0.9])
    tracker.update(box, [0.9], masks=[rle(disc(20, 20, 10, 100, 100))])
    with pytest.raises(TrackingError, match=r"size \[120, 100\].*\[100, 100\].*reset"):
        tracker.update(box, [0.9], masks=[rle(disc(20, 20, 10, 120, 100))])
    with pytest.raises(TrackingError, match="mask 0 must be a COCO RLE"):
        tracker.update(box, [0.9], masks=[{"counts": "x"}])


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"high_score_threshold": 1.5}, r"high_score_threshold must be in \[0, 1\], got 1\.5"),
        ({"low_score_threshold": -0.1}, r"low_score_threshold must be in \[0, 1\], got -0\.1"),
        (
            {"low_score_threshold": 0.7, "high_score_threshold": 0.5},
            r"low_score_threshold \(0\.7\) must be <= high_score_threshold \(0\.5\)",
        ),
        (
            {"new_track_score_threshold": 0.4},
            r"new_track_score_threshold \(0\.4\) must be >= high_score_threshold \(0\.6\)",
        ),
        ({"match_iou_threshold": 0.0}, r"match_iou_threshold must be in \(0, 1\], got 0\.0"),
        ({"low_match_iou_threshold": float("nan")}, r"low_match_iou_threshold must be a number in \(0, 1\], got nan"),
        ({"low_score_weight": 0.0}, r"low_score_weight must be in \(0, 1\], got 0\.0"),
        ({"lost_track_buffer_frames": -1}, r"lost_track_buffer_frames must be an integer >= 0, got -1"),
        ({"lost_track_buffer_frames": 2.5}, r"lost_track_buffer_frames must be an integer >= 0, got 2\.5"),
        ({"min_hits_to_confirm": 0}, r"min_hits_to_confirm must be an integer >= 1, got 0"),
        ({"use_mask_iou": "yes"}, r"use_mask_iou must be True or False, got 'yes'"),
        ({"class_aware": 1}, r"class_aware must be True or False, got 1"),
        ({"high_score_threshold": True}, r"high_score_threshold must be a number"),
    ],
)
def test_argument_validation_names_parameter_value_and_range(kwargs, expected):
    with pytest.raises(ConfigError, match=expected):
        ByteTracker(**kwargs)


def test_positional_arguments_are_refused():
    with pytest.raises(TypeError):
        ByteTracker(0.5)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((np.zeros((2, 3)), np.zeros(2)), r"boxes must have shape \(2, 4\)"),
        ((np.zeros((1, 4)), np.zeros((1, 1))), r"scores must have shape \(N,\)"),
        ((np.array([[0.0, 0, np.nan, 1]]), np.ones(1)), "finite"),
        ((np.array([[10.0, 0, 5, 1]]), np.ones(1)), r"box 0 is not \(x1, y1, x2, y2\)"),
        ((np.zeros((1, 4)), np.ones(1), np.array([0.5])), "labels must be integers"),
        ((np.zeros((1, 4)), np.ones(1), None, []), "masks has 0 entries for 1 detections"),
    ],
)
def test_update_input_validation(args, expected):
    tracker = ByteTracker()
    with pytest.raises(TrackingError, match=expected):
        tracker.update(*args)
    assert issubclass(TrackingError, MaskstreamError)
    assert tracker.update(np.array([[0.0, 0, 10, 10]]), np.ones(1)) == [1]  # a failed call changed nothing


# ---------------------------------------------------------------- duplicate detections


def test_duplicates_of_one_object_get_no_track_but_overlapping_objects_do():
    """Per-class NMS lets one object through as a circle (0.9) and a square (0.75, same pixels), plus a
    fragment (half of it, 0.72): one track. Two objects whose boxes overlap but whose masks barely do
    (a disc in front of a wide bar) keep a track each. Threshold ``None``: the duplicates start ghost tracks."""
    obj = disc(100, 100, 20)
    fragment = obj & (np.mgrid[0:obj.shape[0], 0:obj.shape[1]][1] < 100)
    box = [80.0, 80.0, 121.0, 121.0]
    boxes = np.array([box, box, [80.0, 80.0, 100.0, 121.0]])
    scores = np.array([0.9, 0.75, 0.72])
    masks = [rle(obj), rle(obj), rle(fragment)]
    tracker = ByteTracker()
    for _ in range(3):
        assert tracker.update(boxes, scores, np.array([1, 2, 3]), masks) == [1, None, None]
    assert ByteTracker(duplicate_mask_iou_threshold=None).update(boxes, scores, np.array([1, 2, 3]), masks) == [1, 2, 3]

    bar = np.zeros_like(obj)
    bar[90:112, 60:140] = True
    bar &= ~disc(100, 100, 20)  # the bar's visible part, behind the disc
    two = ByteTracker().update(np.array([box, [60.0, 90.0, 140.0, 112.0]]), np.array([0.9, 0.8]), masks=[rle(obj), rle(bar)])
    assert two == [1, 2]


def test_mask_duplicates_is_greedy_by_score():
    from pipeline.tracking.matching import mask_duplicates

    a = disc(50, 50, 10)
    b = disc(52, 50, 10)  # IoU with a ~0.87
    c = disc(150, 50, 10)
    dup = mask_duplicates([rle(b), rle(a), rle(c)], np.array([0.5, 0.9, 0.7]), 0.5)
    assert dup.tolist() == [True, False, False]  # b loses to the higher-scoring a; c overlaps nothing
    assert mask_duplicates([rle(a)], np.array([0.9]), 0.5).tolist() == [False]
    with pytest.raises(ConfigError, match="duplicate_mask_iou_threshold"):
        ByteTracker(duplicate_mask_iou_threshold=0.0)


def _two_tracks(**kwargs: float) -> ByteTracker:
    """Tracks 1 (box A) and 2 (box B, 4 px to the right), both standing still for 5 frames."""
    tracker = ByteTracker(**kwargs)
    for _ in range(5):
        assert tracker.update(np.array([BOX_A, BOX_B]), np.array([0.9, 0.9])) == [1, 2]
    return tracker


BOX_A = [0.0, 0.0, 20.0, 40.0]
BOX_B = [4.0, 0.0, 24.0, 40.0]


def test_a_low_detection_decides_which_track_takes_an_equally_close_high_one():
    # A passes behind B: B's detection (high) lies half-way, IoU 18/22 = 0.82 with either track; A's own,
    # partly hidden detection scores low and sits exactly on A (IoU 1 with A, 16/24 = 0.67 with B).
    # Two passes (high first) give the high one to either track by a hair and A's low one to the other:
    # a swap. Jointly: A-low 0.8 x 1 + B-high 0.82 = 1.62 beats A-high 0.82 + B-low 0.8 x 0.67 = 1.35.
    tracker = _two_tracks()
    ids = tracker.update(np.array([[2.0, 0.0, 22.0, 40.0], BOX_A]), np.array([0.9, 0.3]))
    assert ids == [2, 1]


def test_a_low_detection_does_not_take_a_track_from_its_better_high_one():
    # Track 1's own high detection (IoU 1) against a low one beside it (IoU 0.9): 1.0 > 0.8 x 0.9.
    tracker = ByteTracker()
    tracker.update(np.array([BOX_A]), np.array([0.9]))
    ids = tracker.update(np.array([[1.0, 0.0, 21.0, 40.0], BOX_A]), np.array([0.3, 0.9]))
    assert ids == [None, 1]


def test_low_score_weight_one_lets_a_better_low_detection_win():
    # With equal weights the low detection that overlaps the track better takes it; the high one starts a track.
    tracker = ByteTracker(low_score_weight=1.0)
    tracker.update(np.array([BOX_A]), np.array([0.9]))
    ids = tracker.update(np.array([[10.0, 0.0, 30.0, 40.0], BOX_A]), np.array([0.9, 0.3]))
    assert ids == [2, 1]
