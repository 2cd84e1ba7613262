"""The synthetic scene generator: determinism, ground-truth consistency, motion, occlusion, speed."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from pipeline.scenes import CLASS_NAMES, SceneConfig, SceneFrame, SceneGenerator
from pipeline.scenes.motion import World
from pipeline.scenes.shapes import CIRCLE, SQUARE, STAR, TRIANGLE, random_appearance, rasterize

LONG = SceneConfig(seed=11, num_frames=600)


@pytest.fixture(scope="module")
def long_clip() -> list[SceneFrame]:
    return list(SceneGenerator(LONG))


def _same(a: list[SceneFrame], b: list[SceneFrame]) -> bool:
    if len(a) != len(b):
        return False
    for fa, fb in zip(a, b):
        if fa.index != fb.index or not np.array_equal(fa.image, fb.image) or len(fa.instances) != len(fb.instances):
            return False
        for ia, ib in zip(fa.instances, fb.instances):
            if (ia.track_id, ia.label, ia.class_name, ia.box) != (ib.track_id, ib.label, ib.class_name, ib.box):
                return False
            if not np.array_equal(ia.mask, ib.mask):
                return False
    return True


def test_same_seed_gives_identical_frames_and_gt() -> None:
    cfg = SceneConfig(seed=5, num_frames=80)
    gen = SceneGenerator(cfg)
    first = list(gen)
    assert _same(first, list(gen)), "a second iteration of the same generator differs"
    assert _same(first, list(SceneGenerator(SceneConfig(seed=5, num_frames=80)))), "a second generator differs"


def test_different_seed_gives_different_frames() -> None:
    a = list(SceneGenerator(SceneConfig(seed=1, num_frames=5)))
    b = list(SceneGenerator(SceneConfig(seed=2, num_frames=5)))
    assert not any(np.array_equal(fa.image, fb.image) for fa, fb in zip(a, b))


def test_frames_have_the_documented_types(long_clip: list[SceneFrame]) -> None:
    assert len(long_clip) == LONG.num_frames
    for i, frame in enumerate(long_clip[:50]):
        assert frame.index == i
        assert frame.image.dtype == np.uint8 and frame.image.shape == (240, 320, 3)
        assert frame.image.flags.c_contiguous
        for inst in frame.instances:
            assert inst.mask.dtype == np.bool_ and inst.mask.shape == (240, 320)
            assert 1 <= inst.label < len(CLASS_NAMES) and inst.class_name == CLASS_NAMES[inst.label]
            assert all(isinstance(v, float) for v in inst.box)


def test_gt_masks_are_disjoint_boxes_tight_and_areas_above_threshold(long_clip: list[SceneFrame]) -> None:
    for frame in long_clip:
        if not frame.instances:
            continue
        masks = np.stack([g.mask for g in frame.instances])
        assert masks.sum(axis=0).max() <= 1, f"frame {frame.index}: overlapping GT masks"
        assert len(frame.instances) <= LONG.max_objects
        ids = [g.track_id for g in frame.instances]
        assert ids == sorted(set(ids)), f"frame {frame.index}: track ids not unique and sorted: {ids}"
        for inst in frame.instances:
            ys, xs = np.nonzero(inst.mask)
            assert inst.box == (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            assert len(xs) >= LONG.min_visible_area


def test_tracks_are_persistent_objects(long_clip: list[SceneFrame]) -> None:
    """The same track id is the same object: same class, and it moves at most max_speed between frames."""
    max_step = LONG.max_speed * LONG.scale / LONG.fps
    labels: dict[int, int] = {}
    for prev, cur in itertools.pairwise(long_clip):
        before = {g.track_id: g for g in prev.instances}
        for inst in cur.instances:
            assert labels.setdefault(inst.track_id, inst.label) == inst.label
            old = before.get(inst.track_id)
            if old is None:
                continue
            # The visible masks of one object in consecutive frames overlap (objects are >= 16 px, move <= 3.6 px).
            overlap = np.count_nonzero(old.mask & inst.mask)
            assert overlap > 0, f"track {inst.track_id} jumped between frames {prev.index} and {cur.index}"
            if old.area == inst.area and _inside_frame(old) and _inside_frame(inst):
                (ox1, oy1, _, _), (nx1, ny1, _, _) = old.box, inst.box
                assert math.hypot(nx1 - ox1, ny1 - oy1) <= max_step + 2.5


def _inside_frame(inst: object) -> bool:
    x1, y1, x2, y2 = inst.box  # type: ignore[attr-defined]
    return x1 > 0 and y1 > 0 and x2 < 320 and y2 < 240


def test_objects_enter_and_leave_over_a_long_clip(long_clip: list[SceneFrame]) -> None:
    seen: dict[int, list[int]] = defaultdict(list)
    for frame in long_clip:
        for inst in frame.instances:
            seen[inst.track_id].append(frame.index)
    first_at_edge = [
        tid
        for tid, frames in seen.items()
        if frames[0] > 0 and not _inside_frame(next(g for g in long_clip[frames[0]].instances if g.track_id == tid))
    ]
    last_at_edge = [
        tid
        for tid, frames in seen.items()
        if frames[-1] < len(long_clip) - 1
        and not _inside_frame(next(g for g in long_clip[frames[-1]].instances if g.track_id == tid))
    ]
    assert len(seen) > 2 * LONG.max_objects, f"only {len(seen)} distinct objects in {len(long_clip)} frames"
    assert len(first_at_edge) >= 5, "objects should enter through the frame's edges"
    assert len(last_at_edge) >= 5, "objects should leave through the frame's edges"


def test_all_classes_appear(long_clip: list[SceneFrame]) -> None:
    counts = defaultdict(int)
    for frame in long_clip:
        for inst in frame.instances:
            counts[inst.label] += 1
    assert set(counts) == {CIRCLE, SQUARE, TRIANGLE, STAR}
    assert min(counts.values()) > 0.1 * sum(counts.values()), f"classes are very unbalanced: {dict(counts)}"


def _touches(a: np.ndarray, b: np.ndarray) -> bool:
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= a[:, :-1]
    grown[:, :-1] |= a[:, 1:]
    return bool((grown & b).any())


def test_occlusions_happen(long_clip: list[SceneFrame]) -> None:
    """Some object, fully in frame and untouched, later loses visible area while another object borders it."""
    free_area: dict[int, int] = {}  # track id -> visible area while alone and inside the frame
    occluded = 0
    for frame in long_clip:
        for inst in frame.instances:
            others = [g for g in frame.instances if g is not inst]
            touching = [g for g in others if _touches(inst.mask, g.mask)]
            if not touching and _inside_frame(inst):
                free_area.setdefault(inst.track_id, inst.area)
            elif touching and _inside_frame(inst) and inst.track_id in free_area:
                if inst.area < 0.8 * free_area[inst.track_id]:
                    occluded += 1
    assert occluded >= 10, f"only {occluded} occluded instances in {len(long_clip)} frames"


def test_object_count_stays_between_bounds() -> None:
    cfg = SceneConfig(seed=3, num_frames=None, min_objects=3, max_objects=5, spawn_rate=5.0)
    world = World(cfg, np.random.default_rng(0))
    counts = []
    for _ in range(800):
        counts.append(len(world.objects))
        world.step()
    assert min(counts) >= 3 and max(counts) <= 5
    assert max(counts) == 5 and 3 in counts


def test_endless_config_keeps_going() -> None:
    frames = list(itertools.islice(SceneGenerator(SceneConfig(seed=2, num_frames=None)), 400))
    assert [f.index for f in frames] == list(range(400))


def test_min_visible_area_filters_small_instances() -> None:
    small = list(SceneGenerator(SceneConfig(seed=4, num_frames=150, min_visible_area=20)))
    large = list(SceneGenerator(SceneConfig(seed=4, num_frames=150, min_visible_area=600)))
    n_small = sum(len(f.instances) for f in small)
    n_large = sum(len(f.instances) for f in large)
    assert n_large < n_small
    assert all(g.area >= 600 for f in large for g in f.instances)
    # The filter only removes instances: the rest (and the pixels) are unchanged.
    for fs, fl in zip(small, large):
        assert np.array_equal(fs.image, fl.image)
        assert {g.track_id for g in fl.instances} <= {g.track_id for g in fs.instances}


def test_other_frame_sizes_scale_objects() -> None:
    big = SceneConfig(seed=6, width=640, height=480, num_frames=40)
    odd = SceneConfig(seed=6, width=161, height=97, num_frames=40)
    for cfg in (big, odd):
        frames = list(SceneGenerator(cfg))
        assert frames[0].image.shape == (cfg.height, cfg.width, 3)
        for f in frames:
            for g in f.instances:
                assert g.mask.shape == (cfg.height, cfg.width)
                x1, y1, x2, y2 = g.box
                assert max(x2 - x1, y2 - y1) <= cfg.max_size * cfg.scale * math.sqrt(2) + 2


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (CIRCLE, math.pi / 4),  # area / size^2
        (SQUARE, 1.0),
        (TRIANGLE, math.sqrt(3) / 4),
        (STAR, None),
    ],
)
def test_shapes_have_the_right_area_at_any_angle(label: int, expected: float | None) -> None:
    size = 80.0
    rng = np.random.default_rng(0)
    app = random_appearance(rng, label, size)
    areas = []
    for angle in np.linspace(0, 2 * math.pi, 7):
        stamp = rasterize(app, 160.3, 120.7, float(angle), 320, 240)
        assert stamp is not None
        area = int(stamp.mask.sum())
        assert stamp.colors.shape == (area, 3) and stamp.colors.dtype == np.uint8
        areas.append(area)
    if expected is not None:
        assert all(abs(a / size**2 - expected) < 0.03 * expected for a in areas), areas
    else:  # a five-pointed star with inner/outer 0.48: area = 5 R r sin(pi/5)
        outer = size / 2
        star = 5 * outer * outer * 0.48 * math.sin(math.pi / 5)
        assert all(abs(a - star) < 0.04 * star for a in areas), areas
    # Clipping: a shape half outside the frame is cut at the edge.
    half = rasterize(app, 0.0, 120.0, 0.0, 320, 240)
    assert half is not None and half.x0 == 0
    assert rasterize(app, -200.0, 120.0, 0.0, 320, 240) is None


def test_no_rotation_keeps_squares_axis_aligned() -> None:
    cfg = SceneConfig(seed=8, num_frames=60, rotate=False, max_objects=2, min_objects=1)
    rects = 0
    for frame in SceneGenerator(cfg):
        for g in frame.instances:
            others = [o for o in frame.instances if o is not g]
            if g.label == SQUARE and not any(_touches(g.mask, o.mask) for o in others):
                x1, y1, x2, y2 = (int(v) for v in g.box)
                assert g.area == (x2 - x1) * (y2 - y1)
                rects += 1
    assert rects > 0

